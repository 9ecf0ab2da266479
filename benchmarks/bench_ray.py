"""Seeds per minute of `record --seeds -j 2` against `record --seeds --ray ADDRESS` on this
machine, and what one Ray task costs the scheduler.

    python benchmarks/bench_ray.py                    # 30 seeds of 20 s demo runs, 4 rounds
    python benchmarks/bench_ray.py --seeds 20 --duration 20s --rounds 2

Both sweeps run as users run them, as fresh `chaosreplay record` processes over the same
seeds of the built-in Raft demo (correct variant: no seed fails, no recording is made):
one with `-j 2`, one with `--ray` against a `ray start --head` cluster of 2 CPUs and
2 `kvm` units that the script starts once (tests/ray_cluster.py; its start-up is not
counted, the connection and the workers' start-up are). The two alternate ABBA for
--rounds rounds so that load from other work hits both alike; the wall time is the
command's own figure ("…s wall"). Then --noops empty tasks asking for one `kvm` each go
through the sweep's task pool from this process: their wall time per task and slot is the
per-task scheduling overhead a seed pays. Prints what it measured on (commit, load) and a
markdown table.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the cluster helper the tests use

import ray_cluster  # noqa: E402

from chaosreplay.scaleout.cluster import KVM  # noqa: E402
from chaosreplay.scaleout.tasks import TaskPool  # noqa: E402

WALL = re.compile(r"· ([0-9.]+)s wall ·")


def _noop() -> int:
    """An empty task: what scheduling one costs."""
    return 0


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _sweep(args: argparse.Namespace, how: list[str]) -> float:
    """One `record --seeds` command; its own wall seconds."""
    run = ray_cluster.cli("record", "--seeds", f"1-{args.seeds}", "--duration", args.duration,
                          "--no-progress", *how, cwd=ROOT, timeout=3600)
    found = WALL.search(run.stdout)
    if run.returncode != 0 or found is None:
        sys.exit(f"record {' '.join(how)} failed ({run.returncode}):\n{run.stdout}{run.stderr}")
    return float(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--noops", type=int, default=400)
    args = parser.parse_args()
    os.environ["RAY_AUTH_MODE"] = "token"  # before ray is imported (tests/ray_cluster.py)
    import ray

    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=ROOT).stdout.strip()
    print(f"commit {commit}, {len(os.sched_getaffinity(0))} CPUs, load before {_load()}")
    walls: dict[str, list[float]] = {"-j 2": [], "--ray ADDRESS": []}
    with ray_cluster.head_node() as address:
        how = {"-j 2": ["-j", "2"], "--ray ADDRESS": ["--ray", address]}
        for r in range(args.rounds):
            order = list(how) if r % 2 == 0 else list(how)[::-1]  # ABBA against drift
            for mode in order:
                walls[mode].append(_sweep(args, how[mode]))
            print(f"round {r}: " + ", ".join(f"{m} {w[-1]:.1f} s" for m, w in walls.items())
                  + f", load {_load()}", flush=True)
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        noop = ray.remote(num_cpus=1, resources={KVM: 1})(_noop)
        ray.get([noop.remote() for _ in range(4)])  # workers started
        started = time.perf_counter()
        for _ in TaskPool(ray, lambda _: noop.remote()).run(deque(range(args.noops))):
            pass
        per_task = (time.perf_counter() - started) / args.noops
        ray.shutdown()
    per_min = {m: [60 * args.seeds / w for w in values] for m, values in walls.items()}
    run_seconds = statistics.median(walls["-j 2"]) * 2 / args.seeds  # a seed, on one slot
    print(f"load after {_load()}\n")
    print(f"`python benchmarks/bench_ray.py --seeds {args.seeds} --duration {args.duration} "
          f"--rounds {args.rounds} --noops {args.noops}`\n")
    print("| sweep | seeds/min (median) | per round |")
    print("|---|---:|---|")
    for mode, values in per_min.items():
        print(f"| `record --seeds 1-{args.seeds} {mode}` | {statistics.median(values):.1f} | "
              f"{', '.join(f'{v:.1f}' for v in values)} |")
    ratio = statistics.median(per_min["--ray ADDRESS"]) / statistics.median(per_min["-j 2"])
    print(f"\nRay / -j 2 throughput: {ratio:.3f}")
    print(f"empty task through the pool: {per_task * 1000:.2f} ms wall per task "
          f"({per_task * 2000:.2f} ms per slot); one {args.duration} seed: "
          f"{run_seconds:.2f} s per slot -> overhead {100 * per_task * 2 / run_seconds:.2f} %")


if __name__ == "__main__":
    main()
