"""Benchmark processes against the getpid round trip, side by side in one run.

    PYTHONPATH=. python benchmarks/bench_processes.py [--quick]

One guest (tests/programs/fork_loop.c, musl, 64 MiB VMs) in three modes, each timed to its
exit through GuestProcess.run_to_completion() with tracing off, interleaved, median of N,
start-up subtracted:
- `getpid N`: N getpid round trips (the baseline);
- `fork N`: fork, the child _exits, the parent waits: a cloned VM per round;
- `spawn N`: the same with an execve of the program in the child (the node's image cache
  makes the exec a reload of an already planned binary).
Also natively (os.posix_spawn of the same binary) for a sense of scale. Nothing here
asserts on time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import program_cache  # noqa: E402 - the tests' build-once cache of real programs

MEM = 64 << 20


def _timed(image: object, mode: str, rounds: int) -> float:
    """Wall seconds to the program's exit under chaosreplay."""
    p = GuestProcess(image, ProcessConfig(argv=[b"fork_loop", mode.encode(),  # type: ignore[arg-type]
                                                str(rounds).encode()], mem_size=MEM))
    p.trace_syscalls = False
    started = time.perf_counter()
    status = p.run_to_completion(hang_seconds=60)
    wall = time.perf_counter() - started
    if status is not Status.EXITED or p.exit_code != 0:
        raise SystemExit(f"{mode}: {status} {p.exit_code} {p.crash}")
    return wall


def _native(path: Path, mode: str, rounds: int) -> float:
    started = time.perf_counter()
    pid = os.posix_spawn(str(path), [str(path), mode, str(rounds)], {})
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit(f"native {mode}: status {status}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    args = parser.parse_args()
    rounds, repeats = (20, 3) if args.quick else (100, 5)
    path = program_cache.build_program("fork_loop.c", "musl")
    image = load_program(path)
    modes = ("getpid", "fork", "spawn")
    base = {m: statistics.median(_timed(image, m, 0) for _ in range(3)) for m in modes}
    native_base = {m: statistics.median(_native(path, m, 0) for _ in range(3)) for m in modes}
    samples: dict[str, list[float]] = {m: [] for m in modes}
    native: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(repeats):
        for mode in modes:
            samples[mode].append(_timed(image, mode, rounds))
            native[mode].append(_native(path, mode, rounds))
    per = {m: (statistics.median(samples[m]) - base[m]) / rounds * 1e6 for m in modes}
    per_native = {m: (statistics.median(native[m]) - native_base[m]) / rounds * 1e6
                  for m in modes}
    getpid_us = per["getpid"]
    print(f"rounds {rounds}, median of {repeats}, start-up subtracted")
    for mode, what in (("getpid", "getpid round trip"), ("fork", "fork + _exit + wait"),
                       ("spawn", "fork + execve + exit + wait")):
        print(f"{what:28} {per[mode]:10.1f} µs = {per[mode] / getpid_us:8.1f}× getpid"
              f"   natively {per_native[mode]:8.1f} µs")


if __name__ == "__main__":
    main()
