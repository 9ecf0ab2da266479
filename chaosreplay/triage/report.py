"""A triage's results in three forms: a terminal table, report.md and report.json.

The JSON is the machine form (schema in docs/triage.md, `version` = REPORT_VERSION); the
markdown and the table are renderings of the same data. Clusters that share a signature
differ only in the faults around the failure, so both renderings keep them next to each
other and the JSON lists the signatures with their clusters.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from chaosreplay import __version__
from chaosreplay.triage.baseline import REPORT_VERSION
from chaosreplay.triage.cluster import Cluster, RunAnalysis


@dataclass
class TriageReport:
    """Everything one triage found."""

    folder: str
    runs: list[RunAnalysis]
    clusters: list[Cluster]
    replayed: bool
    shrunk: bool = False
    baseline: str | None = None
    gone: list[dict[str, Any]] = field(default_factory=list)

    @property
    def skipped(self) -> list[RunAnalysis]:
        """The files that could not be triaged."""
        return [r for r in self.runs if r.skipped is not None]

    @property
    def failing(self) -> int:
        """Runs with at least one finding."""
        return sum(1 for r in self.runs if r.findings)

    def folders(self, clusters: list[Cluster]) -> dict[str, int]:
        """Runs per folder (relative to the bugs folder, "." for its top), most first.

        Sweeps kept in one folder per program version or variant show this way which
        failures each of them has.
        """
        counts: Counter[str] = Counter()
        top = Path(self.folder)
        for cluster in clusters:
            for member in cluster.members:
                parent = Path(member.path).parent
                counts[parent.relative_to(top).as_posix() if parent.is_relative_to(top)
                       else parent.as_posix()] += 1
        return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))

    def signatures(self) -> list[tuple[Cluster, list[Cluster]]]:
        """(first cluster, all clusters) per signature, in cluster order."""
        groups: dict[str, list[Cluster]] = {}
        for cluster in self.clusters:
            groups.setdefault(cluster.signature.key, []).append(cluster)
        return [(members[0], members) for members in groups.values()]


def seed_ranges(seeds: Iterable[int], limit: int = 60) -> str:
    """1, 2, 3, 7 -> "1-3, 7" (cut at `limit` characters)."""
    parts: list[str] = []
    ordered = sorted(seeds)
    start = prev = None
    for seed in [*ordered, None]:
        if seed is not None and prev is not None and seed == prev + 1:
            prev = seed
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = seed
    text = ", ".join(parts) or "-"
    return text if len(text) <= limit else text[:limit - 1] + "…"


# -- JSON ----------------------------------------------------------------------------------


def cluster_dict(cluster: Cluster) -> dict[str, Any]:
    """One cluster as report.json holds it."""
    low, high = cluster.tick_range
    rep = cluster.representative
    return {
        "key": cluster.key, "signature_key": cluster.signature.key, "status": cluster.status,
        **cluster.signature.to_dict(), "title": cluster.signature.title,
        "faults": list(cluster.faults), "count": len(cluster.members), "seeds": cluster.seeds,
        "first_failure_ticks": [low, high], "nodes": cluster.nodes,
        "representative": {**rep.to_dict(),
                           "timeline": [t.to_dict() for t in cluster.timeline]},
        "runs": [m.to_dict() for m in cluster.members],
        "minimal": cluster.minimal,
    }


def to_json(report: TriageReport) -> dict[str, Any]:
    """The whole report as plain data (report.json)."""
    return {
        "version": REPORT_VERSION, "chaosreplay": __version__, "folder": report.folder,
        "replayed": report.replayed, "shrunk": report.shrunk, "baseline": report.baseline,
        "totals": {"recordings": len(report.runs), "failing": report.failing,
                   "clusters": len(report.clusters),
                   "signatures": len(report.signatures()), "skipped": len(report.skipped),
                   "gone": len(report.gone)},
        "signatures": [{"key": first.signature.key, "title": first.signature.title,
                        "class": first.signature.failure_class.value,
                        "runs": sum(len(c.members) for c in group),
                        "folders": report.folders(group),
                        "clusters": [c.key for c in group]}
                       for first, group in report.signatures()],
        "clusters": [cluster_dict(c) for c in report.clusters],
        "gone": report.gone,
        "skipped": [{"path": r.path, "reason": r.skipped} for r in report.skipped],
        "notes": [{"path": r.path, "note": note} for r in report.runs for note in r.notes],
    }


def json_text(report: TriageReport) -> str:
    """report.json's text."""
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


