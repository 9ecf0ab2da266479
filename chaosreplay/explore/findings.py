"""Bugs the exploration found: first hits, counts, and failing branches saved as recordings.

A failing run is saved as a standalone recording: the scenario with the run's seed and
its whole (edited) schedule is recorded from scratch with `runs.record_run`, so the file
replays with `chaosreplay replay` like any other, and the manifest's `parent` says where it
came from (the exploration's seed, the run, the checkpoint tick it branched at, the run
it branched from and the edits). A branch is the same run as that schedule from the start
(schedules.py), so the recording fails the same way; `reproduced` checks it every time.
The folder holds only complete recordings (record_run writes atomically), so
`chaosreplay triage DIR` reads it directly.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.runs.schedules import with_faults
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.elf import ProgramImage


def failure_key(summary: dict[str, Any] | None, error: str | None = None) -> tuple[str, str]:
    """(key, title) of a run's first failure: the first bug's assertion, else the first
    crash or hang (its kind and the node's first words of detail), else the error."""
    if error is not None:
        return "error", f"error: {error}"
    assert summary is not None
    if summary["bugs"]:
        bug = summary["bugs"][0]
        return (f"{bug['assert_kind']}:{bug['assert_id']:016x}",
                f"{bug['assert_kind']}: {bug['message']}")
    failure = summary["failures"][0]
    detail = str(failure["detail"]).split(" at ")[0]
    return f"{failure['kind']}:{detail}", f"{failure['kind']}: {detail}"


@dataclass
class BugRecord:
    """One distinct failure and when the search first hit it."""

    key: str
    title: str
    first_run: int  # runs carried out up to and including the first hit
    first_wall_seconds: float
    first_simulated_seconds: float  # virtual time simulated by all runs up to the first hit
    first_tick: int  # the tick of the failing run it ended at
    hits: int = 1
    recordings: list[str] = field(default_factory=list)
    reproduced: list[bool] = field(default_factory=list)  # each recording failed the same way

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the JSON report."""
        return {"key": self.key, "title": self.title, "first_run": self.first_run,
                "first_wall_seconds": round(self.first_wall_seconds, 3),
                "first_simulated_seconds": round(self.first_simulated_seconds, 3),
                "first_tick": self.first_tick, "hits": self.hits,
                "recordings": self.recordings, "reproduced": self.reproduced}


class Findings:
    """The bugs found so far; saves up to `save_per_bug` failing runs of each."""

    def __init__(self, scenario: Scenario, images: list[ProgramImage], out: Path | None,
                 save_per_bug: int = 3, hang_seconds: float = 10.0) -> None:
        self.scenario, self.images, self.out = scenario, images, out
        self.save_per_bug, self.hang_seconds = save_per_bug, hang_seconds
        self.bugs: dict[str, BugRecord] = {}
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)

    def note(self, summary: dict[str, Any] | None, error: str | None, *, run: int,
             end_tick: int, wall: float, simulated_seconds: float) -> BugRecord:
        """Count a failing run; a new failure gets a record."""
        key, title = failure_key(summary, error)
        record = self.bugs.get(key)
        if record is None:
            record = self.bugs[key] = BugRecord(key, title, run, wall, simulated_seconds,
                                                end_tick, hits=0)
        record.hits += 1
        return record

    def wants_recording(self, record: BugRecord) -> bool:
        """Whether another failing run of this bug should be saved."""
        return (self.out is not None and record.key != "error"
                and len(record.recordings) < self.save_per_bug)

    def save(self, record: BugRecord, seed: int, faults: tuple[Fault, ...],
             parent: dict[str, Any]) -> Path:
        """Record the failing run from scratch into the folder."""
        assert self.out is not None
        kind = record.key.split(":")[0]  # a crash's key holds free text: name files by hash
        digest = hashlib.sha256(record.key.encode()).hexdigest()[:10]
        path = self.out / f"{kind}-{digest}-run{parent['run']}.ccr"
        scenario = with_faults(self.scenario.with_seed(seed), faults)
        result = record_run(scenario, self.images, path,
                            RunOptions(hang_seconds=self.hang_seconds),
                            parent={"explore": parent})
        record.recordings.append(str(path))
        record.reproduced.append(result.failed
                                 and failure_key(result.summary())[0] == record.key)
        return path
