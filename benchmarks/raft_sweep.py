"""How many seeds catch each planted bug of the Raft demo, and that the correct one passes.

    python benchmarks/raft_sweep.py --seeds 200 --duration 20s -j 2

Runs the built-in demo scenario (3 nodes, random faults) with each variant of the demo
program (argv[1]) over the same seeds, and prints a markdown table: per variant, the
failing seeds, the median virtual time to the first failure, and which assertions fired.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

from chaosreplay.runs.sweep import default_jobs, sweep
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.validation import KeyPath, expect_ticks

VARIANTS = ["correct", "double_vote", "no_truncate", "stale_term", "no_step_down", "figure8",
            "early_commit"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=200)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("-j", "--jobs", type=int, default=default_jobs())
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--json", type=Path, help="also write the raw outcomes here")
    args = parser.parse_args()
    base = demo_scenario()
    base = replace(base, duration=expect_ticks(args.duration, KeyPath("--duration")))
    images = resolve_images(base, Path.cwd())
    rows, raw = [], {}
    for variant in args.variants.split(","):
        group = replace(base.nodes[0], args=(variant,))
        scenario = replace(base, nodes=(group,))
        started = time.perf_counter()
        outcomes = sweep(scenario, images, range(args.seeds), jobs=args.jobs)
        wall = time.perf_counter() - started
        failing = [o for o in outcomes if o.failed]
        ticks = [o.end_tick for o in failing]
        caught_by = Counter(o.signature for o in failing)
        rows.append((variant, len(failing), len(outcomes),
                     f"{statistics.median(ticks) / 1000:.1f}s" if ticks else "-",
                     "; ".join(f"{msg} ×{n}" for msg, n in caught_by.most_common()) or "-",
                     f"{wall:.0f}s"))
        raw[variant] = [o.__dict__ for o in outcomes]
        print(f"{variant}: {len(failing)}/{len(outcomes)} failing ({wall:.0f}s)", file=sys.stderr)
    print(f"\n`python benchmarks/raft_sweep.py --seeds {args.seeds} --duration {args.duration} "
          f"-j {args.jobs}` on the demo binary {images[0].sha256[:16]} "
          f"({images[0].path})\n")
    print("| variant | failing seeds | median time to failure | first failure (assertion) | wall |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} / {row[2]} | {row[3]} | {row[4]} | {row[5]} |")
    if args.json:
        args.json.write_text(json.dumps(raw, indent=1))


if __name__ == "__main__":
    main()
