"""ClustersScreen: a triage's findings, their runs, and each run in the debugger (Enter).

It reads report.json's data only (`triage --tui` hands it a fresh report, `triage --tui
REPORT_DIR` the stored one). A finding's minimal reproductions are listed before its runs;
a run opens at its failure on a DebuggerScreen of its own, and q there comes back here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.report import headline, minimal_line, status_words
from chaosreplay.tui.debugger_screen import DebuggerScreen
from chaosreplay.tui.seek_target import SeekTarget


@dataclass(frozen=True)
class RunRow:
    """One row of the runs table: a run or a minimal reproduction, and where it fails."""

    path: str
    what: str  # "minimal", "shrunk" or "run"
    seed: int | None
    tick: int
    node: int
    seq: int | None
    events: int


def _where(path: str, folder: Path) -> str:
    """A run's path relative to the bugs folder when it is inside it."""
    p = Path(path)
    return p.relative_to(folder).as_posix() if p.is_relative_to(folder) else path


def runs_of(finding: dict[str, Any]) -> list[RunRow]:
    """A finding's best minimal reproduction first, then its runs, earliest failure first."""
    rows = []
    minimal = finding.get("minimal") or {}
    if minimal.get("path"):
        rows.append(RunRow(str(minimal["path"]), "minimal", None,
                           int(minimal.get("failure_tick", minimal.get("ticks_after", 0))),
                           int(minimal.get("failure_node", -1)), minimal.get("failure_event"),
                           int(minimal.get("events_after", 0))))
    rows += [RunRow(str(r["path"]), "run", r.get("seed"), int(r["tick"]), int(r["node"]),
                    r.get("seq"), int(r.get("events", 0))) for r in finding["runs"]]
    return rows


class ClustersScreen(Screen[None]):
    """The findings browser (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open run", priority=True),
        Binding("tab", "switch", "findings/runs", priority=True),
        Binding("q", "quit", "quit"),
    ]
    DEFAULT_CSS = """
    ClustersScreen #clusters { height: 1fr; }
    ClustersScreen #runs { height: 1fr; }
    ClustersScreen #details { height: auto; max-height: 8; padding: 0 1; }
    ClustersScreen .heading { background: $panel; width: 1fr; padding: 0 1; }
    ClustersScreen #message { height: 1; padding: 0 1; }
    """

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data
        self.findings: list[dict[str, Any]] = data["findings"]
        self.folder = Path(data["folder"])

    def compose(self) -> ComposeResult:
        yield Label(f"triage of {self.folder.name}: {headline(self.data)}", classes="heading")
        yield DataTable(cursor_type="row", id="clusters")
        yield Static(id="details")
        yield Label("runs of the finding (Enter opens one at its failure)", classes="heading")
        yield DataTable(cursor_type="row", id="runs")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#clusters", DataTable)
        table.add_columns("#", "status", "failure", "runs", "first failures", "ticks",
                          "minimal")
        for f in self.findings:
            low, high = f["first_failure_ticks"]
            minimal = f.get("minimal")
            table.add_row(str(f["number"]), status_words(f), f["title"], str(f["count"]),
                          f["first_failure_histogram"]["sparkline"],
                          str(low) if low == high else f"{low}–{high}",
                          "-" if not minimal or "error" in minimal else
                          f"{minimal['faults_after']} faults, {minimal['ticks_after']} ticks",
                          key=f["key"])
        self.query_one("#runs", DataTable).add_columns("run", "", "seed", "failure tick",
                                                        "node", "event", "events")
        if not self.findings:
            self.query_one("#message", Static).update("no run failed: nothing to browse")
        self.show_runs()
        table.focus()

    def selected(self) -> dict[str, Any] | None:
        """The finding under the findings table's cursor."""
        table = self.query_one("#clusters", DataTable)
        if not self.findings:
            return None
        return self.findings[min(table.cursor_row, len(self.findings) - 1)]

    def show_runs(self) -> None:
        """Fill the details and the runs table from the selected finding."""
        table = self.query_one("#runs", DataTable)
        table.clear()
        finding = self.selected()
        details = self.query_one("#details", Static)
        if finding is None:
            details.update("")
            return
        patterns = "; ".join(f"{value} ×{n}" for value, n in finding["breakdown"]["faults"])
        folders = "; ".join(f"{value} ×{n}" for value, n in finding["breakdown"]["folders"])
        details.update(f"{finding['grouping']}\nfaults around the failure: {patterns}\n"
                       f"folders: {folders}\nminimal: {minimal_line(finding.get('minimal'))}")
        for row in runs_of(finding):
            table.add_row(_where(row.path, self.folder), row.what,
                          "" if row.seed is None else str(row.seed), str(row.tick),
                          "run" if row.node < 0 else str(row.node),
                          "" if row.seq is None else f"#{row.seq}", str(row.events))

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if message.data_table.id == "clusters":
            self.show_runs()

    def action_switch(self) -> None:
        """Move between the findings and the runs."""
        runs = self.query_one("#runs", DataTable)
        (self.query_one("#clusters", DataTable) if runs.has_focus else runs).focus()

    def action_open(self) -> None:
        """Open the selected run (or the finding's first row) at its failure."""
        finding = self.selected()
        if finding is None:
            return
        rows = runs_of(finding)
        table = self.query_one("#runs", DataTable)
        row = rows[min(table.cursor_row, len(rows) - 1)] if table.has_focus else rows[0]
        try:
            session = DebugSession(row.path)
        except (ChaosReplayError, OSError) as exc:
            self.query_one("#message", Static).update(f"[red]cannot open: {exc}[/]")
            return
        seek = SeekTarget(seq=row.seq) if row.seq is not None else SeekTarget(tick=row.tick)
        self.app.push_screen(DebuggerScreen(
            session, seek=seek, closable=True, owns_session=True,
            intro=f"finding {finding['number']}: {finding['title']} (q back to the findings)"))

    def action_quit(self) -> None:
        """Leave."""
        self.app.exit()
