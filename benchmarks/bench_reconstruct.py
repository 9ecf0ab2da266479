"""Benchmark the debugger's state reconstruction at random ticks (issue 5's target).

    python benchmarks/bench_reconstruct.py [--samples 200] [--duration 60] [--seed 0]

Records the built-in demo (3 Raft nodes, random faults, checkpoint every virtual second)
for --duration virtual seconds, then asks a DebugSession for the whole state (every node's
registers, disassembly, stack, output, files; network; faults; oracle) at --samples random
ticks in random order and reports p50/p95/max wall time, in three regimes:

- cold: the caches emptied before each sample (no live simulation, no cached state):
  checkpoint restore + re-execution + capture, the worst case;
- warm: one session for all samples, as a user jumping around (live simulations and the
  state cache serve when they can);
- step: from a reconstructed point, stepping forward and back one event at a time;

then issue 16's two: a typed variable (a watch expression) of a random node at a random
event, cold, and "where did it change" for a random watched value, node, event and
direction with a fresh search each time. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaosreplay.debugger.changes import ChangeSearch
from chaosreplay.debugger.session import DebugSession
from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images

TYPED = ("current_term", "role", "log_[commit_index]", "leaders[current_term % 256].leader",
         "next_index[2]", "rx.m.term", "state_path", "log_")
CHANGING = ("current_term", "commit_index", "role", "voted_for")


def _percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return (f"p50 {statistics.median(ordered) * 1000:6.1f} ms · p95 {p95 * 1000:6.1f} ms · "
            f"max {ordered[-1] * 1000:6.1f} ms · n={len(ordered)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--duration", type=float, default=60.0, help="virtual seconds")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    scenario = replace(demo_scenario(), seed=args.seed, duration=int(args.duration * 1000))
    images = resolve_images(scenario, Path.cwd())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "run.ccr"
        started = time.perf_counter()
        result = record_run(scenario, images, path, RunOptions())
        print(f"recorded {args.duration:g} virtual s, {result.events:,} events in "
              f"{time.perf_counter() - started:.1f}s wall")
        with DebugSession(path) as session:
            last_tick = session.reader.last_tick or 0
            checkpoints = len(session.reader.checkpoints)
        rng = random.Random(args.seed)
        ticks = [rng.randrange(last_tick + 1) for _ in range(args.samples)]
        print(f"{checkpoints} checkpoints; state at {args.samples} random ticks\n")

        cold = []
        with DebugSession(path) as session:
            session.state(0)  # parse symbols and line tables once, as opening the TUI does
            for tick in ticks:
                assert session.reconstructor is not None
                session.reconstructor.close()  # forget live simulations and cached states
                started = time.perf_counter()
                session.state(session.seek_tick(tick))
                cold.append(time.perf_counter() - started)
        print(f"cold (caches emptied):     {_percentiles(cold)}")

        warm = []
        with DebugSession(path) as session:
            for tick in ticks:
                started = time.perf_counter()
                session.state(session.seek_tick(tick))
                warm.append(time.perf_counter() - started)
            print(f"warm (one session):        {_percentiles(warm)}")
            forward, back = [], []
            session.state(session.seek_tick(last_tick // 2))
            for _ in range(100):
                started = time.perf_counter()
                session.state(session.step(1))
                forward.append(time.perf_counter() - started)
            for _ in range(100):
                started = time.perf_counter()
                session.state(session.step(-1))
                back.append(time.perf_counter() - started)
            print(f"step forward:              {_percentiles(forward)}")
            print(f"step back:                 {_percentiles(back)}")

        _typed_and_changes(path, args, rng)


def _typed_and_changes(path: Path, args: argparse.Namespace, rng: random.Random) -> None:
    """Issue 16's targets: a typed variable of any node at any event (cold: a fresh
    reconstruction with frames, locals, globals and the watch), and "where did it change"
    (a fresh search each time: no checkpoint samples kept from earlier questions)."""
    typed, typed_cpu, unavailable = [], [], 0
    with DebugSession(path) as session:
        rec = session.reconstructor
        assert rec is not None
        count = session.event_count
        nodes = len(session.scenario.node_specs())
        session.state(0)
        for _ in range(args.samples):
            node, seq = rng.randrange(nodes), rng.randrange(count)
            expression = rng.choice(TYPED)
            rec.close()
            started, cpu = time.perf_counter(), time.process_time()
            session.set_watches(node, [expression])
            value = session.state(seq).nodes[node].watches[0]
            typed.append(time.perf_counter() - started)
            typed_cpu.append(time.process_time() - cpu)
            unavailable += not value.type  # e.g. a node killed before it mapped anything
        print(f"typed variable (cold):     {_percentiles(typed)} ({unavailable} unavailable)")
        print(f"  the same in CPU time:    {_percentiles(typed_cpu)}")
        changes, changes_cpu, exact = [], [], 0
        for _ in range(max(1, args.samples // 4)):
            node, at = rng.randrange(nodes), rng.randrange(count)
            expression, forward = rng.choice(CHANGING), rng.random() < 0.5
            rec.close()
            search = ChangeSearch(rec, node, expression)
            started, cpu = time.perf_counter(), time.process_time()
            found = search.next_change(at) if forward else search.last_change(at)
            changes.append(time.perf_counter() - started)
            changes_cpu.append(time.process_time() - cpu)
            exact += search.exact
            del found
        print(f"where did it change:       {_percentiles(changes)} "
              f"({exact} answered by step-by-step re-execution alone)")
        print(f"  the same in CPU time:    {_percentiles(changes_cpu)}")


if __name__ == "__main__":
    main()
