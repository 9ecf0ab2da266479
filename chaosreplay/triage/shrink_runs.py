"""Candidate runs for the shrinker: lean, bounded, started late, several at once, in order.

A candidate is a fault list, with the recording's network or a changed one. It starts from
the latest checkpoint at or before the first tick where it differs from a run whose
checkpoints are at hand, its *base*: the original recording, or an earlier candidate that
still failed. Each candidate writes its own checkpoints to a scratch file as it runs (they
cost a few per cent of the run), because once the shrinker keeps a candidate, the next ones
differ from *it* only from their first removed fault on; measured against the original they
would differ from the first fault the shrinker ever removed, and nearly all of them would
start at the beginning. A base's file begins at its first own checkpoint; before that its
parent's checkpoints hold, up to the tick where the two schedules part (`agrees_until`).

The runs are lean (no recorder, no syscall tracing), stop at the first failure, and end at
the job's bound. `CandidateRunner.first_failing` answers which candidate of a list fails
first in list order; with several jobs the list runs in forked workers, and once the answer
is known the rest are cancelled, so the answer never depends on which worker was faster.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.runs.record_replay import RunOptions
from chaosreplay.runs.schedules import first_change_tick, resume_with_faults, with_faults
from chaosreplay.sim.checkpoint import SimCheckpoint
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.scenario import NetworkConfig, Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.vm.elf import ProgramImage

StillFails = Callable[[dict[str, Any]], bool]
HANG_SECONDS = RunOptions().hang_seconds
SCRATCH_KIND = "chaosreplay.triage.shrink-checkpoints"  # manifest kind of the scratch files


class OutOfBudget(Exception):
    """The time budget ran out before the answer was known."""


class _Stopped(Exception):
    """Raised inside a candidate run to end it (cancelled, or out of budget)."""


@dataclass(frozen=True)
class Candidate:
    """A schedule to try; network None: the recording's."""

    faults: tuple[Fault, ...]
    network: NetworkConfig | None = None


class ExitWatch:
    """An event sink keeping what a run's summary leaves out: exits and stderr writes.

    A lean run has no recorder, and `RunResult.summary()` lists neither a node's exit
    status nor its output; triage counts both as failures where the scenario says so
    (classify.NodeRule), so the shrinker's runs add them to their summaries."""

    def __init__(self) -> None:
        self.exits: list[dict[str, Any]] = []
        self.stderr: list[dict[str, Any]] = []

    def __call__(self, tick: int, vtime_ns: int, node: int, kind: str,
                 fields: dict[str, Any]) -> None:
        if kind == "exit":
            self.exits.append({"node": node, "tick": tick, "code": fields.get("code")})
        elif kind == "output" and fields.get("fd") == 2 and all(
                e["node"] != node for e in self.stderr):
            self.stderr.append({"node": node, "tick": tick})

    def summary(self, summary: dict[str, Any]) -> dict[str, Any]:
        """The run's summary with its exits and first stderr write per node."""
        return {**summary, "exits": self.exits, "stderr": self.stderr}


@dataclass(frozen=True)
class Base:
    """A run whose checkpoints candidates can start from."""

    path: str
    faults: tuple[Fault, ...]
    network: NetworkConfig | None
    parent: Base | None = None
    agrees_until: int = 0  # the parent's checkpoints up to this tick belong to this run too


@dataclass(frozen=True)
class RunJob:
    """What every candidate run shares; forked workers inherit it."""

    scenario: Scenario  # the recording's, stopping at the first failure
    images: list[ProgramImage]
    gate: int | None
    failure_tick: int  # the original run's first failure
    bound_tick: int  # candidates end here; a later failure counts as passing


class _Readers:
    """Open recordings by path, one reader each per process (nothing shared across forks)."""

    def __init__(self) -> None:
        self._open: dict[str, RecordingReader] = {}

    def get(self, path: str) -> RecordingReader:
        """The open reader of a recording."""
        reader = self._open.get(path)
        if reader is None:
            reader = self._open[path] = RecordingReader(path)
        return reader

    def close(self) -> None:
        """Close every reader."""
        for reader in self._open.values():
            reader.close()
        self._open.clear()


