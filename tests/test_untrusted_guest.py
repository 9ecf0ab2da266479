"""An untrusted guest never takes the VMM down (issue 11): Linux's errnos at the edges of the
address space, saturating sleeps, kernel copies that honour page protections, OOM kills,
map-count limits, bounded output, and the one guard that turns a VMM bug into a dead node."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from simulate import scenario

from chaosreplay.debugger.views import output_so_far
from chaosreplay.events import EventKind
from chaosreplay.kernel.mm import address_space
from chaosreplay.kernel.mm.address_space import MAX_MAP_COUNT, AddressSpace
from chaosreplay.kernel.process import (
    UNKNOWN_SYSCALLS_KEPT,
    GuestProcess,
    ProcessConfig,
    Status,
)
from chaosreplay.kernel.syscalls import clock
from chaosreplay.kernel.syscalls.args import KTIME_MAX
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import record_run
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import Prot, Vm

pytestmark = pytest.mark.kvm

GuestBin = Callable[[str, str], Path]
Events = list[tuple[str, dict[str, Any]]]
REPO = Path(__file__).resolve().parent.parent


def run(path: Path, *argv: str, events: Events | None = None, **config: Any) -> GuestProcess:
    """Run a guest alone to its end; non-syscall events go to `events`."""

    def sink(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        if events is not None and kind != EventKind.SYSCALL:
            events.append((str(kind), fields))

    args = [str(path).encode()] + [a.encode() for a in argv]
    p = GuestProcess(load_program(path), ProcessConfig(argv=args, **config), on_event=sink)
    p.run_to_completion(hang_seconds=60)
    return p


def results(p: GuestProcess) -> dict[str, str]:
    """The "<case> <result>" lines a hostile_calls mode printed."""
    return dict(line.split(" ", 1) for line in bytes(p.stdout).decode().splitlines())


@pytest.fixture(params=["musl", "glibc"])
def hostile(request: pytest.FixtureRequest, guest_bin: GuestBin) -> Path:
    return guest_bin(request.param, "hostile_calls")


# -- the address space: Linux's limits ------------------------------------------------------
LINUX_MAP_RESULTS = {
    # get_unmapped_area: a fixed range must end by TASK_SIZE = 0x7ffffffff000 -> ENOMEM
    "fixed_last_page": "-12", "fixed_2_47": "-12", "fixed_kernel": "-12",
    "fixed_entry": "-12", "fixed_across": "-12", "fixed_1tib_top": "-12",
    "noreplace_kernel": "-12",
    # vm.mmap_min_addr = 65536, and a node has no CAP_SYS_RAWIO -> EPERM
    "fixed_zero": "-1", "fixed_below_min": "-1", "fixed_at_min": "addr",
    # munmap: a range past TASK_SIZE (or wrapping) -> EINVAL; mprotect: not mapped -> ENOMEM
    "munmap_kernel": "-22", "munmap_entry": "-22", "munmap_across": "-22", "munmap_wrap": "-22",
    "mprotect_kernel": "-12", "mprotect_entry": "-12", "mprotect_wrap": "-12",
    # overcommit heuristic: one writable private request larger than RAM fails; a PROT_NONE
    # or MAP_NORESERVE reservation is not accounted
    "anon_1tib": "-12", "anon_1tib_none": "addr", "anon_1tib_noreserve": "addr",
    "anon_wrapping_length": "-12", "brk_huge": "0",
}


def test_mappings_at_the_edges_of_the_address_space_get_linux_errnos(hostile: Path) -> None:
    """MAP_FIXED past TASK_SIZE, in the kernel half, on the entry page, across 2^47 or below
    mmap_min_addr, and 1 TiB requests, answer what Linux answers (each once raised a
    VmmError out of the run loop or was accepted); the values were checked natively."""
    events: Events = []
    p = run(hostile, "maps", events=events)
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    assert results(p) == LINUX_MAP_RESULTS
    assert not [e for e in events if e[0] == EventKind.VMM_BUG]


def test_sleeping_for_int64_max_seconds_saturates_like_linux(hostile: Path) -> None:
    """{INT64_MAX, 999999999} is a valid timespec: the sleep saturates at KTIME_MAX
    (about 292 years) instead of overflowing, and the clock moves on past it."""
    p = run(hostile, "sleep")
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    assert results(p) == {"nanosleep_max": "0", "clock_nanosleep_max": "0",
                          "clock_nanosleep_abs_max": "0", "clock_gettime": "0",
                          "monotonic_seconds_at_least_2^33": "1"}
    assert KTIME_MAX <= p.vtime_ns < 1 << 64


def test_kernel_copies_into_read_only_text_are_efault(hostile: Path) -> None:
    """getrandom, uname, clock_gettime, fstat and pread into the program's own text return
    EFAULT, as on Linux, and the text is unchanged; reading from text (write) is fine."""
    p = run(hostile, "rocopy")
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    assert results(p) == {"getrandom": "-14", "uname": "-14", "clock_gettime": "-14",
                          "fstat": "-14", "pread": "-14", "write_from_text": "16",
                          "getrandom_entry_page": "-14", "getrandom_kernel": "-14",
                          "text_intact": "1"}


@pytest.mark.parametrize(("name", "signo", "reason"), [
    ("hlt", signal.SIGSEGV, "#GP general protection"),
    ("cli", signal.SIGSEGV, "#GP general protection"),
    ("wrmsr", signal.SIGSEGV, "#GP general protection"),
    ("movcr3", signal.SIGSEGV, "#GP general protection"),
    ("out80", signal.SIGSEGV, "#GP general protection"),
    ("in3f8", signal.SIGSEGV, "#GP general protection"),
    ("oute1", signal.SIGSEGV, "I/O to port 0xe1, which only the VMM's entry code may use"),
    ("oute2", signal.SIGSEGV, "I/O to port 0xe2, which only the VMM's entry code may use"),
    ("oute7", signal.SIGSEGV, "I/O to port 0xe7, which only the VMM's entry code may use"),
    ("write_entry", signal.SIGSEGV, "#PF page fault, write of protection memory"),
    ("call_trampoline", signal.SIGILL, "#UD invalid opcode"),
])
def test_privileged_instructions_ports_and_the_entry_page_are_refused(
        guest_bin: GuestBin, name: str, signo: int, reason: str) -> None:
    """What CPL3 may not do ends the program with Linux's signal and a clear reason: the
    VMM's own ports (open in the I/O bitmap for the entry page) included, which used to
    read as a "VM failure"; jumping to the entry page's fix-up trampoline is a plain #UD."""
    events: Events = []
    p = run(guest_bin("musl", "hostile_calls"), "insn", name, events=events)
    assert p.status is Status.CRASHED and p.crash is not None, bytes(p.stdout)
    assert (p.crash.signal, p.crash.reason) == (signo, reason) or (
        p.crash.signal == signo and reason in p.crash.reason), p.crash
    assert bytes(p.stdout) == f"running {name}\n".encode()
    assert [k for k, _ in events].count(EventKind.CRASH) == 1


