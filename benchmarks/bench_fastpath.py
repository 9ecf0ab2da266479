"""Benchmark the syscall fast path against the exit path and native, side by side.

    python benchmarks/bench_fastpath.py [--quick]

Measures, in one run (issue 19, item 4):
(a) µs per call of each call the fast path answers (guest/src/call_loop.c), natively, in
    a VM through the vDSO with the fast path (the default), through `syscall` with the
    fast path (no vDSO), and in a VM where every call exits; the VM figures through the
    full stack with every call's event encoded into a recording;
(b) the 3-node demo's virtual seconds per wall second while recording, fast path on and
    off, and recording against not recording (fast path on).
Each per-call figure is (time of N calls - time of 0 calls) / N, so start-up cancels out;
medians of interleaved repetitions. Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.recording import RecordingWriter
from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

REPO = Path(__file__).resolve().parents[1]
CALL_LOOP = REPO / "guest" / "build" / "musl" / "call_loop"
CALLS = ("clock_gettime", "gettimeofday", "time", "getpid", "gettid", "getppid")
VDSO_CALLS = ("clock_gettime", "gettimeofday", "time")  # the ids have no vDSO function


def _native_s(call: str, n: int) -> float:
    started = time.perf_counter()
    subprocess.run([str(CALL_LOOP), call, str(n)], check=True, capture_output=True)
    return time.perf_counter() - started


def _vm_s(call: str, n: int, fast: bool, vdso: bool, scratch: Path) -> float:
    """Wall seconds of one call_loop run in a VM, every event written to a recording."""
    image = load_program(CALL_LOOP)
    config = ProcessConfig(argv=[b"call_loop", call.encode(), str(n).encode()], fast_path=fast,
                           vdso=vdso)
    with RecordingWriter(scratch / f"{call}.ccr", {"kind": "bench"}) as writer:
        def on_event(p: GuestProcess, kind: object, fields: dict) -> None:
            writer.append(p.vtime_ns // 1_000_000, p.vtime_ns, 0, str(kind), fields)

        started = time.perf_counter()
        process = GuestProcess(image, config, on_event=on_event)
        status = process.run_to_completion(60)
        elapsed = time.perf_counter() - started
        writer.close({})
    assert status is Status.EXITED, process.crash
    return elapsed


MODES = {"vdso": (True, True), "fast": (True, False), "exit": (False, False)}


def per_call_us(n: int, reps: int) -> list[tuple[str, dict[str, float]]]:
    """Per call, µs natively and in each VM mode (MODES: fast path, vDSO)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        scratch = Path(tmp)
        for call in CALLS:
            samples: dict[str, list[float]] = {"native": [], **{m: [] for m in MODES}}
            for _ in range(reps):
                samples["native"].append(_native_s(call, n) - _native_s(call, 0))
                for mode, (fast, vdso) in MODES.items():
                    if vdso and call not in VDSO_CALLS:
                        continue
                    samples[mode].append(_vm_s(call, n, fast, vdso, scratch)
                                         - _vm_s(call, 0, fast, vdso, scratch))
            rows.append((call, {k: statistics.median(v) / n * 1e6 for k, v in samples.items()
                                if v}))
    return rows


def demo_speed(seconds: int, reps: int) -> dict[str, float]:
    """Virtual seconds per wall second of the demo: recorded with and without the fast
    path, and not recorded (fast path on)."""
    scenario = demo_scenario().with_duration(seconds * 1000)
    images = resolve_images(scenario, REPO)
    out: dict[str, list[float]] = {"record, fast path": [], "record, every call exits": [],
                                   "no recording, fast path": []}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(reps):
            for label, fast in (("record, fast path", True),
                                ("record, every call exits", False)):
                started = time.perf_counter()
                record_run(scenario, images, Path(tmp) / "demo.ccr", RunOptions(fast_path=fast))
                out[label].append(seconds / (time.perf_counter() - started))
            started = time.perf_counter()
            Simulation(scenario, images, trace_syscalls=False).run()
            out["no recording, fast path"].append(seconds / (time.perf_counter() - started))
    return {k: statistics.median(v) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, a shorter demo")
    args = parser.parse_args()
    n, reps, demo_s = (5_000, 3, 10) if args.quick else (20_000, 5, 60)
    print(f"host: {platform.node()} {platform.release()}, {n} calls per loop, {reps} reps")
    print(f"{'call':<14}{'native µs':>11}{'vDSO µs':>10}{'fast path µs':>14}{'exit path µs':>14}"
          f"{'exit/best':>11}")
    for call, us in per_call_us(n, reps):
        best = us.get("vdso", us["fast"])
        vdso = f"{us['vdso']:>10.2f}" if "vdso" in us else f"{'-':>10}"
        print(f"{call:<14}{us['native']:>11.2f}{vdso}{us['fast']:>14.2f}{us['exit']:>14.2f}"
              f"{us['exit'] / best:>10.1f}x")
    speeds = demo_speed(demo_s, max(1, reps // 2))
    print(f"demo, {demo_s} virtual s (virtual s per wall s):")
    for label, value in speeds.items():
        print(f"  {label:<28}{value:>7.1f}x")
    overhead = speeds["no recording, fast path"] / speeds["record, fast path"]
    print(f"  {'record/off overhead':<28}{overhead:>7.2f}x")


if __name__ == "__main__":
    main()