def _start(job: RunJob, readers: _Readers, cand: Candidate,
           base: Base | None) -> tuple[Simulation, int]:
    """The candidate's simulation, from the latest usable checkpoint; and the first tick
    where it differs from its base (0 without one)."""
    kwargs: dict[str, Any] = {"trace_syscalls": False, "keep_going": False,
                              "hang_seconds": HANG_SECONDS}
    scenario = replace(job.scenario, network=cand.network or job.scenario.network)
    if base is None or base.network != cand.network:
        return Simulation(with_faults(scenario, cand.faults), job.images, **kwargs), 0
    # Past the original failure a keep-going recording's checkpoints hold bugs already.
    change = min(first_change_tick(base.faults, cand.faults, job.gate, job.failure_tick),
                 job.failure_tick)
    tick, at = change, base
    while at is not None:
        reader = readers.get(at.path)
        if reader.checkpoint_before(tick) is not None:
            sim, _ = resume_with_faults(reader, scenario, job.images, cand.faults, tick, **kwargs)
            for node in sim.nodes:
                node.forget_snapshots()  # this run's first checkpoint then copies every page
            return sim, change
        tick, at = min(tick, at.agrees_until), at.parent
    return Simulation(with_faults(scenario, cand.faults), job.images, **kwargs), change


def run_candidate(job: RunJob, readers: _Readers, cand: Candidate, base: Base | None,
                  should_stop: Callable[[], bool],
                  checkpoints_to: str) -> tuple[dict[str, Any], Base]:
    """Run one candidate, writing its checkpoints to a scratch file; (summary, the run as a
    base for later candidates). Raises _Stopped when should_stop() turns true."""
    sim, change = _start(job, readers, cand, base)
    sim.end_ns = min(sim.end_ns, job.bound_tick * NS_PER_TICK)
    watch = ExitWatch()
    sim.sink = watch

    def check(_: Simulation) -> None:
        """Progress hook: end the run once it is not needed any more."""
        if should_stop():
            raise _Stopped

    try:
        with RecordingWriter(checkpoints_to, {"kind": SCRATCH_KIND}) as writer:
            last: list[int | None] = [None]

            def on_checkpoint(c: SimCheckpoint) -> None:
                """Store the checkpoint, based on the previous one."""
                # seq 0: the file holds checkpoints only (they are looked up by tick)
                last[0] = writer.add_checkpoint(c.tick, 0, c.digest, c.blobs, c.pages(),
                                                base=last[0])

            sim.on_checkpoint, sim.on_progress = on_checkpoint, check
            summary = watch.summary(sim.run().summary())
            writer.close(summary)
    except BaseException:
        os.unlink(checkpoints_to)
        raise
    parent = base if base is not None and base.network == cand.network else None
    return summary, Base(checkpoints_to, cand.faults, cand.network, parent, change)


# -- worker processes ------------------------------------------------------------------------

_WORKER: dict[str, Any] = {}
Outcome = tuple[dict[str, Any] | None, bool, Base | None]  # summary (None: cancelled), started
# still fails (None: cancelled), started, the base it made, its failure tick
Judged = tuple[bool | None, bool, Base | None, int | None]


def _init_worker(job: RunJob, stale: Any) -> None:
    """A worker's state: the job, the shared cancel counter, its own readers."""
    _WORKER.update(job=job, stale=stale, readers=_Readers())


def _work(task: tuple[int, Candidate, Base | None, float | None, str]) -> Outcome:
    """Run one candidate in a worker, unless its step is already decided."""
    batch, cand, base, deadline, path = task
    stale = _WORKER["stale"]

    def should_stop() -> bool:
        return stale.value >= batch or (deadline is not None and time.monotonic() > deadline)

    if should_stop():
        return None, False, None
    try:
        summary, made = run_candidate(_WORKER["job"], _WORKER["readers"], cand, base,
                                      should_stop, path)
    except _Stopped:
        return None, True, None
    return summary, True, made


