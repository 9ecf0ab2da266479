"""Benchmark Vm.clone (fork without CLONE_VM) against the guest memory in use.

    python benchmarks/bench_clone.py [--quick]

A 256 MiB VM runs a hand-assembled syscall loop after the host wrote `used` MiB of user
pages; each clone copies guest memory up to the allocator's high mark, so its cost is a
fixed VM creation plus a part proportional to the memory in use. Medians of interleaved
repetitions; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

from chaosreplay.vm.vmm import ExitReason, Prot, Vm

VM_SIZE = 256 << 20
CODE_VA = 0x400000
DATA_VA = 0x1000_0000
STACK_VA = 0x7000_0000
MIB = 1 << 20
# mov eax, 1000; syscall; jmp to start
SYSCALL_LOOP = bytes.fromhex("B8E8030000" "0F05" "EBF7")


@dataclass(frozen=True, slots=True)
class CloneResult:
    """Median ms of one clone of a VM with `used_mib` of user memory written."""

    used_mib: float
    copied_mib: float
    clone_ms: float


def _vm_using(used_bytes: int) -> Vm:
    """A VM stopped at a syscall after the host wrote used_bytes of user memory."""
    vm = Vm(VM_SIZE)
    vm.map(CODE_VA, 4096, Prot.READ | Prot.EXEC)
    vm.write(CODE_VA, SYSCALL_LOOP)
    vm.map(STACK_VA, 4096, Prot.READ | Prot.WRITE)
    if used_bytes:
        vm.map(DATA_VA, used_bytes, Prot.READ | Prot.WRITE)
        vm.write(DATA_VA, bytes(range(256)) * (used_bytes // 256))
    vm.start(CODE_VA, STACK_VA + 4096)
    if vm.run() != ExitReason.SYSCALL:
        raise RuntimeError("the syscall loop did not reach its syscall")
    return vm


def bench_clone(sizes_mib: tuple[float, ...], repeats: int) -> list[CloneResult]:
    """Median clone time per size (interleaved repetitions; each child is dropped)."""
    vms = {size: _vm_using(int(size * MIB) // 4096 * 4096) for size in sizes_mib}
    samples: dict[float, list[int]] = {size: [] for size in sizes_mib}
    for _ in range(repeats):
        for size, vm in vms.items():
            start = time.perf_counter_ns()
            child = vm.clone()
            samples[size].append(time.perf_counter_ns() - start)
            if child.run() != ExitReason.SYSCALL:
                raise RuntimeError("the clone did not resume at its syscall loop")
            del child
    return [CloneResult(size, len(vms[size].memory_view()) / MIB,
                        statistics.median(samples[size]) / 1e6) for size in sizes_mib]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repetitions")
    args = parser.parse_args()
    sizes = (0.0, 4.0, 16.0) if args.quick else (0.0, 1.0, 4.0, 16.0, 64.0)
    rows = bench_clone(sizes, repeats=3 if args.quick else 15)
    base = rows[0].clone_ms
    print("| user MiB written | MiB copied (to high mark) | clone ms | ms per MiB over empty |")
    print("|---:|---:|---:|---:|")
    for row in rows:
        extra = row.copied_mib - rows[0].copied_mib
        per_mib = f"{(row.clone_ms - base) / extra:.2f}" if extra > 0.5 else "—"
        print(f"| {row.used_mib:g} | {row.copied_mib:.2f} | {row.clone_ms:.2f} | {per_mib} |")


if __name__ == "__main__":
    main()
