"""Fault model, random expansion, FaultEngine: validation, gating, order, reverts, checkpoints."""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any

import msgpack
import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.rng import DeterministicStream
from chaosreplay.sim.faults.engine import (
    END,
    END_HEALED,
    START,
    FaultAction,
    FaultEngine,
    FaultPlan,
)
from chaosreplay.sim.faults.model import KIND_SPECS, Fault, FaultKind, assign_ids
from chaosreplay.sim.faults.random import RandomFaults, _arrival_gap, expand_random
from chaosreplay.sim.network.fabric import LinkParams, NetworkFabric
from chaosreplay.sim.validation import KeyPath

MS = 1_000_000
WHERE = KeyPath("scenario.toml", "faults")

EXAMPLES: dict[FaultKind, dict[str, Any]] = {
    FaultKind.PARTITION: {"sides": [[0], [1, 2]], "duration": 100},
    FaultKind.HEAL: {},
    FaultKind.LATENCY: {"node": 1, "latency_ns": "20ms", "duration": 50},
    FaultKind.JITTER: {"jitter_ns": 5 * MS, "duration": 50},
    FaultKind.LOSS: {"probability": 0.5, "duration": 50},
    FaultKind.CORRUPT: {"node": 0, "probability": 0.1},
    FaultKind.REORDER: {"node": 2, "probability": 0.3, "duration": 10},
    FaultKind.DUPLICATE: {"probability": 0.2, "duration": 10},
    FaultKind.BANDWIDTH: {"node": 0, "bandwidth_bps": 64_000, "duration": 10},
    FaultKind.KILL: {"node": 2, "duration": 500},
    FaultKind.PAUSE: {"node": 1, "duration": "2s"},
    FaultKind.RESTART: {"node": 0},
    FaultKind.CLOCK_SKEW: {"node": 1, "rate": -0.25, "duration": 100},
    FaultKind.CLOCK_JUMP: {"node": 2, "delta_ns": -3_000 * MS},
    FaultKind.MEMORY_PRESSURE: {"node": 0, "limit_bytes": "8MiB", "duration": 100},
    FaultKind.DISK_READ_ERROR: {"node": 0, "probability": 0.5, "duration": 10},
    FaultKind.DISK_WRITE_ERROR: {"node": 1, "duration": 10},
    FaultKind.DISK_FULL: {"node": 2, "duration": 10},
    FaultKind.TORN_WRITE: {"node": 0},
    FaultKind.DISK_CORRUPT_READ: {"node": 1, "probability": 0.01, "duration": 10},
    FaultKind.RESEED: {"seed": 2**63 - 1},
}


def fault(kind: str, at: int = 0, **params: Any) -> Fault:
    return Fault.from_dict({"kind": kind, "at": at, **params}, node_count=3)


def plan_error(schedule: list[Any] | None = None, **extra: Any) -> str:
    data = {"schedule": schedule or [], **extra}
    with pytest.raises(ConfigError) as info:
        FaultPlan.from_dict(data, WHERE, node_count=3)
    return str(info.value)


# -- the model ------------------------------------------------------------------------------


def test_every_kind_has_an_example_that_round_trips() -> None:
    """Each kind parses, and its canonical dict parses back to an equal Fault (via msgpack)."""
    assert set(EXAMPLES) == set(FaultKind)
    for kind, params in EXAMPLES.items():
        f = fault(kind.value, 7, **params)
        data = msgpack.unpackb(msgpack.packb(f.to_dict()))
        assert list(data)[:3] == ["kind", "at", "duration"]
        assert Fault.from_dict(data, node_count=3) == f, kind
        assert f.fault_id.startswith(kind.value + "-")


def test_values_are_normalised() -> None:
    """Duration strings become ticks and ns, sizes bytes, optional parameters their default."""
    assert fault("pause", node=1, duration="2s").duration == 2000
    assert fault("latency", latency_ns="20ms").param("latency_ns") == 20 * MS
    assert fault("memory_pressure", node=0, limit_bytes="8MiB").param("limit_bytes") == 8 << 20
    assert fault("disk_write_error", node=1).param("probability") == 1.0
    assert fault("partition", sides=[[2, 0], [1]]).param("sides") == ((0, 2), (1,))


