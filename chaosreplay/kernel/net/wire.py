"""How a socket packet is laid out on the fabric: one IP-like header, a checksum, the data.

The fabric moves opaque payloads; socket traffic travels on its own channel so the SDK's
datagrams (channel 0) never mix with it. The header names the transport protocol, both
ports and both addresses; a CRC-32 covers header and data, so a packet the fabric's
corruption stage hit is recognised and dropped on arrival — as Linux drops a UDP datagram
or TCP segment whose checksum fails.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from chaosreplay.kernel.net import tcp_segment
from chaosreplay.kernel.net.addresses import InetAddress

SOCKET_CHANNEL = 1  # the fabric channel of socket traffic (0: SDK datagrams)
WIRE_VERSION = 1
PROTO_ICMP, PROTO_TCP, PROTO_UDP = 1, 6, 17
PORT_UNREACHABLE = b"\x03\x03"  # ICMP type 3 (destination unreachable), code 3 (port)
_HEADER = struct.Struct(">BBHH16s16sI")  # version, protocol, ports, addresses, checksum
HEADER_SIZE = _HEADER.size


@dataclass(frozen=True, slots=True)
class Packet:
    """A socket packet as the receiving stack sees it."""

    protocol: int
    source: InetAddress
    destination: InetAddress
    data: bytes


def _checksum(header: bytes, data: bytes) -> int:
    return zlib.crc32(data, zlib.crc32(header))


def pack(protocol: int, source: InetAddress, destination: InetAddress, data: bytes) -> bytes:
    """The bytes of one packet."""
    header = _HEADER.pack(WIRE_VERSION, protocol, source.port, destination.port, source.host,
                          destination.host, 0)
    return _HEADER.pack(WIRE_VERSION, protocol, source.port, destination.port, source.host,
                        destination.host, _checksum(header, data)) + data


def tcp_fields(raw: bytes) -> dict[str, Any] | None:
    """What the events of a packet say about the TCP segment it carries: the connection's
    two ends (address:port, sender first), flags, seq, ack, data length and window; None
    for any other packet. Read from the headers alone (no checksum, no copy), so it costs
    a UDP or ICMP packet one byte comparison; a caller describing a packet the fabric
    corrupted must not call it (the headers may be the flipped bit's)."""
    if len(raw) < HEADER_SIZE or raw[1] != PROTO_TCP:
        return None
    header = tcp_segment.header_fields(raw[HEADER_SIZE:HEADER_SIZE + tcp_segment.HEADER_SIZE])
    if header is None:
        return None
    _, _, sport, dport, src, dst, _ = _HEADER.unpack_from(raw)
    seq, ack, flags, window = header
    return {"src": _endpoint(src, sport), "dst": _endpoint(dst, dport),
            "flags": _flags(flags), "seq": seq, "ack": ack,
            "len": len(raw) - HEADER_SIZE - tcp_segment.HEADER_SIZE, "window": window}


# A run's segments name few ends and flag sets: their text is made once (a pure function of
# the bytes, so the memo cannot make two runs differ).
@lru_cache(maxsize=4096)
def _endpoint(host: bytes, port: int) -> str:
    """address:port of one end."""
    return InetAddress(host, port).text()


@lru_cache(maxsize=64)
def _flags(flags: int) -> str:
    """The flags' names."""
    return tcp_segment.flag_text(flags)


def unpack(raw: bytes) -> Packet | None:
    """A packet, or None when it is malformed or fails its checksum (corrupted on the way)."""
    if len(raw) < HEADER_SIZE:
        return None
    version, protocol, sport, dport, src, dst, checksum = _HEADER.unpack_from(raw)
    data = raw[HEADER_SIZE:]
    header = _HEADER.pack(version, protocol, sport, dport, src, dst, 0)
    if version != WIRE_VERSION or checksum != _checksum(header, data):
        return None
    return Packet(protocol, InetAddress(src, sport), InetAddress(dst, dport), data)
