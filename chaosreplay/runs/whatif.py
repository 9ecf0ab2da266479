"""What-if branches: a recorded run with its future fault schedule changed, saved as a new
recording that names its parent and where it diverges.

The branch is the parent up to the first tick the edits touch, so it is not re-executed
from the start: the parent's events and checkpoints up to the latest checkpoint before that
tick are copied (each checkpoint's fault engine rewritten to hold the new schedule, as a
run of the branch's scenario from scratch would have it), and the simulation continues
from that checkpoint with the new schedule (schedules.py). The result is an ordinary
recording: its manifest holds the branch's scenario (the edited faults as an explicit
schedule), so `chaosreplay replay` re-executes it from tick 0 and checks it, and
`parent` says which recording it came from, the edits, and the first event that differs.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.runs.record_replay import build_manifest, host_info, load_run, same_row
from chaosreplay.runs.schedules import (
    PlannedFault,
    engine_with_faults,
    first_change_tick,
    gate_tick,
    planned,
    resume_with_faults,
    run_faults,
    with_faults,
)
from chaosreplay.sim.checkpoint import SimCheckpoint, parts_digest, rewrite_blob, stored_parts
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.simulation import RunResult, Simulation
from chaosreplay.sim.validation import KeyPath

DROP, MOVE, ADD = "drop", "move", "add"


@dataclass(frozen=True)
class ScheduleEdit:
    """One change to the future: drop or move a fault (by id), or add one."""

    action: str  # DROP | MOVE | ADD
    fault_id: str | None = None  # DROP, MOVE
    start_tick: int | None = None  # MOVE, ADD: the new absolute start tick
    fault: dict[str, Any] | None = None  # ADD: as a scenario's [[faults.schedule]] entry

    @classmethod
    def drop(cls, fault_id: str) -> ScheduleEdit:
        """Remove a fault."""
        return cls(DROP, fault_id)

    @classmethod
    def move(cls, fault_id: str, start_tick: int) -> ScheduleEdit:
        """Start a fault at another absolute tick."""
        return cls(MOVE, fault_id, start_tick)

    @classmethod
    def add(cls, fault: dict[str, Any], start_tick: int) -> ScheduleEdit:
        """A new fault starting at an absolute tick."""
        return cls(ADD, None, start_tick, dict(fault))

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for the branch's manifest)."""
        return {k: v for k, v in (("action", self.action), ("fault_id", self.fault_id),
                                  ("start_tick", self.start_tick), ("fault", self.fault))
                if v is not None}


@dataclass
class BranchResult:
    """A saved branch."""

    path: Path
    parent: dict[str, Any]
    result: RunResult
    diverged_at: int | None  # first event number that differs from the parent (None: none)


def schedule_of(reader: RecordingReader) -> list[PlannedFault]:
    """Every fault of a recorded run with its id and absolute ticks."""
    scenario, _, _ = load_run(reader)
    return planned(run_faults(scenario), gate_tick(reader))


def apply_edits(faults: list[Fault], edits: list[ScheduleEdit], gate: int,
                node_count: int) -> list[Fault]:
    """The fault list after the edits; ConfigError names an edit that cannot apply."""
    by_id = {p.fault_id: p.fault for p in planned(faults, gate)}
    out = list(faults)
    for number, edit in enumerate(edits, 1):
        where = KeyPath(f"edit {number} ({edit.action})")
        if edit.action in (DROP, MOVE):
            fault = by_id.get(edit.fault_id or "")
            if fault is None or fault not in out:
                where.fail(f"no fault {edit.fault_id!r} in the schedule")
            out.remove(fault)
            if edit.action == MOVE:
                out.append(replace(fault, at=_relative(edit.start_tick, gate, where)))
        elif edit.action == ADD:
            data = {**(edit.fault or {}), "at": _relative(edit.start_tick, gate, where)}
            out.append(Fault.from_dict(data, where, node_count))
        else:
            where.fail("unknown edit (drop, move or add)")
    return sorted(out, key=lambda f: f.at)


def _relative(start_tick: int | None, gate: int, where: KeyPath) -> int:
    if start_tick is None or start_tick < gate:
        where.fail(f"start tick {start_tick} is before faults begin (tick {gate})")
    assert start_tick is not None
    return start_tick - gate


