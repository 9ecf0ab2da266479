"""Running the explorer's runs: lean, from a seed or from a frontier checkpoint, in workers.

A run is a `Task`: a scenario seed, a whole fault schedule, and optionally the checkpoint
it branches from. It runs without a recorder but with syscall tracing on (the signal
needs the syscall results), feeds every event to a `SignalCollector`, reads the coverage
bitmaps at each checkpoint and at the end, and writes its checkpoints to its own scratch
file, so that any of them can become a frontier entry. The result (`Outcome`) is plain
data: the run's summary, each signal with the tick it first appeared, and the collector's
state at each checkpoint.

`RoundRunner.run_round` runs a list of tasks, `jobs` at a time in forked workers (they
inherit the loaded programs, as `record --seeds` and the shrinker's workers do), and
returns the outcomes in task order whatever order they finish in.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from chaosreplay.errors import ChaosReplayError
from chaosreplay.explore.coverage import CoverageMaps, adopt_maps, edges, known_maps
from chaosreplay.explore.signals import CollectorState, Signal, SignalCollector
from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.runs.schedules import resume_with_faults, with_faults
from chaosreplay.sim.checkpoint import SimCheckpoint
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import VmmError

SCRATCH_KIND = "chaosreplay.explore-checkpoints"  # manifest kind of the scratch files
OPEN_READERS = 32  # a worker never learns which files were retired: it keeps the newest


@dataclass(frozen=True)
class BranchPoint:
    """Where a branch starts: a checkpoint of an earlier run and what it carried."""

    path: str
    tick: int
    collector: CollectorState
    maps: CoverageMaps


@dataclass(frozen=True)
class Task:
    """One run to carry out."""

    run: int  # the run's number, in decision order
    seed: int  # the scenario seed
    faults: tuple[Fault, ...]  # the whole schedule
    start: BranchPoint | None  # None: from the beginning
    scratch: str  # where the run writes its checkpoints
    end_tick: int | None = None  # end the run here rather than at the scenario's end


@dataclass
class Outcome:
    """What a run found (plain data; it crosses process boundaries)."""

    run: int
    start_tick: int
    end_tick: int = 0
    summary: dict[str, Any] | None = None
    error: str | None = None
    gate: int | None = None
    signals: dict[Signal, tuple[int, int]] = field(default_factory=dict)  # -> (tick, node)
    checkpoints: list[tuple[int, CollectorState]] = field(default_factory=list)
    maps: CoverageMaps = field(default_factory=dict)
    wall_seconds: float = 0.0

    @property
    def failed(self) -> bool:
        """A bug, crash or hang (or the run could not be carried out)."""
        return self.error is not None or bool(self.summary and self.summary["failed"])

    @property
    def simulated_ticks(self) -> int:
        """Virtual time this run simulated itself (a branch: only after its checkpoint)."""
        return max(0, self.end_tick - self.start_tick)


@dataclass(frozen=True)
class RunJob:
    """What every run shares; forked workers inherit it."""

    scenario: Scenario  # explicit schedules are put in per task
    images: list[ProgramImage]
    hang_seconds: float = 10.0


class Readers:
    """Open checkpoint files by path, one reader each per process."""

    def __init__(self) -> None:
        self._open: dict[str, RecordingReader] = {}

    def get(self, path: str) -> RecordingReader:
        """The open reader of a file."""
        reader = self._open.pop(path, None)
        if reader is None:
            reader = RecordingReader(path)
            while len(self._open) >= OPEN_READERS:
                self._open.pop(next(iter(self._open))).close()
        self._open[path] = reader  # most recently used last
        return reader

    def forget(self, keep: set[str]) -> None:
        """Close the readers of files not in `keep` (they are about to be deleted)."""
        for path in [p for p in self._open if p not in keep]:
            self._open.pop(path).close()

    def close(self) -> None:
        """Close every reader."""
        self.forget(set())


def run_task(job: RunJob, readers: Readers, task: Task) -> Outcome:
    """Carry out one run (see the module docstring)."""
    started = time.perf_counter()
    outcome = Outcome(task.run, task.start.tick if task.start else 0)
    try:
        _run(job, readers, task, outcome)
    except (ChaosReplayError, OSError) as exc:
        outcome.error = str(exc)
        if os.path.exists(task.scratch):
            os.unlink(task.scratch)
    outcome.wall_seconds = time.perf_counter() - started
    return outcome


def _run(job: RunJob, readers: Readers, task: Task, outcome: Outcome) -> None:
    base = job.scenario.with_seed(task.seed)
    holder: list[Simulation] = []

    def read_payload(node: int, address: int, length: int) -> bytes | None:
        try:
            return holder[0].nodes[node].process.vm.read(address, length)
        except (VmmError, IndexError):
            return None  # never populate guest pages from here (it would change the run)

    collector = SignalCollector(task.start.collector if task.start else None, read_payload)
    kwargs: dict[str, Any] = {"sink": collector, "trace_syscalls": True, "keep_going": False,
                              "hang_seconds": job.hang_seconds}
    if task.start is None:
        sim = Simulation(with_faults(base, task.faults), job.images, **kwargs)
    else:
        reader = readers.get(task.start.path)
        sim, info = resume_with_faults(reader, base, job.images, task.faults, task.start.tick,
                                       **kwargs)
        if info is None or info.tick != task.start.tick:
            raise ChaosReplayError(f"{task.start.path}: no checkpoint at tick "
                                   f"{task.start.tick} to branch from")
        adopt_maps(sim, task.start.maps)
        for node in sim.nodes:
            node.forget_snapshots()  # this run's first checkpoint then copies every page
    if task.end_tick is not None:
        sim.end_ns = min(sim.end_ns, task.end_tick * NS_PER_TICK)
    holder.append(sim)
    with RecordingWriter(task.scratch, {"kind": SCRATCH_KIND}) as writer:
        last: list[int | None] = [None]

        def on_checkpoint(c: SimCheckpoint) -> None:
            """Store the checkpoint and note the coverage and the collector's state there."""
            last[0] = writer.add_checkpoint(c.tick, 0, c.digest, c.blobs, c.pages(),
                                            base=last[0])
            for signal in sorted(edges(sim)):
                collector.note(signal, c.tick)
            outcome.checkpoints.append((c.tick, collector.state.copy()))

        sim.on_checkpoint = on_checkpoint
        result = sim.run()
        for signal in sorted(edges(sim)):
            collector.note(signal, result.end_tick)
        outcome.summary = result.summary()
        writer.close(outcome.summary)
    outcome.end_tick = result.end_tick
    outcome.gate = sim.engine.origin_tick
    outcome.signals = collector.first_seen
    outcome.maps = {**(task.start.maps if task.start else {}), **known_maps(sim)}


# -- worker processes ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(job: RunJob) -> None:
    _WORKER.update(job=job, readers=Readers())


def _work(task: Task) -> Outcome:
    return run_task(_WORKER["job"], _WORKER["readers"], task)


class RoundRunner:
    """Runs rounds of tasks, in this process (jobs 1) or in `jobs` forked workers."""

    def __init__(self, job: RunJob, jobs: int) -> None:
        self.job, self.jobs = job, jobs
        self._readers = Readers()
        self._pool: Any = None

    def run_round(self, tasks: Sequence[Task]) -> list[Outcome]:
        """Every task's outcome, in task order."""
        if self.jobs <= 1 or len(tasks) <= 1:
            return [run_task(self.job, self._readers, t) for t in tasks]
        if self._pool is None:
            context = multiprocessing.get_context("fork")
            self._pool = context.Pool(self.jobs, initializer=_init_worker, initargs=(self.job,))
        return list(self._pool.map(_work, tasks, chunksize=1))

    def forget(self, keep: set[str]) -> None:
        """Close this process's readers of files not in `keep`."""
        self._readers.forget(keep)

    def close(self) -> None:
        """Stop the workers and close the readers."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._readers.close()
