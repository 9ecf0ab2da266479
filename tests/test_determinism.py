"""Same seed + scenario → byte-identical event streams and checkpoint digests (DESIGN §4).

The sweep runs the Raft demo under dense random faults (partitions, kills, pauses, restarts,
loss, duplication, reordering, corruption, latency, clock skew), twice per seed.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from chaosreplay.recording.format import packb
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation

pytestmark = pytest.mark.kvm
SEEDS = range(50)


def _dense_faults(seed: int) -> Scenario:
    """The demo for 1.5 virtual seconds with ten times its fault rates, checkpoints at 250 ms."""
    data = demo_scenario().to_dict()
    data.update(seed=seed, duration=1500, checkpoint_interval=250)
    random = data["faults"]["random"]
    random["rates"] = {kind: rate * 10 for kind, rate in random["rates"].items()}
    random["ranges"] = {"kill": {"duration": [50, 400]}, "pause": {"duration": [50, 300]},
                        "partition": {"duration": [50, 500]}}
    return Scenario.from_dict(data)


@pytest.fixture(scope="module")
def images(guest_bin):
    guest_bin("musl", "raft")  # builds the guests, so the demo binary is current
    return resolve_images(demo_scenario(), Path.cwd())


def _fingerprint(sc: Scenario, images) -> tuple[str, list[bytes], int]:
    stream = hashlib.sha256()
    digests: list[bytes] = []

    def sink(*event):
        stream.update(packb(event))

    sim = Simulation(sc, images, sink=sink, on_checkpoint=lambda c: digests.append(c.digest))
    result = sim.run()
    return stream.hexdigest(), digests, result.events


def test_fifty_seeds_twice_each_are_identical(images):
    fingerprints = {}
    for seed in SEEDS:
        sc = _dense_faults(seed)
        first, second = _fingerprint(sc, images), _fingerprint(sc, images)
        assert first == second, f"seed {seed}: runs differ"
        assert len(first[1]) >= 1, f"seed {seed}: no checkpoint was taken"
        fingerprints[seed] = first[0]
    assert len(set(fingerprints.values())) == len(SEEDS), "different seeds, same stream"


def test_faults_actually_fire_in_the_sweep(images):
    """The sweep is only meaningful if its runs are full of faults."""
    events: list[tuple] = []
    for seed in range(5):
        Simulation(_dense_faults(seed), images, sink=lambda *e: events.append(e)).run()
    kinds = {e[4]["fault"]["kind"] for e in events if e[3] == "fault.start"}
    assert {"partition", "kill", "loss"} <= kinds and len(kinds) >= 5, kinds


def test_checkpointing_does_not_change_the_run(images):
    """Taking checkpoints is invisible to the guests: the same events with or without."""
    sc = _dense_faults(11)
    with_ckpt = []
    Simulation(sc, images, sink=lambda *e: with_ckpt.append(e)).run()
    without = []
    Simulation(replace(sc, checkpoint_interval=0), images,
               sink=lambda *e: without.append(e)).run()
    assert [e for e in with_ckpt if e[3] != "checkpoint"] == without


@pytest.mark.parametrize("seed", [3, 11])
def test_pausing_with_run_to_does_not_change_the_run(images, seed):
    """run_to pauses mid-node-run (the debugger's reconstruction); continuing afterwards must
    give the very events and checkpoint digests of a run that never paused."""
    import random

    sc = _dense_faults(seed)
    straight = _fingerprint(sc, images)
    stream = hashlib.sha256()
    digests: list[bytes] = []
    sim = Simulation(sc, images, sink=lambda *e: stream.update(packb(e)),
                     on_checkpoint=lambda c: digests.append(c.digest))
    pauses = sorted(random.Random(seed).sample(range(straight[2]), 300))
    reached = []
    for seq in pauses:
        if sim.run_to(seq):
            assert sim.event_count > seq
            reached.append(sim.event_count - 1 - seq)  # how far past the asked event
    result = sim.run()
    assert (stream.hexdigest(), digests, result.events) == straight
    assert reached and sum(1 for r in reached if r <= 3) >= 0.9 * len(reached), reached


def test_resuming_from_a_checkpoint_reproduces_the_next_ones_digest(images, tmp_path):
    """Restoring a checkpoint into fresh VMs loses nothing: run on, the next checkpoint has the
    recorded digest (this caught XMM registers that KVM_SET_FPU left in their init state)."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import RunOptions, record_run

    sc = _dense_faults(4)
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        infos = reader.checkpoints
        assert len(infos) >= 3
        for info, following in itertools.pairwise(infos):
            loaded = reader.load_checkpoint(info.index)
            taken: list = []
            sim = Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                                    on_checkpoint=taken.append)
            while not taken and sim.stop_reason is None:
                sim.step()
            assert taken and taken[0].digest == following.digest, (
                f"checkpoint {info.index} → {following.index}: parts differ")
