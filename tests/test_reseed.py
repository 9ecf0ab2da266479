"""The `reseed` fault (sim/reseed.py): a run's random streams get new keys at a tick, so what
is drawn after it differs, nothing before it does, and the run still replays and resumes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chaosreplay.kernel import sdk_abi
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb
from chaosreplay.recording.schema import SchemaError, validate
from chaosreplay.runs.record_replay import RunOptions, record_run, replay_run
from chaosreplay.sim import checkpoint_check
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.reseed import next_stream_seed
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation

REPO = Path(__file__).resolve().parent.parent
RESEED_TICK = 1000  # the gate opens at tick 0 in this scenario, so this is absolute too
SCENARIO = """
seed = 3
duration = "3s"
checkpoint_interval = "500ms"
[[nodes]]
program = "builtin:demo"
count = 3
[network]
latency_ns = "1ms"
jitter_ns = "2ms"
"""
Events = list[tuple[int, int, int, str, dict[str, Any]]]


def _scenario(*faults: str) -> Scenario:
    text = SCENARIO + "".join(f"[[faults.schedule]]\n{f}\n" for f in faults)
    return loads_scenario(text, "reseed test")


def _reseed(seed: int = 5, node: int | None = None) -> str:
    where = "" if node is None else f"node = {node}\n"
    return f'kind = "reseed"\nat = {RESEED_TICK}\nseed = {seed}\n{where}'


def _run(scenario: Scenario) -> tuple[Simulation, Events]:
    events: Events = []
    sim = Simulation(scenario, resolve_images(scenario, REPO), sink=lambda *e: events.append(e))
    sim.run()
    return sim, events


def _randoms(events: Events, node: int) -> list[int]:
    """The values a node's cr_get_random calls returned, in order."""
    return [f["ret"] for _, _, n, kind, f in events
            if kind == "syscall" and n == node and f["nr"] == sdk_abi.CR_SYS_RANDOM]


def _delays(events: Events, after_tick: int) -> list[int]:
    return [f["time_ns"] - f["sent_ns"] for tick, _, _, kind, f in events
            if kind == "packet.delivered" and tick > after_tick]


def _without_fault_events(events: Events) -> Events:
    return [e for e in events if e[3] not in ("fault.start", "fault.end")]


@pytest.fixture(scope="module")
def baseline() -> tuple[Simulation, Events]:
    return _run(_scenario())


@pytest.mark.kvm
def test_a_reseed_changes_what_the_guests_and_the_network_draw_after_it(baseline) -> None:
    """Up to the reseed the run is the same event for event; after it the nodes' SDK random
    numbers are others (not the same stream further on) and the network's jitter too."""
    _, plain = baseline
    sim, reseeded = _run(_scenario(_reseed()))
    before = [e for e in _without_fault_events(reseeded) if e[0] < RESEED_TICK]
    assert before == [e for e in plain if e[0] < RESEED_TICK]
    for node in range(3):
        early = len(_randoms(before, node))
        mine, theirs = _randoms(reseeded, node)[early:], _randoms(plain, node)[early:]
        assert mine and theirs and not set(mine) & set(theirs), (node, mine[:3], theirs[:3])
    assert _delays(reseeded, RESEED_TICK) != _delays(plain, RESEED_TICK)
    seed = next_stream_seed(3, 5)
    assert sim.stream_seeds == [seed] * 3 and sim.fabric.seed == seed
    assert {s.seed for n in sim.nodes for s in n.process.random.values()} == {seed}


@pytest.mark.kvm
def test_a_reseed_of_one_node_leaves_the_others_streams_alone(baseline) -> None:
    """Node 1's numbers change; nodes 0 and 2 keep drawing their own streams (what they draw
    is a prefix of, or extends, what they drew without it) and the fabric keeps its seed."""
    _, plain = baseline
    sim, reseeded = _run(_scenario(_reseed(node=1)))
    for node in (0, 2):
        mine, theirs = _randoms(reseeded, node), _randoms(plain, node)
        shorter = min(len(mine), len(theirs))
        assert shorter > 3 and mine[:shorter] == theirs[:shorter], node
    early = len(_randoms([e for e in reseeded if e[0] < RESEED_TICK], 1))
    assert not set(_randoms(reseeded, 1)[early:]) & set(_randoms(plain, 1)[early:])
    assert sim.stream_seeds == [None, next_stream_seed(3, 5), None] and sim.fabric.seed == 3


