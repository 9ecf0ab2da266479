"""A triage's results in three forms: a terminal table, report.md and report.json.

The JSON is the machine form (schema in docs/triage.md, `version` = REPORT_VERSION), and
the one `triage --tui REPORT_DIR` reads back; the markdown and the table are renderings of
the same data. Each finding is one property that broke; its runs' fault patterns, nodes and
folders are a breakdown inside it, and its best minimal reproduction comes with the
commands that open it.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from chaosreplay import __version__
from chaosreplay.triage.baseline import REPORT_VERSION
from chaosreplay.triage.cluster import Cluster, RunAnalysis

TABLE_WIDTH = 80  # the terminal table never gets wider than this
HISTOGRAM_BINS = 10
_SPARKS = "▁▂▃▄▅▆▇█"


@dataclass
class TriageReport:
    """Everything one triage found."""

    folder: str
    runs: list[RunAnalysis]
    clusters: list[Cluster]  # the findings, in report order (finding N = clusters[N - 1])
    replayed: bool
    shrunk: bool = False
    baseline: str | None = None
    gone: list[dict[str, Any]] = field(default_factory=list)  # resolved since the baseline

    @property
    def skipped(self) -> list[RunAnalysis]:
        """The files that could not be triaged."""
        return [r for r in self.runs if r.skipped is not None]

    @property
    def failing(self) -> int:
        """Runs with at least one finding."""
        return sum(1 for r in self.runs if r.findings)

    def folder_of(self, path: str) -> str:
        """A run's folder relative to the bugs folder ("." for its top)."""
        parent, top = Path(path).parent, Path(self.folder)
        return (parent.relative_to(top).as_posix() if parent.is_relative_to(top)
                else parent.as_posix())

    def last_failure_tick(self) -> int:
        """The latest first-failure tick over all findings: the histograms' common scale."""
        return max((m.tick for c in self.clusters for m in c.members), default=0)


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


