"""A TCP segment as it travels inside a socket packet (kernel/net/wire.py carries the
ports, addresses and checksum): sequence and acknowledgment numbers, flags, the receive
window, the data. The window is a full 32-bit field, so no window scaling is needed."""

from __future__ import annotations

import struct
from dataclasses import dataclass

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
FLAG_NAMES = ((SYN, "SYN"), (ACK, "ACK"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"))
SEQ_MOD = 1 << 32
_HEADER = struct.Struct(">IIBI")
HEADER_SIZE = _HEADER.size


def seq_add(a: int, n: int) -> int:
    return (a + n) % SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """a - b as a signed distance in sequence space (RFC 9293 §3.4 comparisons)."""
    d = (a - b) % SEQ_MOD
    return d - SEQ_MOD if d >= SEQ_MOD // 2 else d


def seq_lt(a: int, b: int) -> bool:
    return seq_diff(a, b) < 0


def seq_le(a: int, b: int) -> bool:
    return seq_diff(a, b) <= 0


@dataclass(frozen=True, slots=True)
class Segment:
    """One TCP segment."""

    seq: int
    ack: int
    flags: int
    window: int
    data: bytes = b""

    @property
    def length(self) -> int:
        """Sequence space the segment occupies (SYN and FIN count one each)."""
        return len(self.data) + bool(self.flags & SYN) + bool(self.flags & FIN)

    def flag_text(self) -> str:
        """The flags as tcpdump's names joined by |, "-" for none."""
        return flag_text(self.flags)

    def pack(self) -> bytes:
        return _HEADER.pack(self.seq, self.ack, self.flags, self.window) + self.data

    @classmethod
    def unpack(cls, raw: bytes) -> Segment | None:
        if len(raw) < _HEADER.size:
            return None
        seq, ack, flags, window = _HEADER.unpack_from(raw)
        return cls(seq, ack, flags, window, raw[_HEADER.size:])


def flag_text(flags: int) -> str:
    """TCP flags as their names joined by | ("SYN|ACK"), "-" for none."""
    return "|".join(name for bit, name in FLAG_NAMES if flags & bit) or "-"


def header_fields(raw: bytes) -> tuple[int, int, int, int] | None:
    """(seq, ack, flags, window) of a packed segment without copying its data (None: too
    short to be one)."""
    if len(raw) < HEADER_SIZE:
        return None
    return _HEADER.unpack_from(raw)


def reset_for(seg: Segment) -> Segment | None:
    """The RST answering a segment that reached no connection (RFC 9293 §3.10.7.1); none
    for a RST."""
    if seg.flags & RST:
        return None
    if seg.flags & ACK:
        return Segment(seg.ack, 0, RST, 0)
    return Segment(0, seq_add(seg.seq, seg.length), RST | ACK, 0)
