"""The simulated network: datagrams between nodes through seven seeded fault stages.

A packet sent at virtual time `now` passes, in this order:

1. partition   — dropped if its ends are on different sides of any active partition
                 (or either end is down);
2. loss        — dropped with probability `loss`;
3. bandwidth   — serialization delay size*8/bps on a per-sender FIFO link: a packet cannot
                 start serializing before the sender's previous one finished;
4. corruption  — with probability `corrupt`, one seeded bit of the payload is flipped;
5. latency     — `latency_ns` plus a uniform jitter in [0, jitter_ns];
6. reorder     — with probability `reorder`, an extra delay in [1, reorder_delay_ns] so later
                 packets overtake it;
7. duplication — with probability `duplicate`, a second copy with its own latency+jitter.

Link parameters come from network-wide defaults, per-node overrides, and fault layers (each
keyed by a fault id so ending one fault reverts exactly its effect). A packet between A and B
uses, per parameter, the more severe of A's and B's effective value: max(A, B) for every
parameter except bandwidth, where the lower non-zero rate is the more severe (0 = unlimited).

Every random draw comes from the fabric's own stream DeterministicStream(seed, "fabric", -1),
in a fixed order per packet; deliveries come out in the total order (deliver time, packet id,
copy). The whole state is a plain dict (`snapshot`/`restore`), so a checkpoint resumes the
identical continuation.

Sharing with sockets: the fabric is payload-agnostic and every packet carries a `channel`
number (0 = SDK datagrams). A TCP-like stream for unmodified binaries is built above it by
the socket layer: it cuts the byte stream into segments with sequence numbers and acks,
sends them with `send(..., channel=SOCKET_CHANNEL)`, and takes arrivals from `pop_due`
filtered by channel — so loss, corruption (checked by a segment checksum), reordering and
duplication of the shared stages become retransmissions and reassembly in that layer, and
partitions and bandwidth limits affect streams and datagrams alike.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from enum import IntFlag
from typing import Any

from chaosreplay.events import EventKind, make_record
from chaosreplay.rng import DeterministicStream

SNAPSHOT_VERSION = 1
NS_PER_S = 1_000_000_000

DROP_PARTITION = "partition"
DROP_LOSS = "loss"
DROP_NODE_DOWN = "node_down"
DELAY_QUEUE = "queue"
DELAY_REORDER = "reorder"

_PROBABILITIES = ("loss", "corrupt", "reorder", "duplicate")


@dataclass(frozen=True)
class LinkParams:
    """The fault parameters of a node's links; defaults are the product's network defaults."""

    latency_ns: int = 1_000_000
    jitter_ns: int = 0
    loss: float = 0.0
    corrupt: float = 0.0
    reorder: float = 0.0
    reorder_delay_ns: int = 5_000_000
    duplicate: float = 0.0
    bandwidth_bps: int = 0  # 0 = unlimited

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in _PROBABILITIES:
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"{f.name} must be a probability in [0, 1], got {value!r}")
            elif not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{f.name} must be a non-negative integer, got {value!r}")

    def worst(self, other: LinkParams) -> LinkParams:
        """Per parameter, the more severe of the two (the max rule; bandwidth: lower non-zero)."""
        merged: dict[str, Any] = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "bandwidth_bps":
                merged[f.name] = min(a, b) if a and b else max(a, b)
            else:
                merged[f.name] = max(a, b)
        return LinkParams(**merged)

    def to_dict(self) -> dict[str, Any]:
        """The parameters as a plain dict."""
        return asdict(self)


LINK_PARAM_NAMES: tuple[str, ...] = tuple(f.name for f in fields(LinkParams))

# The identity of `worst`: a layer only makes the parameters it names more severe.
_NEUTRAL = LinkParams(latency_ns=0, reorder_delay_ns=0)


def _check_param_names(params: dict[str, Any]) -> None:
    unknown = sorted(set(params) - set(LINK_PARAM_NAMES))
    if unknown:
        raise ValueError(f"unknown link parameter(s) {unknown}; known: {list(LINK_PARAM_NAMES)}")


class PacketFlags(IntFlag):
    """What the fabric did to one delivered copy of a packet."""

    NONE = 0
    CORRUPTED = 1
    QUEUED = 2
    REORDERED = 4
    DUPLICATE = 8


@dataclass(frozen=True)
class Delivery:
    """One copy of a packet in flight, or handed to its destination by `pop_due`."""

    deliver_ns: int
    src: int
    dst: int
    payload: bytes
    packet_id: int
    flags: PacketFlags
    copy: int = 0  # 0 = the original, 1 = the duplicate
    channel: int = 0
    sent_ns: int = 0

    def order_key(self) -> tuple[int, int, int]:
        """The total delivery order: time, then packet id, then copy."""
        return (self.deliver_ns, self.packet_id, self.copy)

    def to_record(self, payload_bytes: int = 0) -> dict[str, Any]:
        """The packet.delivered record for the recorder, with the first payload_bytes of
        the payload as delivered (after any corruption) when that is not 0."""
        extra = {"payload": self.payload[:payload_bytes]} if payload_bytes else {}
        return make_record(
            EventKind.PACKET_DELIVERED, time_ns=self.deliver_ns, packet_id=self.packet_id,
            copy=self.copy, src=self.src, dst=self.dst, size=len(self.payload),
            channel=self.channel, flags=int(self.flags), sent_ns=self.sent_ns, **extra,
        )

    def _to_list(self) -> list[Any]:
        return [self.deliver_ns, self.src, self.dst, self.payload, self.packet_id,
                int(self.flags), self.copy, self.channel, self.sent_ns]

    @classmethod
    def _from_list(cls, row: list[Any]) -> Delivery:
        d, s, t, payload, pid, flags, copy, channel, sent = row
        return cls(d, s, t, bytes(payload), pid, PacketFlags(flags), copy, channel, sent)


@dataclass(frozen=True)
class FabricEvent:
    """Something the fabric did to a packet (sent, dropped, corrupted, duplicated, delayed)."""

    kind: EventKind
    time_ns: int
    packet_id: int
    src: int
    dst: int
    size: int
    detail: dict[str, Any] = field(default_factory=dict)
    # The packet's channel and its payload as sent (b"": not known intact), for whoever
    # records the event to describe what the payload carries; neither is recorded.
    channel: int = field(default=0, compare=False)
    payload: bytes = field(default=b"", compare=False, repr=False)

    def to_record(self) -> dict[str, Any]:
        """The record for the recorder: kind, time, packet fields, then the details."""
        return make_record(
            self.kind, time_ns=self.time_ns, packet_id=self.packet_id, src=self.src,
            dst=self.dst, size=self.size, **self.detail,
        )


@dataclass
class NetworkStats:
    """Counts of what happened to packets, dropped and delayed split by reason."""

    sent: int = 0
    delivered: int = 0
    corrupted: int = 0
    duplicated: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    delayed: dict[str, int] = field(default_factory=dict)

    @property
    def dropped_total(self) -> int:
        """All drops, whatever the reason."""
        return sum(self.dropped.values())

    @property
    def delayed_total(self) -> int:
        """All extra delays, whatever the reason."""
        return sum(self.delayed.values())

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (reason maps sorted, so equal stats give equal dicts)."""
        out = asdict(self)
        out["dropped"] = dict(sorted(self.dropped.items()))
        out["delayed"] = dict(sorted(self.delayed.items()))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NetworkStats:
        """The inverse of to_dict."""
        return cls(**{**data, "dropped": dict(data["dropped"]), "delayed": dict(data["delayed"])})


