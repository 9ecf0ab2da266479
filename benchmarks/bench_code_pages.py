"""Benchmark W^X for guest code: what scanning code before it runs costs.

    python benchmarks/bench_code_pages.py [--quick]

Measures (issue 11, item 4):
(a) the host-side cost of one execute fault on a fresh page of an RWX mapping (the
    handler: read the page, scan it at every byte offset, patch, re-protect): a page with
    no pattern, a page of real compiled code (static glibc text) with and without a
    non-virtualizable instruction, and a page with a stray that is trapped (int3);
(b) the load-time scan of whole programs (sites and hidden patterns in one pass);
(c) end to end in a guest: the JIT and hidden-instruction reproducers and hidden_loop (a
    hidden pattern in a hot loop), with the number of scans, single-steps and trap exits;
(d) the raft demo built with coverage (raft_cov: a hidden rdtsc in a coverage call), 3
    nodes for 5 virtual seconds.
Medians of repetitions; nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.process import GuestProcess, ProcessConfig
from chaosreplay.sim.demo import DEMO_SCENARIO_TOML
from chaosreplay.sim.scenario import loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, Vm

REPO = Path(__file__).resolve().parents[1]
GUESTS = REPO / "guest" / "build"
BASE = 0x7E00_0000_0000
FETCH = 0x15  # #PF error code: user instruction fetch from a present page


@dataclass
class _Regs:
    rip: int = 0
    rsp: int = 0
    rflags: int = 0x2


def _glibc_code_page(with_pattern: bool) -> bytes:
    """A page of static glibc's text, with or without one of the patterns."""
    image = load_program(GUESTS / "glibc" / "hello")
    [text] = image.executable_segments()
    for offset in range(0, text.filesz - PAGE_SIZE, PAGE_SIZE):
        page = text.data[offset : offset + PAGE_SIZE]
        if bool(nonvirt._CORE_PATTERN.search(page)) == with_pattern:
            return page
    raise RuntimeError("no such page in glibc hello")


def page_kinds() -> dict[str, bytes]:
    """The page contents (a) measures, by name."""
    stub = b"\x90" * 64 + b"\x0f\x31\x48\xc1\xe2\x20\x48\x09\xd0\xc3"
    hidden = b"\x90" * 64 + b"\xb8\x0f\x31\xc3\x90\xc3"
    return {
        "zero page (no pattern)": bytes(PAGE_SIZE),
        "glibc text, no pattern": _glibc_code_page(False),
        "glibc text with a pattern": _glibc_code_page(True),
        "JIT stub: rdtsc; ret (patched)": stub.ljust(PAGE_SIZE, b"\xcc"),
        "hidden rdtsc (trapped)": hidden.ljust(PAGE_SIZE, b"\xcc"),
    }


def _no_emulation(site: nonvirt.Site) -> None:
    return None


def bench_fault_scan(contents: bytes, pages: int, repeats: int) -> float:
    """Median µs per execute fault on a fresh page holding contents (handler, host side)."""
    samples = []
    for _ in range(repeats):
        space = AddressSpace(Vm(32 << 20))
        space.map_fixed(BASE, pages * PAGE_SIZE, Prot.READ | Prot.WRITE | Prot.EXEC, "[anon]",
                        eager=True)
        for i in range(pages):
            space.vm.write(BASE + i * PAGE_SIZE, contents)
        # Every other page: each scan then reads a tail that is not code yet.
        targets = [BASE + i * PAGE_SIZE for i in range(0, pages, 2)]
        start = time.perf_counter_ns()
        for page in targets:
            space.code.on_page_fault(page, FETCH, _Regs(rip=page), _no_emulation)
        samples.append((time.perf_counter_ns() - start) / len(targets) / 1000)
    return float(statistics.median(samples))