def record_branch(path: str | os.PathLike[str], edits: list[ScheduleEdit],
                  out: str | os.PathLike[str],
                  on_progress: Callable[[Simulation], None] | None = None,
                  hang_seconds: float = 10.0) -> BranchResult:
    """Save the run of `path` with its schedule edited as a new recording at `out`."""
    final = Path(out)
    partial = final.with_name(final.name + ".partial")
    with RecordingReader(path) as reader:
        if not reader.complete:
            raise RecordingError(f"{path}: the recording is incomplete; a branch needs a "
                                 "whole parent")
        scenario, images, options = load_run(reader)
        faults = run_faults(scenario)
        gate = gate_tick(reader)
        if gate is None:
            raise RecordingError(f"{path}: faults never began in this run (not every node "
                                 "called setup_complete), so there is no schedule to edit")
        new = apply_edits(faults, edits, gate, scenario.node_count)
        end_tick = reader.last_tick or 0
        change = first_change_tick(faults, new, gate, end_tick)
        branch_scenario = with_faults(scenario, new)
        start = reader.checkpoint_before(change)
        parent = {"recording": Path(path).name, "edits": [e.to_dict() for e in edits],
                  "change_tick": change,
                  "from_checkpoint": None if start is None else start.index}
        writer = RecordingWriter(partial, build_manifest(branch_scenario, images, options,
                                                         parent), host=host_info())
        with writer:
            copied = _copy_prefix(reader, writer, new, start.index if start else -1)
            compare = _Divergence(reader, copied, writer.append)
            last = [start.index if start else None]

            def on_checkpoint(c: SimCheckpoint) -> None:
                last[0] = writer.add_checkpoint(c.tick, c.seq, c.digest, c.blobs, c.pages(),
                                                base=last[0])

            sim, _ = resume_with_faults(reader, scenario, images, new, change,
                                        sink=compare, on_checkpoint=on_checkpoint,
                                        keep_going=options.keep_going,
                                        on_progress=on_progress, hang_seconds=hang_seconds)
            result = sim.run()
            # The manifest was written first; the divergence point goes in the summary.
            writer.close({**result.summary(), "branch": {"diverged_at": compare.diverged_at}})
    parent["diverged_at"] = compare.diverged_at
    os.replace(partial, final)
    return BranchResult(final, parent, result, compare.diverged_at)


def _copy_prefix(reader: RecordingReader, writer: RecordingWriter, faults: list[Fault],
                 last_checkpoint: int) -> int:
    """Copy the parent's events and checkpoints up to checkpoint `last_checkpoint`; return
    the number of events copied."""
    if last_checkpoint < 0:
        return 0
    upto = reader.checkpoints[last_checkpoint].seq
    for seq, row in enumerate(reader.rows()):
        if seq >= upto:
            break
        writer.append(*row)
    for info in reader.checkpoints[:last_checkpoint + 1]:
        loaded = reader.load_checkpoint(info.index)
        engine = unpackb(loaded.blobs["engine"], "engine state")
        blobs = rewrite_blob(loaded.blobs, "engine", packb(engine_with_faults(engine, faults)))
        pages = {region: loaded.pages(region) for region in loaded.regions}
        writer.add_checkpoint(info.tick, info.seq, parts_digest(stored_parts(blobs)), blobs,
                              pages)
    return upto


class _Divergence:
    """A sink that passes events on and notes the first that differs from the parent's."""

    def __init__(self, reader: RecordingReader, start: int,
                 sink: Callable[..., Any]) -> None:
        self.sink = sink
        self.seq = start
        self.parent = reader.events(from_seq=start)
        self.diverged_at: int | None = None

    def __call__(self, tick: int, vtime_ns: int, node: int, kind: str,
                 fields: dict[str, Any]) -> None:
        self.sink(tick, vtime_ns, node, kind, fields)
        if self.diverged_at is None:
            old = next(self.parent, None)
            if old is None or not same_row((old.tick, old.vtime_ns, old.node, old.kind,
                                            old.fields), (tick, vtime_ns, node, kind, fields)):
                self.diverged_at = self.seq
                self.parent = iter(())  # stop reading the parent
        self.seq += 1

