"""Benchmark whole simulations of the built-in demo: recording, replay, virtual-time speed.

    python benchmarks/bench_simulation.py [--quick] [--duration SECONDS] [--seeds 0,1,2]
                                          [--repeats N] [--profile]

Measures, in one run (issue 4), on the built-in demo scenario (3 Raft nodes, random
faults, 60 virtual seconds unless --duration says otherwise), for each seed:
(1) record overhead: `record_run` (RecordingWriter sink, syscall tracing, checkpoints
    captured and written) vs the same run with recording off (no sink, no tracing,
    `checkpoint_interval=0`), and an intermediate "drop" run (tracing on, every event
    handed to a sink that drops it, checkpoints captured but not written), which splits
    the overhead into producing events + capturing checkpoints vs writing them;
(2) `replay_run` of each recording vs the `record_run` that made it;
(3) virtual seconds per wall second, events/s and VM exits/s.
Variants are interleaved (their order rotates every repetition) and each figure is a
median over repetitions. A separate, unmeasured pass wraps `Vm.run` and the recording
hooks with timers to split one recorded run's wall time (share inside KVM_RUN, checkpoint
capture, writer); `--profile` adds cProfile tables (top functions by tottime).
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import gc
import io
import os
import platform
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaosreplay.recording import RecordingWriter
from chaosreplay.runs import record_replay as runs
from chaosreplay.runs.record_replay import RunOptions, record_run, replay_run
from chaosreplay.sim import checkpoint as sim_state
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import Vm

VARIANTS = ("off", "drop", "record", "replay")


def demo(duration_s: float | None = None, seed: int = 0) -> Scenario:
    """The built-in demo scenario, with its duration (virtual seconds) and seed replaced."""
    scenario = demo_scenario()
    if duration_s is not None:
        scenario = dataclasses.replace(scenario, duration=round(duration_s * 1e9 / NS_PER_TICK))
    return dataclasses.replace(scenario, seed=seed)


def exit_count(sim: Simulation) -> int:
    """VM exits of every node of a simulation so far."""
    return sum(node.process.vm.stats().exits for node in sim.nodes)


# -- one timed run of each variant ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Run:
    """One timed run: wall seconds and what it did."""

    seconds: float
    events: int  # events the simulation produced (counted even without a sink)
    end_tick: int
    reason: str
    exits: int | None = None  # None where the benchmark cannot see the Simulation


def _drop(*_event: Any) -> None:
    """A sink that throws every event away."""


def run_off(scenario: Scenario, images: Sequence[ProgramImage]) -> Run:
    """Recording off: no sink, no syscall tracing, no checkpoints (nothing recorder-related)."""
    gc.collect()
    start = time.perf_counter()
    sim = Simulation(dataclasses.replace(scenario, checkpoint_interval=0), images, sink=None,
                     trace_syscalls=False, on_checkpoint=None)
    result = sim.run()
    seconds = time.perf_counter() - start
    return Run(seconds, result.events, result.end_tick, result.reason, exit_count(sim))


def run_drop(scenario: Scenario, images: Sequence[ProgramImage]) -> Run:
    """Events produced and traced but dropped; checkpoints captured (digests) but not written."""
    gc.collect()
    start = time.perf_counter()
    sim = Simulation(scenario, images, sink=_drop, trace_syscalls=True, on_checkpoint=None)
    result = sim.run()
    seconds = time.perf_counter() - start
    return Run(seconds, result.events, result.end_tick, result.reason, exit_count(sim))


def run_record(scenario: Scenario, images: Sequence[ProgramImage], path: Path) -> Run:
    """Exactly what `chaosreplay record` does: record_run with the default options."""
    gc.collect()
    start = time.perf_counter()
    result = record_run(scenario, list(images), path, RunOptions())
    seconds = time.perf_counter() - start
    return Run(seconds, result.events, result.end_tick, result.reason)


def run_replay(path: Path) -> Run:
    """replay_run of a recording; raises unless it reproduced every event and checkpoint."""
    gc.collect()
    start = time.perf_counter()
    report = replay_run(path)
    seconds = time.perf_counter() - start
    if not report.identical or not report.complete_recording:
        raise RuntimeError(f"replay of {path} differs: {report}")
    return Run(seconds, report.events_checked, -1, "replayed")


# -- (1)-(3) per seed -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeedResult:
    """Median wall seconds of each variant for one seed, and what the runs did."""

    seed: int
    repeats: int
    virtual_s: float
    off_s: float
    drop_s: float
    record_s: float
    replay_s: float
    events: int  # recorded events
    off_events: int  # events counted with recording off (no syscall or checkpoint events)
    exits: int  # VM exits, all nodes (the same in every variant: checked)
    recording_bytes: int
    end_reason: str

    @property
    def record_ratio(self) -> float:
        """record / off."""
        return self.record_s / self.off_s

    @property
    def drop_ratio(self) -> float:
        """drop / off: producing events and capturing checkpoints, nothing written."""
        return self.drop_s / self.off_s

    @property
    def replay_ratio(self) -> float:
        """replay / record."""
        return self.replay_s / self.record_s

    def speedup(self, seconds: float) -> float:
        """Virtual seconds per wall second for a run that took `seconds`."""
        return self.virtual_s / seconds


def _check_same_run(seed: int, runs: dict[str, list[Run]]) -> None:
    """Every variant must have simulated the same thing (same end, same exits)."""
    ends = {(r.end_tick, r.reason) for name in ("off", "drop", "record") for r in runs[name]}
    exits = {r.exits for name in ("off", "drop") for r in runs[name]}
    if len(ends) != 1 or len(exits) != 1:
        raise RuntimeError(f"seed {seed}: the variants ran differently: ends {ends}, "
                           f"exits {exits}")


def bench_seeds(duration_s: float | None, seeds: Sequence[int], repeats: int,
                directory: Path) -> list[SeedResult]:
    """Off, drop, record and replay for each seed, interleaved; medians over repeats."""
    scenarios = {seed: demo(duration_s, seed) for seed in seeds}
    images = resolve_images(scenarios[seeds[0]], Path.cwd())
    paths = {seed: directory / f"seed{seed}.ccr" for seed in seeds}
    runs: dict[int, dict[str, list[Run]]] = {s: {v: [] for v in VARIANTS} for s in seeds}
    run_record(demo(0.5), images, directory / "warmup.ccr")  # imports, page cache, caches
    for rep in range(repeats):
        order = VARIANTS[rep % 4:] + VARIANTS[:rep % 4]  # rep 0 records before it replays
        for seed in seeds:
            scenario, path = scenarios[seed], paths[seed]
            for variant in order:
                if variant == "off":
                    run = run_off(scenario, images)
                elif variant == "drop":
                    run = run_drop(scenario, images)
                elif variant == "record":
                    run = run_record(scenario, images, path)
                else:
                    run = run_replay(path)
                runs[seed][variant].append(run)
    results = []
    for seed in seeds:
        r = runs[seed]
        _check_same_run(seed, r)
        record = r["record"][0]
        if any(run.events != record.events for run in r["drop"] + r["replay"]):
            raise RuntimeError(f"seed {seed}: drop/replay saw other event counts than record")
        median = {v: statistics.median(run.seconds for run in r[v]) for v in VARIANTS}
        results.append(SeedResult(
            seed, repeats, scenarios[seed].duration_ns / 1e9, median["off"], median["drop"],
            median["record"], median["replay"], record.events, r["off"][0].events,
            r["drop"][0].exits or 0, paths[seed].stat().st_size, record.reason))
    return results


def total(results: Sequence[SeedResult]) -> SeedResult:
    """All seeds together: sums of the per-seed medians."""
    def add(name: str) -> Any:
        return sum(getattr(r, name) for r in results)

    return SeedResult(-1, results[0].repeats, add("virtual_s"), add("off_s"), add("drop_s"),
                      add("record_s"), add("replay_s"), add("events"), add("off_events"),
                      add("exits"), add("recording_bytes"), "")


# -- where the time goes: timer wrappers, one unmeasured pass -------------------------------------


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Wall seconds of one run and of the parts the timer wrappers saw."""

    variant: str
    wall_s: float
    parts: dict[str, float]  # label -> seconds (calls of the wrapped function, inclusive)
    calls: dict[str, int]

    def share(self, label: str) -> float:
        """Part of the wall time spent in `label`."""
        return self.parts[label] / self.wall_s


