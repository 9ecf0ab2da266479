"""What-if from the debugger: planning edits to the future faults, and running a branch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import DataTable
from tui_helpers import debugger, drive, press, settle, status_text, story_rows, write_rows

from chaosreplay.cli import main
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.schedules import PlannedFault
from chaosreplay.runs.whatif import ScheduleEdit
from chaosreplay.sim.faults.model import Fault, FaultKind
from chaosreplay.tui import make_app
from chaosreplay.tui.whatif_plan import (
    PlanError,
    WhatIfPlan,
    branch_path,
    parse_added_fault,
    parse_tick,
)
from chaosreplay.tui.whatif_screen import WhatIfScreen


def _plan() -> WhatIfPlan:
    past = PlannedFault("loss-1", Fault(FaultKind.LOSS, 90, 50, 1, (("probability", 0.5),)),
                        100, 150)
    future = PlannedFault("kill-2", Fault(FaultKind.KILL, 290, 10, 0), 300, 310)
    return WhatIfPlan([past, future], cursor_tick=200, node_count=3)


def test_plan_edits_only_the_future() -> None:
    """Faults after the cursor can be dropped (and undropped) or moved; earlier ones not."""
    plan = _plan()
    with pytest.raises(PlanError, match="already happened"):
        plan.toggle_drop("loss-1")
    assert plan.toggle_drop("kill-2") and plan.edits == [ScheduleEdit.drop("kill-2")]
    assert not plan.toggle_drop("kill-2") and plan.edits == []
    plan.move("kill-2", 250)
    assert plan.edits == [ScheduleEdit.move("kill-2", 250)]
    with pytest.raises(PlanError, match="not after the cursor"):
        plan.move("kill-2", 200)
    plan.add({"kind": "pause", "node": 2, "duration": 30}, 260)
    assert [plan.describe(e) for e in plan.edits] == [
        "move kill-2 to tick 250", "add kind=pause node=2 duration=30 at tick 260"]
    assert plan.undo() is not None and len(plan.edits) == 1


def test_added_faults_are_typed_as_words_and_checked() -> None:
    """key=value words with at= a tick or a time; the fault is checked like a scenario's."""
    assert parse_added_fault("kind=kill node=1 duration=200ms at=2.5s", 3) == (
        {"kind": "kill", "node": 1, "duration": "200ms"}, 2500)
    assert parse_added_fault("kind=partition sides=[[0],[1,2]] duration=50 at=900", 3)[0][
        "sides"] == [[0], [1, 2]]
    for text, message in [("kind=kill node=1", "at="), ("kind=kil at=5", "did you mean"),
                          ("kind=kill node=7 at=5", "node"), ("kill at=5", "key=value")]:
        with pytest.raises(PlanError, match=message):
            parse_added_fault(text, 3)
    with pytest.raises(PlanError, match="not an event"):
        parse_tick("#12")


def test_branch_names_count_up(tmp_path: Path) -> None:
    """Branches go next to the recording as <name>-branch-N.ccr, N not yet taken."""
    recording = tmp_path / "run.ccr"
    assert branch_path(recording) == tmp_path / "run-branch-1.ccr"
    (tmp_path / "run-branch-1.ccr").write_bytes(b"")
    assert branch_path(recording) == tmp_path / "run-branch-2.ccr"


def test_whatif_needs_a_run_that_can_be_re_executed(tmp_path: Path) -> None:
    """On a recording without a run manifest, w says why instead of opening the editor."""
    path = write_rows(tmp_path / "story.ccr", story_rows())

    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "w")
        assert "what-if needs a run that can be re-executed" in status_text(debugger(pilot.app))
        await press(pilot, "x")
        assert "examining memory needs a run" in status_text(debugger(pilot.app))

    drive(make_app(path), script)


@pytest.mark.kvm
def test_drop_a_future_fault_run_the_branch_and_open_it(tmp_path: Path) -> None:
    """From the cursor: drop the fault still to come, run, open the branch at its
    divergence, and come back with q."""
    parent = tmp_path / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(parent), "--duration", "4s",
                                       "--no-progress"])
    assert parent.exists(), result.output

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *"2000", "enter", "w")
        editor = pilot.app.screen
        assert isinstance(editor, WhatIfScreen)
        table = editor.query_one(DataTable)
        rows = [table.get_row_at(i) for i in range(table.row_count)]
        future = [row[1] for row in rows if row[0] == "future"]
        assert future, rows
        table.move_cursor(row=[row[1] for row in rows].index(future[0]))
        await press(pilot, "d", "r")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        assert editor.saved is not None, str(editor.query_one("#whatif-result").content)  # type: ignore[attr-defined]
        branch = editor.saved
        assert branch.path == tmp_path / "demo-branch-1.ccr"
        with RecordingReader(branch.path) as reader:
            assert future[0] not in {e.fields["fault_id"]
                                     for e in reader.events(kinds=["fault.start"])}
        await press(pilot, "o")
        opened = debugger(pilot.app)
        assert opened is not screen and opened.session.path == branch.path
        assert opened.cursor == branch.diverged_at
        assert "branch of demo.ccr" in status_text(opened)
        await press(pilot, "q")
        assert debugger(pilot.app) is screen

    drive(make_app(parent), script)
