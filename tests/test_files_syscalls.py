"""File system calls (kernel.syscalls.files) under KVM: the files guest on musl and glibc."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.events import EventKind
from chaosreplay.kernel.fs.disk import CORRUPT_READ, DISK_FULL, READ_ERROR, WRITE_ERROR, FileSystem
from chaosreplay.kernel.fs.files import FdTable
from chaosreplay.kernel.fs.paths import ROOT
from chaosreplay.kernel.fs.regular import DiskFile
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.syscalls.files import files_state, load_files_state
from chaosreplay.kernel.task import Task
from chaosreplay.vm.elf import load_program

pytestmark = pytest.mark.kvm

GuestBin = Callable[[str, str], Path]
LIBCS = ["musl", "glibc"]
Events = list[tuple[str, dict[str, Any]]]


def start(path: Path, mode: str | None = None, events: Events | None = None,
          seed: int = 0) -> GuestProcess:
    """A files process (argv[1] = mode); events other than syscalls go to `events`."""

    def sink(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        if events is not None and kind != EventKind.SYSCALL:
            events.append((str(kind), fields))

    argv = [b"files"] + ([mode.encode()] if mode else [])
    return GuestProcess(load_program(path), ProcessConfig(argv=argv, seed=seed), on_event=sink)


def finish(p: GuestProcess) -> GuestProcess:
    status = p.run_to_completion(hang_seconds=20)
    assert (status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stdout))
    return p


@pytest.mark.parametrize("libc", LIBCS)
def test_files_program_passes_every_check(guest_bin: GuestBin, libc: str) -> None:
    """open/read/write/pread/pwrite/lseek/fsync/rename/unlink/mkdir/stat/readdir/stdio all work."""
    p = finish(start(guest_bin(libc, "files")))
    out = bytes(p.stdout)
    assert out.endswith(b"files: ok\n"), out
    assert b"listing: ./ ../ b.txt log \n" in out
    assert p.unknown_syscalls == {} or set(p.unknown_syscalls) == {334}, p.unknown_syscalls
    assert [fd for fd, _ in p.files.items()] == [0, 1, 2], "every file descriptor was closed"
    assert p.fs.lookup("/data") and [n for n, _, _ in p.fs.listdir(p.fs.lookup("/data"))] == [
        b".", b".."]


@pytest.mark.parametrize("libc", LIBCS)
def test_results_are_identical_across_runs(guest_bin: GuestBin, libc: str) -> None:
    """Same program, same seed: the same output (stat times included) and the same disk."""
    runs = [finish(start(guest_bin(libc, "files"), seed=4)) for _ in range(2)]
    assert bytes(runs[0].stdout) == bytes(runs[1].stdout)
    assert b"mtime 1704067200" in bytes(runs[0].stdout), "times come from the virtual clock"
    assert runs[0].fs.snapshot() == runs[1].fs.snapshot()
    assert runs[0].vtime_ns == runs[1].vtime_ns


@pytest.mark.parametrize("libc", LIBCS)
def test_write_error_fault_fails_write_and_fsync_with_eio_and_is_reported(
        guest_bin: GuestBin, libc: str) -> None:
    events: Events = []
    p = start(guest_bin(libc, "files"), "try-write", events)
    p.fs.set_fault("fault-1", WRITE_ERROR, 1.0)
    finish(p)
    assert bytes(p.stdout) == b"write: -1 errno 5\nfsync: -1 errno 5\n"
    faults = [f for k, f in events if k == "disk.fault"]
    assert faults == [
        {"op": "write", "path": "/data/try", "fault": WRITE_ERROR, "errno": 5},
        {"op": "fsync", "path": "/data/try", "fault": WRITE_ERROR, "errno": 5},
    ]


def test_disk_full_fails_the_write_with_enospc(guest_bin: GuestBin) -> None:
    events: Events = []
    p = start(guest_bin("musl", "files"), "try-write", events)
    p.fs.set_fault("full", DISK_FULL)
    finish(p)
    assert bytes(p.stdout) == b"write: -1 errno 28\nfsync: 0 errno 0\n"
    assert [f["fault"] for k, f in events if k == "disk.fault"] == [DISK_FULL]


@pytest.mark.parametrize("libc", LIBCS)
def test_read_faults_fail_or_corrupt_what_the_guest_reads(guest_bin: GuestBin,
                                                          libc: str) -> None:
    fs = FileSystem(0, 0)
    for name in ("a", "b"):
        ino = fs.open(f"/data/{name}", 0o102)
        fs.write(ino, 0, b"AAAAAAAA")
        fs.close(ino)
    fs.set_fault("corrupt", CORRUPT_READ)
    events: Events = []
    p = start(guest_bin(libc, "files"), "show", events)
    p.fs = fs
    finish(p)
    lines = bytes(p.stdout).splitlines()
    assert len(lines) == 2 and all(not line.endswith(b'"AAAAAAAA"') for line in lines), lines
    assert [f["fault"] for k, f in events if k == "disk.fault"] == [CORRUPT_READ] * 2
    assert fs.read_file("/data/a") == b"AAAAAAAA", "the stored data stays intact"

    fs.clear_fault("corrupt")
    fs.set_fault("eio", READ_ERROR)
    p = start(guest_bin(libc, "files"), "show")
    p.fs = fs
    p.run_to_completion(hang_seconds=20)
    assert p.exit_code == 1 and b"FAIL" in bytes(p.stdout) and b"errno 5" in bytes(p.stdout)


@pytest.mark.parametrize("libc", LIBCS)
def test_after_a_crash_a_new_process_sees_only_durable_data(guest_bin: GuestBin,
                                                           libc: str) -> None:
    """fsynced file in a synced directory: kept without its unsynced tail; the rest: gone."""
    path = guest_bin(libc, "files")
    p = finish(start(path, "write-then-crash"))
    assert p.fs.read_file("/data/kept") == b"durable+unsynced"
    p.fs.crash()
    p2 = start(path, "show")
    p2.fs = p.fs
    finish(p2)
    assert bytes(p2.stdout) == b'/data/kept: "durable"\n'


def test_descriptor_table_round_trips_through_plain_data() -> None:
    """files_state keeps dup'd descriptors sharing one description, and cloexec per fd."""

    class Holder:
        files: FdTable
        cwd = ROOT
        umask = 0o022

        def __init__(self) -> None:
            self.tasks = {1000: Task(1000)}
            self.current = self.tasks[1000]

    shared = DiskFile(2, b"/data/x", 7)
    shared.offset = 5
    holder = Holder()
    holder.files = FdTable()
    holder.files.install(shared, lowest=3)
    holder.files.install(DiskFile(0, b"/data", 8), lowest=4)
    holder.files.install(shared, True, lowest=5)
    state = files_state(holder)  # type: ignore[arg-type]
    assert state["table"]["fds"] == [[3, 0, False], [4, 1, False], [5, 0, True]]
    other = Holder()
    load_files_state(other, state)  # type: ignore[arg-type]
    assert files_state(other) == state  # type: ignore[arg-type]
    assert other.files.get(3) is other.files.get(5) and other.files.get(3).refs == 2
    assert other.files.get(3).offset == 5


@pytest.mark.parametrize("libc", LIBCS)
def test_checkpoint_restore_keeps_open_files(guest_bin: GuestBin, libc: str) -> None:
    """A process checkpoint mid-run (with the disk's snapshot) resumes to the same end."""
    path = guest_bin(libc, "files")
    reference = finish(start(path))
    p = start(path)
    while p.syscalls < 60 and p.run(deadline_ns=p.vtime_ns + 1) in (Status.RUNNING,
                                                                     Status.BLOCKED):
        if len(p.files.slots) > 3:
            break
    assert len(p.files.slots) > 3, "stopped while a file was open"
    checkpoint = p.checkpoint()
    disk = p.fs.snapshot()
    finish(p)
    p.restore(checkpoint)
    p.fs.restore(disk)
    finish(p)
    assert bytes(p.stdout) == bytes(reference.stdout)
    assert p.fs.snapshot() == reference.fs.snapshot()
