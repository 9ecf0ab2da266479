"""WhatIfScreen: change the run's future faults from the cursor and record the branch.

The list shows every fault of the run; those after the cursor can be dropped (d), moved
(m) or joined by new ones (a). Running (r) calls `whatif.record_branch` on a worker thread
of its own — it reads the recording through its own reader, so it never touches the
session the engine thread owns — and saves `<name>-branch-N.ccr` next to the recording.
The screen returns the saved branch when the user asks to open it (o).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Label, ProgressBar, Static

from chaosreplay.runs.whatif import ADD, BranchResult, record_branch
from chaosreplay.sim.simulation import Simulation
from chaosreplay.tui.engine import describe_error
from chaosreplay.tui.event_format import show_value
from chaosreplay.tui.prompt_screen import PromptScreen
from chaosreplay.tui.whatif_plan import (
    PlanError,
    WhatIfPlan,
    branch_path,
    parse_added_fault,
    parse_tick,
)

ADD_HINT = "kind=kill node=1 duration=200ms at=2.5s   (at= a tick or a time after the cursor)"


def _checked(check: Callable[[], object]) -> str | None:
    """Run a parse or an edit: its PlanError's text, or None."""
    try:
        check()
    except PlanError as exc:
        return str(exc)
    return None


class WhatIfScreen(ModalScreen[BranchResult | None]):
    """The what-if editor (see the module docstring)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("d", "drop", "drop/undo"), Binding("m", "move", "move"),
        Binding("a", "add", "add"), Binding("u", "undo", "undo"),
        Binding("r", "run", "run branch"), Binding("o", "open", "open branch"),
        Binding("escape", "close", "close"),
    ]
    DEFAULT_CSS = """
    WhatIfScreen { align: center middle; }
    WhatIfScreen > Vertical { width: 96%; height: 90%; border: thick $accent;
                              background: $surface; padding: 0 1; }
    WhatIfScreen DataTable { height: 1fr; }
    WhatIfScreen #whatif-edits { height: auto; max-height: 6; }
    WhatIfScreen #whatif-keys { color: $text-muted; }
    WhatIfScreen #whatif-result { height: auto; }
    WhatIfScreen ProgressBar { display: none; }
    WhatIfScreen.-running ProgressBar { display: block; }
    """

    @dataclass
    class Progress(Message):
        """The branch's simulation reached a tick."""

        tick: int

    @dataclass
    class Finished(Message):
        """The branch was saved, or why not."""

        result: BranchResult | None
        error: str | None

    def __init__(self, recording: Path, plan: WhatIfPlan, cursor: int,
                 duration: int) -> None:
        super().__init__()
        self.recording = recording
        self.plan = plan
        self.cursor = cursor
        self.duration = max(duration, 1)
        self.running = False
        self.saved: BranchResult | None = None

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"What if — from #{self.cursor} (tick {self.plan.cursor_tick}): "
                        "change the faults after the cursor, then run the branch")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="whatif-faults")
            yield Static(id="whatif-edits")
            yield Static("d drop/undo · m move · a add · u undo · r run branch · o open it · "
                         "esc close", id="whatif-keys")
            yield ProgressBar(total=self.duration, show_eta=False, id="whatif-progress")
            yield Static(id="whatif-result")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        table.add_columns("when", "fault", "kind", "node", "start", "end", "parameters", "edit")
        self.redraw()
        table.focus()

    def redraw(self) -> None:
        """Refill the table and the edit list from the plan."""
        table = self.query_one(DataTable)
        row = table.cursor_row
        table.clear()
        for planned in self.plan.schedule:
            fault = planned.fault.to_dict()
            edit = self.plan.edit_of(planned.fault_id)
            when = "future" if self.plan.editable(planned) else "past"
            table.add_row(
                when, planned.fault_id, fault["kind"], str(fault.get("node", "all")),
                "—" if planned.start_tick is None else str(planned.start_tick),
                "—" if planned.end_tick is None else str(planned.end_tick),
                " ".join(f"{k}={show_value(v, 16)}" for k, v in fault.items()
                         if k not in ("kind", "at", "node", "duration")),
                "" if edit is None else self.plan.describe(edit), key=planned.fault_id)
        for number, edit in enumerate(e for e in self.plan.edits if e.action == ADD):
            table.add_row("new", "—", str((edit.fault or {}).get("kind")),
                          str((edit.fault or {}).get("node", "all")), str(edit.start_tick),
                          "", "", self.plan.describe(edit), key=f"new-{number}")
        if table.row_count:
            table.move_cursor(row=min(row, table.row_count - 1))
        edits = "; ".join(self.plan.describe(e) for e in self.plan.edits) or "no edits yet"
        self.query_one("#whatif-edits", Static).update(f"edits: {edits}")

    def _selected(self) -> str | None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return None if key is None or key.startswith("new-") else key

    def _say(self, text: str, error: bool = False) -> None:
        self.query_one("#whatif-result", Static).update(
            f"[red]{text}[/]" if error else text)

    def _edit(self, change: Callable[[], object]) -> None:
        """Apply an edit to the plan, or say why it is refused."""
        if self.running:
            self._say("a branch is running", error=True)
            return
        problem = _checked(change)
        if problem is not None:
            self._say(problem, error=True)
        else:
            self._say("")
        self.redraw()

    def action_drop(self) -> None:
        """Drop the selected future fault (or undo its edit)."""
        fault_id = self._selected()
        if fault_id is not None:
            self._edit(lambda: self.plan.toggle_drop(fault_id))

    def action_move(self) -> None:
        """Ask for a new start tick for the selected future fault."""
        fault_id = self._selected()
        if fault_id is None:
            return
        self.app.push_screen(
            PromptScreen(f"Move {fault_id} to", "a tick (2500) or a time (2.5s) after the "
                         "cursor", check=lambda text: _checked(lambda: parse_tick(text))),
            lambda text: self._edit(lambda: self.plan.move(fault_id, parse_tick(text)))
            if text else None)

    def action_add(self) -> None:
        """Ask for a new fault."""
        def parse(text: str) -> tuple[dict[str, object], int]:
            return parse_added_fault(text, self.plan.node_count)

        self.app.push_screen(
            PromptScreen("Add a fault", ADD_HINT, check=lambda text: _checked(lambda: parse(text))),
            lambda text: self._edit(lambda: self.plan.add(*parse(text))) if text else None)

    def action_undo(self) -> None:
        """Forget the last edit."""
        self._edit(self.plan.undo)

    def action_run(self) -> None:
        """Record the branch (on a worker thread)."""
        if self.running:
            return
        if not self.plan.edits:
            self._say("nothing to change: drop, move or add a fault first", error=True)
            return
        self.running = True
        self.add_class("-running")
        out = branch_path(self.recording)
        self._say(f"running the branch into {out.name}…")
        self.record(out)

    @work(thread=True, exclusive=True, group="whatif")
    def record(self, out: Path) -> None:
        """The branch run itself (minutes for long runs; reports progress as it goes)."""
        def progress(sim: Simulation) -> None:
            self.post_message(self.Progress(sim.tick))

        try:
            result = record_branch(self.recording, list(self.plan.edits), out, progress)
        except Exception as exc:  # shown in the screen, never thrown
            self.post_message(self.Finished(None, describe_error(exc)))
        else:
            self.post_message(self.Finished(result, None))

    def on_what_if_screen_progress(self, message: Progress) -> None:
        self.query_one(ProgressBar).update(progress=message.tick)

    def on_what_if_screen_finished(self, message: Finished) -> None:
        self.running = False
        self.remove_class("-running")
        if message.result is None:
            self._say(f"the branch failed: {message.error}", error=True)
            return
        result = message.result
        self.saved = result
        diverged = ("no event differs from the parent" if result.diverged_at is None
                    else f"diverges from the parent at #{result.diverged_at}")
        verdict = "FAILED" if result.result.failed else "passed"
        self._say(f"saved {result.path.name}: {diverged}; the run {verdict} "
                  f"({result.result.reason} at tick {result.result.end_tick}). "
                  "Press o to open it, esc to stay here.")

    def action_open(self) -> None:
        """Open the saved branch in the debugger."""
        if self.saved is not None:
            self.dismiss(self.saved)

    def action_close(self) -> None:
        """Back to the debugger (not while a branch is being recorded)."""
        if self.running:
            self._say("a branch is running; it cannot be stopped halfway", error=True)
            return
        self.dismiss(None)
