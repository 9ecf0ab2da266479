"""Triage of a folder: finding files, skipping damaged ones, clusters and their timelines."""

from __future__ import annotations

from pathlib import Path

from triage_runs import NS, FakeRun

from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import Divergence, ReplayReport
from chaosreplay.triage.classify import FailureClass, Signature
from chaosreplay.triage.cluster import (
    analyse_all,
    cluster_runs,
    divergence_finding,
    find_recordings,
)

ELECTION = "election safety: at most one leader per term"
TERMS = "log terms never decrease along the log"


def _bugs(tmp_path: Path) -> Path:
    """A bugs folder: three runs of one failure (two under a partition), one of another."""
    bugs = tmp_path / "bugs"
    FakeRun(seed=4).fault(100, "partition", 900, sides=[[0], [1, 2]]).bug(
        700, 1, ELECTION).write(bugs / "seed-4.ccr")
    FakeRun(seed=9).fault(50, "partition", 2000, sides=[[1], [0, 2]]).bug(
        450, 2, ELECTION).write(bugs / "seed-9.ccr")
    FakeRun(seed=2).bug(300, 0, ELECTION).write(bugs / "seed-2.ccr")
    FakeRun(seed=7).bug(800, 2, TERMS, line=33).crash(810, 2).write(bugs / "more" / "seed-7.ccr")
    return bugs


def test_find_recordings_is_recursive_sorted_and_skips_triage_output(tmp_path: Path) -> None:
    """Sorted by path; hidden folders (.triage) and the report folder are left out."""
    bugs = _bugs(tmp_path)
    FakeRun().bug(1, 0, ELECTION).write(bugs / ".triage" / "min-abc.ccr")
    FakeRun().bug(1, 0, ELECTION).write(bugs / "report" / "min-def.ccr")
    (bugs / "notes.txt").write_text("not a recording")
    found = find_recordings(bugs, exclude=[bugs / "report"])
    assert [p.relative_to(bugs).as_posix() for p in found] == [
        "more/seed-7.ccr", "seed-2.ccr", "seed-4.ccr", "seed-9.ccr"]


def test_one_finding_per_property_with_faults_as_a_breakdown(tmp_path: Path) -> None:
    """One signature, one finding, whatever the faults around it: the fault patterns, nodes
    and folders are counted inside it; the earliest failing run represents it."""
    bugs = _bugs(tmp_path)
    runs = analyse_all(find_recordings(bugs))
    clusters = cluster_runs(runs)
    shapes = [(c.signature.message, c.faults, c.seeds) for c in clusters]
    assert shapes == [(ELECTION, ("partition",), [2, 4, 9]), (TERMS, (), [7])], shapes
    election = clusters[0]
    assert election.key == election.signature.key
    assert election.representative.path == str(bugs / "seed-2.ccr")
    assert election.tick_range == (300, 700) and election.nodes == [0, 1, 2]
    breakdown = election.breakdown()
    assert breakdown["faults"] == [("partition", 2), ("none", 1)], breakdown
    assert breakdown["nodes"] == [("node 0", 1), ("node 1", 1), ("node 2", 1)]
    assert "not split" in election.grouping
    crashed = clusters[1]
    assert crashed.signature.failure_class is FailureClass.ALWAYS, "the crash came after"
    assert len(crashed.members) == 1


def test_parallel_analysis_matches_serial(tmp_path: Path) -> None:
    """Worker processes change nothing, not even the order."""
    paths = find_recordings(_bugs(tmp_path))
    assert analyse_all(paths, jobs=2) == analyse_all(paths, jobs=1)


def test_timeline_shows_what_happened_not_syscalls(tmp_path: Path) -> None:
    """Last events per node before the failure: no syscalls or held assertions, unless a
    node did nothing else."""
    run = FakeRun().syscalls(10, 2, 5)
    for tick in range(100, 120):
        run.event(tick, 0, "packet.sent", packet_id=tick, src=0, dst=1, size=80)
        run.syscalls(tick, 0, 3)
        run.event(tick, 0, "assert", assert_kind=0, condition=True, id=1, message="ok",
                  file="a.c", line=1)
    run.event(118, 1, "output", fd=1, data=b"node 1: became leader of term 3\n")
    run.fault(119, "pause", 50, node=1)
    run.bug(121, 1, ELECTION)
    run.event(125, 0, "packet.sent", packet_id=999, src=0, dst=2, size=80)  # after it
    path = run.write(tmp_path / "bugs" / "t.ccr")
    [cluster] = cluster_runs(analyse_all([path]), timeline_events=4)
    lines = {t.node: [(e.kind, e.text) for e in t.events] for t in cluster.timeline}
    assert lines[0] == [("packet.sent", f"sent #{i} to n1 (80 B)") for i in range(116, 120)]
    assert lines[1] == [("output", "stdout: node 1: became leader of term 3"),
                        ("fault.start", "fault starts: pause (node=1) for 50 ms"),
                        ("assert", f'always FAILED: "{ELECTION}"')]
    only_syscalls = next(t for t in cluster.timeline if t.node == 2)
    assert only_syscalls.syscalls_only and len(only_syscalls.events) == 4
    assert only_syscalls.events[0].text == "clock_gettime(1, 0, …) = 0"
    assert [e.kind for e in next(t for t in cluster.timeline if t.node == -1).events] == [
        "run.start"]


