"""Run over run: clusters compared with an earlier triage's report.json, by cluster key."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.cluster import Cluster

NEW, STILL_PRESENT, GONE = "new", "still present", "gone"
REPORT_VERSION = 1  # the report.json schema version (docs/triage.md)


class BaselineError(ChaosReplayError):
    """A --baseline file that is not a triage report.json this version reads."""


def load_baseline(path: Path) -> list[dict[str, Any]]:
    """The clusters of an earlier report.json (BaselineError when it is not one)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"baseline {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"baseline {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "clusters" not in data or "version" not in data:
        raise BaselineError(f"baseline {path}: not a triage report (no version and clusters)")
    if data["version"] != REPORT_VERSION:
        raise BaselineError(f"baseline {path}: report version {data['version']!r} is not "
                            f"supported (this chaosreplay reads {REPORT_VERSION})")
    clusters = data["clusters"]
    if not isinstance(clusters, list) or not all(
            isinstance(c, dict) and isinstance(c.get("key"), str) for c in clusters):
        raise BaselineError(f"baseline {path}: clusters must be a list of objects with a key")
    return clusters


def compare(clusters: list[Cluster], baseline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each cluster new or still present; the baseline's clusters now gone."""
    known = {c["key"] for c in baseline}
    for cluster in clusters:
        cluster.status = STILL_PRESENT if cluster.key in known else NEW
    current = {c.key for c in clusters}
    gone = []
    for old in baseline:
        if old["key"] not in current:
            gone.append({"key": old["key"], "status": GONE, "title": old.get("title"),
                         "class": old.get("class"), "faults": old.get("faults", []),
                         "count": old.get("count"), "seeds": old.get("seeds", [])})
    return gone
