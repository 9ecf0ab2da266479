"""Triage classification: one primary failure per run, its signature, the faults around it."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from triage_runs import FakeRun

from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording import RecordingReader
from chaosreplay.sim.oracle import Bug
from chaosreplay.sim.simulation import Failure, RunResult
from chaosreplay.triage.classify import (
    HANG_MESSAGE,
    FailureClass,
    Signature,
    classify_recording,
    fault_pattern,
    node_rules,
    signature_from_summary,
    summary_occurrences,
)

ELECTION = "election safety: at most one leader per term"


def _classify(run: FakeRun, path: Path, footer: bool = True):
    run.write(path, footer=footer)
    with RecordingReader(path) as reader:
        return classify_recording(reader)


def test_an_assertion_then_a_crash_is_one_finding_the_assertion(tmp_path: Path) -> None:
    """One bug gives one finding: the run failed an always, then its node crashed."""
    run = FakeRun().bug(100, 1, ELECTION, line=487).crash(105, 1)
    signature = signature_from_summary(run.summary())
    assert signature == Signature(FailureClass.ALWAYS, run.bugs[0]["assert_id"], ELECTION,
                                  "src/app.c:487")
    finding = _classify(run, tmp_path / "r.ccr")
    assert finding is not None and finding.signature == signature, finding
    assert (finding.tick, finding.node) == (100, 1)
    assert signature.title == f'always failed: "{ELECTION}" at src/app.c:487'


def test_a_crash_before_an_assertion_is_the_primary_failure() -> None:
    """The earliest failure counts, whatever its kind."""
    run = FakeRun().crash(50, 2).bug(100, 1, ELECTION)
    signature = signature_from_summary(run.summary())
    assert signature is not None and signature.failure_class is FailureClass.CRASH


def test_at_the_same_tick_the_assertion_comes_first() -> None:
    """A bug and a crash in one tick: the violation is what the crash followed from."""
    run = FakeRun().crash(70, 0).bug(70, 2, ELECTION)
    signature = signature_from_summary(run.summary())
    assert signature is not None and signature.failure_class is FailureClass.ALWAYS


def test_reached_unreachable(tmp_path: Path) -> None:
    """A reached unreachable is its own class, titled as such."""
    run = FakeRun().bug(30, 0, "a message from the future is never accepted",
                        kind="unreachable", line=77)
    finding = _classify(run, tmp_path / "u.ccr")
    assert finding is not None
    sig = finding.signature
    assert (sig.failure_class, sig.location) == (FailureClass.UNREACHABLE, "src/app.c:77")
    assert sig.title.startswith('unreachable reached: "a message from the future')


def test_crash_names_its_signal_and_symbol(tmp_path: Path) -> None:
    """A crash is signed by signal, reason and symbol, from the summary and from events."""
    run = FakeRun().syscalls(10, 0, 3).crash(40, 0, signal.SIGFPE, "divide+0x8", 0,
                                             "#DE divide error")
    expected = Signature(FailureClass.CRASH, None, "SIGFPE (#DE divide error)", "divide+0x8")
    assert signature_from_summary(run.summary()) == expected
    assert expected.title == "crash: SIGFPE (#DE divide error) in divide+0x8"
    from_events = _classify(run, tmp_path / "c.ccr", footer=False)
    assert from_events is not None and from_events.signature == expected
    assert (from_events.tick, from_events.node) == (40, 0)


def test_hang(tmp_path: Path) -> None:
    """A hang has no location: where the watchdog caught the guest depends on wall time."""
    run = FakeRun().hang(900, 2)
    expected = Signature(FailureClass.HANG, None, HANG_MESSAGE, None)
    assert signature_from_summary(run.summary()) == expected
    finding = _classify(run, tmp_path / "h.ccr", footer=False)
    assert finding is not None and finding.signature == expected and finding.node == 2


def test_never_satisfied_only_when_nothing_failed(tmp_path: Path) -> None:
    """A never-satisfied sometimes is the finding of a run without bugs, crashes or hangs."""
    passing = FakeRun().never(10_000, "a leader is elected", line=300).never(
        10_000, "a follower truncates", kind="reachable", line=310)
    finding = _classify(passing, tmp_path / "n.ccr")
    assert finding is not None
    assert finding.signature.failure_class is FailureClass.NEVER
    assert finding.signature.message == "a leader is elected", finding
    assert finding.node == -1
    failing = FakeRun().bug(500, 0, ELECTION).never(500, "a leader is elected")
    assert signature_from_summary(failing.summary()).failure_class is FailureClass.ALWAYS


def test_a_clean_run_has_no_finding(tmp_path: Path) -> None:
    """No failure and every assertion satisfied: nothing to triage."""
    run = FakeRun().syscalls(5, 0, 2)
    assert signature_from_summary(run.summary()) is None
    assert _classify(run, tmp_path / "ok.ccr") is None


def test_summary_and_events_agree(tmp_path: Path) -> None:
    """Losing the footer does not change a run's signature or its failure's event."""
    run = (FakeRun().fault(5, "partition", 400, sides=[[0], [1, 2]], end=405)
           .bug(410, 1, ELECTION, line=487).bug(420, 2, ELECTION, line=487, first=False)
           .crash(430, 1))
    whole = _classify(run, tmp_path / "whole.ccr")
    cut = _classify(run, tmp_path / "cut.ccr", footer=False)
    assert whole == cut, (whole, cut)
    assert whole is not None and whole.seq is not None


def test_signature_from_a_real_run_result() -> None:
    """signature_from_summary reads RunResult.summary() itself (what the shrinker has)."""
    bug = Bug(1, 250, AssertKind.ALWAYS, ELECTION, "src/raft.c", 487, 99, True)
    crash = Failure("crash", 0, 260, "SIGSEGV (#PF page fault, read of unmapped memory) at "
                                     "0x401000 (step+0x4), address 0x0")
    result = RunResult("bug", 260, 1000, [bug], [crash], [], {})
    assert signature_from_summary(result.summary()) == Signature(
        FailureClass.ALWAYS, 99, ELECTION, "src/raft.c:487")
    crash_only = RunResult("crash", 260, 1000, [], [crash], [], {})
    assert signature_from_summary(crash_only.summary()) == Signature(
        FailureClass.CRASH, None, "SIGSEGV (#PF page fault, read of unmapped memory)",
        "step+0x4")
    assert signature_from_summary(RunResult("duration", 10, 5).summary()) is None


def test_signature_keys_are_stable_and_distinct() -> None:
    """Keys are pinned (baselines compare them across versions) and tell signatures apart."""
    sig = Signature(FailureClass.ALWAYS, 99, ELECTION, "src/raft.c:487")
    assert sig.key == "05e49cf0c78b", "the signature hash changed: old baselines won't match"
    variants = {sig, Signature(FailureClass.UNREACHABLE, 99, ELECTION, "src/raft.c:487"),
                Signature(FailureClass.ALWAYS, 98, ELECTION, "src/raft.c:487"),
                Signature(FailureClass.ALWAYS, 99, ELECTION, "src/raft.c:488")}
    assert len({s.key for s in variants}) == 4
    assert Signature.from_dict(sig.to_dict()) == sig


@pytest.mark.parametrize(("faults", "expected"), [
    ([], ()),
    ([("partition", 100, 900, None)], ("partition",)),  # in effect at the failure
    ([("loss", 100, 100, 0), ("pause", 1200, 300, 1)], ("pause",)),  # loss ended long ago
    ([("kill", 10, 50, 2)], ()),  # ended long before
    ([("restart", 1500, None, 1)], ("restart",)),  # instantaneous, recent
    ([("restart", 100, None, 1)], ()),  # instantaneous, long ago
    ([("latency", 1000, 500, 0), ("loss", 1000, 500, 1)], ("latency", "loss")),
])
def test_fault_pattern(tmp_path: Path, faults: list, expected: tuple[str, ...]) -> None:
    """Kinds in effect at the failure or ended within the window before it, sorted."""
    run = FakeRun()
    for kind, at, duration, node in sorted(faults, key=lambda f: f[1]):
        end = None if duration is None else at + duration
        run.fault(at, kind, duration or 0, node, end if end is not None and end < 1900 else None)
    run.bug(2000, 0, ELECTION)
    run.fault(2100, "clock_skew", 100, 0, rate=0.5)  # after the failure: not counted
    path = run.write(tmp_path / "f.ccr")
    with RecordingReader(path) as reader:
        finding = classify_recording(reader)
        assert finding is not None and finding.faults == expected
        assert fault_pattern(reader, 2000, None, window=0) == tuple(sorted(
            k for k, at, d, _ in faults if d is not None and at + d >= 1900))


def test_a_non_zero_exit_is_a_finding_located_by_node_group(tmp_path: Path) -> None:
    """Exit status 2 with the default rule (only 0 allowed) is the run's failure, from its
    exit event alone; a zero exit is none."""
    found = _classify(FakeRun().syscalls(5, 0, 2).exit(7, 1, 2).exit(9, 0, 0),
                      tmp_path / "a.ccr")
    assert found is not None
    assert found.signature == Signature(FailureClass.EXIT, None, "exit status 2", "builtin:demo")
    assert (found.tick, found.node) == (7, 1) and found.seq is not None
    assert found.signature.title == "exit: exit status 2 (node group builtin:demo)"
    assert _classify(FakeRun().exit(7, 1, 0), tmp_path / "b.ccr") is None


def test_expect_exit_allows_statuses(tmp_path: Path) -> None:
    """A scenario's `expect_exit` (when the scenario has it) lists the allowed statuses."""
    assert _classify(FakeRun(expect_exit=[0, 2]).exit(7, 1, 2), tmp_path / "a.ccr") is None
    found = _classify(FakeRun(expect_exit=[0, 2]).exit(7, 1, 3), tmp_path / "b.ccr")
    assert found is not None and found.signature.message == "exit status 3"