@pytest.mark.kvm
def test_a_reseeded_run_is_a_function_of_the_reseeds_seed() -> None:
    """The same reseed twice gives the same run byte for byte; another seed another run."""
    _, first = _run(_scenario(_reseed(seed=11)))
    _, again = _run(_scenario(_reseed(seed=11)))
    _, other = _run(_scenario(_reseed(seed=12)))
    assert packb(first) == packb(again)
    assert _randoms(first, 0) != _randoms(other, 0)


@pytest.mark.kvm
def test_a_reseeded_recording_replays_and_resumes_from_every_checkpoint(tmp_path) -> None:
    """A run with a reseed and then a kill and restart of node 2 (whose new life's streams
    must be reseeded too) replays from scratch identically, and a simulation resumed from
    any checkpoint after the reseed continues with the recorded events (the checkpoint
    carries the stream seeds; without them the numbers drawn would be the scenario's)."""
    scenario = _scenario(_reseed(), 'kind = "kill"\nat = 1200\nnode = 2\nduration = 400')
    path = tmp_path / "run.ccr"
    record_run(scenario, resolve_images(scenario, REPO), path, RunOptions())
    replayed = replay_run(path)
    assert replayed.identical, (replayed.divergence, replayed.state_differs)
    images = resolve_images(scenario, REPO)
    with RecordingReader(path) as reader:
        recorded = [(e.tick, e.vtime_ns, e.node, e.kind, e.fields) for e in reader.events()]
        restarts = [e for e in recorded if e[3] == "node.status" and e[2] == 2
                    and e[4]["status"] == "running" and e[0] > 1200]
        assert restarts, "node 2 restarted after the reseed"
        after = [c for c in reader.checkpoints if c.tick > RESEED_TICK]
        assert len(after) >= 3
        for info in after:
            loaded = reader.load_checkpoint(info.index)
            events: Events = []
            sim = Simulation.resume(scenario, images, loaded.blobs, loaded.pages,
                                    sink=lambda *e, out=events: out.append(e))
            sim.run()
            assert events == recorded[info.seq:], f"from checkpoint {info.index}"
            seeds = sim.stream_seeds
            assert seeds == [next_stream_seed(3, 5)] * 3
            assert all(s.seed == seeds[n.index] for n in sim.nodes
                       for s in [*n.process.random.values(), n.process.emulator.rdrand,
                                 n.process.fs.stream])


@pytest.mark.kvm
def test_a_run_without_reseeds_keeps_its_controller_part(baseline) -> None:
    """Checkpoints of runs without a reseed carry no stream seeds, so recordings made before
    the fault existed still match their digests."""
    parts: list[dict] = []
    scenario = _scenario()
    sim = Simulation(scenario, resolve_images(scenario, REPO),
                     on_checkpoint=lambda c: parts.append(c.blobs["controller"]))
    sim.run()
    assert parts and all(b"stream_seeds" not in p for p in parts)


def test_stream_seeds_from_a_file_are_checked() -> None:
    """A checkpoint's stream seeds must be one seed or nil per node."""
    check = checkpoint_check.stream_seeds(3)
    validate([None, 7, 2**63 - 1], check, "controller.stream_seeds")
    for bad in ([None, 7], [None, -1, 0], [None, "7", 0], [None, None, 2**63]):
        with pytest.raises(SchemaError, match="stream_seeds"):
            validate(bad, check, "controller.stream_seeds")


def test_next_stream_seed_is_63_bits_and_depends_on_both() -> None:
    seeds = {next_stream_seed(a, b) for a in (0, 1, 2**63 - 1) for b in (0, 1, 2)}
    assert len(seeds) == 9 and all(0 <= s < 2**63 for s in seeds)
