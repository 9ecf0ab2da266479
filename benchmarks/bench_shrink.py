"""Shrinking failing Raft runs with 50 or more faults: faults before/after, runs, time.

    python benchmarks/bench_shrink.py                  # stale_term, no_truncate, early_commit
    python benchmarks/bench_shrink.py --variants stale_term --jobs 1

A second table counts, per shrinking step (ddmin, single fault, later start, shorter,
milder, network, earlier failure), in how many shrinks it kept a candidate, how many
candidates it kept in all, and the candidate runs it cost.

For each planted-bug variant, the first seeds (from --first-seed on) whose run of the
scenario below fails after at least --min-faults faults have started are recorded, then
shrunk with `shrink_recording` (`jobs` workers, still_fails = same triage signature). The
scenario is the 3-node demo under a heavy mix: partitions and pauses now and then, and
several short network faults a second, so a failure around 10 virtual seconds comes after
50-100 injected faults, most of them irrelevant to it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.runs.schedules import run_faults
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.triage.classify import signature_from_summary
from chaosreplay.triage.shrink import STEP_NAMES, ShrinkReport, shrink_recording

SCENARIO_TOML = """\
duration = "30s"
checkpoint_interval = "1s"

[[nodes]]
program = "builtin:demo"
count = 3
name = "raft"

[network]
latency_ns = "1ms"
jitter_ns = "1ms"

[faults.random]
max_concurrent = 6
ranges.loss = { duration = [100, 1000] }
ranges.latency = { duration = [100, 1000] }
ranges.reorder = { duration = [100, 1000] }
ranges.duplicate = { duration = [100, 1000] }
ranges.corrupt = { duration = [100, 1000] }
ranges.clock_skew = { duration = [100, 1000] }
ranges.jitter = { duration = [100, 1000] }

[faults.random.rates]
partition = 0.1
pause = 0.05
loss = 1.0
latency = 1.0
reorder = 1.0
duplicate = 1.0
corrupt = 0.5
jitter = 0.5
clock_skew = 0.5
"""
VARIANTS = ("stale_term", "no_truncate", "early_commit")


def heavy_scenario(variant: str, seed: int) -> Scenario:
    """The benchmark scenario with one variant of the demo program and one seed."""
    base = loads_scenario(SCENARIO_TOML, "bench_shrink scenario").with_seed(seed)
    return replace(base, nodes=(replace(base.nodes[0], args=(variant,)),))


def started_faults(scenario: Scenario, images: list[Any]) -> tuple[bool, int, int]:
    """(failed, failure tick, faults started by then) of a lean run of the scenario."""
    sim = Simulation(replace(scenario, checkpoint_interval=0), images, trace_syscalls=False)
    result = sim.run()
    gate = sim.engine.origin_tick
    started = sum(1 for f in run_faults(scenario)
                  if gate is not None and gate + f.at <= result.end_tick)
    return result.failed, result.end_tick, started


def find_runs(variant: str, first_seed: int, count: int, min_faults: int,
              limit: int = 60) -> list[int]:
    """The first `count` seeds from first_seed failing after >= min_faults started faults."""
    images = resolve_images(heavy_scenario(variant, 0), Path.cwd())
    seeds = []
    for seed in range(first_seed, first_seed + limit):
        failed, _, started = started_faults(heavy_scenario(variant, seed), images)
        if failed and started >= min_faults:
            seeds.append(seed)
            if len(seeds) == count:
                break
    return seeds


def shrink_one(variant: str, seed: int, folder: Path, jobs: int,
               on_progress: Any = None) -> ShrinkReport:
    """Record one failing run and shrink it (still_fails: the same triage signature)."""
    scenario = heavy_scenario(variant, seed)
    images = resolve_images(scenario, Path.cwd())
    path = folder / f"{variant}-{seed}.ccr"
    signature = signature_from_summary(record_run(scenario, images, path, RunOptions()).summary())
    return shrink_recording(path, lambda s: signature_from_summary(s) == signature,
                            folder / f"{variant}-{seed}-min.ccr", jobs=jobs,
                            on_progress=on_progress)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--jobs", "-j", type=int, default=2)
    parser.add_argument("--first-seed", type=int, default=1)
    parser.add_argument("--per-variant", type=int, default=1)
    parser.add_argument("--min-faults", type=int, default=50)
    parser.add_argument("--verbose", "-v", action="store_true", help="print the shrink log")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args()
    print("| variant | seed | faults scheduled | faults before → after | ticks before → after "
          "| events before → after | candidate runs (cancelled) | 1-minimal | wall s | CPU s |")
    print("|---|---:|---:|---|---|---|---:|---|---:|---:|")
    reports = []
    with tempfile.TemporaryDirectory(prefix="bench-shrink-") as tmp:
        for variant in args.variants.split(","):
            for seed in find_runs(variant, args.first_seed, args.per_variant, args.min_faults):
                progress = (lambda line: print(f"  {line}", file=sys.stderr)) \
                    if args.verbose else None
                r = shrink_one(variant, seed, Path(tmp), args.jobs, progress)
                reports.append({"variant": variant, "seed": seed, **r.to_dict()})
                print(f"| {variant} | {seed} | {r.faults_scheduled} | {r.faults_before} → "
                      f"{r.faults_after} | {r.ticks_before} → {r.ticks_after} | "
                      f"{r.events_before:,} → {r.events_after:,} | {r.candidates} "
                      f"({r.cancelled}) | {'yes' if r.one_minimal else 'no'} | {r.seconds:.1f} | "
                      f"{r.cpu_seconds:.0f} |", flush=True)
    print_steps(reports)
    if args.json:
        args.json.write_text(json.dumps(reports, indent=1))


def print_steps(reports: list[dict[str, Any]]) -> None:
    """How often each step helped: shrinks where it kept a candidate, kept in all, runs."""
    print(f"\nsteps over {len(reports)} shrinks:\n")
    print("| step | shrinks it helped | candidates kept | candidate runs |")
    print("|---|---:|---:|---:|")
    for name in STEP_NAMES:
        counts = [r["steps"].get(name, {"runs": 0, "helped": 0}) for r in reports]
        print(f"| {name} | {sum(1 for c in counts if c['helped'])} | "
              f"{sum(c['helped'] for c in counts)} | {sum(c['runs'] for c in counts)} |")


if __name__ == "__main__":
    main()