def test_stderr_is_a_failure_only_where_the_scenario_says_so(tmp_path: Path) -> None:
    """Output on stderr: no finding by default; with stderr_is_failure, the first write."""
    run = FakeRun().syscalls(3, 0, 1).stderr(4, 2, "oops\n").stderr(6, 1, "again\n")
    assert _classify(run, tmp_path / "a.ccr") is None
    strict = FakeRun(stderr_is_failure=True).stderr(4, 2, "oops\n").stderr(6, 1, "again\n")
    found = _classify(strict, tmp_path / "b.ccr")
    assert found is not None and (found.signature.failure_class, found.tick, found.node) == (
        FailureClass.STDERR, 4, 2)


def test_an_assertion_before_an_exit_stays_the_finding(tmp_path: Path) -> None:
    """The node that broke an invariant and then exited 1 counts once, as the assertion."""
    found = _classify(FakeRun().bug(300, 0, ELECTION).exit(300, 0, 1), tmp_path / "a.ccr")
    assert found is not None and found.signature.failure_class is FailureClass.ALWAYS


def test_exits_in_a_summary_are_judged_by_the_rules() -> None:
    """The shrinker's summaries list exits; the simulation's own "exit" failures (once the
    simulation counts them) are not counted twice."""
    rules = node_rules({"nodes": [{"program": "bin/raft", "count": 2, "name": ""}]})
    summary = {"bugs": [], "unsatisfied": [], "end_tick": 9,
               "failures": [{"kind": "exit", "node": 1, "tick": 5, "detail": "exit 2"}],
               "exits": [{"node": 1, "tick": 5, "code": 2}]}
    assert signature_from_summary(summary, rules) == Signature(
        FailureClass.EXIT, None, "exit status 2", "raft")
    assert len(summary_occurrences(summary, rules)) == 1
    assert signature_from_summary({**summary, "exits": [{"node": 1, "tick": 5, "code": 0}]},
                                  rules) is None


def test_the_scenario_key_reaches_the_rules() -> None:
    """`stderr_is_failure` in a scenario file is in its canonical form (the manifest's),
    false unless set, and triage's rules read it from there."""
    from chaosreplay.sim.scenario import Scenario

    strict = Scenario.from_dict({"nodes": [{"program": "bin/kv", "count": 2,
                                            "stderr_is_failure": True},
                                           {"program": "bin/client"}]})
    assert [(r.group, r.stderr_fails) for r in node_rules(strict.to_dict())] == [
        ("kv", True), ("kv", True), ("client", False)]
    assert Scenario().to_dict()["nodes"][0]["stderr_is_failure"] is False
