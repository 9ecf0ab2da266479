"""Findings over time: this triage's findings compared with an earlier report.json.

A finding is matched by its signature key — the property that broke — so a bug found this
time under other faults, or with other seeds, is still the same finding. Each finding is
`new` (its property did not break in the baseline) or `still present`; the baseline's
findings whose property no longer breaks are `resolved`. Independently of a baseline, a
finding seen in few runs is `rare`: it may be gone next time by chance, not by a fix.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.cluster import Cluster

NEW, STILL_PRESENT, RESOLVED = "new", "still present", "resolved"
REPORT_VERSION = 2  # the report.json schema version (docs/triage.md)
READS_VERSIONS = (1, 2)  # version 1 listed "clusters", version 2 lists "findings"
RARE_SHARE = 0.05  # a finding hit by fewer than this share of the recordings is rare


class BaselineError(ChaosReplayError):
    """A --baseline file that is not a triage report.json this version reads."""


def load_report(path: Path) -> dict[str, Any]:
    """A whole report.json of this version, for browsing it (BaselineError otherwise)."""
    data = _read(path, "report")
    if data["version"] != REPORT_VERSION or not isinstance(data.get("findings"), list):
        raise BaselineError(f"report {path}: version {data['version']!r} cannot be browsed "
                            f"(this chaosreplay shows version {REPORT_VERSION}; triage the "
                            "runs again)")
    return data


def _read(path: Path, what: str) -> dict[str, Any]:
    """A report.json's data, checked to be a JSON object with a version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise BaselineError(f"{what} {path}: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{what} {path}: not JSON ({exc})") from None
    if not isinstance(data, dict) or "version" not in data:
        raise BaselineError(f"{what} {path}: not a triage report (no version)")
    return data


def load_baseline(path: Path) -> list[dict[str, Any]]:
    """The findings of an earlier report.json (BaselineError when it is not one)."""
    data = _read(path, "baseline")
    if data["version"] not in READS_VERSIONS:
        raise BaselineError(f"baseline {path}: report version {data['version']!r} is not "
                            f"supported (this chaosreplay reads "
                            f"{', '.join(map(str, READS_VERSIONS))})")
    findings = data.get("findings" if data["version"] >= 2 else "clusters")
    if not isinstance(findings, list) or not all(
            isinstance(f, dict) and isinstance(f.get("signature_key"), str) for f in findings):
        raise BaselineError(f"baseline {path}: its findings must be a list of objects with a "
                            "signature_key")
    return findings


def mark_rare(clusters: list[Cluster], recordings: int) -> None:
    """Mark the findings hit by one run, or by fewer than RARE_SHARE of the recordings."""
    for cluster in clusters:
        runs = len(cluster.members)
        cluster.rare = runs == 1 or runs < RARE_SHARE * recordings


def compare(clusters: list[Cluster], baseline: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mark each finding new or still present; the baseline's findings now resolved."""
    known = {f["signature_key"] for f in baseline}
    for cluster in clusters:
        cluster.status = STILL_PRESENT if cluster.signature.key in known else NEW
    current = {c.signature.key for c in clusters}
    resolved: dict[str, dict[str, Any]] = {}
    for old in baseline:
        key = old["signature_key"]
        if key in current:
            continue
        entry = resolved.setdefault(key, {
            "signature_key": key, "status": RESOLVED, "title": old.get("title"),
            "class": old.get("class"), "count": 0, "seeds": []})
        entry["count"] += int(old.get("count") or 0)
        entry["seeds"] = sorted({*entry["seeds"], *(old.get("seeds") or [])})
    return list(resolved.values())
