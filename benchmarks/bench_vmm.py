"""Benchmark the VMM core and the node runtime against their baselines, side by side.

    python benchmarks/bench_vmm.py [--quick]

Measures, in one run (issue 2, item 8):
(a) the syscall round trip of a getpid loop through the full stack (GuestProcess, no
    tracing) vs the raw C exit loop (`Vm.run_bench_loop`, which answers every syscall with
    0 in C) on the same program and VM setup; also a bare Python `Vm.run()` loop without
    policy, which splits the overhead into "returning to Python" and "the runtime's work";
(b) incremental snapshot take and restore against the number of dirty pages, dirtied by
    the host (`Vm.write`) and by a hand-assembled guest loop, plus a full take;
(c) VM create + load + run of a hello program vs native posix_spawn + waitpid of the same
    binary (and subprocess.run, for information).
All figures are medians of interleaved repetitions; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from capstone import CS_ARCH_X86, CS_MODE_64, Cs

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import ProgramImage, load_program
from chaosreplay.vm.vmm import PAGE_SIZE, ExitReason, Prot, Vm

REPO = Path(__file__).resolve().parents[1]
GUESTS = REPO / "guest" / "build"
WARMUP_SYSCALLS = 20  # libc startup (arch_prctl, set_tid_address, ...) runs through the full stack

CODE_VA = 0x400000
DATA_VA = 0x1000_0000
STACK_VA = 0x7000_0000
SNAPSHOT_VM_SIZE = 64 << 20
SYS_GETPID = 39
EXIT_SYSCALLS = (60, 231)


def _median_ns(samples: list[int]) -> float:
    """The median of nanosecond samples."""
    return float(statistics.median(samples))


# -- (a) syscall round trip --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyscallResult:
    """Median µs per syscall for each loop, and the full-stack / raw-C ratio."""

    calls: int
    repeats: int
    full_us: float
    raw_us: float
    bare_us: float
    ratio: float
    bare_ratio: float


def _started_process(image: ProgramImage, calls: int) -> GuestProcess:
    """A getpid_loop process past libc startup (run through the full stack), tracing off."""
    argv = [image.path.name.encode(), str(calls).encode()]
    process = GuestProcess(image, ProcessConfig(argv=argv))
    process.trace_syscalls = False
    status = process.run(deadline_ns=WARMUP_SYSCALLS * process.config.syscall_cost_ns)
    if status is not Status.RUNNING:
        raise RuntimeError(f"getpid_loop ended during warm-up: {status}")
    return process


def _time_full(image: ProgramImage, calls: int) -> tuple[int, int]:
    """(ns, syscalls) of the full stack running getpid_loop from after startup to its exit."""
    process = _started_process(image, calls)
    before = process.syscalls
    start = time.perf_counter_ns()
    status = process.run_to_completion()
    elapsed = time.perf_counter_ns() - start
    if status is not Status.EXITED or process.exit_code != 0:
        raise RuntimeError(f"getpid_loop did not exit cleanly: {status} {process.crash}")
    return elapsed, process.syscalls - before


def _time_raw(image: ProgramImage, calls: int) -> tuple[int, int]:
    """(ns, syscalls) of the C exit loop answering every syscall with 0 on the same program."""
    process = _started_process(image, calls)
    start = time.perf_counter_ns()
    done = process.vm.run_bench_loop(calls + 100)
    return time.perf_counter_ns() - start, done


def _time_bare(image: ProgramImage, calls: int) -> tuple[int, int]:
    """(ns, syscalls) of a Python loop over Vm.run() that answers every syscall with 0."""
    process = _started_process(image, calls)
    vm, regs, limit, done = process.vm, process.regs, calls + 100, 0
    start = time.perf_counter_ns()
    while done < limit and vm.run() == ExitReason.SYSCALL:
        done += 1
        if regs.rax in EXIT_SYSCALLS:
            break
        regs.rax = 0
    return time.perf_counter_ns() - start, done


def bench_syscalls(program: Path, calls: int, repeats: int) -> SyscallResult:
    """Full stack vs raw C loop vs bare Python loop on getpid_loop, interleaved."""
    image = load_program(program)
    per_call: dict[str, list[float]] = {"full": [], "raw": [], "bare": []}
    timers: dict[str, Callable[[ProgramImage, int], tuple[int, int]]] = {
        "full": _time_full, "raw": _time_raw, "bare": _time_bare}
    for _ in range(repeats):
        for name, timer in timers.items():
            elapsed, done = timer(image, calls)
            if done < calls // 2:
                raise RuntimeError(f"{name} loop stopped after {done} of {calls} syscalls")
            per_call[name].append(elapsed / done / 1e3)
    full, raw, bare = (statistics.median(per_call[k]) for k in ("full", "raw", "bare"))
    return SyscallResult(calls, repeats, full, raw, bare, full / raw, bare / raw)


# -- (b) snapshots -----------------------------------------------------------------------------


def dirty_loop_code(pages: int, base: int = DATA_VA) -> bytes:
    """x86-64 code: increment one qword in each of `pages` pages from base, getpid, repeat."""
    if not 0 < pages < 1 << 31 or not 0 <= base < 1 << 32:
        raise ValueError("pages and base must fit 32-bit immediates")
    return b"".join([
        b"\xb8" + base.to_bytes(4, "little"),         # 0x00 top:  mov eax, base
        b"\xba" + pages.to_bytes(4, "little"),        # 0x05       mov edx, pages
        b"\x48\xff\x00",                              # 0x0a loop: inc qword ptr [rax]
        b"\x48\x05\x00\x10\x00\x00",                  # 0x0d       add rax, 0x1000
        b"\xff\xca",                                  # 0x13       dec edx
        b"\x75\xf3",                                  # 0x15       jne loop
        b"\xb8" + SYS_GETPID.to_bytes(4, "little"),   # 0x17       mov eax, 39
        b"\x0f\x05",                                  # 0x1c       syscall
        b"\xeb\xe0",                                  # 0x1e       jmp top
    ])  # fmt: skip


def disassemble(code: bytes, address: int = CODE_VA) -> list[str]:
    """Capstone's rendering of code, one "mnemonic operands" string per instruction."""
    md = Cs(CS_ARCH_X86, CS_MODE_64)
    return [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(code, address)]


