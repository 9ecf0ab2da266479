"""Benchmark thread switches against the getpid round trip, side by side in one run.

    python benchmarks/bench_threads.py [--quick]

One guest (tests/programs/thread_switch.c, musl) in three modes, each timed to its exit
through GuestProcess.run_to_completion() with tracing off, interleaved, median of N:
- `getpid N`: N getpid round trips (the baseline);
- `yield N`: two threads call sched_yield N times each, so every call is a task switch;
- `pingpong N`: two threads hand a token back and forth through a futex word N times
  (per hand-over: a wake, a wait that blocks, one switch).
A switch's cost is what a yield costs beyond a getpid: (µs per yield) - (µs per getpid).
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import program_cache  # noqa: E402 - the tests' build-once cache of real programs


def _timed(image: object, mode: str, rounds: int) -> tuple[float, int, int]:
    """Wall seconds to the program's exit, its syscalls and its VM exits."""
    p = GuestProcess(image, ProcessConfig(argv=[b"thread_switch", mode.encode(),
                                                str(rounds).encode()]))  # type: ignore[arg-type]
    p.trace_syscalls = False
    started = time.perf_counter()
    status = p.run_to_completion(hang_seconds=60)
    wall = time.perf_counter() - started
    if status is not Status.EXITED or p.exit_code != 0:
        raise SystemExit(f"{mode}: {status} {p.crash}")
    return wall, p.syscalls, p.vm.stats().exits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    args = parser.parse_args()
    rounds, repeats = (2_000, 3) if args.quick else (10_000, 5)
    image = load_program(program_cache.build_program("thread_switch.c", "musl"))
    samples: dict[str, list[tuple[float, int, int]]] = {m: [] for m in ("getpid", "yield",
                                                                         "pingpong")}
    base = {m: _timed(image, m, 0) for m in samples}  # start-up and exit alone
    for _ in range(repeats):
        for mode in samples:
            samples[mode].append(_timed(image, mode, rounds))
    per = {}
    for mode, runs in samples.items():
        wall = statistics.median(r[0] for r in runs) - base[mode][0]
        calls = runs[0][1] - base[mode][1]
        per[mode] = (wall / calls * 1e6, calls, runs[0][2] - base[mode][2])
    getpid_us = per["getpid"][0]
    yields = 2 * rounds
    yield_us = statistics.median(r[0] for r in samples["yield"]) - base["yield"][0]
    yield_us = yield_us / yields * 1e6
    pingpong_us = statistics.median(r[0] for r in samples["pingpong"]) - base["pingpong"][0]
    pingpong_us = pingpong_us / (2 * rounds) * 1e6
    switch_us = yield_us - getpid_us
    print(f"rounds {rounds}, median of {repeats}, start-up subtracted")
    print(f"getpid round trip         {getpid_us:8.2f} µs  ({per['getpid'][1]} calls)")
    print(f"sched_yield with a switch {yield_us:8.2f} µs  ({per['yield'][1]} calls)")
    print(f"  of which the switch     {switch_us:8.2f} µs  = {switch_us / getpid_us:.2f}× getpid")
    print(f"futex hand-over           {pingpong_us:8.2f} µs  ({per['pingpong'][1]} calls, "
          f"{per['pingpong'][1] / (2 * rounds):.1f} per hand-over)"
          f"  = {pingpong_us / getpid_us:.2f}× getpid")


if __name__ == "__main__":
    main()