@contextmanager
def _timed(owner: Any, attribute: str, label: str, parts: dict[str, float],
           calls: dict[str, int]) -> Iterator[None]:
    """Replace owner.attribute by a wrapper that adds its wall time to parts[label]."""
    original = getattr(owner, attribute)
    clock = time.perf_counter
    parts.setdefault(label, 0.0)
    calls.setdefault(label, 0)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = clock()
        try:
            return original(*args, **kwargs)
        finally:
            parts[label] += clock() - start
            calls[label] += 1

    setattr(owner, attribute, wrapper)
    try:
        yield
    finally:
        setattr(owner, attribute, original)


_WRAPPED: tuple[tuple[Any, str, str], ...] = (  # nested parts count in both
    (Simulation, "__init__", "set-up: Simulation() (VMs, initial snapshots)"),
    (Vm, "run", "KVM_RUN (Vm.run)"),
    (Simulation, "_record", "Simulation._record (sink included)"),
    (sim_state, "capture", "checkpoint capture"),
    (sim_state.SimCheckpoint, "pages", "checkpoint page copy"),
    (RecordingWriter, "append", "writer.append"),
    (RecordingWriter, "add_checkpoint", "writer.add_checkpoint"),
    (RecordingWriter, "close", "writer.close"),
    (runs._Comparer, "event", "replay sink: read + compare event"),
    (runs._Comparer, "checkpoint", "replay: compare checkpoint"),
)


