"""Exploration against a random sweep on the Raft demo: time, runs and simulated seconds to
the first hit of each planted bug, in the same wall budget and jobs, side by side in one run.

    python benchmarks/bench_explore.py                         # every variant, 10 min, 2 jobs
    python benchmarks/bench_explore.py --variants figure8 --budget 600 --jobs 2

For each planted-bug variant the built-in demo scenario (3 nodes, its random faults; the
default demo, built without SDK coverage) runs with the variant's argument and 20 virtual
seconds per run, first explored (`Explorer`, seed --seed) and then swept (the same loop with
branching off: seeds 0, 1, 2, ... of the scenario, as `record --seeds` would run them), each
until its first failing run or the wall budget. Prints what it measured on (commit, load),
one markdown table per measure, and writes the per-variant reports as JSON under --out.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaosreplay.explore.explorer import ExploreConfig, Explorer
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images

VARIANTS = ("double_vote", "no_truncate", "stale_term", "no_step_down", "figure8",
            "early_commit")
MODES = (("explore", True), ("random", False))


def _first_bug(report: dict[str, Any]) -> dict[str, Any] | None:
    return min(report["bugs"], key=lambda b: b["first_run"]) if report["bugs"] else None


def _first(report: dict[str, Any]) -> str:
    b = _first_bug(report)
    if b is None:
        return (f"not found ({report['runs']} runs, {report['wall_seconds']:.0f} s, "
                f"{report['simulated_seconds']:.0f} sim s)")
    return (f"{b['first_wall_seconds']:.0f} s, run {b['first_run']}, "
            f"{b['first_simulated_seconds']:.0f} sim s")


def _fewer(mine: dict[str, Any], theirs: dict[str, Any]) -> str:
    """Whether the explorer's first hit took fewer simulated seconds than the sweep's."""
    a, b = _first_bug(mine), _first_bug(theirs)
    if a is None:
        return "no (explore did not find it)"
    if b is None:
        return "yes (the sweep did not find it)"
    x, y = a["first_simulated_seconds"], b["first_simulated_seconds"]
    return "yes" if x < y else ("equal" if x == y else "no")


def _commit() -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip()
    dirty = " (with uncommitted changes)" if git("status", "--porcelain", "--untracked-files=no") \
        else ""
    return (git("rev-parse", "--short", "HEAD") or "unknown") + dirty


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--budget", type=float, default=600.0, help="wall seconds per search")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=int, default=20_000, help="ticks per run")
    parser.add_argument("--out", type=Path, default=Path("bench-explore"))
    args = parser.parse_args()
    print(f"command: python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}")
    print(f"commit {_commit()}, started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    base = demo_scenario()
    reports: dict[str, dict[str, dict[str, Any]]] = {}
    loads: list[float] = []
    for variant in args.variants:
        scenario = replace(base, nodes=(replace(base.nodes[0], args=(variant,)),),
                           duration=args.duration)
        images = resolve_images(scenario, Path.cwd())
        reports[variant] = {}
        for mode, branching in MODES:
            config = ExploreConfig(seed=args.seed, jobs=args.jobs, budget_seconds=args.budget,
                                   branching=branching, stop_after_bugs=1,
                                   out=args.out / variant / mode / "bugs")
            report = Explorer(scenario, images, config).run().to_dict()
            loads.append(os.getloadavg()[0])
            reports[variant][mode] = report
            (args.out / variant / mode).mkdir(parents=True, exist_ok=True)
            (args.out / variant / mode / "report.json").write_text(json.dumps(report) + "\n")
            print(f"{variant} {mode}: {_first(report)} (load {loads[-1]:.1f})", flush=True)
    print(f"\nfinished {time.strftime('%H:%M UTC', time.gmtime())}; load average after each "
          f"search: {min(loads):.1f}-{max(loads):.1f}")
    print("\n| variant | explore: first hit (wall, runs, simulated s) | random sweep: first hit "
          "| explore in fewer simulated s? |")
    print("|---|---|---|---|")
    for variant, pair in reports.items():
        print(f"| `{variant}` | {_first(pair['explore'])} | {_first(pair['random'])} "
              f"| {_fewer(pair['explore'], pair['random'])} |")
    print("\n| variant | search | runs (branches) | wall s | simulated s | distinct signals "
          "| frontier entries (live at end) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for variant, pair in reports.items():
        for mode, r in pair.items():
            print(f"| `{variant}` | {mode} | {r['runs']} ({r['branches']}) "
                  f"| {r['wall_seconds']:.0f} | {r['simulated_seconds']:.0f} | {r['signals']} "
                  f"| {r['frontier_total']} ({r['frontier_live']}) |")


if __name__ == "__main__":
    main()