def test_fault_id_is_stable_and_content_derived() -> None:
    """Same content, same id; any edit changes it; exact repeats get #2 in a plan."""
    a = fault("loss", 10, probability=0.5, duration=5)
    assert a.fault_id == fault("loss", 10, probability=0.5, duration=5).fault_id
    assert a.fault_id != fault("loss", 10, probability=0.5, duration=4).fault_id
    b = fault("kill", 3, node=1)
    assert assign_ids([a, b, a]) == [a.fault_id, b.fault_id, a.fault_id + "#2"]


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ([{"kind": "heal"}] * 2 + [{"kind": "heal", "at": "soon"}],
         'scenario.toml: faults.schedule[2].at: expected a non-negative integer tick'),
        ([{"kind": "los", "at": 1}], 'faults.schedule[0].kind: unknown fault kind "los" '
                                     '(did you mean "loss"?)'),
        ([{"at": 1}], "faults.schedule[0].kind: missing"),
        ([{"kind": "loss", "probabilty": 0.1}],
         'faults.schedule[0].probabilty: unknown key (did you mean "probability"?)'),
        ([{"kind": "loss"}], "faults.schedule[0].probability: missing"),
        ([{"kind": "loss", "probability": 2}], "faults.schedule[0].probability: expected a "
                                               "probability between 0 and 1, got 2"),
        ([{"kind": "kill"}], "faults.schedule[0].node: missing"),
        ([{"kind": "kill", "node": 3}], "faults.schedule[0].node: node 3 does not exist"),
        ([{"kind": "pause", "node": 1}], "faults.schedule[0].duration: expected a >= 1 integer"),
        ([{"kind": "restart", "node": 1, "duration": 5}],
         "faults.schedule[0].duration: a restart fault is instantaneous"),
        ([{"kind": "heal", "node": 1}], 'faults.schedule[0].node: unknown key'),
        ([{"kind": "partition", "sides": [[0], [0, 1]]}],
         "faults.schedule[0].sides[1][0]: node 0 is on two sides"),
        ([{"kind": "partition", "sides": [[0], [5]]}],
         "faults.schedule[0].sides[1][0]: node 5 does not exist"),
        ([{"kind": "clock_skew", "node": 0, "rate": 0}], "faults.schedule[0].rate: expected a "
                                                         "non-zero clock rate"),
        ([{"kind": "clock_jump", "node": 0, "delta_ns": [1]}],
         'faults.schedule[0].delta_ns: expected an integer of nanoseconds'),
        ([{"kind": "memory_pressure", "node": 0, "limit_bytes": "lots"}],
         'faults.schedule[0].limit_bytes: expected a size in bytes or like "64MiB", got "lots"'),
        (["kill"], 'faults.schedule[0]: expected a table describing a fault, got "kill"'),
    ],
)
def test_schedule_errors_name_the_key_path(schedule: list[Any], expected: str) -> None:
    """Every invalid schedule entry gets one line naming its key path and the problem."""
    message = plan_error(schedule)
    assert expected in message, message
    assert message.startswith("scenario.toml: faults."), message


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"random": {"rates": {"kil": 1}}}, 'faults.random.rates.kil: unknown fault kind "kil"'),
        ({"random": {"rates": {"kill": -1}}}, "faults.random.rates.kill: expected a number >= 0"),
        ({"random": {"max_concurrent": 0}}, "faults.random.max_concurrent: expected an integer"),
        ({"random": {"ranges": {"loss": {"probability": [0.5, 0.1]}}}},
         "faults.random.ranges.loss.probability: low 0.5 is above high 0.1"),
        ({"random": {"ranges": {"loss": {"latency_ns": [1, 2]}}}},
         "faults.random.ranges.loss.latency_ns: unknown key"),
        ({"random": {"ranges": {"kill": {"duration": [5]}}}},
         "faults.random.ranges.kill.duration: expected [low, high], got [5]"),
        ({"random": {"rate": {}}}, 'faults.random.rate: unknown key (did you mean "rates"?)'),
        ({"wait_for_setup": "yes"}, 'faults.wait_for_setup: expected true or false, got "yes"'),
        ({"schedul": []}, 'faults.schedul: unknown key (did you mean "schedule"?)'),
    ],
)
def test_plan_errors_name_the_key_path(extra: dict[str, Any], expected: str) -> None:
    """Random-section and plan-level mistakes name their key path too."""
    message = plan_error(None, **extra)
    assert expected in message, message


