"""Minimal reproductions: each cluster's representative shrunk by `chaosreplay.triage.shrink`.

The shrinker keeps a candidate run only if `still_fails(summary)` holds; for triage that
means "its primary failure has the cluster's signature". The fault pattern is left out of
that test on purpose: shrinking removes faults, so the pattern is what is expected to change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosreplay.triage.classify import FailureClass, Signature, signature_from_summary
from chaosreplay.triage.cluster import Cluster

SHRINK_FIGURES = ("faults_before", "faults_after", "ticks_before", "ticks_after",
                  "events_before", "events_after", "candidates", "seconds", "one_minimal",
                  "budget_exhausted")


@dataclass(frozen=True)
class SameSignature:
    """`still_fails` for the shrinker: the run's primary failure has this signature.

    A class rather than a lambda so that a shrinker running candidates in worker
    processes can pickle it.
    """

    signature: Signature

    def __call__(self, summary: dict[str, Any]) -> bool:
        """Whether a candidate run's summary fails the same way."""
        return signature_from_summary(summary) == self.signature


def minimal_path(out_dir: Path, cluster: Cluster) -> Path:
    """Where a cluster's minimal run is written."""
    return out_dir / f"min-{cluster.key}.ccr"


def shrink_cluster(cluster: Cluster, out_dir: Path, *, jobs: int = 1,
                   budget_seconds: float | None = None,
                   on_progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Shrink the representative into out_dir; the figures, or {"error": why not}."""
    if cluster.signature.failure_class is FailureClass.DIVERGENCE:
        return {"error": "not shrunk: a divergence shows only when replaying, and the "
                         "shrinker judges runs by their own failures"}
    from chaosreplay.errors import ChaosReplayError
    from chaosreplay.triage.shrink import shrink_recording

    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        report = shrink_recording(Path(cluster.representative.path),
                                  SameSignature(cluster.signature), minimal_path(out_dir, cluster),
                                  jobs=jobs, budget_seconds=budget_seconds,
                                  on_progress=on_progress)
    except (ChaosReplayError, OSError) as exc:
        return {"error": f"not shrunk: {exc}"}
    figures = {name: getattr(report, name) for name in SHRINK_FIGURES}
    figures["seconds"] = round(float(figures["seconds"]), 3)
    output = None if report.output is None else str(report.output)
    return {"path": output, **figures,
            "schedule": [dict(fault) for fault in report.schedule]}
