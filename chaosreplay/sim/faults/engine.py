"""Fault plans and the FaultEngine that fires them on the virtual timeline.

A FaultPlan is an explicit schedule and/or random faults (`fault_random.RandomFaults`);
`FaultPlan.expand` turns it into one explicit list of Faults (`fault_model.Fault`). The
FaultEngine holds that list back until every node has called setup_complete (unless gating
is off), then fires each fault at gate + `at`, and ends it `duration` ticks later.

What each action means (phase start / end):

    partition         sides cut apart / healed             ─┐ applied by the engine to
    heal              every partition healed / —             │ the NetworkFabric itself
    latency jitter loss corrupt reorder duplicate bandwidth │ (keyed by fault id, so an
                      link parameter raised / reverted      ─┘ end reverts exactly it)
    kill              node killed / node restarted (only with a duration)
    pause             node paused / resumed
    restart           node restarted from its initial snapshot / —
    clock_skew        node clock runs at (1 + rate) / back to 1
    clock_jump        node clock moves by delta_ns / —
    memory_pressure   brk/mmap fail (ENOMEM) past limit_bytes / limit lifted
    disk_read_error, disk_write_error, disk_corrupt_read
                      reads/writes fail (EIO) or read back corrupted with probability / off
    disk_full         writes fail with ENOSPC / off
    torn_write        a crash tears the node's unsynced writes with probability / off

Non-fabric actions are returned with applied=False for the controller to carry out. A
duration of 0 on a lasting kind means "until the run ends". Every action has a record for
the recorder (fault.start / fault.end). The engine's state is a plain dict
(`snapshot`/`restore`); the fabric's layers live in the fabric's own snapshot.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chaosreplay.events import EventKind, make_record
from chaosreplay.sim.faults.model import (
    FABRIC_KINDS,
    KIND_SPECS,
    Fault,
    FaultKind,
    assign_ids,
)
from chaosreplay.sim.faults.random import RandomFaults, expand_random
from chaosreplay.sim.network.fabric import NetworkFabric
from chaosreplay.sim.validation import KeyPath, check_keys, expect_bool, expect_list, expect_table

__all__ = [
    "ActiveFault",
    "Fault",
    "FaultAction",
    "FaultEngine",
    "FaultKind",
    "FaultPlan",
    "RandomFaults",
]

SNAPSHOT_VERSION = 1
START = "start"
END = "end"
END_DURATION = "duration"
END_HEALED = "healed"


@dataclass(frozen=True)
class FaultPlan:
    """An explicit schedule and/or random faults, and whether faults wait for setup."""

    schedule: tuple[Fault, ...] = ()
    random: RandomFaults | None = None
    wait_for_setup: bool = True

    def expand(self, seed: int, node_count: int, horizon_ticks: int) -> list[Fault]:
        """The whole plan as explicit Faults, sorted by `at` (schedule first among equals)."""
        faults = list(self.schedule)
        if self.random is not None:
            faults += expand_random(self.random, seed, node_count, horizon_ticks)
        return sorted(faults, key=lambda f: f.at)  # stable: keeps schedule order at equal ticks

    def to_dict(self) -> dict[str, Any]:
        """The canonical, msgpack-ready form (random only when set)."""
        out: dict[str, Any] = {
            "wait_for_setup": self.wait_for_setup,
            "schedule": [f.to_dict() for f in self.schedule],
        }
        if self.random is not None:
            out["random"] = self.random.to_dict()
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], at: KeyPath | None = None, node_count: int | None = None,
    ) -> FaultPlan:
        """Parse and check a plan; errors name the key path (e.g. faults.schedule[2].at)."""
        where = at or KeyPath("fault plan")
        expect_table(data, where)
        check_keys(data, ["wait_for_setup", "schedule", "random"], where)
        schedule_at = where.key("schedule")
        schedule = tuple(
            Fault.from_dict(entry, schedule_at.index(i), node_count)
            for i, entry in enumerate(expect_list(data.get("schedule", []), schedule_at))
        )
        random = None
        if "random" in data:
            random_at = where.key("random")
            random = RandomFaults.from_dict(expect_table(data["random"], random_at), random_at)
        wait = expect_bool(data.get("wait_for_setup", True), where.key("wait_for_setup"))
        return cls(schedule, random, wait)


@dataclass(frozen=True)
class FaultAction:
    """One firing: a fault starting or ending at an absolute tick."""

    phase: str  # START or END
    tick: int  # absolute tick the action is scheduled for
    fault_id: str
    fault: Fault
    applied: bool  # True: the engine already applied it to the fabric
    reason: str = ""  # for END: END_DURATION or END_HEALED

    @property
    def kind(self) -> FaultKind:
        """The fault's kind."""
        return self.fault.kind

    @property
    def node(self) -> int | None:
        """The node the fault targets (None: network-wide or partition)."""
        return self.fault.node

    def to_record(self) -> dict[str, Any]:
        """The fault.start / fault.end record for the recorder."""
        kind = EventKind.FAULT_START if self.phase == START else EventKind.FAULT_END
        record = make_record(kind, tick=self.tick, fault_id=self.fault_id,
                             fault=self.fault.to_dict(), applied=self.applied)
        if self.reason:
            record["reason"] = self.reason
        return record