def histogram(ticks: Sequence[int], last: int, bins: int = HISTOGRAM_BINS) -> tuple[int,
                                                                                    list[int]]:
    """(ticks per bin, runs per bin) of first-failure ticks over 0..last in `bins` bins."""
    width = max(1, -(-(last + 1) // bins))
    counts = [0] * bins
    for tick in ticks:
        counts[min(bins - 1, tick // width)] += 1
    return width, counts


def sparkline(counts: Sequence[int]) -> str:
    """One character per bin: '·' for none, then ▁ to █ by the share of the busiest bin."""
    top = max(counts, default=0)
    return "".join("·" if n == 0 else _SPARKS[min(7, (n * 8 - 1) // top)] for n in counts)


def commands(path: str, tick: int, node: int | None) -> dict[str, str]:
    """The commands that open a run at its failure: debugger, replay, state."""
    quoted = shlex.quote(path)
    on_node = f" --node {node}" if node is not None and node >= 0 else ""
    return {"debug": f"chaosreplay debug {quoted} --seek {tick}",
            "replay": f"chaosreplay replay {quoted}",
            "state": f"chaosreplay state {quoted} --tick {tick}{on_node}"}


# -- JSON ----------------------------------------------------------------------------------


def _minimal_dict(cluster: Cluster) -> dict[str, Any] | None:
    minimal = cluster.minimal
    if minimal is None or "error" in minimal or not minimal.get("path"):
        return minimal
    tick = int(minimal.get("failure_tick", minimal["ticks_after"]))
    return {**minimal, "commands": commands(str(minimal["path"]), tick,
                                            minimal.get("failure_node"))}


def finding_dict(report: TriageReport, number: int, cluster: Cluster) -> dict[str, Any]:
    """One finding as report.json holds it."""
    low, high = cluster.tick_range
    rep = cluster.representative
    width, counts = histogram([m.tick for m in cluster.members], report.last_failure_tick())
    breakdown = cluster.breakdown()
    folders: dict[str, int] = {}
    for member in cluster.members:
        name = report.folder_of(member.path)
        folders[name] = folders.get(name, 0) + 1
    breakdown["folders"] = sorted(folders.items(), key=lambda item: (-item[1], item[0]))
    return {
        "number": number, "key": cluster.key, "signature_key": cluster.signature.key,
        "status": cluster.status, "rare": cluster.rare,
        **cluster.signature.to_dict(), "title": cluster.signature.title,
        "grouping": cluster.grouping,
        "count": len(cluster.members), "seeds": cluster.seeds, "nodes": cluster.nodes,
        "faults": list(cluster.faults),
        "first_failure_ticks": [low, high],
        "first_failure_histogram": {"bin_ticks": width, "counts": counts,
                                    "sparkline": sparkline(counts)},
        "breakdown": {name: [[value, n] for value, n in rows]
                      for name, rows in breakdown.items()},
        "representative": {**rep.to_dict(), "timeline": [t.to_dict() for t in cluster.timeline],
                           "commands": commands(rep.path, rep.tick, rep.node)},
        "runs": [m.to_dict() for m in cluster.members],
        "minimal": _minimal_dict(cluster),
        "attempts": cluster.attempts,
    }


def to_json(report: TriageReport) -> dict[str, Any]:
    """The whole report as plain data (report.json)."""
    findings = [finding_dict(report, n, c) for n, c in enumerate(report.clusters, 1)]
    return {
        "version": REPORT_VERSION, "chaosreplay": __version__, "folder": report.folder,
        "replayed": report.replayed, "shrunk": report.shrunk, "baseline": report.baseline,
        "totals": {"recordings": len(report.runs), "failing": report.failing,
                   "findings": len(findings), "skipped": len(report.skipped),
                   "new": sum(1 for c in report.clusters if c.status == "new"),
                   "rare": sum(1 for c in report.clusters if c.rare),
                   "resolved": len(report.gone)},
        "findings": findings,
        "resolved": report.gone,
        "skipped": [{"path": r.path, "reason": r.skipped} for r in report.skipped],
        "notes": [{"path": r.path, "note": note} for r in report.runs for note in r.notes],
    }


def json_text(report: TriageReport) -> str:
    """report.json's text."""
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"


# -- words shared by the renderings ---------------------------------------------------------


def _count(count: int, word: str) -> str:
    """"1 run", "2 runs"."""
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def status_words(finding: dict[str, Any]) -> str:
    """"new", "still present, rare", "" ..."""
    return ", ".join([*([finding["status"]] if finding.get("status") else []),
                      *(["rare"] if finding.get("rare") else [])])


def minimal_line(minimal: dict[str, Any] | None) -> str:
    """A minimal reproduction's figures in one line."""
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


def headline(data: dict[str, Any]) -> str:
    """The report's totals in one line."""
    totals = data["totals"]
    parts = [_count(totals["recordings"], "recording"), _count(totals["failing"], "failing run"),
             _count(totals["findings"], "finding")]
    if totals["skipped"]:
        parts.append(f"{totals['skipped']} skipped")
    parts.append("replayed" if data["replayed"] else "not replayed")
    if data.get("baseline") is not None:
        still = sum(1 for f in data["findings"] if f.get("status") == "still present")
        parts.append(f"baseline {data['baseline']}: {totals['new']} new, {still} still "
                     f"present, {totals['resolved']} resolved")
    return " · ".join(parts)


def fault_text(fault: dict[str, Any]) -> str:
    """A scheduled fault in words."""
    params = ", ".join(f"{k}={v}" for k, v in fault.items() if k not in ("kind", "at"))
    return f"{fault.get('kind')} at tick {fault.get('at')}" + (f" ({params})" if params else "")


# -- markdown ------------------------------------------------------------------------------

_LISTED_RUNS = 10  # runs of a finding named in the markdown besides its representative


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(report: TriageReport) -> str:
    """The whole report as markdown (report.md)."""
    return markdown_from_json(to_json(report))


def markdown_from_json(data: dict[str, Any]) -> str:
    """report.md from report.json's data."""
    out = [f"# Triage of {data['folder']}", "", headline(data), ""]
    findings = data["findings"]
    if findings:
        out += ["## Findings", "",
                "| # | status | failure | runs | first failures | minimal reproduction |",
                "|---|---|---|---:|---|---|"]
        for f in findings:
            low, high = f["first_failure_ticks"]
            spark = f["first_failure_histogram"]["sparkline"]
            minimal = f["minimal"]
            short = (f"{minimal['faults_after']} faults, {minimal['ticks_after']} ticks"
                     if minimal and "error" not in minimal else "-")
            out.append(f"| {f['number']} | {status_words(f) or '-'} | {_cell(f['title'])} | "
                       f"{f['count']} | `{spark}` {low}–{high} | {short} |")
        out.append("")
    else:
        out += ["No failures found.", ""]
    for f in findings:
        out += _finding_section(f)
    if data["resolved"]:
        out += ["## Resolved since the baseline", ""]
        out += [f"- `{g['signature_key']}` {g.get('title') or '?'} (was "
                f"{g.get('count') or '?'} run(s))" for g in data["resolved"]]
        out.append("")
    if data["skipped"]:
        out += ["## Skipped files", ""]
        out += [f"- `{s['path']}`: {s['reason']}" for s in data["skipped"]]
        out.append("")
    if data["notes"]:
        out += ["## Notes", "", *[f"- `{n['path']}`: {n['note']}" for n in data["notes"]], ""]
    return "\n".join(out)


def _commands_lines(cmds: dict[str, str]) -> list[str]:
    return ["  ```", f"  {cmds['debug']}", f"  {cmds['replay']}", f"  {cmds['state']}", "  ```"]


def _finding_section(f: dict[str, Any]) -> list[str]:
    rep, (low, high) = f["representative"], f["first_failure_ticks"]
    hist = f["first_failure_histogram"]
    status = f" · {status_words(f)}" if status_words(f) else ""
    seeds = seed_ranges(f["seeds"], 200) if f["seeds"] else "unknown"
    lines = [f"## Finding {f['number']}: {f['title']}", "",
             f"finding `{f['key']}` · signature `{f['signature_key']}` · class {f['class']}"
             f"{status}", "", f["grouping"], "",
             f"- {_count(f['count'], 'run')}, seeds {seeds}; first failure between tick {low} "
             f"and {high}: `{hist['sparkline']}` (runs per {hist['bin_ticks']} ticks from 0)"]
    minimal = f["minimal"]
    if minimal is not None and "error" not in minimal:
        lines += [f"- minimal reproduction `{minimal['path']}`, shrunk from "
                  f"`{minimal['member']}`: {minimal_line(minimal)}"]
        lines += [f"  - {fault_text(fault)}" for fault in minimal.get("schedule", [])]
        if minimal.get("stack"):
            lines += [f"  - stack at the failure (node {minimal['failure_node']}, innermost "
                      f"first): {' ← '.join(f'`{frame}`' for frame in minimal['stack'])}"]
        lines += ["  - open it at its failure (tick "
                  f"{minimal.get('failure_tick', minimal['ticks_after'])}):"]
        lines += _commands_lines(minimal["commands"])
    elif minimal is not None:
        lines += [f"- minimal reproduction: {minimal['error']}"]
    best = minimal.get("member") if minimal else None
    others = [a for a in f.get("attempts", []) if a["member"] != best]
    if others:
        lines.append("- also shrunk: " + "; ".join(
            f"`{a['member']}`: " + (a["error"] if "error" in a else
                                    f"{a['faults_after']} faults, {a['ticks_after']} ticks")
            for a in others))
    lines += [f"- representative `{rep['path']}` (seed {rep['seed']}, node {rep['node']}, "
              f"tick {rep['tick']}, {rep['events']:,} events):"]
    lines += _commands_lines(rep["commands"])
    rest = [f"`{m['path']}` (tick {m['tick']})" for m in f["runs"][1:_LISTED_RUNS + 1]]
    if rest:
        more = len(f["runs"]) - 1 - len(rest)
        lines.append(f"- other runs: {', '.join(rest)}" + (f" and {more} more" if more else ""))
    lines += ["", "| faults around the failure | runs |", "|---|---:|"]
    lines += [f"| {_cell(value)} | {n} |" for value, n in f["breakdown"]["faults"]]
    lines += ["", "| failing node | runs | | folder | runs |", "|---|---:|---|---|---:|"]
    nodes, folders = f["breakdown"]["nodes"], f["breakdown"]["folders"]
    for i in range(max(len(nodes), len(folders))):
        node = nodes[i] if i < len(nodes) else ["", ""]
        folder = folders[i] if i < len(folders) else ["", ""]
        lines.append(f"| {node[0]} | {node[1]} | | {_cell(str(folder[0]))} | {folder[1]} |")
    lines.append("")
    if rep["timeline"]:
        lines += [f"Last events before the failure (representative, tick {rep['tick']}):", "",
                  "```"]
        for node in rep["timeline"]:
            name = "simulation" if node["node"] < 0 else f"node {node['node']}"
            marker = "  (system calls only)" if node["syscalls_only"] else ""
            lines.append(f"{name}{marker}")
            lines += [f"  {e['tick']:>8}  {e['kind']:<16} {e['text']}" for e in node["events"]]
        lines += ["```", ""]
    return lines


# -- terminal ------------------------------------------------------------------------------


def print_table(report: TriageReport, console: Console) -> None:
    """The findings table (at most TABLE_WIDTH columns), then how to open each reproduction."""
    print_table_from_json(to_json(report), console)


def print_table_from_json(data: dict[str, Any], console: Console) -> None:
    """The findings table of report.json's data."""
    findings = data["findings"]
    if not findings:
        console.print(f"no failures in {data['folder']}: {headline(data)}", markup=False)
    else:
        console.print(findings_table(data, min(console.width, TABLE_WIDTH)))
    for f in findings:
        minimal = f["minimal"]
        if minimal and "error" not in minimal:
            # a command line is never cut or folded, whatever the terminal's width
            console.print(f"finding {f['number']}: {minimal['commands']['debug']}",
                          markup=False, soft_wrap=True)
    for g in data["resolved"]:
        console.print(f"resolved: {g.get('title') or g['signature_key']} (was "
                      f"{g.get('count') or '?'} run(s))", markup=False, soft_wrap=True)


def findings_table(data: dict[str, Any], width: int = TABLE_WIDTH) -> Table:
    """The table: text wraps at spaces, numbers and sparklines never wrap."""
    table = Table(title=Text(f"triage of {data['folder']}"), caption=Text(headline(data)),
                  box=box.SIMPLE_HEAD, width=width, pad_edge=False)
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("finding", ratio=1, overflow="fold")
    table.add_column("runs", justify="right", no_wrap=True)
    table.add_column("first failures", no_wrap=True)
    if data.get("shrunk"):
        table.add_column("minimal", no_wrap=False, min_width=11)
    for f in data["findings"]:
        low, high = f["first_failure_ticks"]
        head = Text(f["title"])
        status = status_words(f)
        if status:
            head.append(f"\n{status}", style="bold")
        ticks = f"{low}" if low == high else f"{low}–{high}"
        row = [Text(str(f["number"])), head, Text(str(f["count"])),
               Text(f"{f['first_failure_histogram']['sparkline']}\n{ticks}")]
        if data.get("shrunk"):
            minimal = f["minimal"]
            row.append(Text("not shrunk" if not minimal or "error" in minimal else
                            f"{_count(minimal['faults_after'], 'fault')}\n"
                            f"{minimal['ticks_after']} ticks"))
        table.add_row(*row)
    return table


def write_reports(report: TriageReport, out_dir: Path) -> tuple[Path, Path]:
    """Write report.md and report.json into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    markdown, data = out_dir / "report.md", out_dir / "report.json"
    markdown.write_text(to_markdown(report), encoding="utf-8")
    data.write_text(json_text(report), encoding="utf-8")
    return markdown, data
