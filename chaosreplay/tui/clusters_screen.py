"""ClustersScreen: a triage's clusters, their runs, and each run in the debugger (Enter).

`chaosreplay triage --tui` shows it over the report `triage_folder` returned; a run opens
at its failure on a DebuggerScreen of its own, and q there comes back here.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Static

from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import ChaosReplayError
from chaosreplay.triage.cluster import Cluster, Member
from chaosreplay.triage.report import TriageReport, seed_ranges
from chaosreplay.tui.debugger_screen import DebuggerScreen
from chaosreplay.tui.seek_target import SeekTarget


def _where(path: str, folder: Path) -> str:
    """A run's path relative to the bugs folder when it is inside it."""
    p = Path(path)
    return p.relative_to(folder).as_posix() if p.is_relative_to(folder) else path


class ClustersScreen(Screen[None]):
    """The clusters browser (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "open run", priority=True),
        Binding("tab", "switch", "clusters/runs", priority=True),
        Binding("q", "quit", "quit"),
    ]
    DEFAULT_CSS = """
    ClustersScreen #clusters { height: 1fr; }
    ClustersScreen #runs { height: 1fr; }
    ClustersScreen .heading { background: $panel; width: 1fr; padding: 0 1; }
    ClustersScreen #message { height: 1; padding: 0 1; }
    """

    def __init__(self, report: TriageReport) -> None:
        super().__init__()
        self.report = report
        self.folder = Path(report.folder)

    def compose(self) -> ComposeResult:
        failing = f"{self.report.failing} of {len(self.report.runs)} runs failed"
        yield Label(f"triage of {self.folder.name}: {failing}, "
                    f"{len(self.report.clusters)} clusters", classes="heading")
        yield DataTable(cursor_type="row", id="clusters")
        yield Label("runs of the cluster (Enter opens one at its failure)", classes="heading")
        yield DataTable(cursor_type="row", id="runs")
        yield Static(id="message")
        yield Footer()

    def on_mount(self) -> None:
        clusters = self.query_one("#clusters", DataTable)
        clusters.add_columns("cluster", "status", "failure", "faults", "runs", "seeds",
                             "ticks")
        for cluster in self.report.clusters:
            low, high = cluster.tick_range
            clusters.add_row(cluster.key, cluster.status or "", cluster.signature.title,
                             ", ".join(cluster.faults) or "none", str(len(cluster.members)),
                             seed_ranges(cluster.seeds, 24),
                             str(low) if low == high else f"{low}–{high}", key=cluster.key)
        self.query_one("#runs", DataTable).add_columns("run", "seed", "failure tick", "node",
                                                        "event", "events")
        if not self.report.clusters:
            self.query_one("#message", Static).update("no run failed: nothing to browse")
        self.show_runs()
        clusters.focus()

    def selected_cluster(self) -> Cluster | None:
        """The cluster under the clusters table's cursor."""
        table = self.query_one("#clusters", DataTable)
        if not self.report.clusters:
            return None
        return self.report.clusters[min(table.cursor_row, len(self.report.clusters) - 1)]

    def runs_of(self, cluster: Cluster) -> list[Member]:
        """The cluster's runs, the minimal (shrunk) one first when there is one (it opens at
        its last tick: a minimal run ends at its failure)."""
        runs = list(cluster.members)
        minimal = cluster.minimal or {}
        if minimal.get("path"):
            rep = cluster.representative
            runs.insert(0, Member(str(minimal["path"]), rep.seed,
                                  int(minimal.get("ticks_after") or 0), rep.node, None,
                                  int(minimal.get("events_after") or 0)))
        return runs

    def show_runs(self) -> None:
        """Fill the runs table from the selected cluster."""
        table = self.query_one("#runs", DataTable)
        table.clear()
        cluster = self.selected_cluster()
        if cluster is None:
            return
        for member in self.runs_of(cluster):
            table.add_row(_where(member.path, self.folder),
                          "" if member.seed is None else str(member.seed), str(member.tick),
                          "run" if member.node < 0 else str(member.node),
                          "" if member.seq is None else f"#{member.seq}", str(member.events))

    def on_data_table_row_highlighted(self, message: DataTable.RowHighlighted) -> None:
        if message.data_table.id == "clusters":
            self.show_runs()

    def action_switch(self) -> None:
        """Move between the clusters and the runs."""
        runs = self.query_one("#runs", DataTable)
        (self.query_one("#clusters", DataTable) if runs.has_focus else runs).focus()

    def action_open(self) -> None:
        """Open the selected run (or the cluster's representative) at its failure."""
        cluster = self.selected_cluster()
        if cluster is None:
            return
        runs = self.runs_of(cluster)
        table = self.query_one("#runs", DataTable)
        member = runs[min(table.cursor_row, len(runs) - 1)] if table.has_focus else runs[0]
        try:
            session = DebugSession(member.path)
        except (ChaosReplayError, OSError) as exc:
            self.query_one("#message", Static).update(f"[red]cannot open: {exc}[/]")
            return
        seek = (SeekTarget(seq=member.seq) if member.seq is not None
                else SeekTarget(tick=member.tick))
        self.app.push_screen(DebuggerScreen(
            session, seek=seek, closable=True, owns_session=True,
            intro=f"{cluster.key}: {cluster.signature.title} (q back to the clusters)"))

    def action_quit(self) -> None:
        """Leave."""
        self.app.exit()
