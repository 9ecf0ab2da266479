"""Best reproductions and splits: which runs are shrunk, which result wins, and when the
minimal reproductions are evidence that one property was broken by different causes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaosreplay.triage.classify import FailureClass, Signature
from chaosreplay.triage.cluster import Cluster, Member
from chaosreplay.triage.minimize import (
    causes,
    name_minimal_runs,
    shrink_members,
    smallest,
    split_on_evidence,
)

ELECTION = Signature(FailureClass.ALWAYS, 7, "election safety", "src/raft.c:488")


def member(name: str, tick: int, faults: tuple[str, ...] = (), events: int = 100,
           started: int = 9) -> Member:
    return Member(f"bugs/{name}.ccr", int(name.split("-")[-1]), tick, 0, None, events, faults,
                  started)


def attempt(run: Member, kinds: list[str], ticks: int = 500, events: int = 900,
            path: str | None = None) -> dict[str, Any]:
    return {"member": run.path, "path": path or f"out/.attempt-{Path(run.path).stem}.ccr",
            "faults_before": 9, "faults_after": len(kinds), "ticks_before": 900,
            "ticks_after": ticks, "events_before": 2000, "events_after": events,
            "candidates": 5, "seconds": 1.0, "one_minimal": True, "budget_exhausted": False,
            "schedule": [{"kind": k, "at": 10, "duration": 5} for k in kinds]}


def test_shrunk_runs_cover_the_fault_patterns_first() -> None:
    """The run with the fewest faults started, then one run per other fault pattern (its
    earliest), then the earliest others; at most three."""
    runs = [member("a-1", 100), member("a-2", 120), member("b-3", 300, ("partition",)),
            member("c-4", 400, ("pause",), started=1), member("c-5", 50, ("loss",))]
    runs.sort(key=lambda m: m.tick)
    chosen = shrink_members(runs, 3)
    assert [m.path for m in chosen] == ["bugs/c-5.ccr", "bugs/a-1.ccr", "bugs/c-4.ccr"]
    calm = [m for m in runs if not m.faults]
    assert [m.path for m in shrink_members(calm, 3)] == ["bugs/a-1.ccr", "bugs/a-2.ccr"]


def test_the_smallest_reproduction_wins() -> None:
    """Fewest faults, then fewest ticks, then fewest events; failed shrinks never win."""
    a, b, c = member("r-1", 1), member("r-2", 2), member("r-3", 3)
    tries = [attempt(a, ["partition", "loss"], 100, 10), attempt(b, ["pause"], 900, 999),
             attempt(c, ["loss"], 900, 500), {"member": "bugs/x.ccr", "error": "not shrunk"}]
    assert smallest(tries)["member"] == c.path
    assert smallest([tries[-1]]) is None


def _finding(members: list[Member], attempts: list[dict[str, Any]]) -> Cluster:
    members = sorted(members, key=lambda m: m.tick)
    cluster = Cluster(ELECTION.key, ELECTION, members, attempts=attempts)
    cluster.minimal = smallest(attempts)
    return cluster


def test_disjoint_minimal_faults_split_a_finding_and_say_why() -> None:
    """One bug needs no fault, another a partition: two findings, each with its own runs
    and best reproduction; runs not shrunk join the part whose faults were around them."""
    calm, cut = member("calm-1", 200), member("cut-2", 4000, ("loss", "partition"))
    other_calm, other_cut = member("calm-3", 250), member("cut-4", 5000, ("partition",))
    finding = _finding([calm, cut, other_calm, other_cut],
                       [attempt(calm, []), attempt(cut, ["partition"])])
    parts = split_on_evidence(finding, timeline_events=0)
    assert [[m.path for m in p.members] for p in parts] == [
        [calm.path, other_calm.path], [cut.path, other_cut.path]]
    assert [p.minimal["member"] for p in parts] == [calm.path, cut.path]
    assert len({p.key for p in parts}) == 2 and all(p.signature == ELECTION for p in parts)
    for part in parts:
        assert part.grouping.startswith("split: ") and "no fault (1 run) vs partition (1 run)" \
            in part.grouping, part.grouping
    assert "this part needs no fault" in parts[0].grouping


def test_overlapping_minimal_faults_keep_one_finding() -> None:
    """Reproductions sharing a fault kind are one cause: nothing split, and the finding
    says what was compared."""
    a, b, c = member("a-1", 100, ("partition",)), member("b-2", 200), member("c-3", 300)
    finding = _finding([a, b, c], [attempt(a, ["partition", "loss"]),
                                   attempt(b, ["partition"]), attempt(c, ["loss", "pause"])])
    assert len(causes(finding.attempts)) == 1, "loss links the third to the first"
    [same] = split_on_evidence(finding, timeline_events=0)
    assert same is finding and "not split" in same.grouping
    assert "overlapping faults" in same.grouping
    both_calm = _finding([b, c], [attempt(b, []), attempt(c, [])])
    assert len(split_on_evidence(both_calm, timeline_events=0)) == 1


def test_the_best_reproduction_is_named_after_its_finding(tmp_path: Path) -> None:
    """finding-N-min.ccr for the winner, N its number; the other attempts' files removed."""
    a, b = member("a-1", 100), member("b-2", 200)
    best, other = tmp_path / ".attempt-x-0.ccr", tmp_path / ".attempt-x-1.ccr"
    best.write_bytes(b"best")
    other.write_bytes(b"other")
    finding = _finding([a, b], [attempt(a, ["loss"], path=str(best)),
                                attempt(b, ["loss", "pause"], path=str(other))])
    name_minimal_runs([finding], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["finding-1-min.ccr"]
    assert (tmp_path / "finding-1-min.ccr").read_bytes() == b"best"
    assert finding.minimal["path"] == str(tmp_path / "finding-1-min.ccr")
    assert [a["path"] for a in finding.attempts] == [finding.minimal["path"], None]