# -- markdown ------------------------------------------------------------------------------


_LISTED_RUNS = 10  # runs of a cluster named in the markdown besides its representative


def _count(count: int, word: str) -> str:
    """"1 run", "2 runs"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _faults(cluster: Cluster) -> str:
    return ", ".join(cluster.faults) or "none"


def _minimal_line(minimal: dict[str, Any] | None) -> str:
    if minimal is None:
        return "-"
    if "error" in minimal:
        return str(minimal["error"])
    return (f"faults {minimal['faults_before']}→{minimal['faults_after']}, ticks "
            f"{minimal['ticks_before']}→{minimal['ticks_after']}, events "
            f"{minimal['events_before']:,}→{minimal['events_after']:,}, "
            f"{_count(minimal['candidates'], 'candidate run')}, {minimal['seconds']:.1f}s"
            + (", 1-minimal" if minimal.get("one_minimal") else "")
            + (", budget exhausted" if minimal.get("budget_exhausted") else ""))


def _headline(report: TriageReport) -> str:
    parts = [_count(len(report.runs), "recording"), _count(report.failing, "failing run"),
             f"{_count(len(report.clusters), 'cluster')} of "
             f"{_count(len(report.signatures()), 'signature')}"]
    if report.skipped:
        parts.append(f"{len(report.skipped)} skipped")
    parts.append("replayed" if report.replayed else "not replayed")
    if report.baseline is not None:
        counts = {s: sum(1 for c in report.clusters if c.status == s)
                  for s in ("new", "still present")}
        parts.append(f"baseline {report.baseline}: {counts['new']} new, "
                     f"{counts['still present']} still present, {len(report.gone)} gone")
    return " · ".join(parts)


def to_markdown(report: TriageReport) -> str:
    """The whole report as markdown (report.md)."""
    out = [f"# Triage of {report.folder}", "", _headline(report), ""]
    if report.clusters:
        out += ["## Clusters", "",
                "| # | status | failure | faults before it | runs | seeds | first failure (tick) "
                "| minimal reproduction |", "|---|---|---|---|---|---|---|---|"]
        for number, c in enumerate(report.clusters, 1):
            low, high = c.tick_range
            out.append(f"| {number} | {c.status or '-'} | {_cell(c.signature.title)} | "
                       f"{_faults(c)} | {len(c.members)} | {seed_ranges(c.seeds)} | "
                       f"{low}–{high} | {_cell(_minimal_line(c.minimal))} |")
        out.append("")
        out += ["## Signatures", "",
                "| failure | runs | runs by folder | clusters (fault patterns) |",
                "|---|---|---|---|"]
        for first, group in report.signatures():
            patterns = "; ".join(f"{_faults(c)} ×{len(c.members)}" for c in group)
            folders = ", ".join(f"{name} ×{n}" for name, n in report.folders(group).items())
            out.append(f"| {_cell(first.signature.title)} | "
                       f"{sum(len(c.members) for c in group)} | {_cell(folders)} | "
                       f"{_cell(patterns)} |")
        out.append("")
    else:
        out += ["No failures found.", ""]
    for number, cluster in enumerate(report.clusters, 1):
        out += _cluster_section(number, cluster)
    if report.gone:
        out += ["## Gone since the baseline", ""]
        out += [f"- `{g['key']}` {g.get('title') or '?'} (was {g.get('count') or '?'} run(s), "
                f"faults: {', '.join(g.get('faults') or []) or 'none'})" for g in report.gone]
        out.append("")
    if report.skipped:
        out += ["## Skipped files", ""]
        out += [f"- `{r.path}`: {r.skipped}" for r in report.skipped]
        out.append("")
    notes = [f"- `{r.path}`: {note}" for r in report.runs for note in r.notes]
    if notes:
        out += ["## Notes", "", *notes, ""]
    return "\n".join(out)


def _ticks(low: int, high: int) -> str:
    return f"at tick {low}" if low == high else f"between tick {low} and {high}"


def _seeds(seeds: list[int]) -> str:
    if not seeds:
        return "seeds unknown"
    return f"seed{'s' if len(seeds) > 1 else ''} {seed_ranges(seeds, 200)}"


def _cluster_section(number: int, c: Cluster) -> list[str]:
    rep, (low, high) = c.representative, c.tick_range
    sig = c.signature
    status = f" · {c.status}" if c.status else ""
    lines = [f"## {number}. {sig.title}", "",
             f"cluster `{c.key}` · signature `{sig.key}` · class {sig.failure_class.value}"
             f"{status}", "",
             f"- faults in effect or just ended before the failure: {_faults(c)}",
             f"- {_count(len(c.members), 'run')}, {_seeds(c.seeds)}; first failure "
             f"{_ticks(low, high)}; failing node(s): "
             f"{', '.join('run' if n < 0 else str(n) for n in c.nodes)}",
             f"- representative: `{rep.path}` (seed {rep.seed}, node {rep.node}, tick "
             f"{rep.tick}, {rep.events:,} events)",
             f"  - `chaosreplay replay {rep.path}` · `chaosreplay events {rep.path} --to "
             f"{rep.tick}`"]
    others = [f"`{m.path}` (tick {m.tick})" for m in c.members[1:_LISTED_RUNS + 1]]
    if others:
        more = len(c.members) - 1 - len(others)
        lines.append(f"- other runs: {', '.join(others)}"
                     + (f" and {more} more" if more else ""))
    minimal = c.minimal
    if minimal is not None and "error" not in minimal:
        where = f"`{minimal['path']}`" if minimal.get("path") else "(not written)"
        lines += [f"- minimal reproduction: {where}: {_minimal_line(minimal)}"]
        lines += [f"  - {_fault_text(f)}" for f in minimal.get("schedule", [])]
    elif minimal is not None:
        lines += [f"- minimal reproduction: {minimal['error']}"]
    lines.append("")
    if c.timeline:
        lines += [f"Last events before the failure (representative, tick {rep.tick}):", "",
                  "```"]
        for node in c.timeline:
            marker = "  (system calls only)" if node.syscalls_only else ""
            lines.append(f"{node.name}{marker}")
            lines += [f"  {e.tick:>8}  {e.kind:<16} {e.text}" for e in node.events]
        lines += ["```", ""]
    return lines


def _fault_text(fault: dict[str, Any]) -> str:
    params = ", ".join(f"{k}={v}" for k, v in fault.items() if k not in ("kind", "at"))
    return f"{fault.get('kind')} at tick {fault.get('at')}" + (f" ({params})" if params else "")


# -- terminal ------------------------------------------------------------------------------


def print_table(report: TriageReport, console: Console) -> None:
    """The summary table of clusters, then the clusters gone since the baseline."""
    table = Table(title=Text(f"triage of {report.folder}"), caption=Text(_headline(report)))
    with_status = report.baseline is not None
    shrunk = any(c.minimal is not None for c in report.clusters)
    columns = ["#", *(["status"] if with_status else []), "class", "failure", "faults", "runs",
               "seeds", "ticks", *(["minimal"] if shrunk else [])]
    for column in columns:
        table.add_column(column, overflow="fold")
    for number, c in enumerate(report.clusters, 1):
        low, high = c.tick_range
        sig = c.signature
        failure = sig.message + (f" ({sig.location})" if sig.location else "")
        row = [str(number), *([c.status or "-"] if with_status else []),
               sig.failure_class.value, failure, _faults(c), str(len(c.members)),
               seed_ranges(c.seeds, 30), f"{low}–{high}"]
        if shrunk:
            row.append(_minimal_short(c.minimal))
        table.add_row(*(Text(cell) for cell in row))
    if report.clusters:
        console.print(table)
    else:
        console.print(f"no failures in {report.folder}: {_headline(report)}", markup=False)
    for g in report.gone:
        console.print(f"gone: {g.get('title') or g['key']} (was {g.get('count') or '?'} run(s))",
                      markup=False)


def _minimal_short(minimal: dict[str, Any] | None) -> str:
    if minimal is None:
        return "-"
    if "error" in minimal:
        return "not shrunk"
    return (f"{minimal['faults_before']}→{minimal['faults_after']} faults, "
            f"{minimal['ticks_before']}→{minimal['ticks_after']} ticks")


def write_reports(report: TriageReport, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "report.md", out_dir / "report.json"
    markdown.write_text(to_markdown(report), encoding="utf-8")
    data.write_text(json_text(report), encoding="utf-8")
    return markdown, data
