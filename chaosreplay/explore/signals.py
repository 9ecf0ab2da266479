"""The signal the VMM computes from a run's event stream: what counts as "something new".

A signal is a small hashable tuple. None of them holds a tick or a virtual time, so a run
that merely lasts longer finds nothing new (the seed project's coverage map was keyed by
tick and measured mostly the passage of time). Kinds, strongest first:

- ``("sometimes", id)``: a sometimes/reachable assertion satisfied (the strongest signal:
  the program's author said this moment matters);
- ``("milestone", node, previous, id)`` and ``("milestone.any", previous, id, same)``: the
  order in which satisfied sometimes/reachable assertions (the program's milestones) follow
  each other, on one node and across the cluster (``same``: on the node of the previous
  one) — a protocol-level happens-before summary (a node restarts, then becomes leader);
- ``("assert", id, outcome)`` and ``("assert.count", id, outcome, bucket)``: an assertion's
  outcome, and how often (AFL-style log2 buckets of the count so far in this run);
- ``("edge", group, index)``: an edge of the SDK's coverage bitmap (coverage.py);
- ``("status", node, before, after)``: a node status transition;
- ``("syscall", node, number, result class)``;
- ``("packet", src, dst, size)`` and ``("packet.head", src, dst, first bytes)``;
- ``("order", node, last deliveries)``: who talked to this node, in which order (the last
  three deliveries as (sender, size bucket)): a happens-before summary per node.
"""

from __future__ import annotations

import errno
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chaosreplay.kernel.sdk_abi import CR_SYS_SEND, AssertKind

Signal = tuple[Any, ...]
ORDER_DEPTH = 3  # deliveries remembered per node for the happens-before summary
HEAD_BYTES = 4  # leading payload bytes of a sent datagram taken as its "type"

WEIGHTS: dict[str, float] = {
    "sometimes": 10.0, "milestone": 2.0, "milestone.any": 1.0, "assert": 3.0,
    "assert.count": 1.0, "edge": 1.0, "status": 1.0, "syscall": 1.0, "packet": 0.5,
    "packet.head": 0.5, "order": 0.25,
}
"""How much a first occurrence of each kind of signal is worth to the energy rule."""

PayloadReader = Callable[[int, int, int], bytes | None]  # (node, address, length) -> bytes


def weight(signal: Signal) -> float:
    """What a signal seen for the first time is worth."""
    return WEIGHTS.get(signal[0], 1.0)


def count_bucket(count: int) -> int:
    """AFL's hit-count classes: 1, 2, 3, 4-7, 8-15, 16-31, 32-127, 128+ (as 0..7)."""
    for bucket, limit in enumerate((1, 2, 3, 7, 15, 31, 127)):
        if count <= limit:
            return bucket
    return 7


def result_class(ret: int) -> str:
    """A syscall result as a class: an errno name, "0", or "+" (any positive value)."""
    if ret < 0:
        return errno.errorcode.get(-ret, f"E{-ret}")
    return "0" if ret == 0 else "+"


@dataclass
class CollectorState:
    """The part of a collector a branch continues from (counts, orders, statuses)."""

    assert_counts: dict[tuple[int, bool], int] = field(default_factory=dict)
    orders: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    statuses: dict[int, str] = field(default_factory=dict)
    milestones: dict[int, int] = field(default_factory=dict)  # node -> last milestone id
    last_milestone: tuple[int, int] | None = None  # (node, id) of the cluster's last one

    def copy(self) -> CollectorState:
        """An independent copy (taken at every checkpoint)."""
        return CollectorState(dict(self.assert_counts), dict(self.orders), dict(self.statuses),
                              dict(self.milestones), self.last_milestone)


class SignalCollector:
    """An event sink that notes every signal a run produces, with the tick it first did."""

    def __init__(self, state: CollectorState | None = None,
                 read_payload: PayloadReader | None = None) -> None:
        self.state = state.copy() if state is not None else CollectorState()
        self.read_payload = read_payload
        self.first_seen: dict[Signal, tuple[int, int]] = {}  # signal -> (tick, node)

    def note(self, signal: Signal, tick: int, node: int = -1) -> None:
        """Record a signal (only where it first appeared in this run is kept: its tick and
        the node whose event showed it, -1 for none in particular)."""
        if signal not in self.first_seen:
            self.first_seen[signal] = (tick, node)

    def __call__(self, tick: int, vtime_ns: int, node: int, kind: str,
                 fields: dict[str, Any]) -> None:
        handler = _HANDLERS.get(kind)
        if handler is not None:
            handler(self, tick, node, fields)

    def _syscall(self, tick: int, node: int, fields: dict[str, Any]) -> None:
        number, ret = fields["nr"], fields["ret"]
        self.note(("syscall", node, number, result_class(ret)), tick, node)
        if number == CR_SYS_SEND and ret == 0 and self.read_payload is not None:
            dst, address, length = fields["args"][:3]
            head = self.read_payload(node, address, min(length, HEAD_BYTES))
            if head is not None:
                self.note(("packet.head", node, dst, bytes(head)), tick, node)

    def _assert(self, tick: int, node: int, fields: dict[str, Any]) -> None:
        ident, outcome = fields["id"], bool(fields["condition"])
        kind = fields["assert_kind"]
        key = (ident, outcome)
        count = self.state.assert_counts.get(key, 0) + 1
        self.state.assert_counts[key] = count
        self.note(("assert", ident, outcome), tick, node)
        self.note(("assert.count", ident, outcome, count_bucket(count)), tick, node)
        if outcome and kind in (AssertKind.SOMETIMES, AssertKind.REACHABLE):
            self.note(("sometimes", ident), tick, node)
            self._milestone(tick, node, ident)

    def _milestone(self, tick: int, node: int, ident: int) -> None:
        """A satisfied sometimes/reachable: note which milestone it follows (repeats of the
        same one in a row are not a new step)."""
        state = self.state
        previous = state.milestones.get(node)
        if previous != ident:
            self.note(("milestone", node, previous, ident), tick, node)
            state.milestones[node] = ident
        last = state.last_milestone
        if last is None or last[1] != ident:
            self.note(("milestone.any", last[1] if last else None, ident,
                       last is not None and last[0] == node), tick, node)
        state.last_milestone = (node, ident)

    def _sent(self, tick: int, node: int, fields: dict[str, Any]) -> None:
        self.note(("packet", fields["src"], fields["dst"], fields["size"]), tick, fields["src"])

    def _delivered(self, tick: int, node: int, fields: dict[str, Any]) -> None:
        dst = fields["dst"]
        entry = (fields["src"], int(fields["size"]).bit_length())
        order = ((*self.state.orders.get(dst, ()), entry))[-ORDER_DEPTH:]
        self.state.orders[dst] = order
        if len(order) == ORDER_DEPTH:
            self.note(("order", dst, order), tick, dst)

    def _status(self, tick: int, node: int, fields: dict[str, Any]) -> None:
        before = self.state.statuses.get(node, "running")
        after = fields["status"]
        self.state.statuses[node] = after
        self.note(("status", node, before, after), tick, node)


_HANDLERS: dict[str, Callable[[SignalCollector, int, int, dict[str, Any]], None]] = {
    "syscall": SignalCollector._syscall,
    "assert": SignalCollector._assert,
    "packet.sent": SignalCollector._sent,
    "packet.delivered": SignalCollector._delivered,
    "node.status": SignalCollector._status,
}
