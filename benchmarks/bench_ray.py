"""Seeds per minute of a sweep with -j 2 against the same sweep as Ray tasks on this
machine, and what one Ray task costs the scheduler.

    python benchmarks/bench_ray.py                    # 40 seeds of 20 s demo runs, 2 rounds
    python benchmarks/bench_ray.py --seeds 20 --duration 20s --rounds 1

The built-in Raft demo (its correct variant, random faults) runs the same seeds first with
`runs.sweep.sweep(jobs=2)` and then with `scaleout.sweep.ray_sweep` on a local Ray cluster
of 2 CPUs and 2 units of `kvm` (started once; its start-up is reported, not counted), the
two interleaved for --rounds rounds (ABBA) so that load from other work hits both alike. Then
--noops empty tasks asking for one `kvm` each go through the same task pool the sweep
uses: their wall time per task and slot is the per-task scheduling overhead a seed pays.
Prints what it measured on (commit, load) and a markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import time
from collections import deque
from dataclasses import replace
from pathlib import Path

from chaosreplay.runs.sweep import sweep
from chaosreplay.scaleout.cluster import KVM
from chaosreplay.scaleout.sweep import ray_sweep
from chaosreplay.scaleout.tasks import TaskPool
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.validation import KeyPath, expect_ticks


def _noop() -> int:
    """An empty task: what scheduling one costs."""
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=40)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--noops", type=int, default=400)
    args = parser.parse_args()
    import ray

    scenario = replace(demo_scenario(), duration=expect_ticks(args.duration,
                                                               KeyPath("--duration")))
    images = resolve_images(scenario, Path.cwd())
    seeds = list(range(1, args.seeds + 1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    print(f"commit {commit}, {len(os.sched_getaffinity(0))} CPUs, load before {_load()}")
    started = time.perf_counter()
    ray.init(num_cpus=2, resources={KVM: 2}, include_dashboard=False, logging_level="ERROR",
             log_to_driver=False)
    startup = time.perf_counter() - started
    local: list[float] = []
    remote: list[float] = []
    runs: dict[str, list[float]] = {"-j 2": [], "Ray": []}
    for r in range(args.rounds):
        order = ["-j 2", "Ray"] if r % 2 == 0 else ["Ray", "-j 2"]  # ABBA against drift
        verdicts = []
        for mode in order:
            t = time.perf_counter()
            outcomes = (sweep(scenario, images, seeds, jobs=2) if mode == "-j 2"
                        else ray_sweep(ray, scenario, images, seeds))
            (local if mode == "-j 2" else remote).append(time.perf_counter() - t)
            runs[mode] += [o.wall_seconds for o in outcomes]
            verdicts.append([o.failed for o in outcomes])
        print(f"round {r}: -j 2 {local[-1]:.1f} s, Ray {remote[-1]:.1f} s, same verdicts "
              f"{verdicts[0] == verdicts[1]}, load {_load()}")
    noop = ray.remote(num_cpus=1, resources={KVM: 1})(_noop)
    pool = TaskPool(ray, lambda _: noop.remote())
    ray.get([noop.remote() for _ in range(4)])  # workers started
    t = time.perf_counter()
    for _ in pool.run(deque(range(args.noops))):
        pass
    per_task = (time.perf_counter() - t) / args.noops
    run_seconds = statistics.median(local) * 2 / len(seeds)  # one seed's run, on one slot
    ray.shutdown()
    per_min = [60 * len(seeds) / w for w in local], [60 * len(seeds) / w for w in remote]
    print(f"load after {_load()}; Ray start-up {startup:.1f} s (not counted)\n")
    print(f"`python benchmarks/bench_ray.py --seeds {args.seeds} --duration {args.duration} "
          f"--rounds {args.rounds} --noops {args.noops}`\n")
    print("| sweep | seeds/min (median) | per round |")
    print("|---|---:|---|")
    for name, values in (("-j 2", per_min[0]), ("Ray, 2 kvm slots", per_min[1])):
        print(f"| {name} | {statistics.median(values):.1f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    print("\nmedian wall of one seed's run: " + ", ".join(
        f"{mode} {statistics.median(values):.2f} s" for mode, values in runs.items()))
    ratio = statistics.median(per_min[1]) / statistics.median(per_min[0])
    print(f"\nRay / -j 2 throughput: {ratio:.3f}")
    print(f"empty task through the pool: {per_task * 1000:.2f} ms wall per task "
          f"({per_task * 2000:.2f} ms per slot); one {args.duration} seed: "
          f"{run_seconds:.2f} s per slot -> overhead {100 * per_task * 2 / run_seconds:.2f} %")


if __name__ == "__main__":
    main()