@dataclass(frozen=True)
class ActiveFault:
    """A fault in effect: when it started and when it will end (None: until the run ends)."""

    fault_id: str
    fault: Fault
    start_tick: int
    end_tick: int | None


class FaultEngine:
    """Fires a plan's faults: gated on setup, at relative ticks, start and end in order."""

    def __init__(
        self, faults: Sequence[Fault], node_count: int, fabric: NetworkFabric | None = None,
        wait_for_setup: bool = True,
    ) -> None:
        self._fabric = fabric
        self._load(faults, node_count, wait_for_setup)

    def _load(self, faults: Sequence[Fault], node_count: int, wait_for_setup: bool) -> None:
        """Set up a fresh, not yet started run of these faults."""
        for fault in faults:
            _check_nodes(fault, node_count)
        self.node_count = node_count
        self.wait_for_setup = wait_for_setup
        # Fire order: by start tick, plan order among equals; the index is the tie-breaker.
        self._faults = sorted(faults, key=lambda f: f.at)
        self._ids = assign_ids(self._faults)
        self._index = {fid: i for i, fid in enumerate(self._ids)}
        self._next = 0
        self._origin: int | None = None if wait_for_setup else 0
        self._setup_nodes: set[int] = set()
        self._active: dict[str, ActiveFault] = {}
        self._ends: list[tuple[int, int, str]] = []  # (end tick, fault index, id), sorted

    @classmethod
    def from_plan(
        cls, plan: FaultPlan, seed: int, node_count: int, horizon_ticks: int,
        fabric: NetworkFabric | None = None,
    ) -> FaultEngine:
        """An engine for a plan, its random part expanded for this seed and run length."""
        return cls(plan.expand(seed, node_count, horizon_ticks), node_count, fabric,
                   plan.wait_for_setup)

    @property
    def origin_tick(self) -> int | None:
        """The absolute tick schedule ticks are relative to (None until the gate opens)."""
        return self._origin

    def plan(self) -> list[tuple[str, Fault]]:
        """Every fault of the run with its id, in fire order."""
        return list(zip(self._ids, self._faults, strict=True))

    def on_setup_complete(self, node: int, tick: int) -> bool:
        """Note a node's setup_complete; True when this call opened the gate."""
        if not 0 <= node < self.node_count:
            raise ValueError(f"node {node} does not exist (nodes are 0..{self.node_count - 1})")
        self._setup_nodes.add(node)
        if self._origin is None and len(self._setup_nodes) == self.node_count:
            self._origin = tick
            return True
        return False

    def open_gate(self, tick: int) -> None:
        """Start injecting from this tick without waiting for the remaining nodes."""
        if self._origin is None:
            self._origin = tick

    def next_due_tick(self) -> int | None:
        """The absolute tick of the next start or end action, or None."""
        candidates = []
        if self._ends:
            candidates.append(self._ends[0][0])
        if self._origin is not None and self._next < len(self._faults):
            candidates.append(self._origin + self._faults[self._next].at)
        return min(candidates) if candidates else None

    def due(self, now_tick: int) -> list[FaultAction]:
        """Fire every action due at or before now_tick: by tick, ends before starts, plan order."""
        actions: list[FaultAction] = []
        while True:
            end_tick = self._ends[0][0] if self._ends else None
            start_tick = None
            if self._origin is not None and self._next < len(self._faults):
                start_tick = self._origin + self._faults[self._next].at
            if end_tick is not None and end_tick <= now_tick and (
                start_tick is None or end_tick <= start_tick
            ):
                _, _, fault_id = self._ends.pop(0)
                actions.append(self._end(fault_id, end_tick, END_DURATION))
            elif start_tick is not None and start_tick <= now_tick:
                index = self._next
                self._next += 1
                actions += self._start(index, start_tick)
            else:
                return actions

    def active(self) -> list[ActiveFault]:
        """The faults in effect, in the order they started."""
        return list(self._active.values())

    def snapshot(self) -> dict[str, Any]:
        """The engine's whole state as a msgpack-serialisable dict."""
        return {
            "version": SNAPSHOT_VERSION,
            "faults": [f.to_dict() for f in self._faults],
            "node_count": self.node_count,
            "wait_for_setup": self.wait_for_setup,
            "origin": self._origin,
            "setup_nodes": sorted(self._setup_nodes),
            "next": self._next,
            "active": [[a.fault_id, a.start_tick, a.end_tick] for a in self._active.values()],
            "ends": [list(entry) for entry in self._ends],
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace the state with a snapshot's (the inverse of `snapshot`)."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported fault engine snapshot version {snap.get('version')!r}")
        faults = [Fault.from_dict(d, node_count=snap["node_count"]) for d in snap["faults"]]
        self._load(faults, snap["node_count"], snap["wait_for_setup"])
        self._origin = snap["origin"]
        self._setup_nodes = set(snap["setup_nodes"])
        self._next = snap["next"]
        self._active = {
            fid: ActiveFault(fid, self._faults[self._index[fid]], start, end)
            for fid, start, end in snap["active"]
        }
        self._ends = [(t, i, fid) for t, i, fid in snap["ends"]]

    @classmethod
    def from_snapshot(
        cls, snap: dict[str, Any], fabric: NetworkFabric | None = None
    ) -> FaultEngine:
        """A new engine in a snapshot's state, applying fabric faults to `fabric`."""
        engine = cls([], snap["node_count"], fabric)
        engine.restore(snap)
        return engine

    # -- internals ------------------------------------------------------------------------

    def _start(self, index: int, tick: int) -> list[FaultAction]:
        fault, fault_id = self._faults[index], self._ids[index]
        applied = self._fabric is not None and fault.kind in FABRIC_KINDS
        actions = [FaultAction(START, tick, fault_id, fault, applied)]
        if applied:
            self._apply_fabric(fault, fault_id, start=True)
        if fault.kind == FaultKind.HEAL:
            # A heal ends every partition fault in effect, whatever its planned duration.
            for active in list(self._active.values()):
                if active.fault.kind == FaultKind.PARTITION:
                    self._ends = [e for e in self._ends if e[2] != active.fault_id]
                    actions.append(self._end(active.fault_id, tick, END_HEALED))
            return actions
        if KIND_SPECS[fault.kind].duration == "none":
            return actions  # instantaneous: nothing stays active
        end = tick + fault.duration if fault.duration else None
        self._active[fault_id] = ActiveFault(fault_id, fault, tick, end)
        if end is not None:
            bisect.insort(self._ends, (end, index, fault_id))
        return actions

    def _end(self, fault_id: str, tick: int, reason: str) -> FaultAction:
        active = self._active.pop(fault_id)
        applied = self._fabric is not None and active.fault.kind in FABRIC_KINDS
        if applied:
            self._apply_fabric(active.fault, fault_id, start=False)
        return FaultAction(END, tick, fault_id, active.fault, applied, reason)

    def _apply_fabric(self, fault: Fault, fault_id: str, start: bool) -> None:
        fabric = self._fabric
        assert fabric is not None
        link_param = KIND_SPECS[fault.kind].link_param
        if fault.kind == FaultKind.HEAL:
            fabric.heal()
        elif fault.kind == FaultKind.PARTITION:
            if start:
                fabric.set_partition([list(s) for s in fault.param("sides")], key=fault_id)
            else:
                fabric.heal(fault_id)
        elif link_param is not None:
            if start:
                value = fault.params[0][1]
                fabric.set_link_params(fault.node, key=fault_id, **{link_param: value})
            else:
                fabric.clear_link_params(fault_id)


def _check_nodes(fault: Fault, node_count: int) -> None:
    """Refuse a fault naming a node the run does not have."""
    nodes = [fault.node] if fault.node is not None else []
    if fault.kind == FaultKind.PARTITION:
        nodes += [n for side in fault.param("sides") for n in side]
    for node in nodes:
        if not 0 <= node < node_count:
            raise ValueError(f"{fault.kind.value} fault at tick {fault.at} names node {node}, "
                             f"but nodes are 0..{node_count - 1}")
