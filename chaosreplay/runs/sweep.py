"""Many seeds of one scenario, in parallel worker processes.

Each seed first runs lean (no recorder, no syscall tracing, no checkpoints). A failing seed
is, when asked, run once more with the recorder on: the run is deterministic, so that
second run is the same run, and only failures pay for a recording. Results come back in
seed order whatever order the workers finish in.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.elf import ProgramImage


@dataclass(frozen=True)
class SeedOutcome:
    """What one seed's run found."""

    seed: int
    failed: bool
    reason: str
    end_tick: int
    events: int
    bugs: list[str] = field(default_factory=list)  # messages of the first violations
    failures: list[str] = field(default_factory=list)  # "crash: ...", "hang: ..."
    recording: str | None = None  # kept recording of a failing run
    wall_seconds: float = 0.0
    error: str | None = None  # the run could not be carried out (e.g. a VM failure)
    outcome: str = ""  # the verdict in words (sim/outcome.py), as `record` prints it

    @property
    def signature(self) -> str:
        """A short description of what failed first ("" when nothing did)."""
        if self.error:
            return f"error: {self.error}"
        return (self.bugs or self.failures or [""])[0]


@dataclass(frozen=True)
class SweepJob:
    """What every seed of a sweep shares."""

    scenario: Scenario
    images: list[ProgramImage]
    keep_failing: str | None
    hang_seconds: float
    keep_going: bool


def run_seed(job: SweepJob, seed: int) -> SeedOutcome:
    """One seed: a lean run, and a recording into job.keep_failing if it fails."""
    from chaosreplay.errors import ChaosReplayError
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.sim.outcome import outcome_words
    from chaosreplay.sim.simulation import Simulation

    started = time.perf_counter()
    scenario = job.scenario.with_seed(seed)
    try:
        lean = replace(scenario, checkpoint_interval=0)
        result = Simulation(lean, job.images, trace_syscalls=False, keep_going=job.keep_going,
                            hang_seconds=job.hang_seconds).run()
        recording = None
        if result.failed and job.keep_failing is not None:
            path = Path(job.keep_failing) / f"seed-{seed}.ccr"
            result = record_run(scenario, job.images, path,
                                RunOptions(keep_going=job.keep_going,
                                           hang_seconds=job.hang_seconds))
            recording = str(path)
    except (ChaosReplayError, OSError) as exc:
        return SeedOutcome(seed, True, "error", 0, 0, error=str(exc),
                           wall_seconds=time.perf_counter() - started,
                           outcome=f"FAILED: the run could not be carried out: {exc}")
    summary = result.summary()
    return SeedOutcome(
        seed, result.failed, result.reason, result.end_tick, result.events,
        [b.message for b in result.bugs],
        [f"{f.kind}: {f.detail}" for f in result.failures],
        recording, time.perf_counter() - started,
        outcome=outcome_words(summary, scenario.duration))


_JOB: SweepJob | None = None


def _init_worker(job: SweepJob) -> None:
    global _JOB
    _JOB = job


def _worker(seed: int) -> SeedOutcome:
    assert _JOB is not None
    return run_seed(_JOB, seed)


def sweep(scenario: Scenario, images: list[ProgramImage], seeds: Iterable[int], jobs: int = 1,
          keep_failing: Path | None = None, hang_seconds: float = 10.0, keep_going: bool = False,
          on_outcome: Callable[[SeedOutcome], Any] | None = None) -> list[SeedOutcome]:
    """Run every seed; `jobs` worker processes (1: in this process)."""
    if keep_failing is not None:
        make_keep_folder(keep_failing)
    job = SweepJob(scenario, images, None if keep_failing is None else str(keep_failing),
               hang_seconds, keep_going)
    outcomes = []
    for outcome in _outcomes(job, list(seeds), jobs):
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return sorted(outcomes, key=lambda o: o.seed)


def make_keep_folder(keep_failing: Path) -> None:
    """Create the --keep-failing folder, or say in one line why it cannot be."""
    try:
        keep_failing.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RecordingError(f"{keep_failing}: cannot create the folder for failing "
                             f"recordings ({exc.strerror})") from None


def _outcomes(job: SweepJob, seeds: list[int], jobs: int) -> Iterator[SeedOutcome]:
    if jobs <= 1 or len(seeds) <= 1:
        for seed in seeds:
            yield run_seed(job, seed)
        return
    # fork: the workers inherit the loaded programs; each opens its own VMs.
    context = multiprocessing.get_context("fork")
    with context.Pool(min(jobs, len(seeds)), initializer=_init_worker, initargs=(job,)) as pool:
        yield from pool.imap_unordered(_worker, seeds)


def default_jobs() -> int:
    """One worker per CPU this process may use."""
    return max(1, len(os.sched_getaffinity(0)))


MAX_SEEDS = 1_000_000  # one sweep; a larger one is many sweeps (and days of runs)
MAX_SEED = 2**64 - 1


def parse_seeds(text: str) -> list[int]:
    """"1-500", "3", "1,5,9-12" -> the seeds, in the order written (ValueError if malformed)."""
    seeds: list[int] = []
    for part in text.split(","):
        low, dash, high = part.strip().partition("-")
        if not low.isascii() or not low.isdigit() or (dash and not (high.isascii()
                                                                    and high.isdigit())):
            raise ValueError(f"expected seeds like 1-500 or 1,5,9-12, got {text!r}")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise ValueError(f"seed range {part.strip()!r} ends before it starts")
        if last > MAX_SEED:
            raise ValueError(f"seed {last} is larger than the largest seed, 2^64-1")
        if len(seeds) + last - first + 1 > MAX_SEEDS:
            raise ValueError(f"seeds {text!r} are more than {MAX_SEEDS:,} seeds in one sweep")
        seeds.extend(range(first, last + 1))
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds {text!r} name a seed twice")
    return seeds