def breakdown(variant: str, action: Callable[[], Any]) -> Breakdown:
    """Run action once with the timer wrappers installed."""
    parts: dict[str, float] = {}
    calls: dict[str, int] = {}
    gc.collect()
    with ExitStack() as stack:
        for owner, attribute, label in _WRAPPED:
            stack.enter_context(_timed(owner, attribute, label, parts, calls))
        start = time.perf_counter()
        action()
        wall = time.perf_counter() - start
    return Breakdown(variant, wall, parts, calls)


def bench_breakdown(duration_s: float | None, seed: int, directory: Path) -> list[Breakdown]:
    """One off, one recorded and one replayed run of a seed, each with the timer wrappers."""
    scenario = demo(duration_s, seed)
    images = resolve_images(scenario, Path.cwd())
    path = directory / f"breakdown{seed}.ccr"
    return [
        breakdown("off", lambda: run_off(scenario, images)),
        breakdown("record", lambda: run_record(scenario, images, path)),
        breakdown("replay", lambda: run_replay(path)),
    ]


def profile(duration_s: float | None, seed: int, directory: Path, top: int = 15) -> dict[str, str]:
    """cProfile of one off, one recorded and one replayed run: top functions by tottime."""
    scenario = demo(duration_s, seed)
    images = resolve_images(scenario, Path.cwd())
    path = directory / f"profile{seed}.ccr"
    out = {}
    actions: dict[str, Callable[[], Any]] = {
        "off": lambda: run_off(scenario, images),
        "record": lambda: run_record(scenario, images, path),
        "replay": lambda: run_replay(path)}
    for name, action in actions.items():
        profiler = cProfile.Profile()
        gc.collect()
        profiler.runcall(action)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(top)
        out[name] = text.getvalue()
    return out


# -- report ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes for one run of the benchmark."""

    duration_s: float | None  # None: the demo's own 60 s
    seeds: tuple[int, ...]
    repeats: int


FULL = Settings(duration_s=None, seeds=(0, 1, 2), repeats=3)
QUICK = Settings(duration_s=5.0, seeds=(0,), repeats=2)


def _met(value: float, target: float) -> str:
    """A verdict against an upper-bound target."""
    return "[green]met[/]" if value <= target else "[red]missed[/]"


