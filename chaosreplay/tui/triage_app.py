"""TriageApp and make_triage_app: `chaosreplay triage --tui`, the clusters browser."""

from __future__ import annotations

from chaosreplay.triage.report import TriageReport
from chaosreplay.tui.app import ChaosReplayApp
from chaosreplay.tui.clusters_screen import ClustersScreen


class TriageApp(ChaosReplayApp):
    """A triage report's clusters, each run one Enter away from the debugger."""

    TITLE = "chaosreplay triage"

    def __init__(self, report: TriageReport) -> None:
        super().__init__()
        self.report = report

    def on_mount(self) -> None:
        self.push_screen(ClustersScreen(self.report))


def make_triage_app(report: TriageReport) -> TriageApp:
    """The clusters browser for a finished triage (the CLI and the tests call this)."""
    return TriageApp(report)