def bench_load_scan(path: Path, repeats: int) -> tuple[float, int, int, int]:
    """(median ms, sites, hidden patterns, of which defused) for one program's load scan."""
    image = load_program(path)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        sites, strays = nonvirt.scan_program(image)
        samples.append((time.perf_counter_ns() - start) / 1e6)
    defused = sum(1 for s in strays if nonvirt.defuse(image, s) is not None)
    return float(statistics.median(samples)), len(sites), len(strays), defused


@dataclass(frozen=True)
class GuestResult:
    """One reproducer run end to end."""

    name: str
    wall_ms: float
    scans: int
    steps: int
    pte_fixups: int
    trap_hits: int
    trap_steps: int


def bench_guest(path: Path, *args: bytes) -> GuestResult:
    image = load_program(path)
    process = GuestProcess(image, ProcessConfig(argv=[str(path).encode(), *args]))
    start = time.perf_counter_ns()
    process.run_to_completion(hang_seconds=600)
    wall = (time.perf_counter_ns() - start) / 1e6
    code = process.space.code
    return GuestResult(path.parent.name + "/" + path.name, wall, code.scans, code.steps,
                       process.vm.stats().pte_fixups, code.trap_hits, code.trap_steps)


def bench_demo(path: Path, seconds: int) -> tuple[float, int, int]:
    """(wall s, single-steps, trap exits) of the demo scenario running `path` for a while."""
    toml = (DEMO_SCENARIO_TOML.replace('"builtin:demo"', f'"{path}"')
            .replace('duration = "60s"', f'duration = "{seconds}s"'))
    sim = Simulation(loads_scenario(toml, "bench"), [load_program(path)])
    start = time.perf_counter()
    sim.run()
    wall = time.perf_counter() - start
    codes = [node.process.space.code for node in sim.nodes]
    return wall, sum(c.steps for c in codes), sum(c.trap_hits for c in codes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer pages and repetitions")
    args = parser.parse_args()
    pages, repeats = (8, 3) if args.quick else (64, 7)
    print(f"host: {platform.machine()} {platform.release()}, Python {platform.python_version()}")
    print(f"\n(a) execute fault on a fresh RWX page, host side (median of {repeats}, "
          f"{pages // 2} pages each)")
    print("| page | µs per fault |\n|---|---:|")
    for name, contents in page_kinds().items():
        print(f"| {name} | {bench_fault_scan(contents, pages, repeats):.0f} |")
    print("\n(b) load-time scan (sites + hidden patterns, one pass)")
    print("| program | ms | sites | hidden | defused |\n|---|---:|---:|---:|---:|")
    programs = [GUESTS / "musl" / "hello", GUESTS / "glibc" / "hello", Path("/bin/busybox")]
    for program in programs:
        if program.exists():
            ms, sites, hidden, defused = bench_load_scan(program, max(1, repeats // 2))
            print(f"| {program} | {ms:.0f} | {sites} | {hidden} | {defused} |")
    print("\n(c) reproducers end to end")
    print("| guest | wall ms | scans | single-steps | trap hits | trap steps | PTE fix-ups |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    loops = b"200" if args.quick else b"10000"
    for libc in ("musl", "glibc"):
        for name, argv in (("jit", ()), ("hidden_insn", ()), ("selfmod", ()),
                           ("hidden_loop", (loops,))):
            r = bench_guest(GUESTS / libc / name, *argv)
            print(f"| {r.name} {b' '.join(argv).decode()} | {r.wall_ms:.0f} | {r.scans} | "
                  f"{r.steps} | {r.trap_hits} | {r.trap_steps} | {r.pte_fixups} |")
    seconds = 1 if args.quick else 5
    print(f"\n(d) demo scenario with raft_cov, {seconds} virtual s")
    print("| program | wall s | single-steps | trap hits |\n|---|---:|---:|---:|")
    for libc in ("musl", "glibc"):
        wall, steps, hits = bench_demo(GUESTS / libc / "raft_cov", seconds)
        print(f"| {libc}/raft_cov | {wall:.1f} | {steps} | {hits} |")


if __name__ == "__main__":
    main()
