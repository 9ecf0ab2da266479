"""Recording a run, replaying it, resuming from its checkpoints, and spotting divergence."""

from __future__ import annotations

import errno

import pytest
from simulate import scenario

from chaosreplay.kernel import sdk_abi
from chaosreplay.kernel.syscalls import HANDLERS
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb
from chaosreplay.runs.record_replay import RunOptions, record_run, replay_run
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def probe(guest_bin):
    return guest_bin("musl", "probe")


def _busy_scenario(probe, seed=3, duration="1500ms"):
    """Ring traffic under a partition, a kill, a pause and lossy, jittery links."""
    return scenario(probe, ["ring", "140"], seed=seed, duration=duration,
                    checkpoint_interval=200, network={"jitter_ns": "2ms", "loss": 0.1},
                    faults=[
                        {"kind": "partition", "at": 100, "duration": 150, "sides": [[0], [1, 2]]},
                        {"kind": "kill", "at": 300, "node": 1, "duration": 200},
                        {"kind": "pause", "at": 650, "node": 2, "duration": 100},
                        {"kind": "clock_skew", "at": 400, "node": 0, "rate": 0.3},
                    ])


def _record(probe, tmp_path, **kwargs):
    sc = _busy_scenario(probe, **kwargs)
    images = [load_program(probe)]
    path = tmp_path / "run.ccr"
    result = record_run(sc, images, path)
    return sc, images, path, result


def _rows(events):
    return [packb((e.tick, e.vtime_ns, e.node, e.kind, e.fields)) for e in events]


def test_recording_is_complete_with_checkpoints_and_manifest(probe, tmp_path):
    sc, _, path, result = _record(probe, tmp_path)
    assert not (tmp_path / "run.ccr.partial").exists()
    with RecordingReader(path) as reader:
        assert reader.complete
        assert reader.event_count == result.events
        assert [c.tick for c in reader.checkpoints] == list(range(200, 1500, 200))
        manifest = reader.manifest
        assert manifest["scenario"] == sc.to_dict()
        [binary] = manifest["programs"]["binaries"].values()
        assert binary["elf"] == probe.read_bytes()
        assert reader.summary["reason"] == result.reason


def test_replay_of_a_recording_is_identical(probe, tmp_path):
    _, _, path, _ = _record(probe, tmp_path)
    report = replay_run(path)
    assert report.identical, report
    with RecordingReader(path) as reader:
        assert report.events_checked == reader.event_count
        assert report.checkpoints_checked == len(reader.checkpoints)


def test_replay_needs_only_the_recording(probe, tmp_path):
    """The programs are embedded: replay works after the binary is gone."""
    copy = tmp_path / "probe"
    copy.write_bytes(probe.read_bytes())
    sc = scenario(copy, ["ring", "20"], checkpoint_interval=50)
    path = tmp_path / "run.ccr"
    record_run(sc, [load_program(copy)], path)
    copy.unlink()
    assert replay_run(path).identical


@pytest.mark.parametrize("checkpoint", [0, 2, 5])
def test_resume_from_checkpoint_equals_uninterrupted_run(probe, tmp_path, checkpoint):
    sc, images, path, _ = _record(probe, tmp_path)
    with RecordingReader(path) as reader:
        recorded = list(reader.events())
        ckpt = reader.load_checkpoint(checkpoint)
        resumed = []
        sim = Simulation.resume(sc, images, ckpt.blobs, ckpt.pages,
                                sink=lambda *e: resumed.append(packb(e)))
        sim.run()
    assert resumed == _rows(recorded[ckpt.info.seq:])


def test_replay_reports_first_divergence_and_differing_state(probe, tmp_path, monkeypatch):
    """A VMM that answers cr_recv differently is caught at the first event it changes."""
    _, _, path, _ = _record(probe, tmp_path)
    original = HANDLERS[sdk_abi.CR_SYS_RECV]
    calls = {"n": 0}

    def flaky_recv(p, r):
        calls["n"] += 1
        return -errno.ETIMEDOUT if calls["n"] == 50 else original(p, r)

    monkeypatch.setitem(HANDLERS, sdk_abi.CR_SYS_RECV, flaky_recv)
    report = replay_run(path)
    assert not report.identical
    d = report.divergence
    assert d is not None and d.expected is not None and d.actual is not None
    assert d.seq == report.events_checked and d.tick == d.expected.tick
    e = d.expected
    assert packb((e.tick, e.vtime_ns, e.node, e.kind, e.fields)) != packb(d.actual)
    assert report.state_differs  # the next checkpoint names what differs
    assert any(part.startswith(f"node{d.node}") for part in report.state_differs)


def test_record_options_travel_in_the_manifest(probe, tmp_path):
    sc = scenario(probe, ["bug", "3"], checkpoint_interval=100)
    path = tmp_path / "bug.ccr"
    result = record_run(sc, [load_program(probe)], path, RunOptions(keep_going=True))
    assert result.reason == "all nodes ended" and result.failed
    assert replay_run(path).identical
