"""A whole triage, step by step: find, analyse (and replay), group into findings, shrink
several runs of each, split findings on evidence, compare with a baseline, name the files.

The CLI and the tests both call `triage_folder`; callbacks report progress so that the
caller decides how (or whether) to show it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.baseline import compare, load_baseline, mark_rare
from chaosreplay.triage.cluster import (
    Cluster,
    RunAnalysis,
    analyse_all,
    cluster_runs,
    find_recordings,
    order_clusters,
)
from chaosreplay.triage.minimize import (
    SHRINK_MEMBERS,
    Task,
    name_minimal_runs,
    shrink_findings,
    split_on_evidence,
)
from chaosreplay.triage.report import TriageReport
from chaosreplay.triage.timeline import TIMELINE_EVENTS

TRIAGE_DIR = ".triage"  # inside the bugs folder: minimal runs when there is no --out


class TriageBackend(Protocol):
    """Where a triage's replays and shrinks run when not in local worker processes
    (scaleout/triage.py: on a Ray cluster)."""

    def analyse_all(self, paths: Sequence[Path], replay: bool, jobs: int,
                    hang_seconds: float,
                    on_done: Callable[[RunAnalysis], Any] | None = None
                    ) -> list[RunAnalysis]:
        """Every path analysed, in the order of paths."""
        ...

    def shrink(self, tasks: Sequence[Task]) -> Iterator[tuple[int, int, dict[str, Any]]]:
        """(finding, attempt number, attempt) per shrink task, in any order."""
        ...


@dataclass(frozen=True)
class TriageOptions:
    """How to triage."""

    replay: bool = True
    shrink: bool = True
    jobs: int = 1
    shrink_budget: float | None = None  # wall seconds per shrunk run
    shrink_members: int = SHRINK_MEMBERS  # runs of each finding shrunk
    baseline: Path | None = None
    out_dir: Path | None = None  # report folder; minimal runs go there too
    timeline_events: int = TIMELINE_EVENTS
    hang_seconds: float = 10.0
    backend: TriageBackend | None = None  # None: this machine's worker processes


class NoRecordingsError(ChaosReplayError):
    """A bugs folder without any .ccr file."""


@dataclass
class Progress:
    """Callbacks for long work; any may be None."""

    started: Callable[[str, int], Any] | None = None  # (what, total steps)
    advanced: Callable[[str], Any] | None = None  # one step done (its description)
    message: Callable[[str], Any] | None = None  # a line about the current step


def minimal_dir(folder: Path, options: TriageOptions) -> Path:
    """Where minimal runs are written."""
    return options.out_dir if options.out_dir is not None else folder / TRIAGE_DIR


def triage_folder(folder: Path, options: TriageOptions = TriageOptions(),
                  progress: Progress | None = None) -> TriageReport:
    """Triage every recording under folder (see the package's docs/triage.md)."""
    progress = progress or Progress()
    if not folder.is_dir():
        raise NoRecordingsError(f"{folder}: no such folder")
    baseline = None if options.baseline is None else load_baseline(options.baseline)
    exclude = [options.out_dir] if options.out_dir is not None else []
    paths = find_recordings(folder, exclude)
    if not paths:
        raise NoRecordingsError(f"no .ccr recordings under {folder}")
    if progress.started:
        progress.started("replaying" if options.replay else "reading", len(paths))

    def done(run: RunAnalysis) -> None:
        if progress.advanced:
            progress.advanced(run.path)

    analyse = analyse_all if options.backend is None else options.backend.analyse_all
    runs = analyse(paths, options.replay, options.jobs, options.hang_seconds, done)
    clusters = cluster_runs(runs, options.timeline_events)
    shrunk = False
    if options.shrink and clusters:
        out_dir = minimal_dir(folder, options)
        shrink_all(clusters, out_dir, options, progress)
        clusters = order_clusters([part for cluster in clusters
                                   for part in split_on_evidence(cluster,
                                                                 options.timeline_events)])
        name_minimal_runs(clusters, out_dir)
        shrunk = True
    report = TriageReport(str(folder), runs, clusters, options.replay, shrunk)
    mark_rare(clusters, len(runs))
    if baseline is not None:
        report.baseline = str(options.baseline)
        report.gone = compare(clusters, baseline)
    return report


def shrink_all(clusters: list[Cluster], out_dir: Path, options: TriageOptions,
               progress: Progress) -> None:
    """Shrink several runs of every finding, `jobs` shrinks at a time."""
    if progress.started:
        progress.started("shrinking", sum(min(len(c.members), options.shrink_members)
                                          for c in clusters))
    shrink_findings(clusters, out_dir, jobs=options.jobs, budget_seconds=options.shrink_budget,
                    members=options.shrink_members, on_done=progress.advanced,
                    on_progress=progress.message,
                    run_tasks=None if options.backend is None else options.backend.shrink)
