"""Exploration against a random sweep on the Raft demo: time, runs and simulated seconds to
the first hit of each planted bug, in the same wall budget and jobs.

    python benchmarks/bench_explore.py                         # every variant, 10 min, 2 jobs
    python benchmarks/bench_explore.py --variants figure8 --budget 600 --jobs 2

For each planted-bug variant the built-in demo scenario (3 nodes, its random faults) runs
with the variant's argument and 20 virtual seconds per run, first explored (`Explorer`,
seed --seed) and then swept (the same loop with branching off: seeds 0, 1, 2, ... of the
scenario, as `record --seeds` would run them), each until its first failing run or the
wall budget. Prints one markdown table and writes the per-variant reports as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from chaosreplay.explore.explorer import ExploreConfig, Explorer
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images

VARIANTS = ("double_vote", "no_truncate", "stale_term", "no_step_down", "figure8",
            "early_commit")


def _first(report: dict[str, Any]) -> str:
    if not report["bugs"]:
        return f"not found ({report['runs']} runs, {report['simulated_seconds']:.0f} sim s)"
    b = min(report["bugs"], key=lambda b: b["first_run"])
    return (f"{b['first_wall_seconds']:.0f} s, run {b['first_run']}, "
            f"{b['first_simulated_seconds']:.0f} sim s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--budget", type=float, default=600.0, help="wall seconds per search")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duration", type=int, default=20_000, help="ticks per run")
    parser.add_argument("--out", type=Path, default=Path("bench-explore"))
    args = parser.parse_args()
    base = demo_scenario()
    rows = []
    for variant in args.variants:
        scenario = replace(base, nodes=(replace(base.nodes[0], args=(variant,)),),
                           duration=args.duration)
        images = resolve_images(scenario, Path.cwd())
        reports = {}
        for mode, branching in (("explore", True), ("random", False)):
            config = ExploreConfig(seed=args.seed, jobs=args.jobs, budget_seconds=args.budget,
                                   branching=branching, stop_after_bugs=1,
                                   out=args.out / variant / mode / "bugs")
            report = Explorer(scenario, images, config).run().to_dict()
            reports[mode] = report
            (args.out / variant / mode).mkdir(parents=True, exist_ok=True)
            (args.out / variant / mode / "report.json").write_text(json.dumps(report) + "\n")
            print(f"{variant} {mode}: {_first(report)}", flush=True)
        rows.append((variant, _first(reports["explore"]), _first(reports["random"])))
    print(f"\nload average before the end: {os.getloadavg()[0]:.1f}")
    print("\n| variant | explore: first hit (wall, runs, simulated s) | random sweep |")
    print("|---|---|---|")
    for variant, mine, theirs in rows:
        print(f"| `{variant}` | {mine} | {theirs} |")


if __name__ == "__main__":
    main()
