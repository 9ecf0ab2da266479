"""The syscalls of the identity, scheduling, residency, machine and file-management families
against Linux: each test program prints every call's result, natively (as the root of a
user namespace that maps only id 0, the guest's identity: `unshare --map-root-user`) and
under chaosreplay, and the two outputs must be the same line for line."""

from __future__ import annotations

import errno
import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from program_cache import built

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

LIBCS = ["glibc", "musl"]


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
    clock_settime, settimeofday, adjtimex, clock_adjtime, personality, times, mount,
    umount2, pivot_root, swapon/swapoff, acct, vhangup, reboot: every result and every value
    read back is Linux's."""
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
    """A version 3 files_state() without "attributes" (checkpoints from before them) passes
    the state check; one with attributes has them checked."""
    from chaosreplay.kernel.state_check import FILES
    from chaosreplay.recording.schema import SchemaError, validate

    state = {"version": 3, "table": {"descriptions": [], "shared": [], "fds": [],
                                                 "limit": 1024, "next_ino": 1},
             "cwd": [b"", 1, []], "umask": 0o22, "waiting": []}
    validate(state, FILES, "files")
    with pytest.raises(SchemaError, match=r"attributes\[0\] is 99"):
        validate({**state, "attributes": [99] + [0] * 10}, FILES, "files")


def _on_ext4(directory: Path) -> bool:
    result = subprocess.run(["stat", "-f", "-c", "%t", str(directory)], capture_output=True,
                            text=True, check=False)
    return result.stdout.strip() == "ef53"


@pytest.mark.kvm
@pytest.mark.parametrize("libc", LIBCS)
def test_file_management_calls_answer_as_linux_on_ext4(libc: str, tmp_path: Path) -> None:
    """link/linkat, statfs/fstatfs, sync/syncfs/sync_file_range, fadvise64, readahead,
    fallocate (every mode), copy_file_range, preadv2/pwritev2, utime/utimes/futimesat,
    getdents, openat2 (with RESOLVE_*), the xattr family, memfd_create with seals, kcmp and
    process_vm_readv/writev: Linux on ext4 and the node's disk print the same."""
    if not _on_ext4(tmp_path):
        pytest.skip("the native half needs a directory on ext4, as the disk presents itself")
    path = built("file_calls.c", libc)
    guest, process = guest_output(path, "/tmp")
    assert_same_lines(native_output(path, str(tmp_path)), guest)
    assert process.unknown_syscalls == {} or set(process.unknown_syscalls) == {334}


def test_a_memfd_survives_a_checkpoint_of_the_descriptor_table() -> None:
    """A sparse, sealed memfd saves with the table, passes the state check and loads back
    with its bytes, size, seals and offset; its bytes count against half the memory."""
    from types import SimpleNamespace

    from chaosreplay.kernel.fs.files import FdTable
    from chaosreplay.kernel.fs.memfd import F_SEAL_GROW, MemFile
    from chaosreplay.kernel.fs.pipes import Pipe
    from chaosreplay.kernel.state_check import TABLE
    from chaosreplay.recording.schema import validate

    table = FdTable()
    p: Any = SimpleNamespace(files=table, config=SimpleNamespace(mem_size=1 << 16))
    file = MemFile(2, b"/memfd:m (deleted)", table.anon_ino())
    table.install(file)
    assert file.write(p, b"abc") == 3 and file.truncate(p, 10_000) == 0
    assert file.pwrite(p, bytes((1 << 15) + 1), 0) == -errno.ENOSPC  # past half of 64 KiB in all
    assert file.add_seals(F_SEAL_GROW) == 0
    _, saved = table.save()
    validate(saved, TABLE, "table")
    loaded, _ = FdTable.load(saved, Pipe.from_state)
    again = loaded.get(0)
    assert isinstance(again, MemFile)
    assert (bytes(again.data), again.size, again.seals, again.offset) == (b"abc", 10_000,
                                                                          F_SEAL_GROW, 3)
    assert again.pwrite(p, b"x", 20_000) == -errno.EPERM


def test_an_open_fifo_survives_a_checkpoint_of_the_descriptor_table() -> None:
    """Both ends of a FIFO share one pipe after a save and load, with the bytes in it."""
    from types import SimpleNamespace

    from chaosreplay.kernel.fs.fifo import FifoEnd, open_fifo
    from chaosreplay.kernel.fs.files import O_NONBLOCK, O_RDONLY, O_WRONLY, FdTable
    from chaosreplay.kernel.fs.pipes import Pipe
    from chaosreplay.kernel.state_check import TABLE
    from chaosreplay.recording.schema import validate

    table = FdTable()
    p: Any = SimpleNamespace(files=table, vtime_ns=0)
    assert open_fifo(p, 7, b"/tmp/f", O_WRONLY | O_NONBLOCK) == -errno.ENXIO
    reader = open_fifo(p, 7, b"/tmp/f", O_RDONLY | O_NONBLOCK)
    assert isinstance(reader, FifoEnd)
    table.install(reader)
    writer = open_fifo(p, 7, b"/tmp/f", O_WRONLY | O_NONBLOCK)
    assert isinstance(writer, FifoEnd) and writer.pipe is reader.pipe
    table.install(writer)
    assert writer.write(p, b"queued") == 6
    _, saved = table.save()
    validate(saved, TABLE, "table")
    loaded, _ = FdTable.load(saved, Pipe.from_state)
    r, w = loaded.get(0), loaded.get(1)
    assert isinstance(r, FifoEnd) and isinstance(w, FifoEnd) and r.pipe is w.pipe
    assert (r.pipe.readers, r.pipe.writers, r.read(p, 64)) == (1, 1, b"queued")