def test_plan_round_trips_through_its_dict() -> None:
    """FaultPlan.to_dict is canonical: parsing it back gives an equal plan."""
    plan = FaultPlan.from_dict({
        "wait_for_setup": False,
        "schedule": [{"kind": "kill", "node": 1, "at": 5}, {"kind": "heal", "at": 9}],
        "random": {"rates": {"loss": 0.5, "partition": 0.1}, "max_concurrent": 2,
                   "ranges": {"loss": {"duration": [10, 20], "probability": [0.1, 0.2]}}},
    }, node_count=3)
    data = msgpack.unpackb(msgpack.packb(plan.to_dict()))
    assert FaultPlan.from_dict(data, node_count=3) == plan
    assert FaultPlan.from_dict({}) == FaultPlan()


# -- random expansion -----------------------------------------------------------------------


def test_arrival_gaps_are_geometric() -> None:
    """The per-tick Bernoulli gap has mean 1/p and never goes below one tick."""
    stream = DeterministicStream(1, "test", -1)
    gaps = [_arrival_gap(stream, 0.01) for _ in range(5000)]
    assert min(gaps) >= 1
    assert 95 < statistics.mean(gaps) < 105, statistics.mean(gaps)
    assert _arrival_gap(stream, 1.0) == 1


def test_random_plan_is_deterministic_per_seed() -> None:
    """Same seed: identical faults; another seed: a different plan."""
    config = RandomFaults(rates=((FaultKind.PARTITION, 0.2), (FaultKind.KILL, 0.1),
                                 (FaultKind.LOSS, 0.3)), max_concurrent=3)
    a = expand_random(config, 5, 3, 600_000)
    assert a == expand_random(config, 5, 3, 600_000)
    assert a != expand_random(config, 6, 3, 600_000)
    assert len(a) > 50


def test_random_rates_kinds_and_ranges() -> None:
    """Arrivals ≈ rate × seconds, kinds in proportion, parameters inside their ranges."""
    config = RandomFaults(
        rates=((FaultKind.LOSS, 1.5), (FaultKind.CLOCK_JUMP, 0.5)), max_concurrent=10_000,
        ranges=((FaultKind.LOSS, (("duration", (1, 3)), ("probability", (0.1, 0.2)))),),
    )
    faults = expand_random(config, 9, 4, 1_000_000)  # 1000 virtual seconds
    assert 1900 < len(faults) < 2100, len(faults)
    counts = Counter(f.kind for f in faults)
    assert 0.72 < counts[FaultKind.LOSS] / len(faults) < 0.78, counts
    for f in faults:
        assert 0 <= f.node < 4 and 0 <= f.at < 1_000_000
        if f.kind == FaultKind.LOSS:
            assert 1 <= f.duration <= 3 and 0.1 <= f.param("probability") <= 0.2
        else:
            low, high = KIND_SPECS[FaultKind.CLOCK_JUMP].params[0].random_range or (0, 0)
            assert f.duration == 0 and low <= f.param("delta_ns") <= high
    assert [f.at for f in faults] == sorted(f.at for f in faults)


def test_random_max_concurrent_and_window() -> None:
    """Never more than max_concurrent faults in effect; starts inside [start, stop)."""
    config = RandomFaults(rates=((FaultKind.PAUSE, 5.0), (FaultKind.PARTITION, 5.0)),
                          max_concurrent=2, start=1000, stop=50_000)
    faults = expand_random(config, 3, 3, 100_000)
    assert faults and all(1000 <= f.at < 50_000 for f in faults)
    for f in faults:
        overlapping = [g for g in faults if g.at <= f.at < g.at + g.duration]
        assert len(overlapping) <= 2, (f, overlapping)
    sides = [f.param("sides") for f in faults if f.kind == FaultKind.PARTITION]
    assert all(len(s) == 2 and sorted(s[0] + s[1]) == [0, 1, 2] for s in sides)
    assert len(set(sides)) > 1


