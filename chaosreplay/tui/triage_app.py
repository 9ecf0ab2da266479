"""TriageApp and make_triage_app: `chaosreplay triage --tui`, the findings browser.

The browser shows report.json's data, so a fresh triage and one opened from its report
folder (`triage --tui REPORT_DIR`, nothing re-run) look the same.
"""

from __future__ import annotations

from typing import Any

from chaosreplay.triage.report import TriageReport, to_json
from chaosreplay.tui.app import ChaosReplayApp
from chaosreplay.tui.clusters_screen import ClustersScreen


class TriageApp(ChaosReplayApp):
    """A triage report's findings, each run one Enter away from the debugger."""

    TITLE = "chaosreplay triage"

    def __init__(self, data: dict[str, Any]) -> None:
        super().__init__()
        self.data = data

    def on_mount(self) -> None:
        self.push_screen(ClustersScreen(self.data))


def make_triage_app(report: TriageReport | dict[str, Any]) -> TriageApp:
    """The findings browser for a finished triage or a loaded report.json (the CLI and the
    tests call this)."""
    return TriageApp(to_json(report) if isinstance(report, TriageReport) else report)