def expected_dirty_loop(pages: int, base: int = DATA_VA, address: int = CODE_VA) -> list[str]:
    """What dirty_loop_code must disassemble to."""
    count = f"{pages:#x}" if pages > 9 else str(pages)  # capstone's style for immediates
    return [f"mov eax, {base:#x}", f"mov edx, {count}",
            "inc qword ptr [rax]", "add rax, 0x1000", "dec edx", f"jne {address + 0x0a:#x}",
            "mov eax, 0x27", "syscall", f"jmp {address:#x}"]


def _verified_code(pages: int) -> bytes:
    """dirty_loop_code(pages), checked instruction by instruction with capstone."""
    code = dirty_loop_code(pages)
    got, want = disassemble(code), expected_dirty_loop(pages)
    if got != want:
        raise RuntimeError(f"dirty loop assembles wrongly:\n  got  {got}\n  want {want}")
    return code


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """Median take/restore cost for one dirty-page count and one way of dirtying."""

    dirty: int
    source: str
    take_ms: float
    take_pages: int
    restore_ms: float
    restore_pages: int


@dataclass(frozen=True, slots=True)
class FullTake:
    """Median cost of a full take of the benchmark VM."""

    pages: int
    ms: float


def _snapshot_vm(pages: int) -> Vm:
    """A VM with the dirty loop at CODE_VA, `pages` data pages, a stack, and a full snapshot."""
    vm = Vm(SNAPSHOT_VM_SIZE)
    vm.map(CODE_VA, PAGE_SIZE, Prot.READ | Prot.EXEC)
    vm.write(CODE_VA, _verified_code(pages))
    vm.map(DATA_VA, pages * PAGE_SIZE, Prot.READ | Prot.WRITE)
    vm.map(STACK_VA, PAGE_SIZE, Prot.READ | Prot.WRITE)
    for i in range(pages):  # touch every page once so all frames exist before the base take
        vm.write(DATA_VA + i * PAGE_SIZE, b"\0")
    vm.start(CODE_VA, STACK_VA + PAGE_SIZE)
    return vm


def _guest_dirty(vm: Vm) -> None:
    """Let the guest loop store to its pages once; it stops at its getpid."""
    reason = vm.run()
    if reason != ExitReason.SYSCALL or vm.regs.rax != SYS_GETPID:
        raise RuntimeError(f"dirty loop stopped with exit {reason}, rax {vm.regs.rax}")
    vm.regs.rax = 1000