class NetworkFabric:
    """Datagrams between nodes through the seven seeded stages (see the module docstring)."""

    def __init__(self, seed: int, node_count: int, defaults: LinkParams | None = None) -> None:
        if node_count < 1:
            raise ValueError(f"node_count must be >= 1, got {node_count}")
        self.seed = seed
        self.node_count = node_count
        self.stats = NetworkStats()
        self._stream = DeterministicStream(seed, "fabric", -1)
        self._defaults = defaults or LinkParams()
        self._node_base: dict[int, dict[str, Any]] = {}
        self._layers: dict[str, tuple[int | None, dict[str, Any]]] = {}
        self._partitions: dict[str, tuple[tuple[int, ...], ...]] = {}
        self._down: set[int] = set()
        self._tx_free_ns: dict[int, int] = {}
        self._heap: list[tuple[int, int, int, Delivery]] = []
        self._next_id = 0
        self._link_cache: dict[tuple[int, int], LinkParams] = {}  # emptied on any change
        # Bytes of each payload kept in its packet.sent / packet.delivered events (0: none);
        # configuration (the scenario's packet_payload_bytes), not state.
        self.payload_bytes = 0

    def reseed(self, seed: int) -> None:
        """Draw from now on from the stream of another seed, at the same position (a
        `reseed` fault, sim/reseed.py); the snapshot carries the seed."""
        self.seed = seed
        self._stream = DeterministicStream(seed, "fabric", -1, self._stream.position)

    # -- configuration ------------------------------------------------------------------

    def set_link_params(self, node: int | None, key: str | None = None, **params: Any) -> None:
        """Set link parameters: key=None edits the base (node=None: the defaults), else a layer.

        A keyed layer (a fault id) applies to one node or, with node=None, to every node; it
        only makes the parameters it names more severe, and `clear_link_params(key)` removes it.
        """
        _check_param_names(params)
        if node is not None:
            self._check_node(node)
        self._link_cache.clear()
        if key is None:
            if node is None:
                self._defaults = replace(self._defaults, **params)
            else:
                merged = {**self._node_base.get(node, {}), **params}
                replace(self._defaults, **merged)  # validates the values
                self._node_base[node] = merged
            return
        replace(_NEUTRAL, **params)  # validates the values
        self._layers[key] = (node, dict(params))

    def clear_link_params(self, key: str) -> None:
        """Remove the parameter layer a fault added (no-op when it is not there)."""
        self._link_cache.clear()
        self._layers.pop(key, None)

    def node_params(self, node: int) -> LinkParams:
        """The effective parameters of one node: base, override, then every applicable layer."""
        params = replace(self._defaults, **self._node_base.get(node, {}))
        for layer_node, layer in self._layers.values():
            if layer_node is None or layer_node == node:
                params = params.worst(replace(_NEUTRAL, **layer))
        return params

    def link_params(self, src: int, dst: int) -> LinkParams:
        """The parameters a packet from src to dst uses: the more severe of the two nodes'."""
        params = self._link_cache.get((src, dst))
        if params is None:
            params = self.node_params(src).worst(self.node_params(dst))
            self._link_cache[(src, dst)] = params
        return params

    def set_partition(self, sides: list[list[int]], key: str = "partition") -> None:
        """Partition the network: packets between different sides are dropped.

        Nodes named on no side form one further, implicit side together. Several partitions
        (different keys, e.g. fault ids) may be active; a packet crosses only if no active
        partition separates its ends.
        """
        seen: set[int] = set()
        canonical: list[tuple[int, ...]] = []
        for side in sides:
            if not side:
                raise ValueError("a partition side must name at least one node")
            for node in side:
                self._check_node(node)
                if node in seen:
                    raise ValueError(f"node {node} is on two sides of the partition")
                seen.add(node)
            canonical.append(tuple(sorted(side)))
        self._partitions[key] = tuple(canonical)

    def isolate(self, node: int, key: str | None = None) -> None:
        """Cut one node off from every other node (a partition with the node alone on a side)."""
        self.set_partition([[node]], key=key if key is not None else f"isolate:{node}")

    def heal(self, key: str | None = None) -> None:
        """Remove one partition (by key) or, with key=None, every partition and isolation."""
        if key is None:
            self._partitions.clear()
        else:
            self._partitions.pop(key, None)

    def partitions(self) -> dict[str, list[list[int]]]:
        """The active partitions by key, as lists of sides."""
        return {key: [list(side) for side in sides] for key, sides in self._partitions.items()}

    def separated(self, a: int, b: int) -> bool:
        """Whether an active partition puts a and b on different sides."""
        return any(
            _side_of(sides, a) != _side_of(sides, b) for sides in self._partitions.values()
        )

    def set_node_down(self, now_ns: int, node: int, down: bool) -> list[FabricEvent]:
        """Mark a node down (killed/crashed: in-flight packets to it are dropped) or up again."""
        self._check_node(node)
        if not down:
            self._down.discard(node)
            return []
        self._down.add(node)
        return self.drop_in_flight_to(now_ns, node)

    def drop_in_flight_to(
        self, now_ns: int, node: int, reason: str = DROP_NODE_DOWN
    ) -> list[FabricEvent]:
        """Drop every packet in flight to a node (it crashed); returns the drop events."""
        kept = [entry for entry in self._heap if entry[3].dst != node]
        dropped = sorted((e[3] for e in self._heap if e[3].dst == node), key=Delivery.order_key)
        heapq.heapify(kept)
        self._heap = kept
        events = []
        for packet in dropped:
            self._count(self.stats.dropped, reason)
            intact = b"" if packet.flags & PacketFlags.CORRUPTED else packet.payload
            events.append(FabricEvent(
                EventKind.PACKET_DROPPED, now_ns, packet.packet_id, packet.src, packet.dst,
                len(packet.payload), {"reason": reason, "copy": packet.copy}, packet.channel,
                intact,
            ))
        return events

    # -- traffic --------------------------------------------------------------------------

    def send(
        self, now_ns: int, src: int, dst: int, payload: bytes, channel: int = 0
    ) -> list[FabricEvent]:
        """Put a datagram on the network; returns what happened to it, in stage order."""
        self._check_node(src)
        self._check_node(dst)
        packet_id = self._next_id
        self._next_id += 1
        self.stats.sent += 1
        size = len(payload)
        original = payload
        as_sent = payload[:self.payload_bytes]  # before corruption changes it

        def event(kind: EventKind, **detail: Any) -> FabricEvent:
            return FabricEvent(kind, now_ns, packet_id, src, dst, size, detail, channel,
                               original)

        def sent(deliver_ns: int) -> FabricEvent:
            if self.payload_bytes:
                return event(EventKind.PACKET_SENT, channel=channel, deliver_ns=deliver_ns,
                             payload=as_sent)
            return event(EventKind.PACKET_SENT, channel=channel, deliver_ns=deliver_ns)

        # 1. partition (and ends that are down)
        if src in self._down or dst in self._down:
            return [sent(-1), self._drop(event, DROP_NODE_DOWN)]
        if self.separated(src, dst):
            return [sent(-1), self._drop(event, DROP_PARTITION)]
        link = self.link_params(src, dst)
        stream = self._stream
        # 2. loss
        if stream.chance(link.loss):
            return [sent(-1), self._drop(event, DROP_LOSS)]
        events: list[FabricEvent] = []
        flags = PacketFlags.NONE
        # 3. bandwidth: the sender's link is a FIFO, so a packet waits for the previous one.
        depart_ns = now_ns
        if link.bandwidth_bps:
            start_ns = max(now_ns, self._tx_free_ns.get(src, 0))
            serialize_ns = -(-size * 8 * NS_PER_S // link.bandwidth_bps)  # ceil
            depart_ns = start_ns + serialize_ns
            self._tx_free_ns[src] = depart_ns
            if start_ns > now_ns:
                flags |= PacketFlags.QUEUED
                self._count(self.stats.delayed, DELAY_QUEUE)
                events.append(event(EventKind.PACKET_DELAYED, reason=DELAY_QUEUE,
                                    delay_ns=start_ns - now_ns))
        # 4. corruption
        if size and stream.chance(link.corrupt):
            byte, bit = stream.below(size), stream.below(8)
            mutated = bytearray(payload)
            mutated[byte] ^= 1 << bit
            payload = bytes(mutated)
            flags |= PacketFlags.CORRUPTED
            self.stats.corrupted += 1
            events.append(event(EventKind.PACKET_CORRUPTED, byte=byte, bit=bit))
        # 5. latency + jitter
        deliver_ns = depart_ns + self._latency(link)
        # 6. reorder: held back so that packets sent after it overtake it
        if stream.chance(link.reorder) and link.reorder_delay_ns:
            extra = 1 + stream.below(link.reorder_delay_ns)
            deliver_ns += extra
            flags |= PacketFlags.REORDERED
            self._count(self.stats.delayed, DELAY_REORDER)
            events.append(event(EventKind.PACKET_DELAYED, reason=DELAY_REORDER, delay_ns=extra))
        self._push(Delivery(deliver_ns, src, dst, payload, packet_id, flags, 0, channel, now_ns))
        # 7. duplication: the copy takes its own latency+jitter from the departure time
        if stream.chance(link.duplicate):
            copy_ns = depart_ns + self._latency(link)
            self._push(Delivery(copy_ns, src, dst, payload, packet_id,
                                flags | PacketFlags.DUPLICATE, 1, channel, now_ns))
            self.stats.duplicated += 1
            events.append(event(EventKind.PACKET_DUPLICATED, deliver_ns=copy_ns))
        return [sent(deliver_ns), *events]

    def next_delivery_ns(self) -> int | None:
        """When the earliest in-flight packet arrives, or None with nothing in flight."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now_ns: int) -> list[Delivery]:
        """Every packet due at or before now_ns, in (deliver time, packet id, copy) order."""
        due: list[Delivery] = []
        while self._heap and self._heap[0][0] <= now_ns:
            due.append(heapq.heappop(self._heap)[3])
        self.stats.delivered += len(due)
        return due

    def in_flight(self) -> list[Delivery]:
        """The packets still in flight, in delivery order."""
        return [entry[3] for entry in sorted(self._heap, key=lambda e: e[:3])]

    # -- checkpoints -------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole fabric state as a msgpack-serialisable dict."""
        return {
            "version": SNAPSHOT_VERSION,
            "seed": self.seed,
            "node_count": self.node_count,
            "position": self._stream.position,
            "next_id": self._next_id,
            "defaults": self._defaults.to_dict(),
            "node_base": [[n, dict(p)] for n, p in sorted(self._node_base.items())],
            "layers": [[k, n, dict(p)] for k, (n, p) in self._layers.items()],
            "partitions": [[k, [list(s) for s in sides]] for k, sides in self._partitions.items()],
            "down": sorted(self._down),
            "tx_free": [[n, t] for n, t in sorted(self._tx_free_ns.items())],
            "in_flight": [d._to_list() for d in self.in_flight()],
            "stats": self.stats.to_dict(),
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace this fabric's state with a snapshot's (the inverse of `snapshot`)."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported fabric snapshot version {snap.get('version')!r}")
        self.seed = snap["seed"]
        self.node_count = snap["node_count"]
        self._stream = DeterministicStream(self.seed, "fabric", -1, snap["position"])
        self._next_id = snap["next_id"]
        self._link_cache.clear()
        self._defaults = LinkParams(**snap["defaults"])
        self._node_base = {n: dict(p) for n, p in snap["node_base"]}
        self._layers = {k: (n, dict(p)) for k, n, p in snap["layers"]}
        self._partitions = {k: tuple(tuple(s) for s in sides) for k, sides in snap["partitions"]}
        self._down = set(snap["down"])
        self._tx_free_ns = {n: t for n, t in snap["tx_free"]}
        self._heap = []
        for row in snap["in_flight"]:
            self._push(Delivery._from_list(row))
        self.stats = NetworkStats.from_dict(snap["stats"])

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> NetworkFabric:
        """A new fabric in a snapshot's state."""
        fabric = cls(snap["seed"], snap["node_count"])
        fabric.restore(snap)
        return fabric

    # -- internals ------------------------------------------------------------------------

    def _check_node(self, node: int) -> None:
        if not 0 <= node < self.node_count:
            raise ValueError(f"node {node} does not exist (nodes are 0..{self.node_count - 1})")

    def _latency(self, link: LinkParams) -> int:
        jitter = self._stream.below(link.jitter_ns + 1) if link.jitter_ns else 0
        return link.latency_ns + jitter

    def _push(self, packet: Delivery) -> None:
        heapq.heappush(self._heap, (packet.deliver_ns, packet.packet_id, packet.copy, packet))

    def _drop(self, event: Callable[..., FabricEvent], reason: str) -> FabricEvent:
        self._count(self.stats.dropped, reason)
        return event(EventKind.PACKET_DROPPED, reason=reason, copy=0)

    @staticmethod
    def _count(counter: dict[str, int], reason: str) -> None:
        counter[reason] = counter.get(reason, 0) + 1


def _side_of(sides: tuple[tuple[int, ...], ...], node: int) -> int:
    """The index of the side holding node; -1 is the implicit side of unnamed nodes."""
    for i, side in enumerate(sides):
        if node in side:
            return i
    return -1
