"""Triage with the shrinker: each finding's runs shrunk, the smallest kept (KVM)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from chaosreplay.cli import main
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import record_run
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.triage.classify import Signature, signature_from_summary


def _triage(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["triage", "--json", "--no-progress", *map(str, args)])


@pytest.mark.kvm
def test_triage_writes_a_minimal_run_per_finding(tmp_path: Path) -> None:
    """no_step_down, seed 19, breaks election safety at 4.9 s after a partition (under loss);
    the minimal run, finding-1-min.ccr, fails the same way with no more faults and no more
    ticks, the report gives the commands that open it at its failure, and triage's next
    pass over the folder ignores it (.triage/) while a triage of .triage/ finds the same
    signature."""
    base = demo_scenario()
    scenario = replace(base, nodes=(replace(base.nodes[0], args=("no_step_down",)),),
                       duration=7000).with_seed(19)
    bugs = tmp_path / "bugs"
    bugs.mkdir()
    record_run(scenario, resolve_images(scenario, tmp_path), bugs / "seed-19.ccr")
    result = _triage(bugs, "-j", "2", "--shrink-budget", "120")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["shrunk"] is True
    [finding] = report["findings"]
    minimal = finding["minimal"]
    assert minimal is not None and "error" not in minimal, minimal
    path = Path(minimal["path"])
    assert path == bugs / ".triage" / "finding-1-min.ccr" and path.is_file()
    assert sorted(p.name for p in (bugs / ".triage").iterdir()) == ["finding-1-min.ccr"]
    assert minimal["commands"] == {
        "debug": f"chaosreplay debug {path} --seek {minimal['failure_tick']}",
        "replay": f"chaosreplay replay {path}",
        "state": f"chaosreplay state {path} --tick {minimal['failure_tick']} --node "
                 f"{minimal['failure_node']}"}
    assert minimal["failure_tick"] == minimal["ticks_after"], "it ends at its failure"
    # no_step_down's leader notes itself leader of the adopted term (note_leader, inlined
    # into on_message at raft.c:842, in main); above them the SDK's cr_assert, inlined too,
    # as gdb shows them
    program_frames = [f for f in minimal["stack"] if "include/chaosreplay.h" not in f]
    assert "in note_leader (src/raft.c:" in program_frames[0], minimal["stack"]
    assert any(f.endswith("in on_message (src/raft.c:842)") for f in program_frames), \
        minimal["stack"]
    signature = Signature.from_dict(finding)
    with RecordingReader(path) as reader:
        assert signature_from_summary(reader.summary) == signature
    assert minimal["faults_after"] <= minimal["faults_before"], minimal
    assert minimal["ticks_after"] <= minimal["ticks_before"], minimal
    assert minimal["candidates"] > 0 and len(minimal["schedule"]) == minimal["faults_after"]
    again = json.loads(_triage(bugs, "--no-shrink", "--no-replay").stdout)
    assert again["totals"]["recordings"] == 1, "the minimal run was triaged as a failure"
    of_minimal = json.loads(_triage(bugs / ".triage", "--no-shrink").stdout)
    assert [Signature.from_dict(f) for f in of_minimal["findings"]] == [signature]
