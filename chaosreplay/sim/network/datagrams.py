"""Datagram endpoints: the SDK's cr_send/cr_recv on top of the NetworkFabric, and the
carrier of the nodes' socket packets (channel SOCKET_CHANNEL) to and from their stacks.

Each node has an inbox (its socket receive buffer) and at most one cr_recv it is blocked
in. A send goes straight into the fabric at the sender's virtual time. The controller pops
deliveries from the fabric at their delivery time and hands each to `deliver`: a node
blocked in cr_recv gets it at once (the call returns at the delivery time); otherwise it
waits in the inbox for the next cr_recv. A blocked cr_recv that sees nothing returns
-ETIMEDOUT when its timeout expires on the node's own clock.
"""

from __future__ import annotations

import errno
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from chaosreplay.events import EventKind, make_record
from chaosreplay.kernel.net.tcp import TcpConfig
from chaosreplay.kernel.net.wire import SOCKET_CHANNEL, tcp_fields
from chaosreplay.sim.network.fabric import Delivery, FabricEvent, NetworkFabric, PacketFlags

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

INBOX_LIMIT = 512  # datagrams queued per node; beyond it arrivals are dropped, as UDP does
NEVER = 1 << 62  # wake-up time of a cr_recv without timeout
DROP_INBOX_FULL = "inbox_full"

Recorder = Callable[[int, int, dict[str, Any]], None]  # (node, vtime_ns, record)


@dataclass(slots=True)
class PendingRecv:
    """A cr_recv a node is blocked in: where the datagram and its source go."""

    buf: int
    cap: int
    src_ptr: int


@dataclass(slots=True)
class Endpoint:
    """One node's side of the network."""

    inbox: deque[Delivery] = field(default_factory=deque)
    pending: PendingRecv | None = None


