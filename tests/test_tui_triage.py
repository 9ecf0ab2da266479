"""`chaosreplay triage --tui`: the findings browser opens each run in the debugger, and
opens a stored report without triaging again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from click.testing import CliRunner
from textual.widgets import DataTable
from tui_helpers import SIZE, Row, debugger, settle, status_text, story_rows, write_rows

from chaosreplay.cli import main
from chaosreplay.triage import pipeline
from chaosreplay.triage.pipeline import TriageOptions, triage_folder
from chaosreplay.triage.report import to_json
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


def test_findings_list_their_runs_and_open_them_at_the_failure(bugs: Path) -> None:
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
            assert "finding 2: always failed" in status_text(opened)
            await pilot.press("q")
            await settle(pilot)
            assert pilot.app.screen is screen
            await pilot.press("q")
            await pilot.pause()

    asyncio.run(run())


def test_tui_opens_a_stored_report_without_triaging(bugs: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """--tui REPORT_DIR reads report.json and nothing else: no triage step runs."""
    out = tmp_path / "report"
    assert CliRunner().invoke(main, ["triage", str(bugs), "--out", str(out), "--no-replay",
                                     "--no-shrink", "--no-progress"]).exit_code == 1
    stored = (out / "report.json").read_text()
    started: list[TriageApp] = []
    monkeypatch.setattr(TriageApp, "run", lambda self, *a, **k: started.append(self))

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the report was triaged again")

    monkeypatch.setattr(pipeline, "analyse_all", refuse)
    result = CliRunner().invoke(main, ["triage", str(out), "--tui"])
    assert result.exit_code == 0, result.output
    (app,) = started
    assert app.data == __import__("json").loads(stored)
    assert (out / "report.json").read_text() == stored, "nothing is rewritten"
    (out / "report.json").write_text('{"version": 1, "clusters": []}')
    result = CliRunner().invoke(main, ["triage", str(out), "--tui"])
    assert result.exit_code == 2 and "cannot be browsed" in result.stderr, result.output


def test_the_browser_shows_a_stored_report_like_a_fresh_one(bugs: Path) -> None:
    """The screen reads report.json's data: the details name the breakdown and grouping."""
    data = to_json(triage_folder(bugs, TriageOptions(replay=False, shrink=False)))
    app = make_triage_app(data)
    app.animation_level = "none"

    async def run() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await settle(pilot)
            screen = pilot.app.screen
            assert isinstance(screen, ClustersScreen)
            findings = screen.query_one("#clusters", DataTable)
            assert findings.row_count == len(data["findings"]) == 2
            details = str(screen.query_one("#details").render())
            assert "faults around the failure" in details and "not split" in details
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
    assert len(app.data["findings"]) == 2
    assert "cluster" not in result.stdout.lower(), "no table when the browser shows it"


