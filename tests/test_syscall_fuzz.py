"""The syscall fuzzer (guest/src/syscall_fuzz.c) against the VMM: no VMM exception, the same
run twice, and host memory that stays bounded (issue 11, item 2)."""

from __future__ import annotations

import hashlib
import re
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.events import EventKind
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.recording.format import packb
from chaosreplay.vm.elf import load_program

pytestmark = pytest.mark.kvm

GuestBin = Callable[[str, str], Path]
REPORT = re.compile(rb"calls=(\d+) distinct=(\d+) checksum=([0-9a-f]{16})")
DEFAULT_CALLS = 20_000
SLOW_CALLS = 1_000_000


class FuzzRun:
    """One fuzzer run: a digest of its whole event stream and what it found."""

    def __init__(self, path: Path, seed: int, calls: int) -> None:
        self.stream = hashlib.sha256()
        self.bugs: list[dict[str, Any]] = []
        self.kinds: dict[str, int] = {}
        self.numbers: set[int] = set()
        self.reports: list[bytes] = []  # the fuzzer's own line, sent as an SDK event
        argv = [b"syscall_fuzz", str(seed).encode(), str(calls).encode()]
        self.process = GuestProcess(load_program(path), ProcessConfig(argv=argv, seed=seed),
                                    on_event=self._sink)
        started = time.perf_counter()
        self.status = self.process.run_to_completion(hang_seconds=120)
        self.wall_seconds = time.perf_counter() - started

    def _sink(self, p: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        # The stream is hashed as packed rows, as the determinism tests compare recordings.
        self.stream.update(packb((p.vtime_ns, str(kind), fields)))
        self.kinds[str(kind)] = self.kinds.get(str(kind), 0) + 1
        if kind == EventKind.SYSCALL:
            self.numbers.add(fields["nr"])
        elif kind == EventKind.VMM_BUG:
            self.bugs.append(fields)
        elif kind == EventKind.SDK_EVENT and fields.get("name") == "fuzz.report":
            self.reports.append(bytes(fields["data"]))

    def fingerprint(self) -> tuple[str, bytes, bytes]:
        """Event stream, VM state (registers + memory) and VMM-side kernel state."""
        p = self.process
        return self.stream.hexdigest(), p.digest(), packb(p.kernel_state())

    def report(self) -> re.Match[bytes]:
        # From the SDK event: the fuzzer may have closed or replaced its stdout by then.
        match = REPORT.search(b"".join(self.reports))
        assert match, (self.status, self.process.crash, self.reports)
        return match


def _rss_kib(field: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"{field}:\s+(\d+)", status).group(1))  # type: ignore[union-attr]


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS


def _check_clean(run: FuzzRun, calls: int) -> re.Match[bytes]:
    assert run.bugs == [], run.bugs[:5]
    assert (run.status, run.process.exit_code) == (Status.EXITED, 0), run.process.crash
    report = run.report()
    assert int(report.group(1)) == calls
    return report


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_fuzzer_finds_no_vmm_exception_and_replays_identically(guest_bin: GuestBin,
                                                               libc: str) -> None:
    """Thousands of random calls with adversarial arguments: the fuzzer runs to its end with
    no vmm.bug event, and a second run gives the same event stream, VM state and kernel
    state."""
    path = guest_bin(libc, "syscall_fuzz")
    first, second = FuzzRun(path, 1, DEFAULT_CALLS), FuzzRun(path, 1, DEFAULT_CALLS)
    report = _check_clean(first, DEFAULT_CALLS)
    assert int(report.group(2)) > 900, "the fuzzer should reach most syscall numbers"
    assert first.fingerprint() == second.fingerprint()
    assert first.kinds == second.kinds and first.kinds[EventKind.SYSCALL] > DEFAULT_CALLS * 0.9


def test_fuzzer_seeds_differ_and_host_memory_stays_bounded(guest_bin: GuestBin) -> None:
    """Other seeds run clean too and make other choices; repeated runs do not grow the host
    process: its peak RSS stays under 2 x (guest RAM + disk) above where it started."""
    path = guest_bin("musl", "syscall_fuzz")
    _reset_peak_rss()
    start = _rss_kib("VmRSS")
    checksums = set()
    for seed in (2, 3, 4):
        run = FuzzRun(path, seed, DEFAULT_CALLS)
        checksums.add(_check_clean(run, DEFAULT_CALLS).group(3))
        bound = 2 * (run.process.config.mem_size + run.process.fs.capacity_bytes) >> 10
        del run
    assert len(checksums) == 3
    growth = _rss_kib("VmHWM") - start
    assert growth < bound, f"peak RSS grew by {growth} KiB (bound {bound} KiB)"


@pytest.mark.slow
def test_fuzzer_slow_million_calls(guest_bin: GuestBin) -> None:
    """A million calls: no VMM exception; prints calls, distinct numbers, wall time, peak RSS."""
    path = guest_bin("musl", "syscall_fuzz")
    _reset_peak_rss()
    run = FuzzRun(path, 7, SLOW_CALLS)
    report = _check_clean(run, SLOW_CALLS)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nfuzzer: calls={SLOW_CALLS} issued={run.process.syscalls} "
          f"distinct_reported={int(report.group(2))} distinct_numbers={len(run.numbers)} "
          f"wall={run.wall_seconds:.1f}s peak_rss_since_reset={_rss_kib('VmHWM') >> 10} MiB "
          f"(process max {peak >> 10} MiB)")
