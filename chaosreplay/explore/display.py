"""The live view of an exploration: counts you can watch, redrawn after every round."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from chaosreplay.explore.explorer import Explorer
from chaosreplay.explore.report import ExploreReport, sparkline


def render(report: ExploreReport, title: str) -> Group:
    """The current state of the search as a rich renderable."""
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("elapsed", f"{report.wall_seconds:.0f} s")
    facts.add_row("runs", f"{report.runs} ({report.roots} from seeds, {report.branches} "
                          f"branches) · {report.simulated_seconds:.0f} simulated s")
    facts.add_row("frontier", f"{report.frontier_live} live · {report.frontier_total} made")
    kinds = " · ".join(f"{k} {v}" for k, v in report.signal_kinds.items())
    facts.add_row("signals", f"{report.signals}  ({kinds})" if kinds else "0")
    history = [p.signals for p in report.progress]
    facts.add_row("over time", sparkline(history, 50) if history else "")
    bugs = Table(title="bugs", title_justify="left", expand=False)
    for column in ("bug", "first hit", "run", "sim s", "hits"):
        bugs.add_column(column)
    for b in sorted(report.bugs, key=lambda b: b["first_run"]):
        bugs.add_row(b["title"], f"{b['first_wall_seconds']:.0f} s", str(b["first_run"]),
                     f"{b['first_simulated_seconds']:.0f}", str(b["hits"]))
    parts: list[Any] = [Text(title, style="bold"), facts]
    parts.append(bugs if report.bugs else Text("no failing run yet", style="green"))
    return Group(*parts)


class LiveDisplay:
    """A rich Live region on stderr fed by the explorer's progress hook (or nothing)."""

    def __init__(self, console: Console, enabled: bool, title: str) -> None:
        self.title = title
        self.live = Live(Text(title), console=console, transient=False,
                         refresh_per_second=4) if enabled else None

    def __call__(self, explorer: Explorer) -> None:
        self.show(explorer.report())

    def show(self, report: ExploreReport) -> None:
        """Redraw with the report of the search so far."""
        if self.live is not None:
            self.live.update(render(report, self.title))

    def __enter__(self) -> LiveDisplay:
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.live is not None:
            self.live.__exit__(*exc)