class Messaging:
    """cr_send/cr_recv for every node of a run (attached as `process.network`)."""

    def __init__(self, fabric: NetworkFabric, record: Recorder,
                 tcp_config: TcpConfig | None = None) -> None:
        self.fabric = fabric
        self.record = record
        self.tcp_config = tcp_config or TcpConfig()  # what every node's TCP uses
        self.endpoints = [Endpoint() for _ in range(fabric.node_count)]

    # -- the SDK side (called from syscall handlers) ---------------------------------------

    def send(self, p: GuestProcess, dst: int, payload: bytes) -> int:
        """cr_send: hand one datagram to the fabric at the sender's virtual time."""
        for event in self.fabric.send(p.vtime_ns, p.node_id, dst, payload):
            self._record_fabric(event)
        return 0

    def send_packet(self, p: GuestProcess, dst: int, payload: bytes, channel: int,
                    at_ns: int) -> None:
        """A socket packet from p's network stack (kernel/net) into the fabric at at_ns."""
        for event in self.fabric.send(at_ns, p.node_id, dst, payload, channel=channel):
            self._record_fabric(event)

    def recv(self, p: GuestProcess, buf: int, cap: int, timeout_ns: int, src_ptr: int) -> int:
        """cr_recv: take the oldest queued datagram, or block until one comes or time runs out."""
        endpoint = self.endpoints[p.node_id]
        if endpoint.inbox:
            return _hand_over(p, endpoint.inbox.popleft(), buf, cap, src_ptr)
        if timeout_ns == 0:
            return -errno.ETIMEDOUT
        endpoint.pending = PendingRecv(buf, cap, src_ptr)
        p.current.in_sdk_recv = True
        if timeout_ns < 0:
            p.block_until(NEVER)
        else:
            p.block_for(timeout_ns)
        return -errno.ETIMEDOUT  # the result unless a delivery completes the call first

    # -- the controller side ------------------------------------------------------------------

    def deliver(self, packet: Delivery, p: GuestProcess, can_receive: bool) -> None:
        """A packet reached its destination: complete a blocked cr_recv or queue it."""
        endpoint = self.endpoints[packet.dst]
        self.record(packet.dst, packet.deliver_ns, _with_tcp(
            packet.to_record(self.fabric.payload_bytes), packet.channel, _intact(packet)))
        if packet.channel == SOCKET_CHANNEL:
            # The node's kernel takes it even while the program is paused, as a stopped
            # process's kernel still receives; a killed node's packets never get here.
            reason = p.net.arrive(p, packet.payload, packet.deliver_ns)
            if reason is not None:
                self._dropped(packet, reason)
            return
        if can_receive and endpoint.pending is not None:
            self._complete(p, endpoint, packet, packet.deliver_ns)
        elif len(endpoint.inbox) < INBOX_LIMIT:
            endpoint.inbox.append(packet)
        else:
            self._dropped(packet, DROP_INBOX_FULL)

    def _dropped(self, packet: Delivery, reason: str) -> None:
        """A delivered packet the receiving node could not take: counted and recorded."""
        self.fabric.stats.dropped[reason] = self.fabric.stats.dropped.get(reason, 0) + 1
        self.record(packet.dst, packet.deliver_ns, _with_tcp(make_record(
            EventKind.PACKET_DROPPED, time_ns=packet.deliver_ns, packet_id=packet.packet_id,
            src=packet.src, dst=packet.dst, size=len(packet.payload), reason=reason,
            copy=packet.copy), packet.channel, _intact(packet)))

    def resumed(self, p: GuestProcess, now_ns: int) -> None:
        """A paused node runs again: a blocked cr_recv takes what arrived meanwhile."""
        endpoint = self.endpoints[p.node_id]
        if endpoint.pending is not None and endpoint.inbox:
            self._complete(p, endpoint, endpoint.inbox.popleft(), now_ns)

    def before_run(self, node: int, p: GuestProcess) -> None:
        """The node is about to run: a cr_recv no thread still sleeps in has returned."""
        if not p.in_datagram_recv():
            self.endpoints[node].pending = None

    def recv_timed_out(self, node: int) -> None:
        """The thread sleeping in cr_recv woke by its timeout: the call is over."""
        self.endpoints[node].pending = None

    def reset(self, node: int) -> None:
        """The node died: its socket buffer and pending call are gone."""
        self.endpoints[node] = Endpoint()

    def record_fabric_events(self, events: list[FabricEvent]) -> None:
        """Record what the fabric reports (e.g. packets dropped because a node went down)."""
        for event in events:
            self._record_fabric(event)

    # -- checkpoints ---------------------------------------------------------------------------

    def snapshot(self) -> list[Any]:
        """Inboxes and blocked calls as plain data."""
        return [[[d._to_list() for d in e.inbox],
                 None if e.pending is None else [e.pending.buf, e.pending.cap, e.pending.src_ptr]]
                for e in self.endpoints]

    def restore(self, snap: list[Any]) -> None:
        """The inverse of snapshot."""
        self.endpoints = [
            Endpoint(deque(Delivery._from_list(row) for row in inbox),
                     None if pending is None else PendingRecv(*pending))
            for inbox, pending in snap
        ]

    # -- internals -----------------------------------------------------------------------------

    def _complete(self, p: GuestProcess, endpoint: Endpoint, packet: Delivery,
                  at_ns: int) -> None:
        pending = endpoint.pending
        assert pending is not None
        endpoint.pending = None
        receiver = p.datagram_receiver()  # the node's process whose thread called cr_recv
        p.complete_datagram_recv(_hand_over(receiver, packet, pending.buf, pending.cap,
                                            pending.src_ptr), at_ns)

    def _record_fabric(self, event: FabricEvent) -> None:
        node = event.dst if event.kind is EventKind.PACKET_DELIVERED else event.src
        self.record(node, event.time_ns, _with_tcp(event.to_record(), event.channel,
                                                   event.payload))


def _intact(packet: Delivery) -> bytes:
    """The payload if the fabric did not corrupt it (b"": its headers cannot be trusted)."""
    return b"" if packet.flags & PacketFlags.CORRUPTED else packet.payload


def _with_tcp(record: dict[str, Any], channel: int, payload: bytes) -> dict[str, Any]:
    """A packet event's record, naming the TCP segment its socket packet carries (a `tcp`
    field: kernel/net/wire.tcp_fields); SDK datagrams are not looked at."""
    if channel == SOCKET_CHANNEL:
        tcp = tcp_fields(payload)
        if tcp is not None:
            record["tcp"] = tcp
    return record


def _hand_over(p: GuestProcess, packet: Delivery, buf: int, cap: int, src_ptr: int) -> int:
    """Copy a datagram (truncated to cap, as UDP does) and its source into the guest."""
    data = packet.payload[:cap]
    if data and not p.space.write(buf, data):
        return -errno.EFAULT
    if src_ptr and not p.space.write(src_ptr, packet.src.to_bytes(4, "little")):
        return -errno.EFAULT
    return len(data)
