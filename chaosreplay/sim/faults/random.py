"""Random faults: settings, and their deterministic expansion into an explicit schedule.

Random faults are expanded once, up front, from DeterministicStream(seed, "faults", -1) into
ordinary Faults, so a run's whole plan is an explicit list (recordable, editable, shrinkable).
Arrivals form one per-tick Bernoulli process whose rate is the sum of the kinds' rates; each
arrival picks its kind in proportion to its rate, then its node, duration and parameters
from the configured ranges. An arrival that would exceed `max_concurrent` active faults is
skipped (its draws still happen, so the rest of the plan does not shift).

Only IEEE-exact float operations (+ - * / and comparisons) are used — no log or pow from the
host's libm — so the expansion is bit-identical on every machine.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosreplay.rng import DeterministicStream
from chaosreplay.sim.faults.model import KIND_ORDER, KIND_SPECS, Check, Fault, FaultKind, parse_kind
from chaosreplay.sim.validation import (
    KeyPath,
    check_keys,
    expect_float,
    expect_int,
    expect_list,
    expect_ticks,
    show,
)

TICKS_PER_SECOND = 1000
_MAX_GAP_BITS = 40  # 2**40 ticks (~35 virtual years) is beyond any run


@dataclass(frozen=True)
class RandomFaults:
    """Random faults: kinds with rates per virtual second, parameter ranges, a concurrency cap.

    `ranges` overrides, per kind, the [low, high] range of a parameter or of "duration"
    (ticks); `start`/`stop` bound the window (ticks relative to the gate; stop 0 = run end).
    """

    rates: tuple[tuple[FaultKind, float], ...] = ()
    max_concurrent: int = 1
    ranges: tuple[tuple[FaultKind, tuple[tuple[str, tuple[Any, Any]], ...]], ...] = ()
    start: int = 0
    stop: int = 0

    def range_of(self, kind: FaultKind, name: str) -> tuple[Any, Any]:
        """The [low, high] range a random fault of this kind draws `name` from."""
        for k, overrides in self.ranges:
            if k == kind:
                for key, bounds in overrides:
                    if key == name:
                        return bounds
        spec = KIND_SPECS[kind]
        if name == "duration":
            return spec.random_duration if spec.duration != "none" else (0, 0)
        for p in spec.params:
            if p.name == name and p.random_range is not None:
                return p.random_range
        raise KeyError(f"{kind.value} has no random range for {name!r}")

    def to_dict(self) -> dict[str, Any]:
        """The canonical, msgpack-ready form."""
        return {
            "rates": {k.value: r for k, r in self.rates},
            "max_concurrent": self.max_concurrent,
            "ranges": {k.value: {n: list(b) for n, b in o} for k, o in self.ranges},
            "start": self.start,
            "stop": self.stop,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], at: KeyPath | None = None) -> RandomFaults:
        """Parse and check a random-fault section; errors name the key path."""
        where = at or KeyPath("fault plan", "random")
        check_keys(data, ["rates", "max_concurrent", "ranges", "start", "stop"], where)
        rates = []
        rates_at = where.key("rates")
        raw_rates = data.get("rates", {})
        if not isinstance(raw_rates, Mapping):
            rates_at.fail(f"expected a table of kind = faults per virtual second, got "
                          f"{show(raw_rates)}")
        for name, rate in raw_rates.items():
            kind = parse_kind(name, rates_at.key(str(name)))
            value = expect_float(rate, rates_at.key(name), minimum=0.0, maximum=1000.0)
            rates.append((kind, value))
        ranges = []
        ranges_at = where.key("ranges")
        raw_ranges = data.get("ranges", {})
        if not isinstance(raw_ranges, Mapping):
            ranges_at.fail(f"expected a table of per-kind parameter ranges, got {show(raw_ranges)}")
        for name, table in raw_ranges.items():
            kind_at = ranges_at.key(str(name))
            kind = parse_kind(name, kind_at)
            ranges.append((kind, _parse_ranges(kind, table, kind_at)))
        return cls(
            rates=tuple(sorted(rates, key=lambda kr: KIND_ORDER[kr[0]])),
            max_concurrent=expect_int(data.get("max_concurrent", 1), where.key("max_concurrent"),
                                      minimum=1),
            ranges=tuple(sorted(ranges, key=lambda kr: KIND_ORDER[kr[0]])),
            start=expect_ticks(data.get("start", 0), where.key("start")),
            stop=expect_ticks(data.get("stop", 0), where.key("stop")),
        )


def _parse_ranges(
    kind: FaultKind, table: Any, at: KeyPath
) -> tuple[tuple[str, tuple[Any, Any]], ...]:
    """Check one kind's [low, high] overrides against the kind's parameters."""
    if not isinstance(table, Mapping):
        at.fail(f"expected a table of parameter = [low, high], got {show(table)}")
    spec = KIND_SPECS[kind]
    checks: dict[str, Check] = {p.name: p.check for p in spec.params if p.random_range}
    if spec.duration != "none":
        checks["duration"] = lambda v, a: expect_ticks(v, a, minimum=1)
    check_keys(table, list(checks), at)
    out = []
    for name, bounds in table.items():
        b_at = at.key(name)
        pair = expect_list(bounds, b_at)
        if len(pair) != 2:
            b_at.fail(f"expected [low, high], got {show(bounds)}")
        low, high = checks[name](pair[0], b_at.index(0)), checks[name](pair[1], b_at.index(1))
        if low > high:
            b_at.fail(f"low {show(pair[0])} is above high {show(pair[1])}")
        out.append((name, (low, high)))
    return tuple(sorted(out))


def _arrival_gap(stream: DeterministicStream, p: float) -> int:
    """Ticks (>= 1) to the next arrival of a per-tick Bernoulli(p) process, by inversion.

    The gap is the smallest k >= 1 with (1-p)**k < v for v uniform in (0, 1]; the largest
    k0 with (1-p)**k0 >= v is found greedily from the powers (1-p)**(2**i), built by squaring.
    """
    v = 1.0 - stream.uniform()
    if p >= 1.0:
        return 1
    powers = [1.0 - p]
    for _ in range(_MAX_GAP_BITS - 1):
        powers.append(powers[-1] * powers[-1])
    prod, k0 = 1.0, 0
    for i in range(_MAX_GAP_BITS - 1, -1, -1):
        candidate = prod * powers[i]
        if candidate >= v:
            prod, k0 = candidate, k0 + (1 << i)
    return k0 + 1


def _draw(stream: DeterministicStream, bounds: tuple[Any, Any]) -> Any:
    """A uniform value in [low, high]: integers when both bounds are ints, else floats."""
    low, high = bounds
    if isinstance(low, int) and isinstance(high, int):
        return low + stream.below(high - low + 1)
    return low + stream.uniform() * (high - low)


def _draw_sides(stream: DeterministicStream, node_count: int) -> tuple[tuple[int, ...], ...]:
    """A random split of the nodes into two non-empty sides (seeded Fisher-Yates, then a cut)."""
    nodes = list(range(node_count))
    for i in range(node_count - 1, 0, -1):
        j = stream.below(i + 1)
        nodes[i], nodes[j] = nodes[j], nodes[i]
    cut = 1 + stream.below(node_count - 1)
    return (tuple(sorted(nodes[:cut])), tuple(sorted(nodes[cut:])))


def _draw_fault(
    config: RandomFaults, kind: FaultKind, at: int, stream: DeterministicStream, node_count: int
) -> Fault:
    """One random fault of a kind at a tick, its node, duration and parameters drawn in order."""
    spec = KIND_SPECS[kind]
    node = stream.below(node_count) if spec.node != "none" else None
    duration = 0 if spec.duration == "none" else _draw(stream, config.range_of(kind, "duration"))
    params: list[tuple[str, Any]] = []
    for p in spec.params:
        if p.name == "sides":
            params.append((p.name, _draw_sides(stream, node_count)))
            continue
        bounds = config.range_of(kind, p.name)
        value = _draw(stream, bounds)
        if value == 0 and p.name in ("rate", "delta_ns"):
            value = bounds[1]  # a zero skew or jump is no fault; take the range's other end
        params.append((p.name, value))
    return Fault(kind, at, duration, node, tuple(params))


def expand_random(
    config: RandomFaults, seed: int, node_count: int, horizon_ticks: int
) -> list[Fault]:
    """The random faults of a run as explicit Faults, in start order (see the module doc)."""
    kinds = [
        (kind, rate) for kind, rate in config.rates
        if rate > 0 and not (kind == FaultKind.PARTITION and node_count < 2)
    ]
    total = sum(rate for _, rate in kinds)
    if total <= 0:
        return []
    stop = min(config.stop or horizon_ticks, horizon_ticks)
    p = min(total / TICKS_PER_SECOND, 1.0)
    stream = DeterministicStream(seed, "faults", -1)
    faults: list[Fault] = []
    ends: list[int] = []  # end ticks of accepted faults that last
    tick = config.start - 1
    while True:
        tick += _arrival_gap(stream, p)
        if tick >= stop:
            return faults
        x = stream.uniform() * total
        kind = kinds[-1][0]
        for candidate, rate in kinds:
            if x < rate:
                kind = candidate
                break
            x -= rate
        fault = _draw_fault(config, kind, tick, stream, node_count)
        ends = [end for end in ends if end > tick]
        if len(ends) >= config.max_concurrent:
            continue
        if fault.duration:
            ends.append(tick + fault.duration)
        faults.append(fault)