# -- guest RAM: overcommit and the OOM kill -------------------------------------------------
@pytest.mark.parametrize(("mode", "mib"), [("touch", "96"), ("fill", "64")])
def test_touching_more_than_guest_ram_is_an_oom_kill(guest_bin: GuestBin, mode: str,
                                                     mib: str) -> None:
    """Mappings beyond RAM are granted (overcommit); the first page that cannot get a frame
    kills the node with SIGKILL, whether the guest touches it (page fault) or the kernel
    does in a system call (getrandom into it)."""
    events: Events = []
    p = run(guest_bin("musl", "hostile_calls"), mode, mib, events=events, mem_size=64 << 20)
    assert p.status is Status.CRASHED and p.crash is not None, bytes(p.stdout)
    assert (p.crash.signal, p.crash.reason) == (signal.SIGKILL, "out of guest memory: 64 MiB")
    crashes = [f for k, f in events if k == EventKind.CRASH]
    assert [c["reason"] for c in crashes] == ["out of guest memory: 64 MiB"]
    assert not [e for e in events if e[0] == EventKind.VMM_BUG]
    out = bytes(p.stdout)
    assert b"touched 32 MiB" in out and b"touched 64 MiB" not in out, out
    if mode == "fill":
        assert out.endswith(b"kernel fills 32 MiB\n"), out


def test_mappings_are_limited_to_max_map_count(guest_bin: GuestBin) -> None:
    """Splitting one mapping page by page stops at vm.max_map_count (65530 mappings) with
    ENOMEM; so do a new mapping and a munmap that would split one more, once full."""
    p = run(guest_bin("musl", "hostile_calls"), "splits")
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    lines = results(p)
    ok, _, err = lines["splits"].partition(" then ")
    assert err == "-12" and 32000 < int(ok.removeprefix("ok ")) < MAX_MAP_COUNT // 2
    extra, _, last = lines["mmap_single"].partition(" then ")
    assert last == "-12" and int(extra) <= 2, lines
    assert lines["munmap_split"] == "-12"
    assert len(p.space.vmas()) <= MAX_MAP_COUNT


@pytest.mark.parametrize(("signo", "name"), [(40, "SIGRTMIN+6"), (33, "SIGRTMIN-1"),
                                             (64, "SIGRTMAX")])
