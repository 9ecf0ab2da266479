"""Recorded system-call arguments shown as a reader wants them (debugger/syscall_args.py)."""

from __future__ import annotations

from chaosreplay.debugger.syscall_args import describe_arguments
from chaosreplay.recording.model import Event
from chaosreplay.tui.event_format import summary

NEG = 1 << 64


def test_descriptors_flags_and_protections_are_decoded() -> None:
    """Descriptors are named as such (AT_FDCWD too), open flags and mmap protections and
    flags as Linux spells them; unknown bits stay visible; unknown calls keep the raw
    first three arguments."""
    assert describe_arguments("write", [1, 0x40D480, 12]) == "fd 1, 0x40d480, 12"
    assert describe_arguments("openat", [NEG - 100, 0x7FFF0000, 0o2000000 | 0o1000 | 0o100 | 1,
                                         0o644]) == (
        "AT_FDCWD, 0x7fff0000, O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0o644")
    assert describe_arguments("openat", [3, 0x1000, 0o200000, 0]).endswith(
        "O_RDONLY|O_DIRECTORY, 0o0")
    assert describe_arguments("mmap", [0, 8192, 3, 0x22, NEG - 1, 0]) == (
        "0, 8192, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, fd -1, 0")
    assert describe_arguments("mprotect", [0x401000, 4096, 0x10]) == "0x401000, 4096, 0x10"
    assert describe_arguments("lseek", [3, NEG - 5, 2]) == "fd 3, -5, 2"
    assert describe_arguments("frobnicate", [1, 0x400000, 3, 4]) == "1, 0x400000, 3"


def test_the_timeline_shows_decoded_arguments() -> None:
    event = Event(3, 0, 0, 0, "syscall", {"nr": 257, "name": "openat",
                                          "args": [NEG - 100, 0x40000, 0o100 | 2, 0o600, 0, 0],
                                          "ret": 3})
    assert summary(event) == "openat(AT_FDCWD, 0x40000, O_RDWR|O_CREAT, 0o600) = 3"
