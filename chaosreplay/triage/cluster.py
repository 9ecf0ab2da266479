"""Every recording under a folder, read (and optionally replayed) and grouped by failure.

Each file is analysed on its own — opened, classified, replayed when asked — in worker
processes when there are several jobs, and comes back as a `RunAnalysis`: its findings, or
the one-line reason it was skipped. A damaged file never stops the others. Runs whose
primary failure has the same signature — the same property broke — form one `Cluster`
(a *finding* in the reports); the fault patterns, nodes, seeds and folders of its runs are
facts inside it (`breakdown`), not reasons to split it. A finding is split only later, on
evidence that the causes differ (minimize.py). Its representative is the run that fails
earliest: the shortest path to the failure, and the cheapest to shrink.
"""

from __future__ import annotations

import multiprocessing
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import ReplayReport
from chaosreplay.triage.classify import (
    FailureClass,
    Finding,
    Signature,
    classify_recording,
    fault_pattern,
)
from chaosreplay.triage.timeline import TIMELINE_EVENTS, NodeTimeline, timeline


@dataclass(frozen=True)
class RunAnalysis:
    """What triage learnt from one recording."""

    path: str
    seed: int | None = None
    findings: tuple[Finding, ...] = ()
    end_tick: int = 0
    events: int = 0
    notes: tuple[str, ...] = ()  # damage passed over, a replay that could not run, ...
    skipped: str | None = None  # why the file could not be triaged (one line)