def _host_dirty(vm: Vm, pages: int, value: int) -> None:
    """Write one byte into each of the first `pages` data pages from the host."""
    byte = bytes([value & 0xFF])
    for i in range(pages):
        vm.write(DATA_VA + i * PAGE_SIZE + 8, byte)


def bench_snapshots(sizes: Iterable[int], repeats: int) -> tuple[list[SnapshotRow], FullTake]:
    """Incremental take and restore vs dirty pages (host- and guest-dirtied); a full take."""
    rows: list[SnapshotRow] = []
    full_ns: list[int] = []
    full_pages = 0
    for pages in sizes:
        for source in ("host", "guest"):
            vm = _snapshot_vm(pages)
            snap = vm.snapshot()
            start = time.perf_counter_ns()
            full_pages = snap.take(incremental=False)
            full_ns.append(time.perf_counter_ns() - start)
            if source == "guest":
                _guest_dirty(vm)  # first run: fault in the guest's translations once
                snap.take(incremental=True)
            takes, restores, take_pages, restore_pages = [], [], [], []
            for rep in range(repeats):
                for sample, counts, operation in ((takes, take_pages, snap.take),
                                                  (restores, restore_pages, snap.restore)):
                    if source == "host":
                        _host_dirty(vm, pages, rep * 2 + len(sample))
                    else:
                        _guest_dirty(vm)
                    start = time.perf_counter_ns()
                    counts.append(operation())
                    sample.append(time.perf_counter_ns() - start)
            rows.append(SnapshotRow(pages, source, _median_ns(takes) / 1e6,
                                    int(statistics.median(take_pages)),
                                    _median_ns(restores) / 1e6,
                                    int(statistics.median(restore_pages))))
    return rows, FullTake(full_pages, _median_ns(full_ns) / 1e6)


# -- (c) start-up ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StartupResult:
    """Median ms from nothing to exit in a VM (by phase) and natively; VM / native ratios."""

    libc: str
    runs: int
    load_ms: float
    construct_ms: float
    run_ms: float
    vm_ms: float
    spawn_ms: float
    subprocess_ms: float
    ratio: float
    preloaded_ratio: float


def _time_vm(program: Path) -> tuple[int, int, int]:
    """ns of (load_program, GuestProcess construction incl. VM creation, run_to_completion)."""
    start = time.perf_counter_ns()
    image = load_program(program)
    loaded = time.perf_counter_ns()
    process = GuestProcess(image, ProcessConfig(argv=[program.name.encode()]))
    built = time.perf_counter_ns()
    status = process.run_to_completion()
    done = time.perf_counter_ns()
    if status is not Status.EXITED or process.exit_code != 0 or not process.stdout:
        raise RuntimeError(f"{program} did not run cleanly in the VM: {status} {process.crash}")
    return loaded - start, built - loaded, done - built


def _time_spawn(program: Path) -> int:
    """ns to posix_spawn program natively (stdout to /dev/null) and reap it."""
    actions = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter_ns()
    pid = os.posix_spawn(program, [str(program)], {}, file_actions=actions)
    _, status = os.waitpid(pid, 0)
    elapsed = time.perf_counter_ns() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{program} failed natively: wait status {status}")
    return elapsed


