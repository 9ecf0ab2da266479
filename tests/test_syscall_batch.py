"""The syscalls of the identity, scheduling, residency, machine and file-management families
against Linux: each test program prints every call's result, natively (as the root of a
user namespace that maps only id 0, the guest's identity: `unshare --map-root-user`) and
under chaosreplay, and the two outputs must be the same line for line."""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path

import program_cache
import pytest

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

LIBCS = ["glibc", "musl"]


def built(source: str, libc: str) -> Path:
    reason = program_cache.missing_toolchain(source, libc)
    if reason is not None:
        pytest.skip(reason)
    return program_cache.build_program(source, libc)


@functools.cache
def _unshare_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    result = subprocess.run(["unshare", "--map-root-user", "true"], capture_output=True,
                            check=False)
    return result.returncode == 0


def native_output(path: Path, *args: str, cwd: Path | None = None) -> str:
    """What the program prints on this host's Linux as the guest's identity."""
    if not _unshare_works():
        pytest.skip("unshare --map-root-user is not permitted here")
    result = subprocess.run(["unshare", "--map-root-user", str(path), *args],
                            capture_output=True, text=True, timeout=60, check=False, cwd=cwd)
    assert result.returncode == 0, result.stderr
    return result.stdout


def guest_output(path: Path, *args: str) -> tuple[str, GuestProcess]:
    argv = [str(path).encode(), *(a.encode() for a in args)]
    process = GuestProcess(load_program(path), ProcessConfig(argv=argv))
    process.run_to_completion(hang_seconds=30)
    assert (process.status, process.exit_code) == (Status.EXITED, 0), process.crash
    return bytes(process.stdout).decode(), process


def assert_same_lines(native: str, guest: str) -> None:
    native_lines, guest_lines = native.splitlines(), guest.splitlines()
    for i, (n, g) in enumerate(zip(native_lines, guest_lines, strict=False)):
        assert g == n, f"line {i + 1}: Linux printed {n!r}, chaosreplay {g!r}"
    assert guest_lines == native_lines
    assert native_lines[-1] == "done"


@pytest.mark.kvm
@pytest.mark.parametrize("libc", LIBCS)
def test_identity_scheduling_memory_and_machine_calls_answer_as_linux(libc: str) -> None:
    """set*id/getres*id/setfs*id/setgroups/capget/capset, get/setpriority, sched_*,
    ioprio_*, mincore/mlock*/msync, set/get_mempolicy/mbind, sethostname, syslog,
    clock_settime, settimeofday, adjtimex, clock_adjtime, personality, times: every result
    and every value read back is Linux's."""
    path = built("identity_sched.c", libc)
    guest, process = guest_output(path)
    assert_same_lines(native_output(path), guest)
    assert process.unknown_syscalls == {} or set(process.unknown_syscalls) == {334}


@pytest.mark.kvm
def test_task_attributes_survive_a_checkpoint() -> None:
    """nice, policy, capabilities and personality set by the guest are in the checkpoint and
    come back on restore (a fresh process adopting the state reads the same values)."""
    from chaosreplay.kernel.task_attributes import attributes_of

    path = built("identity_sched.c", "musl")
    _, process = guest_output(path)
    state = process.kernel_state()
    fresh = GuestProcess(load_program(path), ProcessConfig(argv=[str(path).encode()]))
    assert attributes_of(fresh) != attributes_of(process)
    fresh.load_kernel_state(state)
    assert attributes_of(fresh) == attributes_of(process)
    assert attributes_of(fresh).nice == 19 and attributes_of(fresh).cap_inheritable == 1


def test_a_checkpoint_from_before_the_attributes_loads_with_the_defaults() -> None:
    """files_state() without "attributes" (older checkpoints) passes the state check."""
    from chaosreplay.kernel.state_check import FILES
    from chaosreplay.recording.schema import SchemaError, validate

    state = {"version": 2, "table": {"descriptions": [], "shared": [], "fds": [],
                                     "limit": 1024, "next_ino": 1},
             "cwd": [b"", 1, []], "umask": 0o22, "waiting": None}
    validate(state, FILES, "files")
    with pytest.raises(SchemaError, match=r"attributes\[0\] is 99"):
        validate({**state, "attributes": [99] + [0] * 10}, FILES, "files")
