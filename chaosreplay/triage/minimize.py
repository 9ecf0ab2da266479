"""The best reproduction of each finding: several of its runs shrunk, the smallest kept.

A finding's runs broke one property, but a shrink of any single run can stall in a local
minimum (1-minimal, yet five faults where another run of the same bug needs one). So a few
runs are shrunk — the one that had started the fewest faults, then one per other fault
pattern, earliest failure first, then the earliest others — in parallel worker processes,
each within the budget, and the smallest result wins: the fewest faults, then the fewest
ticks, then the fewest events.

The shrinker keeps a candidate run only if `still_fails(summary)` holds; for triage that
means "its primary failure has the finding's signature". The fault pattern is left out of
that test on purpose: shrinking removes faults, so the pattern is what is expected to change.

The minimal reproductions are also the evidence for splitting a finding: when the fault
kinds they need fall into groups that do not overlap (one bug needs no fault at all,
another a partition), the runs were broken by different causes (`split_on_evidence`).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaosreplay.recording import RecordingReader
from chaosreplay.triage.classify import (
    FailureClass,
    NodeRule,
    Signature,
    classify_recording,
    primary_from_summary,
    recording_rules,
    short_hash,
    signature_from_summary,
)
from chaosreplay.triage.cluster import (
    Cluster,
    Member,
    member_order,
    representative_timeline,
    runs_phrase,
)

SHRINK_MEMBERS = 3  # runs of a finding shrunk to find its best reproduction
STACK_FRAMES = 6  # stack entries kept of a minimal run's failing node
SHRINK_FIGURES = ("faults_before", "faults_after", "ticks_before", "ticks_after",
                  "events_before", "events_after", "candidates", "seconds", "one_minimal",
                  "budget_exhausted")


@dataclass(frozen=True)
class SameSignature:
    """`still_fails` for the shrinker: the run's primary failure has this signature.

    A class rather than a lambda so that a shrinker running candidates in worker
    processes can pickle it. `rules` (the recording's scenario) judge exits and stderr."""

    signature: Signature
    rules: tuple[NodeRule, ...] = ()

    def __call__(self, summary: dict[str, Any]) -> bool:
        """Whether a candidate run's summary fails the same way."""
        return signature_from_summary(summary, self.rules) == self.signature

    def failure_tick(self, summary: dict[str, Any]) -> int:
        """Where a run's primary failure happened (its end when it has none)."""
        primary = primary_from_summary(summary, self.rules)
        return int(summary["end_tick"]) if primary is None else primary.tick


def shrink_members(members: Sequence[Member], count: int = SHRINK_MEMBERS) -> list[Member]:
    """The runs to shrink: the one that had started the fewest faults (its reproduction can
    only be as small), the earliest failing run of each other fault pattern, then the
    earliest others; at most `count`, earliest failure first."""
    chosen: list[Member] = []
    patterns: set[tuple[str, ...]] = set()
    if members and count > 0:
        fewest = min(members, key=lambda m: (m.faults_started, *member_order(m)))
        chosen.append(fewest)
        patterns.add(fewest.faults)
    for member in members:
        if len(chosen) < count and member.faults not in patterns:
            chosen.append(member)
            patterns.add(member.faults)
    for member in members:
        if len(chosen) < count and member not in chosen:
            chosen.append(member)
    return sorted(chosen, key=member_order)


def minimal_name(number: int) -> str:
    """The file name of finding `number`'s minimal reproduction."""
    return f"finding-{number}-min.ccr"


def _attempt_path(out_dir: Path, cluster: Cluster, index: int) -> Path:
    """Where one member's shrink is written until the best is known (hidden: not a run)."""
    return out_dir / f".attempt-{cluster.key}-{index}.ccr"


def shrink_member(path: str, signature: Signature, out: Path,
                  budget_seconds: float | None, jobs: int = 1,
                  on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Shrink one run; its figures and minimal schedule, or {"error": why not}."""
    from chaosreplay.errors import ChaosReplayError
    from chaosreplay.triage.shrink import shrink_recording

    try:
        with RecordingReader(path) as reader:
            rules = recording_rules(reader)
        report = shrink_recording(Path(path), SameSignature(signature, rules), out, jobs=jobs,
                                  budget_seconds=budget_seconds, on_progress=on_progress)
    except (ChaosReplayError, OSError) as exc:
        return {"member": path, "error": f"not shrunk: {exc}"}
    figures = {name: getattr(report, name) for name in SHRINK_FIGURES}
    figures["seconds"] = round(float(figures["seconds"]), 3)
    output = None if report.output is None else str(report.output)
    return {"member": path, "path": output, **figures,
            "schedule": [dict(fault) for fault in report.schedule],
            "steps": getattr(report, "steps", {}), **_failure_of(output)}


def _failure_of(path: str | None) -> dict[str, Any]:
    """Where a minimal run fails (tick, node, event), read back from its recording, and the
    failing node's symbolized stack there."""
    if path is None:
        return {}
    try:
        with RecordingReader(path) as reader:
            found = classify_recording(reader)
            if found is None:
                return {}
            try:
                stack = stack_at(reader, found.seq, found.node)
            except Exception:  # a fact for people: a report is complete without it
                stack = []
    except Exception:  # it was just written; without it the report gives no seek target
        return {}
    return {"failure_tick": found.tick, "failure_node": found.node,
            "failure_event": found.seq, "stack": stack}


def stack_at(reader: RecordingReader, seq: int | None, node: int,
             frames: int = STACK_FRAMES) -> list[str]:
    """The return addresses on a node's stack just after event `seq`, symbolized, innermost
    first (the debugger's stack scan, without the stack addresses); [] when unknown.

    A fact for the reader of a report, not a reason to split a finding: the scan finds
    return addresses, not an unwound call chain, and runs of one bug can reach the same
    assertion through different callers (docs/triage.md)."""
    if seq is None or node < 0:
        return []
    from chaosreplay.debugger.reconstruct import Reconstructor
    from chaosreplay.runs.record_replay import load_run

    scenario, images, _ = load_run(reader)
    reconstructor = Reconstructor(reader, scenario, images)
    try:
        view = reconstructor.state(seq).nodes[node]
    finally:
        reconstructor.close()
    return [line.split(": ", 1)[-1] for line in view.stack[:frames]]


def smallest(attempts: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The best successful attempt: fewest faults, then ticks, then events, then path."""
    done = [a for a in attempts if "error" not in a and a.get("path")]
    if not done:
        return None
    return min(done, key=lambda a: (a["faults_after"], a["ticks_after"], a["events_after"],
                                    a["member"]))


# -- many findings, in parallel --------------------------------------------------------------

Task = tuple[int, int, str, Signature, str, float | None]  # finding, attempt, run, sig, out, s


def _run_task(task: Task) -> tuple[int, int, dict[str, Any]]:
    finding, index, path, signature, out, budget = task
    return finding, index, shrink_member(path, signature, Path(out), budget)


def shrink_findings(clusters: Sequence[Cluster], out_dir: Path, *, jobs: int = 1,
                    budget_seconds: float | None = None, members: int = SHRINK_MEMBERS,
                    on_done: Callable[[str], Any] | None = None,
                    on_progress: Callable[[str], None] | None = None,
                    run_tasks: Callable[[list[Task]],
                                        Iterable[tuple[int, int, dict[str, Any]]]] | None = None
                    ) -> None:
    """Shrink up to `members` runs of every finding (each within the budget), `jobs` shrinks
    at a time, or through `run_tasks` (e.g. on a Ray cluster); set each finding's `attempts`
    and its best as `minimal`."""
    tasks: list[Task] = []
    for number, cluster in enumerate(clusters):
        cluster.attempts = []
        if cluster.signature.failure_class is FailureClass.DIVERGENCE:
            cluster.minimal = {"error": "not shrunk: a divergence shows only when replaying, "
                               "and the shrinker judges runs by their own failures"}
            continue
        for index, member in enumerate(shrink_members(cluster.members, members)):
            tasks.append((number, index, member.path, cluster.signature,
                          str(_attempt_path(out_dir, cluster, index)), budget_seconds))
    if not tasks:
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    results: dict[tuple[int, int], dict[str, Any]] = {}
    if run_tasks is not None:
        for number, index, attempt in run_tasks(tasks):
            results[number, index] = attempt
            if on_done is not None:
                on_done(Path(attempt["member"]).name)
    elif jobs <= 1 or len(tasks) == 1:
        for number, index, path, signature, out, budget in tasks:
            # one shrink at a time: it may use every job itself
            results[number, index] = shrink_member(path, signature, Path(out), budget, jobs,
                                                   on_progress)
            if on_done is not None:
                on_done(Path(path).name)
    else:
        # fork, as the sweep does: each shrink is one process making its own VMs
        context = multiprocessing.get_context("fork")
        with context.Pool(min(jobs, len(tasks))) as pool:
            for number, index, attempt in pool.imap_unordered(_run_task, tasks):
                results[number, index] = attempt
                if on_done is not None:
                    on_done(Path(attempt["member"]).name)
    for (number, _index), attempt in sorted(results.items()):
        clusters[number].attempts.append(attempt)
    for cluster in clusters:
        if cluster.attempts:
            best = smallest(cluster.attempts)
            cluster.minimal = best if best is not None else {
                "error": cluster.attempts[0]["error"]}


# -- splitting on evidence ---------------------------------------------------------------------


def _kinds(attempt: dict[str, Any]) -> frozenset[str]:
    return frozenset(str(f.get("kind")) for f in attempt.get("schedule", []))


def _describe(kinds: frozenset[str]) -> str:
    return ", ".join(sorted(kinds)) or "no fault"


def causes(attempts: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Successful attempts grouped so that groups need fault kinds that do not overlap:
    attempts are joined when their kinds share one, or when both need no fault."""
    done = [a for a in attempts if "error" not in a and a.get("path")]
    groups: list[list[dict[str, Any]]] = []
    for attempt in done:
        kinds = _kinds(attempt)
        touching = [g for g in groups if any(_kinds(a) & kinds or not (_kinds(a) or kinds)
                                             for a in g)]
        merged = [attempt] + [a for g in touching for a in g]
        groups = [g for g in groups if g not in touching] + [merged]
    for group in groups:
        group.sort(key=lambda a: a["member"])
    return sorted(groups, key=lambda g: min(a["member"] for a in g))


def _home(member: Member, groups: list[frozenset[str]]) -> int:
    """Which cause a run that was not shrunk belongs to: the group needing the most fault
    kinds that were all around its failure (a group needing no fault takes any run); the
    first group when none fits."""
    around = set(member.faults)
    fitting = [(len(kinds), -i) for i, kinds in enumerate(groups) if kinds <= around]
    return -max(fitting)[1] if fitting else 0


def split_on_evidence(cluster: Cluster, timeline_events: int) -> list[Cluster]:
    """The finding, or its parts when its minimal reproductions need disjoint faults; each
    with `grouping` saying why."""
    groups = causes(cluster.attempts)
    shrunk = sum(len(g) for g in groups)
    if len(groups) <= 1:
        if shrunk >= 2:
            cluster.grouping = (f"one finding: {runs_phrase(len(cluster.members))} broke this "
                                f"property; not split: the minimal reproductions of {shrunk} "
                                f"runs need overlapping faults ("
                                f"{'; '.join(_describe(_kinds(a)) for a in groups[0])})")
        elif cluster.attempts:
            cluster.grouping = (f"one finding: {runs_phrase(len(cluster.members))} broke this "
                                f"property; not split: {shrunk} minimal reproduction(s), "
                                "nothing to compare")
        return [cluster]
    needs = [frozenset().union(*(_kinds(a) for a in g)) for g in groups]
    by_path = {a["member"]: i for i, g in enumerate(groups) for a in g}
    parts: list[list[Member]] = [[] for _ in groups]
    for member in cluster.members:
        home = by_path.get(member.path)
        parts[_home(member, needs) if home is None else home].append(member)
    evidence = " vs ".join(
        f"{_describe(n)} ({runs_phrase(len(g))})"
        for n, g in zip(needs, groups, strict=True))
    out = []
    for i, (members, group) in enumerate(zip(parts, groups, strict=True)):
        if not members:
            continue
        members.sort(key=member_order)
        part = replace(cluster, key=short_hash(cluster.signature.key, sorted(needs[i])),
                       members=members, attempts=list(group), minimal=smallest(group))
        part.grouping = (f"split: the minimal reproductions of this property need faults "
                         f"that do not overlap ({evidence}), so their causes differ; this "
                         f"part needs {_describe(needs[i])}; runs not shrunk joined the part "
                         "whose faults were all around their failure")
        part.timeline = (representative_timeline(part, timeline_events)
                         if members[0] != cluster.members[0] else cluster.timeline)
        out.append(part)
    return out


def name_minimal_runs(clusters: Sequence[Cluster], out_dir: Path) -> None:
    """Give each finding's best reproduction its final name (`finding-N-min.ccr`, N its
    number in the report) and remove the other attempts' files."""
    for number, cluster in enumerate(clusters, 1):
        best = cluster.minimal
        if best is None or "error" in best or not best.get("path"):
            continue
        final = out_dir / minimal_name(number)
        os.replace(best["path"], final)
        cluster.minimal = {**best, "path": str(final)}
        cluster.attempts = [{**a, "path": str(final)} if a is best else a
                            for a in cluster.attempts]
    for cluster in clusters:
        for attempt in cluster.attempts:
            path = attempt.get("path")
            if path and Path(path).name.startswith(".attempt-"):
                Path(path).unlink(missing_ok=True)
                attempt["path"] = None