def _time_subprocess(program: Path) -> int:
    """ns for subprocess.run of program with stdout to /dev/null."""
    start = time.perf_counter_ns()
    subprocess.run([program], stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter_ns() - start


def bench_startup(program: Path, runs: int, libc: str = "musl") -> StartupResult:
    """VM create + load + run vs native spawn of the same binary, interleaved."""
    phases: list[tuple[int, int, int]] = []
    vm_ns, spawn_ns, sub_ns, preloaded_ns = [], [], [], []
    _time_vm(program), _time_spawn(program)  # warm the page cache and Python imports
    for _ in range(runs):
        load, construct, run = _time_vm(program)
        phases.append((load, construct, run))
        vm_ns.append(load + construct + run)
        preloaded_ns.append(construct + run)
        spawn_ns.append(_time_spawn(program))
        sub_ns.append(_time_subprocess(program))
    load_ms, construct_ms, run_ms = (_median_ns([p[i] for p in phases]) / 1e6 for i in range(3))
    vm_ms, spawn_ms = _median_ns(vm_ns) / 1e6, _median_ns(spawn_ns) / 1e6
    return StartupResult(libc, runs, load_ms, construct_ms, run_ms, vm_ms, spawn_ms,
                         _median_ns(sub_ns) / 1e6, vm_ms / spawn_ms,
                         _median_ns(preloaded_ns) / 1e6 / spawn_ms)


# -- report ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    """Sizes for one run of the benchmark."""

    calls: int
    syscall_repeats: int
    dirty_sizes: tuple[int, ...]
    snapshot_repeats: int
    startup_runs: int


FULL = Settings(calls=20_000, syscall_repeats=5, dirty_sizes=(1, 10, 100, 1000),
                snapshot_repeats=20, startup_runs=30)
QUICK = Settings(calls=3_000, syscall_repeats=3, dirty_sizes=(1, 10, 100, 1000),
                 snapshot_repeats=5, startup_runs=8)


def _met(value: float, target: float) -> str:
    """A verdict against an upper-bound target."""
    return "[green]met[/]" if value <= target else "[red]missed[/]"


def main() -> None:
    """Run (a), (b) and (c) and print one table each."""
    from rich.console import Console
    from rich.table import Table

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls and repetitions")
    options = parser.parse_args()
    settings = QUICK if options.quick else FULL
    console = Console()
    console.print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, "
                  f"kernel {platform.release()}, {'quick' if options.quick else 'full'} run")

    sc = bench_syscalls(GUESTS / "musl" / "getpid_loop", settings.calls, settings.syscall_repeats)
    table = Table(title=f"(a) getpid round trip, musl getpid_loop {sc.calls}, "
                        f"median of {sc.repeats}")
    for column in ("loop", "µs/syscall", "× raw C"):
        table.add_column(column, justify="right" if column != "loop" else "left")
    table.add_row("raw C exit loop (run_bench_loop)", f"{sc.raw_us:.2f}", "1.00")
    table.add_row("bare Python Vm.run() loop", f"{sc.bare_us:.2f}", f"{sc.bare_ratio:.2f}")
    table.add_row("full stack (GuestProcess)", f"{sc.full_us:.2f}", f"{sc.ratio:.2f}")
    console.print(table)
    console.print(f"full stack / raw C = {sc.ratio:.2f}×: target ≤ 1.5× {_met(sc.ratio, 1.5)}, "
                  f"stretch ≤ 1.2× {_met(sc.ratio, 1.2)}")

    rows, full = bench_snapshots(settings.dirty_sizes, settings.snapshot_repeats)
    table = Table(title=f"(b) incremental snapshot, median of {settings.snapshot_repeats}")
    for column in ("dirty pages", "dirtied by", "take ms", "pages taken", "restore ms",
                   "pages restored"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(str(row.dirty), row.source, f"{row.take_ms:.3f}", str(row.take_pages),
                      f"{row.restore_ms:.3f}", str(row.restore_pages))
    table.add_row("full take", "", f"{full.ms:.3f}", str(full.pages), "", "")
    console.print(table)
    worst_100 = max(r.take_ms for r in rows if r.dirty == 100)
    console.print(f"incremental take of 100 dirty pages: {worst_100:.3f} ms, "
                  f"target ≤ 1 ms {_met(worst_100, 1.0)}")

    table = Table(title="(c) start to exit of hello, median ms")
    for column in ("program", "runs", "load ELF", "construct", "run", "VM total",
                   "posix_spawn", "subprocess", "total/spawn", "w/o load/spawn"):
        table.add_column(column, justify="right")
    results = [bench_startup(GUESTS / libc / "hello", settings.startup_runs, libc)
               for libc in ("musl", "glibc")]
    for st in results:
        table.add_row(f"{st.libc} hello", str(st.runs), f"{st.load_ms:.2f}",
                      f"{st.construct_ms:.2f}", f"{st.run_ms:.2f}", f"{st.vm_ms:.2f}",
                      f"{st.spawn_ms:.2f}", f"{st.subprocess_ms:.2f}", f"{st.ratio:.2f}",
                      f"{st.preloaded_ratio:.2f}")
    console.print(table)
    console.print(f"musl hello VM / native = {results[0].ratio:.2f}×: target ≤ 3× "
                  f"{_met(results[0].ratio, 3.0)}")


if __name__ == "__main__":
    main()
