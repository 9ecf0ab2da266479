"""What an exploration did and found: plain data, a JSON form, markdown, a text plot.

The coverage-over-time plot is a text sparkline (neither matplotlib nor plotext is a
dependency, and a report that reads the same in a terminal, a CI log and a markdown file
needs neither). `compare_markdown` puts an exploration next to a plain seed sweep of the
same wall budget: bugs found, wall time, runs and simulated seconds to each first hit, and
signals covered.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class Decision:
    """One run the explorer decided and what came of it (the reproducibility record)."""

    run: int
    seed: int
    from_entry: int | None  # the frontier entry it branched from (None: from the seed)
    start_tick: int
    end_tick: int
    new_signals: int
    novelty: float
    entries_made: int
    bug: str | None
    edits: list[str]


@dataclass(frozen=True)
class ProgressPoint:
    """The state of the search after a round."""

    wall_seconds: float
    runs: int
    simulated_seconds: float
    signals: int
    edges: int
    sometimes: int
    frontier: int
    bugs: int


@dataclass
class ExploreReport:
    """The whole outcome of one exploration (or of the random sweep it is compared with)."""

    mode: str  # "explore" | "random"
    seed: int
    jobs: int
    runs: int
    branches: int
    roots: int
    wall_seconds: float
    simulated_seconds: float
    signals: int
    signal_kinds: dict[str, int]
    frontier_live: int
    frontier_total: int
    bugs: list[dict[str, Any]]
    progress: list[ProgressPoint] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the JSON report)."""
        return asdict(self)

    def to_markdown(self, title: str = "Exploration") -> str:
        """The report as markdown."""
        lines = [f"# {title}", "",
                 f"- mode: {self.mode}, seed {self.seed}, {self.jobs} job(s)",
                 f"- {self.runs} runs ({self.roots} from seeds, {self.branches} branches) in "
                 f"{self.wall_seconds:.1f} s of wall time, {self.simulated_seconds:.1f} "
                 "simulated seconds",
                 f"- {self.signals} distinct signals: "
                 + ", ".join(f"{k} {v}" for k, v in self.signal_kinds.items()),
                 f"- frontier: {self.frontier_live} live of {self.frontier_total} entries", "",
                 "## Signals over time", "",
                 "```", *coverage_plot(self.progress), "```", ""]
        lines += ["## Bugs", ""]
        if not self.bugs:
            lines.append("No failing run.")
        else:
            lines += bug_table(self.bugs)
        return "\n".join(lines) + "\n"

    def write(self, out: Path, stem: str = "report") -> tuple[Path, Path]:
        """report.md and report.json in `out`."""
        out.mkdir(parents=True, exist_ok=True)
        md, js = out / f"{stem}.md", out / f"{stem}.json"
        md.write_text(self.to_markdown())
        js.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return md, js


def bug_table(bugs: list[dict[str, Any]]) -> list[str]:
    """A markdown table of bugs with their first hits."""
    rows = ["| bug | first hit (wall s) | runs to first hit | simulated s to first hit "
            "| hits | recordings |", "|---|---|---|---|---|---|"]
    for b in sorted(bugs, key=lambda b: b["first_run"]):
        saved = ", ".join(Path(r).name for r in b["recordings"]) or "—"
        rows.append(f"| {b['title']} | {b['first_wall_seconds']:.1f} | {b['first_run']} | "
                    f"{b['first_simulated_seconds']:.1f} | {b['hits']} | {saved} |")
    return rows


def sparkline(values: list[float], width: int = 60) -> str:
    """Values as a row of block characters (resampled to at most `width`)."""
    if not values:
        return ""
    if len(values) > width:
        values = [values[int(i * len(values) / width)] for i in range(width - 1)] + [values[-1]]
    low, high = min(values), max(values)
    span = high - low or 1
    return "".join(SPARK[int((v - low) / span * (len(SPARK) - 1))] for v in values)


def coverage_plot(progress: list[ProgressPoint], width: int = 60) -> list[str]:
    """Signals, edges and bugs over wall time, one sparkline each."""
    if not progress:
        return ["(no rounds)"]
    last = progress[-1]
    return [f"signals {sparkline([p.signals for p in progress], width)} {last.signals}",
            f"edges   {sparkline([p.edges for p in progress], width)} {last.edges}",
            f"bugs    {sparkline([p.bugs for p in progress], width)} {last.bugs}",
            f"        0 s {'─' * max(0, min(width, len(progress)) - 8)} {last.wall_seconds:.0f} s"]


def compare_markdown(explored: ExploreReport, sweep: ExploreReport) -> str:
    """The exploration and the random sweep of the same budget, side by side."""
    keys = {b["key"]: b["title"] for b in explored.bugs + sweep.bugs}
    mine = {b["key"]: b for b in explored.bugs}
    theirs = {b["key"]: b for b in sweep.bugs}

    def cell(b: dict[str, Any] | None) -> str:
        if b is None:
            return "not found"
        return (f"{b['first_wall_seconds']:.1f} s wall, run {b['first_run']}, "
                f"{b['first_simulated_seconds']:.1f} sim s")

    lines = ["# Exploration against a random sweep (same wall budget and jobs)", "",
             "| | explore | random sweep |", "|---|---|---|",
             f"| runs | {explored.runs} ({explored.branches} branches) | {sweep.runs} |",
             f"| wall seconds | {explored.wall_seconds:.1f} | {sweep.wall_seconds:.1f} |",
             f"| simulated seconds | {explored.simulated_seconds:.1f} | "
             f"{sweep.simulated_seconds:.1f} |",
             f"| distinct signals | {explored.signals} | {sweep.signals} |",
             f"| bugs found | {len(explored.bugs)} | {len(sweep.bugs)} |"]
    for key in sorted(keys, key=lambda k: keys[k]):
        lines.append(f"| {keys[key]} | {cell(mine.get(key))} | {cell(theirs.get(key))} |")
    return "\n".join(lines) + "\n"
