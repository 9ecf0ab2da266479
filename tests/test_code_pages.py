"""W^X for guest code (chaosreplay.kernel.mm.code_pages): code the load never saw is
scanned before it runs, and hidden instruction bytes are single-stepped, never native.

The three reproducers: hidden_insn jumps into the middle of instructions that hide rdtsc,
cpuid and rdrand; jit writes them into RWX and W-then-X mappings and calls them; selfmod
writes them over its own text after mprotect. Natively each gets the host's TSC, CPU model
and hardware random numbers; under chaosreplay each must get the virtual ones.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from simulate import scenario

from chaosreplay.kernel.mm.code_pages import TF
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb
from chaosreplay.rng import DeterministicStream
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm import virtual_cpu
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.nonvirt import Kind
from chaosreplay.vm.vmm import PAGE_SIZE, Prot

pytestmark = pytest.mark.kvm

GuestBin = Callable[[str, str], Path]
SEED = 11
REPRODUCERS = ["hidden_insn", "jit", "selfmod"]
# What each reproducer prints, in order, as (label, kind of value).
EXPECTED = {
    "hidden_insn": [("rdtsc", "tsc"), ("cpuid 1 eax", "cpuid"), ("rdrand", "rdrand")],
    "jit": [("rwx rdtsc", "tsc"), ("rwx cpuid 1 eax", "cpuid"), ("rwx rdrand", "rdrand"),
            ("mprotect rdtsc", "tsc"), ("hidden rdtsc low", "tsc")],
    "selfmod": [("before", "seven"), ("rdtsc", "tsc"), ("cpuid 1 eax", "cpuid"),
                ("rdrand", "rdrand")],
}


def _start(path: Path, seed: int = SEED) -> GuestProcess:
    return GuestProcess(load_program(path),
                        ProcessConfig(argv=[str(path).encode()], seed=seed))


def _run(path: Path, seed: int = SEED) -> GuestProcess:
    process = _start(path, seed)
    process.run_to_completion(hang_seconds=60)
    return process


def _values(stdout: bytes) -> list[tuple[str, str]]:
    lines = stdout.decode().splitlines()
    return [re.fullmatch(r"(.*) (\w+)", line).groups() for line in lines]  # type: ignore[union-attr]


@pytest.mark.parametrize("libc", ["musl", "glibc"])
@pytest.mark.parametrize("name", REPRODUCERS)
def test_reproducer_sees_only_virtual_values(guest_bin: GuestBin, libc: str, name: str) -> None:
    """Every hidden, JIT-written or rewritten instruction is emulated: virtual TSC (the
    node's virtual ns), the virtual CPU model, the seeded rdrand stream; and two runs agree."""
    first, second = _run(guest_bin(libc, name)), _run(guest_bin(libc, name))
    assert (first.status, first.exit_code) == (Status.EXITED, 0), (first.crash, first.stderr)
    assert bytes(first.stdout) == bytes(second.stdout)
    assert first.digest() == second.digest()
    values = _values(bytes(first.stdout))
    assert [label for label, _ in values] == [label for label, _ in EXPECTED[name]], values
    rdrand = int.from_bytes(DeterministicStream(SEED, "rdrand", 0).read(8), "little")
    for (label, text), (_, kind) in zip(values, EXPECTED[name], strict=True):
        if kind == "tsc":
            assert 0 < int(text) <= first.vtime_ns, (label, text, first.vtime_ns)
        elif kind == "cpuid":
            assert int(text, 16) == virtual_cpu.cpuid(1, 0)[0], (label, text)
        elif kind == "rdrand":
            assert int(text, 16) == rdrand, (label, text)
        else:
            assert text == "7"


def test_rdrand_follows_the_seed(guest_bin: GuestBin) -> None:
    """The hidden rdrand draws from the run's stream: another seed, another value."""
    a = dict(_values(bytes(_run(guest_bin("musl", "hidden_insn"), seed=1).stdout)))
    b = dict(_values(bytes(_run(guest_bin("musl", "hidden_insn"), seed=2).stdout)))
    assert a["rdrand"] != b["rdrand"]
    assert a["rdtsc"] == b["rdtsc"] and a["cpuid 1 eax"] == b["cpuid 1 eax"]


def _writable_and_executable(process: GuestProcess) -> list[int]:
    """Mapped pages the page tables let the guest both write and execute."""
    bad = []
    for vma in process.space.vmas():
        if not vma.prot & Prot.EXEC:
            continue
        for page in range(vma.start, vma.end, PAGE_SIZE):
            prot = process.vm.query(page)
            both = prot is not None and prot & Prot.WRITE and prot & Prot.EXEC
            if both and page != process.space.code.write_step:  # one instruction, under TF
                bad.append(page)
    return bad


@pytest.mark.parametrize("name", ["jit", "selfmod"])
def test_no_page_is_ever_writable_and_executable(guest_bin: GuestBin, name: str) -> None:
    """RWX mappings and mprotect(RWX) text never become W+X in the page tables."""
    process = _start(guest_bin("musl", name))
    stops = 0
    while process.status is Status.RUNNING:
        process.run(deadline_ns=process.vtime_ns + 500)
        assert _writable_and_executable(process) == [], (stops, process.vtime_ns)
        stops += 1
    assert process.exit_code == 0 and stops > 5
    rwx = [v for v in process.space.vmas() if v.prot == Prot.READ | Prot.WRITE | Prot.EXEC]
    assert rwx, "the guest's RWX mappings are RWX in its VMAs"


def test_jit_code_is_scanned_patched_and_rescanned_after_a_rewrite(guest_bin: GuestBin) -> None:
    """The RWX page is scanned at its first execution, patched to ud2 (which the guest
    sees if it reads it), and scanned again after each rewrite; the hidden rdtsc traps at
    its mov (filled with int3), and no page runs single-stepped."""
    process = _run(guest_bin("musl", "jit"))
    code = process.space.code
    assert code.scans >= 5, code.scans  # three rewrites, the W-then-X page, the hidden page
    runtime = [s for s in code.sites.values() if s.address >= 0x1000_0000]
    # rdrand; ret written over the cpuid stub leaves its tail `cpuid; pop; ret` after the
    # ret: a real instruction at a decoded boundary, patched too. rdtsc: the W-then-X page.
    assert sorted(s.kind.value for s in runtime) == ["cpuid", "rdrand", "rdtsc"], runtime
    for site in runtime:
        assert process.vm.read(site.address, 2) == b"\x0f\x0b", site
    hidden = [start for start in code.traps if start >= 0x1000_0000]
    assert len(hidden) == 1 and process.vm.read(hidden[0], 5) == b"\xcc" * 5, code.traps
    # main's movabs/mov immediates that carry the stubs' bytes are trapped too, each once
    assert code.trap_hits == len(code.traps) and code.guarded == set() and code.steps == 0


def test_checkpoint_restore_keeps_the_patched_site_registry(guest_bin: GuestBin) -> None:
    """Restoring a checkpoint taken between JIT steps gives the same rest of the run."""
    process = _start(guest_bin("musl", "jit"))
    while b"rwx rdtsc" not in process.stdout:
        assert process.run(deadline_ns=process.vtime_ns + 200) in (Status.RUNNING,
                                                                   Status.BLOCKED)
    checkpoint = process.checkpoint(incremental=False)
    assert checkpoint.kernel["code_pages"]["sites"]
    process.run_to_completion(hang_seconds=60)
    stdout, digest, state = bytes(process.stdout), process.digest(), process.space.code.to_state()
    process.restore(checkpoint)
    assert process.space.code.to_state() == checkpoint.kernel["code_pages"]
    process.run_to_completion(hang_seconds=60)
    assert bytes(process.stdout) == stdout
    assert process.digest() == digest
    assert process.space.code.to_state() == state


@pytest.mark.parametrize("libc", ["musl", "glibc"])
@pytest.mark.parametrize("name", REPRODUCERS)
def test_recorded_reproducer_replays_identically(guest_bin: GuestBin, tmp_path: Path,
                                                 libc: str, name: str) -> None:
    program = guest_bin(libc, name)
    path = tmp_path / f"{name}.ccr"
    record_run(scenario(program, [], count=2, duration="5ms"), [load_program(program)], path)
    report = replay_run(path)
    assert report.identical, report


def test_recorded_jit_run_replays_identically(guest_bin: GuestBin, tmp_path: Path) -> None:
    """A recording of the JIT guest replays bit for bit, also from its checkpoints."""
    program = guest_bin("musl", "jit")
    sc = scenario(program, [], count=2, duration="20ms", checkpoint_interval=2)
    images = [load_program(program)]
    path = tmp_path / "jit.ccr"
    record_run(sc, images, path)
    report = replay_run(path)
    assert report.identical, report
    with RecordingReader(path) as reader:
        recorded = [packb((e.tick, e.vtime_ns, e.node, e.kind, e.fields))
                    for e in reader.events()]
        assert reader.checkpoints, "the run should span a checkpoint"
        ckpt = reader.load_checkpoint(0)
        resumed: list[bytes] = []
        Simulation.resume(sc, images, ckpt.blobs, ckpt.pages,
                          sink=lambda *e: resumed.append(packb(e))).run()
    assert resumed == recorded[ckpt.info.seq:]


@pytest.mark.parametrize("name", ["hello", "nonvirt"])
def test_static_glibc_runs_without_single_stepping(guest_bin: GuestBin, name: str) -> None:
    """glibc's hidden patterns are re-encoded away at load: nothing is guarded, stepped or
    scanned, so W^X adds no exit (and no virtual time) to a glibc program."""
    process = _run(guest_bin("glibc", name))
    assert process.exit_code == 0, process.crash
    code = process.space.code
    assert (code.guarded, code.steps, code.scans) == (set(), 0, 0)


def test_trap_exits_cost_virtual_time_so_deadlines_are_reached(guest_bin: GuestBin) -> None:
    """A trapped instruction's exits are exits like any other: the clock moves and run()
    returns at its deadline (a hot loop without syscalls must not stall the controller)."""
    process = _start_with(guest_bin("musl", "hidden_loop"), b"100000")
    assert process.run(deadline_ns=50_000) is Status.RUNNING
    assert process.space.code.trap_hits > 0 and process.vtime_ns > 50_000


def _start_with(path: Path, *args: bytes, seed: int = SEED) -> GuestProcess:
    return GuestProcess(load_program(path),
                        ProcessConfig(argv=[str(path).encode(), *args], seed=seed))


def _native(path: Path, *args: bytes) -> bytes:
    return subprocess.run([path, *args], capture_output=True, check=True, timeout=60).stdout


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_hidden_pattern_in_a_hot_loop_traps_only_its_instruction(guest_bin: GuestBin,
                                                                   libc: str) -> None:
    """hidden_loop's `mov $0x9090310f` (rdtsc in its immediate) is filled with int3: each
    iteration is one #BP exit, the mov performed by the VMM; nothing is single-stepped, and
    the output is the native one."""
    path = guest_bin(libc, "hidden_loop")
    process = _start_with(path, b"300")
    process.run_to_completion(hang_seconds=60)
    assert process.exit_code == 0, process.crash
    assert bytes(process.stdout) == _native(path, b"300")
    code = process.space.code
    assert (code.trap_hits, code.trap_steps, code.steps) == (300, 0, 0)
    loop_mov = [o for o in code.traps.values() if o[1:] == b"\x0f\x31\x90\x90"]
    assert code.guarded == set() and len(loop_mov) == 1, code.traps
    again = _start_with(path, b"300")
    again.run_to_completion(hang_seconds=60)
    assert again.digest() == process.digest() and again.vtime_ns == process.vtime_ns


def test_checkpoint_inside_a_trapped_loop_restores_identically(guest_bin: GuestBin) -> None:
    """A checkpoint taken mid-loop (int3 fill in memory, the trap table in kernel state)
    restores into the same VM and finishes with the same output, digest and table."""
    process = _start_with(guest_bin("musl", "hidden_loop"), b"400")
    while process.space.code.trap_hits < 150:
        assert process.run(deadline_ns=process.vtime_ns + 20_000) is Status.RUNNING
    checkpoint = process.checkpoint(incremental=False)
    assert checkpoint.kernel["code_pages"]["traps"]
    process.run_to_completion(hang_seconds=60)
    stdout, digest, state = bytes(process.stdout), process.digest(), process.space.code.to_state()
    process.restore(checkpoint)
    assert process.space.code.to_state() == checkpoint.kernel["code_pages"]
    process.run_to_completion(hang_seconds=60)
    assert (bytes(process.stdout), process.digest()) == (stdout, digest)
    assert process.space.code.to_state() == state


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_pause_is_patched_and_each_one_charges_an_exception_exit(guest_bin: GuestBin,
                                                                 libc: str) -> None:
    """spin_pause's own pause loop and libc's spin lock hold patched pause sites; each pause
    is an exit that charges exception_cost_ns of virtual time (the guest's clock shows
    exactly that), and the program prints what it prints natively."""
    path = guest_bin(libc, "spin_pause")
    process = _start_with(path, b"50")
    process.run_to_completion(hang_seconds=60)
    assert process.exit_code == 0, process.crash
    lines = bytes(process.stdout).decode().splitlines()
    assert lines[0] == _native(path, b"50").decode().splitlines()[0] == "paused 50"
    config = process.config
    assert lines[1] == f"elapsed {50 * config.exception_cost_ns + config.syscall_cost_ns}"
    pauses = [s for s in process.sites.values() if s.kind is Kind.PAUSE]
    assert {s.symbol.split("+")[0].lstrip("_") for s in pauses} >= {"main", "pthread_spin_lock"}
    assert all(process.vm.read(s.address, 2) == b"\x0f\x0b" for s in pauses)
    again = _start_with(path, b"50")
    again.run_to_completion(hang_seconds=60)
    assert again.digest() == process.digest()


@pytest.mark.parametrize("name", ["hidden_loop", "spin_pause"])
def test_recorded_trap_and_pause_runs_replay_identically(guest_bin: GuestBin, tmp_path: Path,
                                                         name: str) -> None:
    program = guest_bin("glibc", name)
    path = tmp_path / f"{name}.ccr"
    record_run(scenario(program, [], count=2, duration="5ms"), [load_program(program)], path)
    report = replay_run(path)
    assert report.identical, report


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_spinning_thread_yields_at_each_pause(guest_bin: GuestBin, libc: str) -> None:
    """spin_threads: one thread holds a spin lock across sched_yield, the other spins on
    it with pause. Each pause is a switch point, so the spinner hands the vCPU back at
    once (one spin per turn, not a time slice of them); the count is the native one and
    the run is the same every time."""
    path = guest_bin(libc, "spin_threads")
    runs = [_start_with(path, b"50") for _ in range(2)]
    for process in runs:
        process.run_to_completion(hang_seconds=60)
        assert process.exit_code == 0, (process.crash, process.stderr)
    assert bytes(runs[0].stdout) == _native(path, b"50") == b"counter 100\n"
    spins = int(bytes(runs[0].stderr).split()[1])
    assert 0 < spins <= 100, spins  # without the yield: ~100 per turn (a whole time slice)
    assert (runs[0].digest(), bytes(runs[0].stderr)) == (runs[1].digest(), bytes(runs[1].stderr))


def test_no_trap_step_survives_a_task_switch(guest_bin: GuestBin) -> None:
    """hidden_threads: two threads run a trapped `add` (run alone under TF each time) and
    time slices end some turns between its int3 trap and its step. At every switch the
    fill is back and TF is off, or the next thread would run the hidden bytes unfilled."""
    path = guest_bin("musl", "hidden_threads")
    process = _start_with(path, b"2000")
    code = process.space.code
    switch_to = process._switch_to
    mid_step = 0

    def checked_switch(task: object) -> bool:
        nonlocal mid_step
        mid_step += code.disarmed is not None
        switched = switch_to(task)  # type: ignore[arg-type]
        assert code.disarmed is None and code.write_step is None and not code.stepping
        for start, original in code.traps.items():
            assert process.vm.read(start, len(original)) == b"\xcc" * len(original)
        assert not process.regs.rflags & TF
        return switched

    process._switch_to = checked_switch  # type: ignore[method-assign]
    process.run_to_completion(hang_seconds=60)
    assert process.exit_code == 0, process.crash
    assert bytes(process.stdout) == _native(path, b"2000")
    assert mid_step > 0, "no switch fell between a trap and its step: the test proves nothing"