def test_expanded_plan_merges_schedule_first_among_equal_ticks() -> None:
    """expand() keeps the explicit schedule and adds the random faults, sorted by tick."""
    plan = FaultPlan(schedule=(fault("heal", 0),),
                     random=RandomFaults(rates=((FaultKind.RESTART, 1000.0),)))
    faults = plan.expand(1, 2, 5)
    assert faults[0].kind == FaultKind.HEAL and len(faults) == 6
    assert [f.at for f in faults] == [0, 0, 1, 2, 3, 4]


# -- the engine -----------------------------------------------------------------------------


def fire(engine: FaultEngine, until: int) -> list[FaultAction]:
    out: list[FaultAction] = []
    for tick in range(until + 1):
        out += engine.due(tick)
    return out


def test_faults_are_gated_until_every_node_completed_setup() -> None:
    """Nothing fires before the last setup_complete; ticks then count from that moment."""
    engine = FaultEngine([fault("kill", 0, node=1), fault("restart", 10, node=2)], 3)
    assert engine.next_due_tick() is None and engine.due(1000) == []
    assert not engine.on_setup_complete(0, 100)
    assert not engine.on_setup_complete(2, 150)
    assert not engine.on_setup_complete(2, 160)  # a repeat does not count twice
    assert engine.on_setup_complete(1, 200) and engine.origin_tick == 200
    assert engine.next_due_tick() == 200
    assert [(a.tick, a.kind.value) for a in engine.due(205)] == [(200, "kill")]
    assert engine.due(209) == []
    assert [(a.tick, a.kind.value) for a in engine.due(210)] == [(210, "restart")]


def test_gating_off_and_open_gate() -> None:
    """Without gating ticks are absolute from 0; open_gate starts a waiting engine by hand."""
    engine = FaultEngine([fault("restart", 3, node=0)], 3, wait_for_setup=False)
    assert engine.origin_tick == 0 and [a.tick for a in engine.due(3)] == [3]
    waiting = FaultEngine([fault("restart", 3, node=0)], 3)
    waiting.open_gate(40)
    assert [a.tick for a in waiting.due(43)] == [43]


def test_actions_order_ends_before_starts_and_plan_order() -> None:
    """At one tick, ends come first, then starts in plan order; late calls catch up in order."""
    faults = [fault("pause", 0, node=0, duration=5), fault("disk_full", 5, node=1),
              fault("kill", 5, node=2), fault("clock_skew", 2, node=1, rate=0.5, duration=3)]
    engine = FaultEngine(faults, 3, wait_for_setup=False)
    got = [(a.tick, a.phase, a.kind.value) for a in engine.due(100)]
    assert got == [(0, START, "pause"), (2, START, "clock_skew"), (5, END, "pause"),
                   (5, END, "clock_skew"), (5, START, "disk_full"), (5, START, "kill")]
    assert all(not a.applied for a in engine.due(100))
    assert [a.fault.kind.value for a in engine.active()] == ["disk_full", "kill"]
    assert [a.end_tick for a in engine.active()] == [None, None]  # duration 0: until the end


def test_node_fault_actions_and_records() -> None:
    """kill with a duration ends (= restart); instant kinds never become active; records pack."""
    engine = FaultEngine([fault("kill", 1, node=2, duration=4), fault("clock_jump", 2, node=0,
                                                                        delta_ns=-5)], 3,
                         wait_for_setup=False)
    actions = fire(engine, 10)
    assert [(a.tick, a.phase, a.kind.value, a.node) for a in actions] == [
        (1, START, "kill", 2), (2, START, "clock_jump", 0), (5, END, "kill", 2)]
    records = [a.to_record() for a in actions]
    assert [r["kind"] for r in records] == ["fault.start", "fault.start", "fault.end"]
    assert records[2]["reason"] == "duration" and records[1]["fault"]["delta_ns"] == -5
    assert msgpack.unpackb(msgpack.packb(records)) == records
    assert engine.active() == [] and engine.next_due_tick() is None


