"""`chaosreplay run`: output, the summary line, and exit codes that mirror the guest."""

from __future__ import annotations

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


def test_dynamic_executable_is_refused() -> None:
    result = invoke("/bin/true")
    assert result.exit_code == 2
    assert "dynamically linked" in result.stderr


def test_missing_program_is_an_error() -> None:
    result = invoke("/nonexistent/prog")
    assert result.exit_code == 2 and "Traceback" not in result.output