@dataclass(frozen=True)
class Member:
    """One run of a cluster."""

    path: str
    seed: int | None
    tick: int  # of the failure
    node: int  # the failing node (-1: the run as a whole)
    seq: int | None  # event number of the failure
    events: int  # events in the recording
    faults: tuple[str, ...] = ()  # the fault pattern of its failure (classify.fault_pattern)
    faults_started: int = 0  # faults that had started before its failure

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for reports)."""
        return {"path": self.path, "seed": self.seed, "tick": self.tick, "node": self.node,
                "seq": self.seq, "events": self.events, "faults": list(self.faults),
                "faults_started": self.faults_started}



@dataclass
class Cluster:
    """A finding: runs whose primary failure broke the same property (one signature)."""

    key: str
    signature: Signature
    members: list[Member]  # earliest failure first: members[0] is the representative
    timeline: list[NodeTimeline] = field(default_factory=list)  # of the representative
    status: str | None = None  # against a baseline: "new", "still present"
    rare: bool = False  # seen in few runs (baseline.mark_rare)
    minimal: dict[str, Any] | None = None  # the best shrunk reproduction (minimize.py)
    attempts: list[dict[str, Any]] = field(default_factory=list)  # every member shrunk
    grouping: str = ""  # why these runs are one finding, or why it was split off

    @property
    def faults(self) -> tuple[str, ...]:
        """Every fault kind seen around the failure of any of its runs, sorted."""
        return tuple(sorted({kind for m in self.members for kind in m.faults}))

    def breakdown(self) -> dict[str, list[tuple[str, int]]]:
        """Runs per fault pattern, failing node and folder, most frequent first."""
        def ranked(values: Counter[str]) -> list[tuple[str, int]]:
            return sorted(values.items(), key=lambda item: (-item[1], item[0]))

        return {
            "faults": ranked(Counter(", ".join(m.faults) or "none" for m in self.members)),
            "nodes": ranked(Counter("run" if m.node < 0 else f"node {m.node}"
                                    for m in self.members)),
            "folders": ranked(Counter(Path(m.path).parent.as_posix() for m in self.members)),
        }

    @property
    def representative(self) -> Member:
        """The run whose failure comes earliest."""
        return self.members[0]

    @property
    def seeds(self) -> list[int]:
        """The seeds of the runs, ascending (runs without a known seed left out)."""
        return sorted({m.seed for m in self.members if m.seed is not None})

    @property
    def tick_range(self) -> tuple[int, int]:
        """The earliest and the latest first-failure tick."""
        ticks = [m.tick for m in self.members]
        return min(ticks), max(ticks)

    @property
    def nodes(self) -> list[int]:
        """The nodes that failed, over every run (-1: failures of the run as a whole)."""
        return sorted({m.node for m in self.members})


# -- finding the files ---------------------------------------------------------------------


def find_recordings(folder: Path, exclude: Sequence[Path] = ()) -> list[Path]:
    """Every *.ccr under folder, recursively, in sorted order.

    Hidden folders (triage's own `.triage/` with its minimal runs among them) and the
    `exclude` folders (a report folder inside the bugs folder) are left out, so a second
    triage does not count its own output as failures.
    """
    skip = [e.resolve() for e in exclude]
    found = []
    for path in folder.rglob("*.ccr"):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts[:-1]) or not path.is_file():
            continue
        resolved = path.resolve()
        if any(resolved.is_relative_to(e) for e in skip):
            continue
        found.append(path)
    return sorted(found, key=lambda p: p.relative_to(folder).parts)


# -- one file ------------------------------------------------------------------------------


def analyse_recording(path: Path, replay: bool = False,
                      hang_seconds: float = 10.0) -> RunAnalysis:
    """Open, classify and (when asked) replay one recording; never raises for bad files."""
    where = str(path)
    try:
        with RecordingReader(path) as reader:
            finding = classify_recording(reader)
            seed = _seed(reader.manifest)
            notes = [f"damaged: {problem}" for problem in reader.damage]
            if reader.summary is None:
                if finding is None:
                    return RunAnalysis(where, seed, skipped="no summary (the footer is lost) "
                                       f"and no failure among its {reader.event_count} "
                                       "readable events")
                notes.append("classified from its events (no summary)")
            end_tick, events = reader.last_tick or 0, reader.event_count
    except Exception as exc:  # any damage must leave the other files triaged
        return RunAnalysis(where, skipped=_one_line(exc))
    findings = [] if finding is None else [finding]
    if replay:
        divergence, note = _replay(path, hang_seconds)
        if divergence is not None:
            findings.append(divergence)
        if note:
            notes.append(note)
    return RunAnalysis(where, seed, tuple(findings), end_tick, events, tuple(notes))


def _seed(manifest: Any) -> int | None:
    scenario = manifest.get("scenario") if isinstance(manifest, dict) else None
    seed = scenario.get("seed") if isinstance(scenario, dict) else None
    return seed if isinstance(seed, int) else None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 300 else text[:299] + "…"


def _replay(path: Path, hang_seconds: float) -> tuple[Finding | None, str | None]:
    """The divergence finding of a replay (None when identical), or why none could run."""
    from chaosreplay.runs.record_replay import replay_run

    try:
        report = replay_run(path, hang_seconds=hang_seconds)
        if report.identical:
            return None, None
        with RecordingReader(path) as reader:
            return divergence_finding(reader, report), None
    except Exception as exc:  # a run that cannot replay is noted, not fatal
        return None, f"not replayed: {_one_line(exc)}"


def divergence_finding(reader: RecordingReader, report: ReplayReport) -> Finding:
    """A replay that differs, as a finding: located by the kind of event that differed."""
    d = report.divergence
    if d is None:
        parts = ", ".join(report.state_differs)
        signature = Signature(FailureClass.DIVERGENCE, None, "state differs at a checkpoint",
                              parts)
        tick = report.state_checked_at or 0
        return Finding(signature, tick, -1, None, fault_pattern(reader, tick, None))
    if d.expected is None:
        message, kind, fields = "the replay made more events", d.actual[3], d.actual[4]
    elif d.actual is None:
        message, kind, fields = "the replay made fewer events", d.expected.kind, {}
    else:
        message, kind, fields = "an event differs", d.expected.kind, d.expected.fields
    name = fields.get("name") if kind == "syscall" else None
    location = f"{kind} {name}" if name else kind
    signature = Signature(FailureClass.DIVERGENCE, None, message, location)
    return Finding(signature, d.tick, d.node, d.seq, fault_pattern(reader, d.tick, d.seq))


# -- many files ----------------------------------------------------------------------------

_OPTIONS: tuple[bool, float] = (False, 10.0)


def _init_worker(options: tuple[bool, float]) -> None:
    global _OPTIONS
    _OPTIONS = options


def _worker(path: Path) -> RunAnalysis:
    return analyse_recording(path, *_OPTIONS)


def analyse_all(paths: Sequence[Path], replay: bool = False, jobs: int = 1,
                hang_seconds: float = 10.0,
                on_done: Callable[[RunAnalysis], Any] | None = None) -> list[RunAnalysis]:
    """Analyse every path (in `jobs` worker processes); results in the order of paths."""
    by_path: dict[str, RunAnalysis] = {}
    for analysis in _analyses(list(paths), (replay, hang_seconds), jobs):
        by_path[analysis.path] = analysis
        if on_done is not None:
            on_done(analysis)
    return [by_path[str(p)] for p in paths]


def _analyses(paths: list[Path], options: tuple[bool, float],
              jobs: int) -> Iterator[RunAnalysis]:
    if jobs <= 1 or len(paths) <= 1:
        for path in paths:
            yield analyse_recording(path, *options)
        return
    # fork, as the seed sweep does: each worker opens its own files and VMs.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(jobs, len(paths)), initializer=_init_worker,
                      initargs=(options,)) as pool:
        yield from pool.imap_unordered(_worker, paths)


# -- grouping ------------------------------------------------------------------------------


def runs_phrase(count: int) -> str:
    """"1 run", "3 runs"."""
    return f"{count} run" if count == 1 else f"{count} runs"


def member_order(member: Member) -> tuple[int, int, str]:
    """Earliest failure first, then the fewest events, then the path."""
    return member.tick, member.events, member.path


def cluster_runs(analyses: Sequence[RunAnalysis], timeline_events: int = TIMELINE_EVENTS,
                 with_timelines: bool = True) -> list[Cluster]:
    """One finding per signature over every run, in `order_clusters` order."""
    groups: dict[str, Cluster] = {}
    for run in analyses:
        for finding in run.findings:
            member = Member(run.path, run.seed, finding.tick, finding.node, finding.seq,
                            run.events, finding.faults, finding.faults_started)
            key = finding.signature.key
            cluster = groups.get(key)
            if cluster is None:
                groups[key] = Cluster(key, finding.signature, [member])
            else:
                cluster.members.append(member)
    clusters = list(groups.values())
    for cluster in clusters:
        cluster.members.sort(key=member_order)
        cluster.grouping = (f"one finding: {runs_phrase(len(cluster.members))} broke this "
                            "property; not split (no evidence yet that the causes differ)")
        if with_timelines:
            cluster.timeline = representative_timeline(cluster, timeline_events)
    return order_clusters(clusters)


def order_clusters(clusters: list[Cluster]) -> list[Cluster]:
    """The findings hit by the most runs first; the parts of a split finding together."""
    runs: dict[str, int] = {}
    for cluster in clusters:
        runs[cluster.signature.key] = runs.get(cluster.signature.key, 0) + len(cluster.members)
    return sorted(clusters, key=lambda c: (-runs[c.signature.key], c.signature.title,
                                           -len(c.members), c.tick_range[0], c.key))


def representative_timeline(cluster: Cluster, per_node: int) -> list[NodeTimeline]:
    """The last events of each node before the representative's failure."""
    rep = cluster.representative
    try:
        with RecordingReader(rep.path) as reader:
            before = rep.seq if rep.seq is not None else reader.seq_at_tick(rep.tick + 1)
            return timeline(reader, before, per_node)
    except Exception:  # it was readable moments ago; a timeline is optional
        return []
