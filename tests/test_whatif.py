"""What-if branches: edit a recorded run's future faults, continue from a checkpoint, and
save a recording that replays from scratch and names its parent."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import RunOptions, record_run, replay_run
from chaosreplay.runs.whatif import ScheduleEdit, record_branch, schedule_of
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def parent(guest_bin, tmp_path_factory) -> Path:
    guest_bin("musl", "raft")
    data = demo_scenario().to_dict()
    data.update(seed=6, duration=4000, checkpoint_interval=500)
    data["faults"]["random"]["rates"] = {
        kind: rate * 10 for kind, rate in data["faults"]["random"]["rates"].items()}
    sc = Scenario.from_dict(data)
    path = tmp_path_factory.mktemp("whatif") / "parent.ccr"
    record_run(sc, resolve_images(sc, Path.cwd()), path, RunOptions())
    return path


def _fault_starts(path: Path) -> list[str]:
    with RecordingReader(path) as reader:
        return [e.fields["fault_id"] for e in reader.events(kinds=["fault.start"])]


def test_dropping_a_future_fault_branches_from_a_checkpoint(parent, tmp_path):
    schedule = schedule_of(RecordingReader(parent))
    victim = next(p for p in schedule if p.start_tick and p.start_tick > 1600)
    out = tmp_path / "branch.ccr"
    branch = record_branch(parent, [ScheduleEdit.drop(victim.fault_id)], out)
    assert out.exists() and not out.with_name("branch.ccr.partial").exists()
    assert branch.parent["from_checkpoint"] is not None and branch.parent["change_tick"] == (
        victim.start_tick)
    assert victim.fault_id in _fault_starts(parent)
    assert victim.fault_id not in _fault_starts(out)
    with RecordingReader(parent) as old, RecordingReader(out) as new:
        assert new.manifest["parent"]["recording"] == "parent.ccr"
        assert new.summary["branch"]["diverged_at"] == branch.diverged_at
        cut = branch.diverged_at
        assert cut is not None and old.event(cut - 1) == new.event(cut - 1)
        assert old.event(cut) != new.event(cut)
        assert new.event(cut).tick >= victim.start_tick
    report = replay_run(out)  # the branch stands alone: from tick 0 with its own scenario
    assert report.identical and report.checkpoints_checked == len(RecordingReader(out).checkpoints)


def test_move_and_add(parent, tmp_path):
    schedule = schedule_of(RecordingReader(parent))
    late = next(p for p in schedule if p.start_tick and p.start_tick > 1200)
    edits = [ScheduleEdit.move(late.fault_id, late.start_tick + 300),
             ScheduleEdit.add({"kind": "kill", "node": 0, "duration": "200ms"}, 2500)]
    out = tmp_path / "moved.ccr"
    record_branch(parent, edits, out)
    with RecordingReader(out) as reader:
        kills = [(e.tick, e.fields["fault"].get("node")) for e in
                 reader.events(kinds=["fault.start"]) if e.fields["fault"]["kind"] == "kill"]
        moved = [e.tick for e in reader.events(kinds=["fault.start"])
                 if e.fields["fault_id"].startswith(late.fault.kind.value)]
    assert (2500, 0) in kills
    assert late.start_tick + 300 in moved and late.start_tick not in moved
    assert replay_run(out).identical


def test_bad_edits_are_refused(parent, tmp_path):
    for edit, message in [(ScheduleEdit.drop("partition-00000000"), "no fault"),
                          (ScheduleEdit.add({"kind": "kill", "node": 9}, 1000), "node"),
                          (ScheduleEdit.add({"kind": "kill", "node": 0}, -5), "before")]:
        with pytest.raises(ConfigError, match=message):
            record_branch(parent, [edit], tmp_path / "x.ccr")
    assert not list(tmp_path.iterdir())
