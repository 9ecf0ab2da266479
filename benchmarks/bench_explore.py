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

With `--repeats N` (N > 1) each variant is searched N times by both, repeat r starting the
scenario's seeds at r * 1000 (for the explorer's runs from seeds and for the sweep alike)
with exploration seed --seed + r, and a last table gives, per variant, the simulated
seconds to the first hit of every repeat, their medians, and in how many repeats the
explorer needed fewer — one pair of searches is one draw of a lottery, not a comparison.
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
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"command: python benchmarks/{Path(sys.argv[0]).name} {' '.join(sys.argv[1:])}")
    print(f"commit {_commit()}, started {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
          f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}", flush=True)
    base = demo_scenario()
    reports: dict[str, dict[str, dict[str, Any]]] = {}  # of the first repeat
    repeats: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = {}
    loads: list[float] = []
    for variant in args.variants:
        scenario = replace(base, nodes=(replace(base.nodes[0], args=(variant,)),),
                           duration=args.duration)
        images = resolve_images(scenario, Path.cwd())
        repeats[variant] = []
        for r in range(args.repeats):
            pair: dict[str, dict[str, Any]] = {}
            where = args.out / variant / (f"repeat-{r}" if args.repeats > 1 else "")
            for mode, branching in MODES:
                config = ExploreConfig(seed=args.seed + r, jobs=args.jobs,
                                       budget_seconds=args.budget, branching=branching,
                                       stop_after_bugs=1, out=where / mode / "bugs")
                report = Explorer(scenario.with_seed(r * 1000), images,
                                  config).run().to_dict()
                loads.append(os.getloadavg()[0])
                pair[mode] = report
                (where / mode).mkdir(parents=True, exist_ok=True)
                (where / mode / "report.json").write_text(json.dumps(report) + "\n")
                print(f"{variant} {mode} (repeat {r}): {_first(report)} "
                      f"(load {loads[-1]:.1f})", flush=True)
            reports.setdefault(variant, pair)
            repeats[variant].append((pair["explore"], pair["random"]))
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
    if args.repeats > 1:
        print(f"\n{args.repeats} repeats: simulated seconds to the first hit (— : not found "
              "within the budget)\n")
        print("| variant | explore, each repeat | random, each repeat | median explore "
              "| median random | explore fewer |")
        print("|---|---|---|---:|---:|---:|")
        for variant, pairs in repeats.items():
            mine = [_hit_seconds(a) for a, _ in pairs]
            theirs = [_hit_seconds(b) for _, b in pairs]
            fewer = sum(1 for a, b in pairs if _fewer(a, b).startswith("yes"))
            print(f"| `{variant}` | {_seconds(mine)} | {_seconds(theirs)} "
                  f"| {_median(mine)} | {_median(theirs)} | {fewer} of {len(pairs)} |")


def _hit_seconds(report: dict[str, Any]) -> float | None:
    b = _first_bug(report)
    return None if b is None else b["first_simulated_seconds"]


def _seconds(values: list[float | None]) -> str:
    return ", ".join("—" if v is None else f"{v:.0f}" for v in values)


def _median(values: list[float | None]) -> str:
    """The median, a search that found nothing counting as the longest."""
    ordered = sorted(values, key=lambda v: (v is None, v or 0.0))
    middle = ordered[len(ordered) // 2]
    return "—" if middle is None else f"{middle:.0f}"


if __name__ == "__main__":
    main()
