"""`chaosreplay triage --tui`: the clusters browser opens each run in the debugger."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.widgets import DataTable
from tui_helpers import SIZE, Row, debugger, settle, status_text, story_rows, write_rows

from chaosreplay.cli import main
from chaosreplay.triage.pipeline import TriageOptions, triage_folder
from chaosreplay.tui.clusters_screen import ClustersScreen
from chaosreplay.tui.triage_app import TriageApp, make_triage_app


def _renamed(rows: list[Row], message: str) -> list[Row]:
    """The story with its failing assertion and bug saying something else."""
    return [(t, v, n, k, {**f, "message": message} if k in ("assert", "bug") else f)
            for t, v, n, k, f in rows]


@pytest.fixture()
def bugs(tmp_path: Path) -> Path:
    """Three failing runs: two of one failure, one of another."""
    rows = story_rows()
    write_rows(tmp_path / "a.ccr", rows)
    write_rows(tmp_path / "b.ccr", rows)
    write_rows(tmp_path / "c.ccr", _renamed(rows, "logs agree"))
    return tmp_path


def test_clusters_list_their_runs_and_open_them_at_the_failure(bugs: Path) -> None:
    """Enter on a run opens the debugger at its failing event; q comes back."""
    report = triage_folder(bugs, TriageOptions(replay=False, shrink=False))
    assert len(report.clusters) == 2
    app = make_triage_app(report)
    app.animation_level = "none"

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = pilot.app.screen
            assert isinstance(screen, ClustersScreen)
            runs = screen.query_one("#runs", DataTable)
            first = report.clusters[0]
            assert runs.row_count == len(first.members)
            await pilot.press("down")
            await settle(pilot)
            second = report.clusters[1]
            assert [runs.get_row_at(i)[0] for i in range(runs.row_count)] == [
                Path(m.path).name for m in second.members]
            await pilot.press("tab", "enter")
            await settle(pilot)
            opened = debugger(pilot.app)
            member = second.members[0]
            assert opened.session.path == Path(member.path) and opened.cursor == member.seq
            assert second.key in status_text(opened)
            await pilot.press("q")
            await settle(pilot)
            assert pilot.app.screen is screen
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(run())


def test_triage_tui_flag_starts_the_browser(bugs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--tui hands the report to the browser instead of printing the table."""
    started: list[TriageApp] = []
    monkeypatch.setattr(TriageApp, "run", lambda self, *a, **k: started.append(self))
    result = CliRunner().invoke(main, ["triage", str(bugs), "--tui", "--no-replay",
                                       "--no-shrink", "--no-progress"])
    assert result.exit_code == 1, result.output
    (app,) = started
    assert len(app.report.clusters) == 2
    assert "cluster" not in result.stdout.lower(), "no table when the browser shows it"


