"""Node programs run in real KVM VMs with the VMM as their kernel (chaosreplay.kernel.process)."""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.sdk_abi import AssertKind, fnv1a64
from chaosreplay.vm.elf import load_program

pytestmark = pytest.mark.kvm

GuestBin = Callable[[str, str], Path]


def start(path: Path, seed: int = 0, argv: list[str] | None = None,
          events: list[tuple[str, dict[str, Any]]] | None = None, **config: Any) -> GuestProcess:
    """A process for a built guest; events (kind, fields) are appended to `events`."""

    def sink(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        if events is not None:
            events.append((str(kind), fields))

    args = [str(path).encode()] + [a.encode() for a in argv or []]
    return GuestProcess(load_program(path), ProcessConfig(argv=args, seed=seed, **config),
                        on_event=sink)


def run(path: Path, **kwargs: Any) -> GuestProcess:
    process = start(path, **kwargs)
    process.run_to_completion(hang_seconds=20)
    return process


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_hello_world_prints_and_exits_zero(guest_bin: GuestBin, libc: str) -> None:
    p = run(guest_bin(libc, "hello"))
    assert (p.status, p.exit_code) == (Status.EXITED, 0), p.crash
    assert bytes(p.stdout) == b"hello, world\n"
    assert p.unknown_syscalls == {}


def test_static_pie_runs_at_its_load_bias(guest_bin: GuestBin) -> None:
    p = run(guest_bin("glibc", "hello_pie"))
    assert bytes(p.stdout) == b"hello, world\n"


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_malloc_heavy_program_reuses_freed_memory(guest_bin: GuestBin, libc: str) -> None:
    p = run(guest_bin(libc, "malloc_heavy"))
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    assert b"checksum 560f01a48d82dc23" in bytes(p.stdout)
    stats = p.vm.stats()
    assert stats.pte_ops > 0, "munmap of touched pages must go through the CPL0 fix-up path"


def test_every_sdk_call_reaches_the_vmm(guest_bin: GuestBin) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    p = run(guest_bin("musl", "sdk_all"), seed=3, events=events)
    assert p.exit_code == 0, bytes(p.stdout)
    kinds = {kind for kind, _ in events}
    assert {"assert", "setup_complete", "sdk.event"} <= kinds
    asserts = [f for k, f in events if k == "assert"]
    # sdk_all keeps CR_UNREACHABLE on a path it never takes: reaching it would be a bug.
    reached = {AssertKind.ALWAYS, AssertKind.SOMETIMES, AssertKind.REACHABLE}
    assert {a["assert_kind"] for a in asserts} == reached
    for a in asserts:
        assert a["id"] == fnv1a64(a["message"].encode()), a
        assert a["file"].endswith("sdk_all.c") and a["line"] > 0
    assert b"node 0 of 1" in bytes(p.stdout)


def _observable(p: GuestProcess, events: list[tuple[str, dict[str, Any]]]) -> tuple[Any, ...]:
    trace = [(f["nr"], tuple(f["args"]), f["ret"]) for k, f in events if k == "syscall"]
    return bytes(p.stdout), trace, p.digest(), p.vtime_ns


def test_twenty_runs_of_a_seed_are_identical(guest_bin: GuestBin) -> None:
    """stdout, syscall trace (numbers, arguments, results) and final state digest."""
    results = []
    for _ in range(20):
        events: list[tuple[str, dict[str, Any]]] = []
        p = run(guest_bin("glibc", "nonvirt"), seed=11, events=events)
        results.append(_observable(p, events))
    first = results[0]
    assert first[1], "the syscall trace must not be empty"
    for i, other in enumerate(results[1:], start=2):
        assert other == first, f"run {i} differs from run 1"


def _random_outputs(path: Path, seed: int) -> dict[str, str]:
    out = bytes(run(path, seed=seed).stdout).decode()
    return dict(re.findall(r"^(at_random|getrandom|random|rdrand|rdseed) (\S+)", out, re.M))


def test_seed_changes_every_random_source(guest_bin: GuestBin) -> None:
    sources = {}
    for seed in (1, 2):
        values = _random_outputs(guest_bin("musl", "rand"), seed)
        values.update(_random_outputs(guest_bin("musl", "sdk_all"), seed))
        values.update(_random_outputs(guest_bin("musl", "nonvirt"), seed))
        sources[seed] = values
    assert set(sources[1]) == {"at_random", "getrandom", "random", "rdrand", "rdseed"}
    for name in sources[1]:
        assert sources[1][name] != sources[2][name], f"{name} did not change with the seed"
    assert _random_outputs(guest_bin("musl", "rand"), 1)["at_random"] == sources[1]["at_random"]


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_nonvirtualizable_instructions_are_patched_and_virtual(guest_bin: GuestBin,
                                                               libc: str) -> None:
    p = run(guest_bin(libc, "nonvirt"), seed=5)
    out = bytes(p.stdout).decode()
    assert "vendor GenuineIntel" in out and "xgetbv 0: 0000000000000003" in out
    tsc = int(re.search(r"^rdtsc (\d+)", out, re.M).group(1))
    assert 0 < tsc <= p.vtime_ns, "the TSC is virtual nanoseconds, not the host's counter"
    assert "rdpid 0" in out and "aux 0" in out


def test_no_patch_refuses_programs_with_nonvirtualizable_instructions(
        guest_bin: GuestBin) -> None:
    with pytest.raises(GuestProgramError, match="non-virtualizable"):
        start(guest_bin("musl", "nonvirt"), patch=False)


@pytest.mark.parametrize(("name", "signo", "symbol", "fault"), [
    ("segv", signal.SIGSEGV, "main", 0x10),
    ("divzero", signal.SIGFPE, "main", None),
    ("ud", signal.SIGILL, "main", None),
])
def test_cpu_exceptions_end_the_program_as_crashes(guest_bin: GuestBin, name: str, signo: int,
                                                    symbol: str, fault: int | None) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    p = run(guest_bin("musl", name), events=events)
    assert p.status is Status.CRASHED and p.crash is not None
    assert p.crash.signal == signo
    assert p.crash.symbol.startswith(symbol), p.crash
    if fault is not None:
        assert p.crash.fault_address == fault
    assert [k for k, _ in events].count("crash") == 1


def test_unknown_syscall_returns_enosys_and_is_counted(guest_bin: GuestBin) -> None:
    p = run(guest_bin("musl", "enosys"))
    assert p.exit_code == 0, bytes(p.stdout)
    assert p.unknown_syscalls == {444: 1}


def test_sleep_advances_virtual_time_not_wall_time(guest_bin: GuestBin) -> None:
    p = run(guest_bin("musl", "clock"))
    assert p.vtime_ns >= 1_500_000_000
    assert b"realtime 1704067200." in bytes(p.stdout)


def test_spinning_guest_is_reported_as_hung(guest_bin: GuestBin) -> None:
    p = start(guest_bin("musl", "spin"))
    assert p.run_to_completion(hang_seconds=0.5) is Status.HUNG
    assert bytes(p.stdout) == b"spinning\n"


def _run_until(p: GuestProcess, deadline_ns: int) -> None:
    while p.vtime_ns <= deadline_ns and p.run(deadline_ns) in (Status.RUNNING, Status.BLOCKED):
        pass


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_checkpoint_restore_continues_like_an_uninterrupted_run(guest_bin: GuestBin,
                                                                 libc: str) -> None:
    """Across munmap/mprotect: the restored run ends with the same digest and output."""
    path = guest_bin(libc, "malloc_heavy")
    straight = run(path, seed=9)
    expected = (bytes(straight.stdout), straight.digest(), straight.vtime_ns)

    p = start(path, seed=9)
    _run_until(p, straight.vtime_ns // 3)
    assert p.status is Status.RUNNING
    checkpoint = p.checkpoint(incremental=False)
    p.run_to_completion()
    assert (bytes(p.stdout), p.digest(), p.vtime_ns) == expected
    assert p.vm.stats().pte_ops > 0

    p.restore(checkpoint)  # incremental path: only pages written since are copied back
    p.run_to_completion()
    assert (bytes(p.stdout), p.digest(), p.vtime_ns) == expected


def test_checkpoint_moves_to_a_fresh_vm(guest_bin: GuestBin) -> None:
    """State bytes + pages are enough to continue in another process (another host)."""
    path = guest_bin("glibc", "malloc_heavy")
    source = start(path, seed=4)
    _run_until(source, 400_000)
    checkpoint = source.checkpoint(incremental=False)
    state = checkpoint.snapshot.state()
    memory = checkpoint.snapshot.memory_view()
    pages = {pfn: bytes(memory[pfn * 4096:(pfn + 1) * 4096])
             for pfn in range(len(memory) // 4096) if any(memory[pfn * 4096:(pfn + 1) * 4096])}
    source.run_to_completion()

    target = start(path, seed=4)
    snap = target.vm.snapshot()
    snap.load(state, pages)
    snap.restore()
    target.load_kernel_state(checkpoint.kernel)
    target.run_to_completion()
    assert bytes(target.stdout) == bytes(source.stdout)
    assert target.digest() == source.digest()


def test_the_coverage_map_location_is_part_of_the_kernel_state(guest_bin: GuestBin) -> None:
    """Where the SDK's edge bitmap lives (CR_SYS_COVERAGE) comes back with a checkpoint, so
    a run resumed from one still knows it."""
    p = start(guest_bin("musl", "hello"))
    p.coverage_map = (0x423000, 1 << 14)
    q = start(guest_bin("musl", "hello"))
    q.load_kernel_state(p.kernel_state())
    assert q.coverage_map == (0x423000, 1 << 14)
    p.coverage_map = None
    q.load_kernel_state(p.kernel_state())
    assert q.coverage_map is None