def test_damaged_files_are_skipped_with_a_reason(tmp_path: Path) -> None:
    """Unreadable files are skipped with one line each; a lost footer is read from events."""
    bugs = tmp_path / "bugs"
    good = FakeRun(seed=1).bug(300, 0, ELECTION).write(bugs / "a-good.ccr")
    head = bugs / "b-truncated.ccr"
    head.write_bytes(good.read_bytes()[:40])  # inside the manifest
    (bugs / "c-garbage.ccr").write_bytes(b"not a recording at all" * 10)
    no_footer = FakeRun(seed=3).syscalls(5, 0, 40).bug(200, 1, ELECTION).write(
        bugs / "d-no-footer.ccr", footer=False)
    quiet = FakeRun(seed=5).syscalls(5, 0, 40).bug(9000, 1, ELECTION).write(
        bugs / "e-cut-before-failure.ccr")
    quiet.write_bytes(quiet.read_bytes()[:quiet.stat().st_size // 3])
    runs = {Path(r.path).name: r for r in analyse_all(find_recordings(bugs))}
    assert runs["a-good.ccr"].skipped is None and runs["a-good.ccr"].findings
    for name in ("b-truncated.ccr", "c-garbage.ccr", "e-cut-before-failure.ccr"):
        reason = runs[name].skipped
        assert reason and "\n" not in reason and "Traceback" not in reason, (name, reason)
    assert "no failure among" in runs["e-cut-before-failure.ccr"].skipped
    cut = runs[no_footer.name]
    assert cut.skipped is None and cut.findings[0].signature.message == ELECTION
    assert "classified from its events (no summary)" in cut.notes
    assert len(cluster_runs(list(runs.values()))) == 1


def test_a_replay_that_differs_is_a_divergence_finding(tmp_path: Path) -> None:
    """Located by the kind of the first differing event (and the system call's name), or by
    the state parts that differ at a checkpoint; the run's own failure stays a finding."""
    run = FakeRun().syscalls(10, 1, 3).fault(20, "loss", 500, node=1, probability=0.5)
    path = run.bug(300, 0, ELECTION).write(tmp_path / "r.ccr")
    with RecordingReader(path) as reader:
        syscall = next(reader.events(kinds=["syscall"]))
        differs = ReplayReport(divergence=Divergence(syscall.seq, 10, 1, syscall,
                                                     (10, 10 * NS, 1, "syscall", {})))
        finding = divergence_finding(reader, differs)
        assert finding.signature == Signature(FailureClass.DIVERGENCE, None, "an event differs",
                                              "syscall clock_gettime")
        assert (finding.tick, finding.node, finding.seq, finding.faults) == (
            10, 1, syscall.seq, ())
        shorter = divergence_finding(reader, ReplayReport(
            divergence=Divergence(40, 300, 0, None, (300, 0, 0, "output", {}))))
        assert shorter.signature.message == "the replay made more events"
        assert shorter.signature.location == "output" and shorter.faults == ("loss",)
        state = divergence_finding(reader, ReplayReport(
            state_differs=["node0.memory", "fabric"], state_checked_at=1000))
        assert (state.signature.message, state.signature.location, state.tick) == (
            "state differs at a checkpoint", "node0.memory, fabric", 1000)
    assert state.signature.title == (
        "replay diverged: state differs at a checkpoint at node0.memory, fabric")


def test_a_run_that_cannot_replay_is_noted_not_skipped(tmp_path: Path) -> None:
    """Replaying is asked for but impossible (here: no programs embedded): a note, and the
    recorded failure is still triaged."""
    path = FakeRun().bug(300, 0, ELECTION).write(tmp_path / "r.ccr")
    [run] = analyse_all([path], replay=True)
    assert run.skipped is None and len(run.findings) == 1
    assert len(run.notes) == 1 and run.notes[0].startswith("not replayed: "), run.notes
