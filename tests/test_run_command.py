"""`chaosreplay run`: output, the summary line, and exit codes that mirror the guest."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main

GuestBin = Callable[[str, str], Path]


def invoke(*args: str):
    return CliRunner().invoke(main, ["run", *args])


@pytest.mark.kvm
def test_run_streams_output_and_summarises(guest_bin: GuestBin) -> None:
    result = invoke(str(guest_bin("musl", "hello")))
    assert result.exit_code == 0, result.output
    assert "hello, world" in result.stdout
    summary = result.stderr.strip().splitlines()[-1]
    assert summary.startswith("chaosreplay: exited 0")
    for part in ("virtual", "syscalls", "VM exits", "wall"):
        assert part in summary, summary


@pytest.mark.kvm
@pytest.mark.parametrize(("name", "code", "words"), [
    ("segv", 128 + 11, "SIGSEGV"), ("divzero", 128 + 8, "SIGFPE"), ("ud", 128 + 4, "SIGILL"),
])
def test_crash_exit_code_is_128_plus_signal(guest_bin: GuestBin, name: str, code: int,
                                            words: str) -> None:
    result = invoke(str(guest_bin("musl", name)))
    assert result.exit_code == code, result.output
    assert words in result.stderr and "main+" in result.stderr


@pytest.mark.kvm
def test_hang_exits_124(guest_bin: GuestBin) -> None:
    result = invoke("--hang-timeout", "0.5", str(guest_bin("musl", "spin")))
    assert result.exit_code == 124
    assert "hung" in result.stderr


@pytest.mark.kvm
def test_seed_option_and_program_arguments(guest_bin: GuestBin) -> None:
    a = invoke("--seed", "1", str(guest_bin("musl", "rand")))
    b = invoke("--seed", "2", str(guest_bin("musl", "rand")))
    assert a.exit_code == b.exit_code == 0
    assert a.stdout != b.stdout
    counts = []
    for n in ("25", "75"):
        loop = invoke(str(guest_bin("musl", "getpid_loop")), n)
        assert loop.exit_code == 0, loop.output
        counts.append(int(re.search(r"(\d+) syscalls", loop.stderr).group(1)))
    assert counts[1] - counts[0] == 50, "argv reaches the program and each getpid is one exit"


@pytest.mark.parametrize(("content", "message"), [
    (b"#!/bin/sh\necho hi\n", "not an ELF file"),
    (b"\x7fELF", "ELF"),
])
def test_bad_programs_get_one_line_and_exit_2(tmp_path: Path, content: bytes,
                                              message: str) -> None:
    program = tmp_path / "prog"
    program.write_bytes(content)
    result = invoke(str(program))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("chaosreplay: error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_dynamic_executable_without_its_interpreter_is_refused() -> None:
    """`run` puts nothing on the disk: the interpreter is missing, said in one line."""
    result = invoke("/bin/true")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is dynamically linked and its interpreter " \
        "/lib64/ld-linux-x86-64.so.2 is not on the node's disk" in lines[0], result.stderr


def test_missing_program_is_an_error() -> None:
    result = invoke("/nonexistent/prog")
    assert result.exit_code == 2 and "Traceback" not in result.output


@pytest.mark.kvm
def test_everything_after_program_belongs_to_the_program(guest_bin: GuestBin) -> None:
    """`run PROGRAM a --seed 3 b -h -- c`: the program gets all of it, in order; run's own
    options go before PROGRAM, and `--` before PROGRAM also works."""
    echo = str(guest_bin("musl", "echo_args"))
    result = invoke(echo, "a", "--seed", "3", "b", "-h", "--", "c")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["[a]", "[--seed]", "[3]", "[b]", "[-h]", "[--]", "[c]"]
    assert "Usage:" not in result.output
    ours = invoke("--env", "EXIT=3", "--", echo, "--mem", "x")
    assert ours.exit_code == 3, ours.output
    assert ours.stdout.splitlines() == ["[--mem]", "[x]"]


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: "/dev/zero", "/dev/zero: not a regular file"),
    (lambda tmp: (os.mkfifo(tmp / "fifo"), tmp / "fifo")[1], "fifo: not a regular file"),
    (lambda tmp: tmp, "is a directory"),
])
def test_devices_fifos_and_folders_are_refused_without_reading(tmp_path: Path, make,
                                                               message: str) -> None:
    """`run /dev/zero` used to read until the host ran out of memory; a FIFO hung."""
    result = invoke(str(make(tmp_path)))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_arguments_longer_than_linux_allows_are_refused(tmp_path: Path) -> None:
    """A 300 KB argument: E2BIG in words, one line naming the program, exit 2."""
    program = tmp_path / "prog"
    program.write_bytes(b"\x7fELF" + bytes(100))
    result = invoke(str(program), "a" * 300_000)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"chaosreplay: error: {program}: cannot start it: an "
                                    "argument or variable of 300,000 bytes"), result.stderr
