"""A recorded run's fault schedule made explicit, and re-running it with a changed future.

Shrinking (shrink.py) and what-if branches (whatif.py) both edit a run's faults and run
again. Two facts make that cheap and exact:

- a scenario's random faults expand to one explicit list for its seed (`run_faults`), and a
  scenario holding that list as its schedule (`with_faults`) runs identically;
- a run with a changed schedule is the original run up to the first tick the change
  touches, so it can start from the latest checkpoint at or before that tick
  (`resume_with_faults`): the checkpoint's fault engine is given the new list, and
  everything else is as recorded (checkpoints come before fault actions of their tick).

Ticks in a schedule (`Fault.at`) are relative to the gate (every node's setup_complete);
`PlannedFault` carries absolute ticks, taken from the recorded run's gate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.model import CheckpointInfo
from chaosreplay.sim.checkpoint import rewrite_blob
from chaosreplay.sim.faults.engine import FaultPlan
from chaosreplay.sim.faults.model import KIND_SPECS, Fault, assign_ids
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import ProgramImage


@dataclass(frozen=True)
class PlannedFault:
    """One fault of a run with its absolute ticks (None while the gate is closed)."""

    fault_id: str
    fault: Fault
    start_tick: int | None
    end_tick: int | None  # None: instantaneous, until the run ends, or not started

    def to_dict(self) -> dict[str, Any]:
        """Plain data (the fault as a scenario writes it, plus its id and ticks)."""
        return {"fault_id": self.fault_id, "start_tick": self.start_tick,
                "end_tick": self.end_tick, "fault": self.fault.to_dict()}


def run_faults(scenario: Scenario) -> list[Fault]:
    """Every fault the scenario's run injects, random ones expanded, in fire order."""
    return scenario.faults.expand(scenario.seed, scenario.node_count, scenario.duration)


def with_faults(scenario: Scenario, faults: Sequence[Fault]) -> Scenario:
    """The scenario with exactly these faults, as an explicit schedule."""
    plan = FaultPlan(tuple(sorted(faults, key=lambda f: f.at)), None,
                     scenario.faults.wait_for_setup)
    return replace(scenario, faults=plan)


def gate_tick(reader: RecordingReader) -> int | None:
    """The absolute tick the recorded run's faults are relative to (None: never opened)."""
    if reader.checkpoints:
        last = reader.load_checkpoint(reader.checkpoints[-1].index)
        engine = unpackb(last.blobs["engine"], "engine state")
        if engine.get("origin") is not None:
            return int(engine["origin"])
    # No checkpoint after the gate opened: the first fault's tick minus its offset says.
    for event in reader.events(kinds=("fault.start",)):
        return int(event.fields["tick"]) - int(event.fields["fault"]["at"])
    return None


def planned(faults: Sequence[Fault], gate: int | None) -> list[PlannedFault]:
    """Faults with their ids and absolute ticks."""
    ordered = sorted(faults, key=lambda f: f.at)
    out = []
    for fault_id, fault in zip(assign_ids(ordered), ordered, strict=True):
        start = None if gate is None else gate + fault.at
        lasting = KIND_SPECS[fault.kind].duration != "none" and fault.duration
        out.append(PlannedFault(fault_id, fault, start,
                                start + fault.duration if start is not None and lasting
                                else None))
    return out


def first_change_tick(old: Sequence[Fault], new: Sequence[Fault], gate: int | None,
                      end_tick: int) -> int:
    """The earliest absolute tick at which two schedules differ (end_tick if they never do
    within the run, or if the gate never opened)."""
    if gate is None:
        return end_tick
    before, after = _counts(old), _counts(new)
    changed = [f.at for f in set(before) | set(after) if before.get(f, 0) != after.get(f, 0)]
    return min([end_tick] + [gate + at for at in changed])


def _counts(faults: Sequence[Fault]) -> dict[Fault, int]:
    counts: dict[Fault, int] = {}
    for fault in faults:
        counts[fault] = counts.get(fault, 0) + 1
    return counts


def engine_with_faults(engine: dict[str, Any], faults: Sequence[Fault]) -> dict[str, Any]:
    """A fault engine snapshot given another fault list whose unfired part alone differs:
    the faults already started keep their places, and pending ends are renumbered as a run
    of the new list from the start would number them."""
    ordered = sorted(faults, key=lambda f: f.at)
    index = {fid: i for i, fid in enumerate(assign_ids(ordered))}
    ends = sorted([end, index[fid], fid] for end, _, fid in engine["ends"])
    return {**engine, "faults": [f.to_dict() for f in ordered], "ends": ends}


def resume_with_faults(reader: RecordingReader, scenario: Scenario, images: list[ProgramImage],
                       faults: Sequence[Fault], change_tick: int,
                       **sim_kwargs: Any) -> tuple[Simulation, CheckpointInfo | None]:
    """A simulation of the scenario with `faults`, started from the latest checkpoint at or
    before `change_tick` (the first tick where `faults` differs from the recorded run's)."""
    new_scenario = with_faults(scenario, faults)
    info = reader.checkpoint_before(change_tick)  # None: start from the beginning
    if info is None:
        return Simulation(new_scenario, images, **sim_kwargs), None
    loaded = reader.load_checkpoint(info.index)
    blobs = dict(loaded.blobs)
    try:
        engine = unpackb(blobs["engine"], "engine state")
        blobs = rewrite_blob(blobs, "engine", packb(engine_with_faults(engine, faults)))
        sim = Simulation.resume(new_scenario, images, blobs, loaded.pages, **sim_kwargs)
    except (KeyError, ValueError) as exc:
        raise RecordingError(f"{reader.path}: checkpoint {info.index} cannot take the new "
                             f"schedule ({exc})") from None
    return sim, info
