"""One packet of a recording as the debugger shows it: its payload, its decoded fields, and
the events at its two ends (the send of a delivery, the delivery of a send)."""

from __future__ import annotations

from dataclasses import dataclass

from chaosreplay.debugger.payloads import Fields, PayloadDecoder
from chaosreplay.events import EventKind
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.model import Event
from chaosreplay.sim.validation import NS_PER_TICK

PACKET_KINDS = frozenset(kind.value for kind in EventKind if kind.value.startswith("packet."))


@dataclass(frozen=True)
class PacketView:
    """A packet seen from one of its events."""

    seq: int  # the event looked at
    kind: str
    packet_id: int
    src: int
    dst: int
    size: int  # of the whole payload
    payload: bytes | None  # what the recording kept (None: nothing kept)
    fields: Fields | str | None  # decoded (None: no decoder)
    sent_seq: int | None  # its packet.sent event
    delivered_seq: int | None  # its (first) packet.delivered event


def is_packet_event(event: Event) -> bool:
    return event.kind in PACKET_KINDS and "packet_id" in event.fields


def find_send(reader: RecordingReader, event: Event) -> int | None:
    """The packet.sent event of the packet `event` is about (sends are recorded on the
    source node in packet-id order, so the search stops at the first older id)."""
    if event.kind == EventKind.PACKET_SENT:
        return event.seq
    packet_id, src = event.fields.get("packet_id"), event.fields.get("src")
    if not isinstance(packet_id, int) or not isinstance(src, int):
        return None
    for candidate in reader.events_before(event.seq, kinds=[EventKind.PACKET_SENT.value],
                                          nodes=[src]):
        other = candidate.fields.get("packet_id")
        if other == packet_id:
            return candidate.seq
        if isinstance(other, int) and other < packet_id:
            return None
    return None


def find_delivery(reader: RecordingReader, sent: Event) -> int | None:
    """The first packet.delivered event of the packet sent by `sent` (None: it was
    dropped, or the recording ends first)."""
    deliver_ns, packet_id, dst = (sent.fields.get(k) for k in ("deliver_ns", "packet_id", "dst"))
    if not isinstance(deliver_ns, int) or deliver_ns < 0 or not isinstance(dst, int):
        return None
    for candidate in reader.events(from_seq=sent.seq + 1, to_tick=deliver_ns // NS_PER_TICK + 1,
                                   kinds=[EventKind.PACKET_DELIVERED.value], nodes=[dst]):
        if candidate.fields.get("packet_id") == packet_id:
            return candidate.seq
    return None


def packet_view(reader: RecordingReader, seq: int,
                decoder: PayloadDecoder | None) -> PacketView | None:
    """The packet of event `seq` (None: the event is not about a packet)."""
    event = reader.event(seq)
    if not is_packet_event(event):
        return None
    f = event.fields
    sent_seq = find_send(reader, event)
    sent = reader.event(sent_seq) if sent_seq is not None else None
    delivered_seq = (event.seq if event.kind == EventKind.PACKET_DELIVERED
                     else find_delivery(reader, sent) if sent is not None else None)
    payload = f.get("payload")
    if not isinstance(payload, bytes) and sent is not None:
        payload = sent.fields.get("payload")  # a drop or a delay: the payload as sent
    payload = payload if isinstance(payload, bytes) else None
    src, dst = int(f.get("src", -1)), int(f.get("dst", -1))
    fields = (decoder.decode(payload, src, dst) if decoder is not None and payload is not None
              else None)
    return PacketView(seq, event.kind, int(f["packet_id"]), src, dst, int(f.get("size", 0)),
                      payload, fields, sent_seq, delivered_seq)