def _print_results(console: Any, results: list[SeedResult], all_seeds: SeedResult) -> None:
    from rich.table import Table

    repeats = results[0].repeats
    table = Table(title=f"(1)+(2) wall seconds per run, median of {repeats}")
    for column in ("seed", "virtual s", "off", "drop", "record", "replay", "drop/off",
                   "record/off", "replay/record"):
        table.add_column(column, justify="right")
    for r in [*results, all_seeds]:
        table.add_row("all" if r.seed < 0 else str(r.seed), f"{r.virtual_s:g}",
                      f"{r.off_s:.2f}", f"{r.drop_s:.2f}", f"{r.record_s:.2f}",
                      f"{r.replay_s:.2f}", f"{r.drop_ratio:.3f}", f"{r.record_ratio:.3f}",
                      f"{r.replay_ratio:.3f}")
    console.print(table)

    table = Table(title="(3) throughput (medians; exits are the same in every variant)")
    for column in ("seed", "ended", "events", "events off", "VM exits", "recording bytes",
                   "virt s/s record", "virt s/s off", "events/s record", "exits/s record",
                   "exits/s off"):
        table.add_column(column, justify="right")
    for r in [*results, all_seeds]:
        table.add_row("all" if r.seed < 0 else str(r.seed), r.end_reason, f"{r.events:,}",
                      f"{r.off_events:,}", f"{r.exits:,}", f"{r.recording_bytes:,}",
                      f"{r.speedup(r.record_s):.2f}", f"{r.speedup(r.off_s):.2f}",
                      f"{r.events / r.record_s:,.0f}", f"{r.exits / r.record_s:,.0f}",
                      f"{r.exits / r.off_s:,.0f}")
    console.print(table)
    console.print(f"record / off = {all_seeds.record_ratio:.3f}×: target ≤ 1.10× "
                  f"{_met(all_seeds.record_ratio, 1.10)} (drop / off = "
                  f"{all_seeds.drop_ratio:.3f}×)")
    console.print(f"replay / record = {all_seeds.replay_ratio:.3f}×: target ≤ 1.1× "
                  f"{_met(all_seeds.replay_ratio, 1.1)}")


def _print_breakdown(console: Any, rows: list[Breakdown]) -> None:
    from rich.table import Table

    table = Table(title="where the wall time goes (one run each, timer wrappers installed)")
    table.add_column("part")
    for row in rows:
        table.add_column(f"{row.variant} s", justify="right")
        table.add_column("share", justify="right")
        table.add_column("calls", justify="right")
    table.add_row("wall", *[cell for row in rows for cell in (f"{row.wall_s:.2f}", "", "")])
    for label in rows[0].parts:
        cells = []
        for row in rows:
            seconds, count = row.parts[label], row.calls[label]
            cells += [f"{seconds:.2f}", f"{row.share(label):.1%}", f"{count:,}"] if count else \
                ["", "", ""]
        table.add_row(label, *cells)
    console.print(table)


def main() -> None:
    """Run (1)-(3) and the breakdown and print one table each."""
    from rich.console import Console

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5 virtual s, one seed, 2 repeats")
    parser.add_argument("--duration", type=float, help="virtual seconds (default: the demo's 60)")
    parser.add_argument("--seeds", help="comma-separated seeds (default 0,1,2)")
    parser.add_argument("--repeats", type=int, help="repetitions per variant (default 3)")
    parser.add_argument("--profile", action="store_true",
                        help="also print cProfile tables of one off, record and replay run")
    options = parser.parse_args()
    settings = QUICK if options.quick else FULL
    duration = options.duration if options.duration is not None else settings.duration_s
    seeds = (tuple(int(s) for s in options.seeds.split(",")) if options.seeds
             else settings.seeds)
    repeats = options.repeats or settings.repeats
    console = Console(width=180)
    console.print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
                  f"kernel {platform.release()}, demo scenario "
                  f"{demo(duration).duration_ns / 1e9:g} virtual s, seeds {seeds}, "
                  f"{repeats} repeats")
    with tempfile.TemporaryDirectory() as tmp:
        results = bench_seeds(duration, seeds, repeats, Path(tmp))
        _print_results(console, results, total(results))
        _print_breakdown(console, bench_breakdown(duration, seeds[0], Path(tmp)))
        if options.profile:
            for name, text in profile(duration, seeds[0], Path(tmp)).items():
                console.print(f"cProfile, {name}, seed {seeds[0]}, top by tottime:")
                print(text)


if __name__ == "__main__":
    main()