def test_link_faults_apply_to_the_fabric_and_revert_exactly() -> None:
    """A loss/latency/bandwidth fault changes the fabric while active; its end restores it."""
    fabric = NetworkFabric(1, 3, LinkParams(latency_ns=MS, bandwidth_bps=1_000_000))
    fabric.set_link_params(2, loss=0.1)
    before = [fabric.node_params(n) for n in range(3)]
    faults = [fault("loss", 2, node=1, probability=0.7, duration=10),
              fault("latency", 4, latency_ns="30ms", duration=2),
              fault("bandwidth", 4, node=0, bandwidth_bps=8000, duration=20)]
    engine = FaultEngine(faults, 3, fabric, wait_for_setup=False)
    assert all(a.applied for a in engine.due(5))
    assert fabric.node_params(1).loss == 0.7 and fabric.link_params(1, 2).loss == 0.7
    assert fabric.node_params(2).latency_ns == 30 * MS
    assert fabric.link_params(0, 2).bandwidth_bps == 8000
    fire(engine, 30)
    assert [fabric.node_params(n) for n in range(3)] == before
    assert engine.active() == []


def test_partition_fault_and_heal_fault() -> None:
    """A partition cuts the fabric; a heal ends every active partition (reason healed)."""
    fabric = NetworkFabric(1, 3)
    faults = [fault("partition", 1, sides=[[0], [1, 2]], duration=100),
              fault("partition", 2, sides=[[2]]), fault("heal", 10)]
    engine = FaultEngine(faults, 3, fabric, wait_for_setup=False)
    engine.due(2)
    assert fabric.separated(0, 1) and fabric.separated(1, 2)
    actions = engine.due(10)
    assert [(a.phase, a.kind.value, a.reason) for a in actions] == [
        (START, "heal", ""), (END, "partition", END_HEALED), (END, "partition", END_HEALED)]
    assert not fabric.separated(0, 1) and not fabric.separated(1, 2)
    assert engine.due(1000) == [] and engine.active() == []


def test_faults_naming_missing_nodes_are_refused() -> None:
    """The engine refuses a plan naming a node outside the run."""
    with pytest.raises(ValueError, match="names node 5"):
        FaultEngine([Fault(FaultKind.KILL, 0, 0, 5)], 3)


def scenario_engine(seed: int) -> tuple[FaultEngine, NetworkFabric]:
    fabric = NetworkFabric(seed, 4, LinkParams(jitter_ns=MS))
    plan = FaultPlan(
        schedule=(fault("loss", 0, probability=0.3, duration=200),),
        random=RandomFaults.from_dict({
            "rates": {"partition": 3, "latency": 3, "kill": 2, "heal": 1, "duplicate": 3},
            "max_concurrent": 3,
            "ranges": {kind: {"duration": [20, 200]}
                       for kind in ("partition", "latency", "kill", "duplicate")},
        }),
    )
    return FaultEngine.from_plan(plan, seed, 4, 5000, fabric), fabric


def run(engine: FaultEngine, fabric: NetworkFabric, start: int, stop: int) -> list[Any]:
    """Step the engine and traffic tick by tick; everything it produced."""
    out: list[Any] = []
    for tick in range(start, stop):
        if tick == 50:
            for node in range(4):
                engine.on_setup_complete(node, tick)
        out += [a.to_record() for a in engine.due(tick)]
        out += [e.to_record() for e in fabric.send(tick * MS, tick % 4, (tick + 1) % 4, b"m")]
        out += [d.to_record() for d in fabric.pop_due(tick * MS)]
    return out


def test_snapshot_restore_mid_plan_equals_uninterrupted_run() -> None:
    """Engine and fabric snapshotted mid-plan and restored fresh continue identically."""
    whole_engine, whole_fabric = scenario_engine(21)
    expected = run(whole_engine, whole_fabric, 0, 3000)
    assert sum(r["kind"] == "fault.start" for r in expected) > 20
    engine, fabric = scenario_engine(21)
    head = run(engine, fabric, 0, 1500)
    assert engine.active(), "the snapshot should be taken with faults in effect"
    snap = msgpack.unpackb(msgpack.packb({"e": engine.snapshot(), "f": fabric.snapshot()}))
    fabric2 = NetworkFabric.from_snapshot(snap["f"])
    engine2 = FaultEngine.from_snapshot(snap["e"], fabric2)
    assert engine2.snapshot() == engine.snapshot()
    assert head + run(engine2, fabric2, 1500, 3000) == expected
    assert engine2.snapshot() == whole_engine.snapshot()
    assert fabric2.snapshot() == whole_fabric.snapshot()
