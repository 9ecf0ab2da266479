"""A whole triage, step by step: find, analyse (and replay), cluster, compare, shrink.

The CLI and the tests both call `triage_folder`; callbacks report progress so that the
caller decides how (or whether) to show it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.baseline import compare, load_baseline
from chaosreplay.triage.cluster import (
    Cluster,
    RunAnalysis,
    analyse_all,
    cluster_runs,
    find_recordings,
)
from chaosreplay.triage.minimize import shrink_cluster
from chaosreplay.triage.report import TriageReport
from chaosreplay.triage.timeline import TIMELINE_EVENTS

TRIAGE_DIR = ".triage"  # inside the bugs folder: minimal runs when there is no --out


@dataclass(frozen=True)
class TriageOptions:
    """How to triage."""

    replay: bool = True
    shrink: bool = True
    jobs: int = 1
    shrink_budget: float | None = None  # wall seconds per cluster
    baseline: Path | None = None
    out_dir: Path | None = None  # report folder; minimal runs go there too
    timeline_events: int = TIMELINE_EVENTS
    hang_seconds: float = 10.0


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

    runs = analyse_all(paths, options.replay, options.jobs, options.hang_seconds, done)
    clusters = cluster_runs(runs, options.timeline_events)
    report = TriageReport(str(folder), runs, clusters, options.replay)
    if baseline is not None:
        report.baseline = str(options.baseline)
        report.gone = compare(clusters, baseline)
    if options.shrink and clusters:
        shrink_clusters(clusters, minimal_dir(folder, options), options, progress)
        report.shrunk = True
    return report


def shrink_clusters(clusters: list[Cluster], out_dir: Path, options: TriageOptions,
                    progress: Progress) -> None:
    """Shrink each cluster's representative, one cluster after the other."""
    if progress.started:
        progress.started("shrinking", len(clusters))
    for cluster in clusters:
        cluster.minimal = shrink_cluster(cluster, out_dir, jobs=options.jobs,
                                         budget_seconds=options.shrink_budget,
                                         on_progress=progress.message)
        if progress.advanced:
            progress.advanced(cluster.signature.title)
