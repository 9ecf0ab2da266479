"""WhatIfPlan: the edits a user makes to a run's future faults before running a branch.

Plain data (no Textual): the schedule as recorded, the cursor's tick (nothing at or before
it may change: the branch starts from the cursor), and the edits in the order made, in the
form `record_branch` takes. Also how an added fault is typed and where a branch is saved.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosreplay.errors import ChaosReplayError
from chaosreplay.runs.schedules import PlannedFault
from chaosreplay.runs.whatif import DROP, MOVE, ScheduleEdit
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.validation import KeyPath
from chaosreplay.tui.seek_target import SeekError, SeekTarget


class PlanError(ValueError):
    """An edit the plan refuses (one line, shown in the what-if screen)."""


def parse_tick(text: str) -> int:
    """A tick typed as 2500 or as a virtual time like 2.5s."""
    try:
        target = SeekTarget.parse(text)
    except SeekError as exc:
        raise PlanError(str(exc)) from None
    if target.tick is None:
        raise PlanError(f"{text!r}: expected a tick or a time, not an event number")
    return target.tick


def parse_added_fault(text: str, node_count: int) -> tuple[dict[str, Any], int]:
    """('kind=kill node=1 duration=200ms at=2.5s') → (the fault as a scenario writes it, its
    start tick); checked the way a scenario's fault is."""
    fault: dict[str, Any] = {}
    start: int | None = None
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise PlanError(str(exc)) from None
    for word in words:
        key, eq, value = word.partition("=")
        if not eq:
            raise PlanError(f"{word!r}: expected key=value, e.g. kind=kill node=1 at=2.5s")
        if key == "at":
            start = parse_tick(value)
        else:
            fault[key] = _scalar(value)
    if start is None:
        raise PlanError("say when it starts: at=TICK or at=2.5s")
    try:
        Fault.from_dict({**fault, "at": 0}, KeyPath("added fault"), node_count)
    except ChaosReplayError as exc:
        raise PlanError(str(exc)) from None
    return fault, start


def _scalar(text: str) -> Any:
    """A typed value: an integer, a number, true/false, a JSON list (partition sides like
    [[0],[1,2]]), else the text."""
    if text.startswith("["):
        try:
            return json.loads(text)
        except ValueError:
            raise PlanError(f"{text!r}: not a list (write it like [[0],[1,2]])") from None
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def branch_path(recording: Path) -> Path:
    """`<name>-branch-N.ccr` next to the recording, N the first number not taken."""
    number = 1
    while (path := recording.with_name(f"{recording.stem}-branch-{number}.ccr")).exists():
        number += 1
    return path


@dataclass
class WhatIfPlan:
    """The schedule, the cursor's tick, and the edits so far."""

    schedule: list[PlannedFault]
    cursor_tick: int
    node_count: int
    edits: list[ScheduleEdit] = field(default_factory=list)

    def fault(self, fault_id: str) -> PlannedFault:
        """A recorded fault by id."""
        for planned in self.schedule:
            if planned.fault_id == fault_id:
                return planned
        raise PlanError(f"no fault {fault_id!r}")

    def editable(self, planned: PlannedFault) -> bool:
        """Whether a fault starts after the cursor (earlier ones have already happened)."""
        return planned.start_tick is None or planned.start_tick > self.cursor_tick

    def edit_of(self, fault_id: str) -> ScheduleEdit | None:
        """The edit made to a recorded fault, if any."""
        return next((e for e in self.edits if e.fault_id == fault_id), None)

    def _check_future(self, fault_id: str) -> None:
        planned = self.fault(fault_id)
        if not self.editable(planned):
            raise PlanError(f"{fault_id} starts at tick {planned.start_tick}, not after the "
                            f"cursor (tick {self.cursor_tick}): it has already happened")

    def _check_start(self, tick: int) -> None:
        if tick <= self.cursor_tick:
            raise PlanError(f"tick {tick} is not after the cursor (tick {self.cursor_tick}): "
                            "a branch changes only the future")

    def toggle_drop(self, fault_id: str) -> bool:
        """Drop a future fault, or undo its edit; True when it is now dropped."""
        self._check_future(fault_id)
        old = self.edit_of(fault_id)
        self.edits = [e for e in self.edits if e.fault_id != fault_id]
        if old is not None and old.action == DROP:
            return False
        self.edits.append(ScheduleEdit.drop(fault_id))
        return True

    def move(self, fault_id: str, tick: int) -> None:
        """Start a future fault at another tick (after the cursor)."""
        self._check_future(fault_id)
        self._check_start(tick)
        self.edits = [e for e in self.edits if e.fault_id != fault_id]
        self.edits.append(ScheduleEdit.move(fault_id, tick))

    def add(self, fault: dict[str, Any], tick: int) -> None:
        """A new fault starting after the cursor."""
        self._check_start(tick)
        self.edits.append(ScheduleEdit.add(fault, tick))

    def undo(self) -> ScheduleEdit | None:
        """Forget the last edit."""
        return self.edits.pop() if self.edits else None

    def describe(self, edit: ScheduleEdit) -> str:
        """An edit in a few words."""
        if edit.action == DROP:
            return f"drop {edit.fault_id}"
        if edit.action == MOVE:
            return f"move {edit.fault_id} to tick {edit.start_tick}"
        words = " ".join(f"{k}={v}" for k, v in (edit.fault or {}).items())
        return f"add {words} at tick {edit.start_tick}"
