"""The fault model: every fault kind, its parameters, and one Fault in its canonical form.

Ticks (`at`) are relative to the moment fault injection opens (every node called
setup_complete, unless gating is off); `duration` is in ticks too. Each Fault has a canonical,
msgpack-ready dict form (`to_dict`/`from_dict`: kind, at, duration, node, then the kind's
parameters) and a content-derived `fault_id`, so removing one fault from a schedule does not
rename the others — the triage shrinker edits these lists and re-runs them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import msgpack

from chaosreplay.sim.validation import (
    KeyPath,
    check_keys,
    did_you_mean,
    expect_bytes_size,
    expect_float,
    expect_int,
    expect_list,
    expect_node,
    expect_ns,
    expect_probability,
    expect_ticks,
    show,
)


class FaultKind(StrEnum):
    """Every kind of fault the simulation can inject."""

    PARTITION = "partition"
    HEAL = "heal"
    LATENCY = "latency"
    JITTER = "jitter"
    LOSS = "loss"
    CORRUPT = "corrupt"
    REORDER = "reorder"
    DUPLICATE = "duplicate"
    BANDWIDTH = "bandwidth"
    KILL = "kill"
    PAUSE = "pause"
    RESTART = "restart"
    CLOCK_SKEW = "clock_skew"
    CLOCK_JUMP = "clock_jump"
    MEMORY_PRESSURE = "memory_pressure"
    DISK_READ_ERROR = "disk_read_error"
    DISK_WRITE_ERROR = "disk_write_error"
    DISK_FULL = "disk_full"
    TORN_WRITE = "torn_write"
    DISK_CORRUPT_READ = "disk_corrupt_read"
    RESEED = "reseed"


Check = Callable[[Any, KeyPath], Any]


def _skew_rate(value: Any, at: KeyPath) -> float:
    rate = expect_float(value, at, minimum=-0.99, maximum=10.0)
    if rate == 0:
        at.fail("expected a non-zero clock rate offset (e.g. 0.05 = 5% fast, -0.05 = 5% slow)")
    return rate


def _jump(value: Any, at: KeyPath) -> int:
    if isinstance(value, str):  # a signed duration string: "5s" forward, "-500ms" back
        sign = -1 if value.startswith("-") else 1
        delta = sign * expect_ns(value.removeprefix("-").removeprefix("+"), at)
    else:
        delta = expect_int(value, at, what="integer of nanoseconds (+ forward, - back)")
    if delta == 0:
        at.fail("expected a non-zero clock jump in nanoseconds")
    return delta


def _stream_seed(value: Any, at: KeyPath) -> int:
    return expect_int(value, at, minimum=0, maximum=STREAM_SEED_MAX, what="stream seed")


def _sides(value: Any, at: KeyPath) -> tuple[tuple[int, ...], ...]:
    sides = expect_list(value, at)
    if not sides:
        at.fail("expected at least one side (an array of arrays of nodes)")
    seen: set[int] = set()
    out = []
    for i, side in enumerate(sides):
        nodes = expect_list(side, at.index(i))
        if not nodes:
            at.index(i).fail("expected a non-empty array of nodes")
        for j, node in enumerate(nodes):
            n = expect_int(node, at.index(i).index(j), minimum=0, what="node index")
            if n in seen:
                at.index(i).index(j).fail(f"node {n} is on two sides")
            seen.add(n)
        out.append(tuple(sorted(nodes)))
    return tuple(out)


@dataclass(frozen=True)
class ParamSpec:
    """One parameter of a fault kind: its check, default (None = required), random range."""

    name: str
    check: Check
    default: Any = None
    random_range: tuple[Any, Any] | None = None


@dataclass(frozen=True)
class KindSpec:
    """How a fault kind is written and applied."""

    node: str  # "required" | "optional" (absent = every node) | "none"
    duration: str  # "required" (> 0) | "optional" (0 = until the run ends) | "none" (instant)
    params: tuple[ParamSpec, ...] = ()
    link_param: str | None = None  # the NetworkFabric parameter a link fault raises
    random_duration: tuple[int, int] = (500, 5000)


_MS = 1_000_000
STREAM_SEED_MAX = 2**63 - 1
_PROB = (0.05, 0.5)
KIND_SPECS: dict[FaultKind, KindSpec] = {
    FaultKind.PARTITION: KindSpec("none", "optional", (ParamSpec("sides", _sides),)),
    FaultKind.HEAL: KindSpec("none", "none"),
    FaultKind.LATENCY: KindSpec(
        "optional", "optional",
        (ParamSpec("latency_ns", expect_ns, random_range=(5 * _MS, 200 * _MS)),), "latency_ns"),
    FaultKind.JITTER: KindSpec(
        "optional", "optional",
        (ParamSpec("jitter_ns", expect_ns, random_range=(1 * _MS, 100 * _MS)),), "jitter_ns"),
    FaultKind.LOSS: KindSpec(
        "optional", "optional",
        (ParamSpec("probability", expect_probability, random_range=_PROB),), "loss"),
    FaultKind.CORRUPT: KindSpec(
        "optional", "optional",
        (ParamSpec("probability", expect_probability, random_range=(0.01, 0.2)),), "corrupt"),
    FaultKind.REORDER: KindSpec(
        "optional", "optional",
        (ParamSpec("probability", expect_probability, random_range=_PROB),), "reorder"),
    FaultKind.DUPLICATE: KindSpec(
        "optional", "optional",
        (ParamSpec("probability", expect_probability, random_range=(0.05, 0.3)),), "duplicate"),
    FaultKind.BANDWIDTH: KindSpec(
        "optional", "optional",
        (ParamSpec("bandwidth_bps", lambda v, at: expect_int(v, at, minimum=1, what="bit rate"),
                   random_range=(100_000, 10_000_000)),), "bandwidth_bps"),
    FaultKind.KILL: KindSpec("required", "optional", random_duration=(500, 5000)),
    FaultKind.PAUSE: KindSpec("required", "required", random_duration=(100, 3000)),
    FaultKind.RESTART: KindSpec("required", "none"),
    FaultKind.CLOCK_SKEW: KindSpec(
        "required", "optional", (ParamSpec("rate", _skew_rate, random_range=(-0.5, 0.5)),)),
    FaultKind.CLOCK_JUMP: KindSpec(
        "required", "none",
        (ParamSpec("delta_ns", _jump, random_range=(-5_000 * _MS, 5_000 * _MS)),)),
    FaultKind.MEMORY_PRESSURE: KindSpec(
        "required", "optional",
        (ParamSpec("limit_bytes", expect_bytes_size, random_range=(1 << 20, 32 << 20)),)),
    FaultKind.DISK_READ_ERROR: KindSpec(
        "required", "optional", (ParamSpec("probability", expect_probability, 1.0, _PROB),)),
    FaultKind.DISK_WRITE_ERROR: KindSpec(
        "required", "optional", (ParamSpec("probability", expect_probability, 1.0, _PROB),)),
    FaultKind.DISK_FULL: KindSpec("required", "optional"),
    FaultKind.TORN_WRITE: KindSpec(
        "required", "optional", (ParamSpec("probability", expect_probability, 1.0, _PROB),)),
    FaultKind.DISK_CORRUPT_READ: KindSpec(
        "required", "optional", (ParamSpec("probability", expect_probability, 1.0, _PROB),)),
    FaultKind.RESEED: KindSpec(
        "optional", "none", (ParamSpec("seed", _stream_seed, random_range=(0, STREAM_SEED_MAX)),)),
}
KIND_ORDER = {kind: i for i, kind in enumerate(FaultKind)}
FABRIC_KINDS = frozenset(
    k for k, spec in KIND_SPECS.items() if spec.link_param or k in (FaultKind.PARTITION,
                                                                     FaultKind.HEAL))


def parse_kind(value: Any, at: KeyPath) -> FaultKind:
    """A fault kind name, with a suggestion when it is misspelt."""
    if isinstance(value, str) and value in FaultKind._value2member_map_:
        return FaultKind(value)
    hint = did_you_mean(str(value), [k.value for k in FaultKind])
    at.fail(f"unknown fault kind {show(value)}{hint}")


@dataclass(frozen=True)
class Fault:
    """One fault: its kind, start tick (relative to the gate), duration, node and parameters."""

    kind: FaultKind
    at: int
    duration: int = 0
    node: int | None = None
    params: tuple[tuple[str, Any], ...] = ()

    @property
    def spec(self) -> KindSpec:
        """The rules of this fault's kind."""
        return KIND_SPECS[self.kind]

    def param(self, name: str) -> Any:
        """One parameter's value."""
        for key, value in self.params:
            if key == name:
                return value
        raise KeyError(f"{self.kind.value} fault has no parameter {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The canonical, msgpack-ready form: kind, at, duration, node, then the parameters."""
        out: dict[str, Any] = {"kind": self.kind.value, "at": self.at, "duration": self.duration}
        if self.node is not None:
            out["node"] = self.node
        for key, value in self.params:
            out[key] = [list(side) for side in value] if key == "sides" else value
        return out

    @property
    def fault_id(self) -> str:
        """A stable id derived from the canonical form (kind-<8 hex>)."""
        digest = hashlib.sha256(msgpack.packb(self.to_dict())).hexdigest()
        return f"{self.kind.value}-{digest[:8]}"

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], at: KeyPath | None = None, node_count: int | None = None,
    ) -> Fault:
        """Parse and check one fault; errors name the key path (e.g. faults.schedule[2].at)."""
        where = at or KeyPath("fault plan")
        if not isinstance(data, Mapping):
            where.fail(f"expected a table describing a fault, got {show(data)}")
        if "kind" not in data:
            where.key("kind").fail("missing (every fault needs a kind)")
        kind = parse_kind(data["kind"], where.key("kind"))
        spec = KIND_SPECS[kind]
        allowed = ["kind", "at", "duration"] + (["node"] if spec.node != "none" else [])
        check_keys(data, allowed + [p.name for p in spec.params], where)
        start = expect_ticks(data.get("at", 0), where.key("at"))
        duration = _check_duration(kind, spec, data.get("duration", 0), where.key("duration"))
        node = None
        if "node" in data:
            node = expect_node(data["node"], where.key("node"), node_count)
        elif spec.node == "required":
            where.key("node").fail(f"missing (a {kind.value} fault needs a node)")
        params = []
        for p in spec.params:
            if p.name in data:
                value = p.check(data[p.name], where.key(p.name))
            elif p.default is not None:
                value = p.default
            else:
                where.key(p.name).fail(f"missing (a {kind.value} fault needs {p.name})")
            params.append((p.name, value))
        fault = cls(kind, start, duration, node, tuple(params))
        if kind == FaultKind.PARTITION and node_count is not None:
            for i, side in enumerate(fault.param("sides")):
                for j, n in enumerate(side):
                    expect_node(n, where.key("sides").index(i).index(j), node_count)
        return fault


def _check_duration(kind: FaultKind, spec: KindSpec, value: Any, at: KeyPath) -> int:
    if spec.duration == "none":
        if value not in (0, "0s", "0ms"):
            at.fail(f"a {kind.value} fault is instantaneous and takes no duration")
        return 0
    return expect_ticks(value, at, minimum=1 if spec.duration == "required" else 0)


def assign_ids(faults: Sequence[Fault]) -> list[str]:
    """Unique ids for a plan: each fault's content id, with #2, #3... for exact repeats."""
    seen: dict[str, int] = {}
    ids = []
    for fault in faults:
        base = fault.fault_id
        seen[base] = seen.get(base, 0) + 1
        ids.append(base if seen[base] == 1 else f"{base}#{seen[base]}")
    return ids