class CandidateRunner:
    """Runs candidates (each schedule once, in order, `jobs` at a time) against still_fails."""

    def __init__(self, job: RunJob, root: Base, still_fails: StillFails, jobs: int,
                 deadline: float | None, scratch: str,
                 failure_tick: Callable[[dict[str, Any]], int] | None = None) -> None:
        self.job, self.base, self.still_fails = job, root, still_fails
        self.jobs, self.deadline, self.scratch = jobs, deadline, scratch
        self.failure_tick = failure_tick
        self.cache: dict[Candidate, bool] = {}
        self.ticks: dict[Candidate, int] = {}  # the failure tick of each failing candidate
        self.runs = self.cancelled = self.hits = 0
        self._files = 0
        self._batch = 0
        self._readers = _Readers()
        self._stale: Any = None
        self._pool: Any = None

    def close(self) -> None:
        """Stop the workers and close the recordings."""
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None
        self._readers.close()

    def out_of_time(self) -> bool:
        """Whether the budget is spent."""
        return self.deadline is not None and time.monotonic() > self.deadline

    def first_failing(self, cands: Sequence[Candidate]) -> int | None:
        """Index of the first candidate (in order) that still fails, None if none does; the
        winner's run becomes the base of later candidates."""
        if self.out_of_time():
            raise OutOfBudget
        known = next((i for i, c in enumerate(cands) if self.cache.get(c)), len(cands))
        todo = [i for i in range(known) if cands[i] not in self.cache]
        self.hits += sum(1 for c in cands[:known + 1] if c in self.cache)
        if todo:
            runs = (self._parallel(cands, todo) if self.jobs > 1 and len(todo) > 1
                    else self._inline(cands, todo))
            kept = False
            for i, (fails, started, made, tick) in runs:
                self.runs += started
                self.cancelled += started and fails is None
                if fails is not None:
                    self.cache[cands[i]] = fails
                if fails and tick is not None:
                    self.ticks[cands[i]] = tick
                if fails and not kept and made is not None:
                    self.base, kept = made, True
                elif made is not None:
                    os.unlink(made.path)  # the checkpoints of a run not kept
        for i, cand in enumerate(cands):
            if cand not in self.cache:
                raise OutOfBudget  # stopped by the deadline before the answer was known
            if self.cache[cand]:
                return i
        return None

    def _path(self) -> str:
        """A new scratch file name."""
        self._files += 1
        return os.path.join(self.scratch, f"candidate-{self._files}.ccr")

    def _judge(self, outcome: Outcome) -> Judged:
        """An outcome with still_fails applied (once, in this process)."""
        summary, started, made = outcome
        if summary is None:
            return None, started, made, None
        fails = bool(self.still_fails(summary))
        tick = (self.failure_tick(summary) if fails and self.failure_tick is not None
                else None)
        return fails, started, made, tick

    def _inline(self, cands: Sequence[Candidate], todo: list[int]) -> list[tuple[int, Judged]]:
        """Run candidates here, in order, up to the first that still fails."""
        out: list[tuple[int, Judged]] = []
        for i in todo:
            try:
                summary, made = run_candidate(self.job, self._readers, cands[i], self.base,
                                              self.out_of_time, self._path())
            except _Stopped:
                out.append((i, (None, True, None, None)))
                break
            out.append((i, self._judge((summary, True, made))))
            if out[-1][1][0]:
                break
        return out

    def _parallel(self, cands: Sequence[Candidate],
                  todo: list[int]) -> list[tuple[int, Judged]]:
        """Run candidates in the workers; wait in order up to the first that still fails."""
        if self._pool is None:
            # fork: workers inherit the loaded programs and the job; each makes its own VMs.
            context = multiprocessing.get_context("fork")
            self._stale = context.Value("q", 0, lock=False)
            self._pool = context.Pool(self.jobs, initializer=_init_worker,
                                      initargs=(self.job, self._stale))
        self._batch += 1
        batch = self._batch
        pending = [(i, self._pool.apply_async(
            _work, ((batch, cands[i], self.base, self.deadline, self._path()),))) for i in todo]
        out: list[tuple[int, Judged]] = []
        try:
            for i, result in pending:
                out.append((i, self._judge(result.get())))
                if out[-1][1][0] is not False:
                    break  # decided, or out of time: the rest is not needed
        finally:
            self._stale.value = batch
        # Wait for the cancelled ones (each checks every 100 virtual ticks: milliseconds),
        # so their scratch files are gone and the counts are right.
        return out + [(i, self._judge(result.get())) for i, result in pending[len(out):]]