def test_dying_of_a_real_time_signal_is_described(guest_bin: GuestBin, signo: int,
                                                 name: str) -> None:
    """kill(0, 40) ends the node with signal 40, and its crash has a name (signal.Signals
    knows only SIGRTMIN and SIGRTMAX, so describing it used to raise ValueError)."""
    p = run(guest_bin("musl", "hostile_calls"), "raise", str(signo))
    assert p.status is Status.CRASHED and p.crash is not None and p.crash.signal == signo
    assert p.crash.describe().startswith(f"{name} (")


def test_huge_reservations_cost_no_page_walk_of_their_length(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """mprotect and munmap of a 1 TiB mapping visit only the 2 MiB chunks that hold frames
    (the C core walks page by page, ~7 s per TiB), and still free every frame."""
    vm = Vm(64 << 20)
    space = AddressSpace(vm)
    start, size = 1 << 40, 1 << 40
    assert space.map_fixed(start, size, Prot.READ | Prot.WRITE, "[anon]", eager=False)
    touched = [start, start + (size >> 1) + 12345, start + size - 1]
    for address in touched:
        assert space.write(address, b"x")
    walked: list[int] = []
    for name in ("unmap", "protect"):
        original = getattr(vm, name)
        monkeypatch.setattr(vm, name, lambda va, length, *rest, _f=original: (
            walked.append(length), _f(va, length, *rest))[1])
    assert space.protect(start, size, Prot.READ) == 0
    assert vm.query(touched[1]) == Prot.READ
    assert space.unmap(start, size)
    assert sum(walked) <= 2 * len(touched) * (2 << 20), walked
    assert all(vm.query(a) is None for a in touched) and space.framed == set()


# -- the one guard at the dispatch seam -----------------------------------------------------
def test_a_vmm_bug_becomes_an_event_and_a_dead_node(guest_bin: GuestBin,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """An exception inside a handler (here: a broken constant in the clock module) is
    recorded as vmm.bug with the syscall, type and message, and kills the node; the run
    loop returns normally."""
    monkeypatch.setattr(clock, "BOOT_OFFSET_NS", None)
    events: Events = []
    p = run(guest_bin("musl", "clock"), events=events)
    assert p.status is Status.CRASHED and p.crash is not None
    [bug] = [f for k, f in events if k == EventKind.VMM_BUG]
    assert bug["where"] == "syscall clock_gettime" and bug["nr"] == 228
    assert bug["error"] == "TypeError" and "NoneType" in bug["message"]
    assert p.crash.signal == signal.SIGKILL
    assert p.crash.reason.startswith("VMM bug in syscall clock_gettime: TypeError: ")
    assert [k for k, _ in events][-2:] == [EventKind.VMM_BUG, EventKind.CRASH]


def test_a_vmm_bug_on_the_exception_path_is_caught_too(guest_bin: GuestBin,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """The same guard covers CPU exceptions: a broken lazy-fault path (here a bad constant
    in the address space) is a vmm.bug naming the vector, and a dead node."""
    monkeypatch.setattr(address_space, "FAULT_AROUND", None)
    events: Events = []
    p = run(guest_bin("musl", "hostile_calls"), "touch", "32", events=events)
    assert p.status is Status.CRASHED and p.crash is not None
    [bug] = [f for k, f in events if k == EventKind.VMM_BUG]
    assert (bug["where"], bug["vector"], bug["error"]) == ("exception vector 14", 14,
                                                          "TypeError")
    assert p.crash.reason.startswith("VMM bug in exception vector 14: TypeError")


def test_exceptions_raised_by_an_event_sink_pass_through_the_guard(guest_bin: GuestBin) -> None:
    """The guard owns the kernel's exceptions only: a sink that stops a run (as replay's
    comparer does) still stops it."""

    class Stop(Exception):
        pass

    def sink(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        if kind == EventKind.OUTPUT:
            raise Stop

    path = guest_bin("musl", "hello")
    p = GuestProcess(load_program(path), ProcessConfig(argv=[b"hello"]), on_event=sink)
    with pytest.raises(Stop):
        p.run_to_completion()


def test_a_vmm_bug_under_record_fails_the_run_and_the_recording_is_complete(
        guest_bin: GuestBin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under record, the bug is an event in a complete recording and a failure of the run."""
    monkeypatch.setattr(clock, "BOOT_OFFSET_NS", None)
    probe = guest_bin("musl", "probe")
    sc = scenario(probe, ["clock", "5"], count=2, duration="1s")
    path = tmp_path / "bug.ccr"
    result = record_run(sc, [load_program(probe)], path)
    assert result.failures and {f.kind for f in result.failures} == {"crash"}
    with RecordingReader(path) as reader:
        assert reader.complete
        kinds = [e.kind for e in reader.events()]
        bugs = [e for e in reader.events() if e.kind == "vmm.bug"]
    assert bugs and "crash" in kinds
    assert all(e.fields["error"] == "TypeError" for e in bugs)


# -- bounded host-side state ----------------------------------------------------------------
def test_output_kept_in_the_vmm_is_a_ring_of_its_last_bytes(guest_bin: GuestBin) -> None:
    """stdout beyond output_tail_bytes keeps only its newest bytes (and counts the rest);
    every byte is still in the output events."""
    events: Events = []
    p = run(guest_bin("musl", "hostile_calls"), "stdout", "5", "1", events=events,
            output_tail_bytes=1 << 20)
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stderr))
    written = sum(len(f["data"]) for k, f in events if k == EventKind.OUTPUT and f["fd"] == 1)
    assert written == 5 << 20
    assert len(p.stdout) == 1 << 20 and p.output_dropped == [4 << 20, 0]
    state = p.kernel_state()
    assert len(state["stdout"]) == 1 << 20 and state["output_dropped"] == [4 << 20, 0]
    shown = output_so_far(p.stdout, p.output_dropped[0])
    assert shown.startswith("[4194304 earlier bytes not kept: earlier output is in the "
                            "recording]\n") and shown.endswith("x" * 100)
    assert output_so_far(b"all of it", 0) == "all of it"


def test_unknown_syscall_counts_are_bounded(guest_bin: GuestBin) -> None:
    """Random syscall numbers are counted one by one only up to 256 distinct ones; the
    rest add to one sum (a fuzzer calls thousands of distinct numbers)."""
    p = run(guest_bin("musl", "syscall_fuzz"), "9", "3000")
    assert p.exit_code == 0, (p.crash, bytes(p.stderr))
    assert len(p.unknown_syscalls) == UNKNOWN_SYSCALLS_KEPT and p.unknown_syscalls_other > 0
    assert p.kernel_state()["unknown_syscalls_other"] == p.unknown_syscalls_other


FLOOD = textwrap.dedent("""
    import re, sys
    from chaosreplay.kernel.process import GuestProcess, ProcessConfig
    from chaosreplay.vm.elf import load_program
    path, where = sys.argv[1], sys.argv[2]
    p = GuestProcess(load_program(path), ProcessConfig(argv=[b"h", where.encode(), b"120",
                     b"16"]), on_event=lambda *a: None)
    p.run_to_completion(hang_seconds=120)
    hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    print(p.exit_code, hwm << 10, p.config.mem_size, p.fs.capacity_bytes, p.stderr.decode())
""")


FLOOD_RECORD = textwrap.dedent("""
    import re, sys
    sys.path.insert(0, "tests")
    from simulate import scenario
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import record_run
    from chaosreplay.vm.elf import load_program
    program, out = sys.argv[1], sys.argv[2]
    sc = scenario(program, ["stdout", "120", "16"], count=1, memory_per_node="256MiB")
    record_run(sc, [load_program(program)], out)
    hwm = int(re.search(r"VmHWM:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
    with RecordingReader(out) as reader:
        sizes = [len(e.fields["data"]) for e in reader.events()
                 if e.kind == "output" and e.fields["fd"] == 1]
        print(reader.complete, sum(sizes), max(sizes), hwm << 10)
""")


def test_recording_a_stdout_flood_keeps_host_memory_bounded(guest_bin: GuestBin,
                                                            tmp_path: Path) -> None:
    """Under record, 120 writes of 16 MiB in one tick used to fail the run (one 16 MiB
    event is over the 4 MiB frame limit) after batching 6 GB; now each event carries at
    most 1 MiB, the writer flushes by bytes, and the peak RSS stays under 2 x (RAM + disk)."""
    out = subprocess.run([sys.executable, "-c", FLOOD_RECORD,
                          str(guest_bin("musl", "hostile_calls")), str(tmp_path / "f.ccr")],
                         capture_output=True, text=True, check=True, cwd=REPO).stdout
    complete, stdout_bytes, largest, peak = out.split()
    assert complete == "True" and int(stdout_bytes) == 120 * (16 << 20), out
    assert int(largest) <= 1 << 20
    assert int(peak) < 2 * ((256 << 20) + (64 << 20)), out


@pytest.mark.parametrize("where", ["stdout", "file"])
def test_flooding_stdout_or_the_disk_keeps_host_memory_bounded(guest_bin: GuestBin,
                                                              where: str) -> None:
    """120 writes of 16 MiB (to stdout, or rewriting a file without fsync) keep the peak RSS
    of the host process under 2 x (guest RAM + disk size); before, it grew by every byte."""
    out = subprocess.run([sys.executable, "-c", FLOOD, str(guest_bin("musl", "hostile_calls")),
                          where], capture_output=True, text=True, check=True, cwd=REPO).stdout
    code, peak, ram, disk, report = out.split(" ", 4)
    assert code == "0", out
    assert "wrote 1920 MiB" in report, report
    assert int(peak) < 2 * (int(ram) + int(disk)), out
