"""The syscall fast path: the guest answers clocks and ids itself, and the run is the same
call for call — events, virtual times, output, checkpoints — as when every call exits."""

from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from program_cache import built

from chaosreplay.kernel import fastpath
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.scheduler import SchedulerConfig
from chaosreplay.recording.format import packb
from chaosreplay.vm.elf import load_program

GEN = Path(__file__).resolve().parent.parent / "vmm_native" / "fastpath" / "gen.py"


def _run(path: Path, fast: bool, policy: str = "round-robin", seed: int = 0,
         vdso: bool = False) -> tuple[list[Any], bytes, GuestProcess]:
    events: list[Any] = []
    output = bytearray()

    def on_event(p: GuestProcess, kind: Any, fields: dict[str, Any]) -> None:
        events.append((p.vtime_ns, p.pid, kind.value, fields))

    config = ProcessConfig(argv=[path.name.encode()], seed=seed, fast_path=fast, vdso=vdso,
                           scheduler=SchedulerConfig(policy=policy))
    process = GuestProcess(load_program(path), config, on_event=on_event,
                           on_output=lambda fd, data: output.extend(data))
    assert process.run_to_completion(30) is Status.EXITED, process.crash
    return events, bytes(output), process


@pytest.mark.kvm
@pytest.mark.parametrize("vdso", [False, True], ids=["syscalls", "vdso"])
@pytest.mark.parametrize("policy", ["round-robin", "random"])
def test_same_events_with_and_without_the_fast_path(policy: str, vdso: bool) -> None:
    program = built("fast_calls.c", "musl")
    slow_events, slow_out, slow = _run(program, False, policy, seed=3, vdso=vdso)
    fast_events, fast_out, fast = _run(program, True, policy, seed=3, vdso=vdso)
    assert fast_out == slow_out
    assert b"bad buffer: Bad address" in fast_out and b"alarms: 20" in fast_out
    assert packb(fast_events) == packb(slow_events)  # times, arguments, results, order
    assert fast.vtime_ns == slow.vtime_ns and fast.syscalls == slow.syscalls
    # The point of it: most of those calls never left the guest (under `random` fewer:
    # while another thread is ready every call is a scheduling decision, so it exits).
    assert fast.vm.stats().exits * 4 < slow.vm.stats().exits


@pytest.mark.kvm
@pytest.mark.parametrize("vdso", [False, True], ids=["syscalls", "vdso"])
def test_glibc_program_the_same_both_ways(vdso: bool) -> None:
    program = built("fast_calls.c", "glibc")
    slow_events, slow_out, _ = _run(program, False, vdso=vdso)
    fast_events, fast_out, _ = _run(program, True, vdso=vdso)
    assert fast_out == slow_out and packb(fast_events) == packb(slow_events)


@pytest.mark.kvm
@pytest.mark.parametrize("flavour", ["musl", "glibc"])
def test_vdso_stores_that_fault_become_the_call(flavour: str) -> None:
    """A lazy page and a read-only one under the vDSO's store: the same answers as the
    system call gives (the page mapped; EFAULT), with a budget or without."""
    program = built("vdso_fault.c", flavour)
    slow_events, slow_out, _ = _run(program, False, vdso=True)
    fast_events, fast_out, _ = _run(program, True, vdso=True)
    assert fast_out == slow_out and packb(fast_events) == packb(slow_events)
    lines = fast_out.decode().splitlines()
    assert lines[0] == "vdso: yes" and lines[-1] == "straddling a read-only page: Bad address"
    assert all(line.endswith(": ok") for line in lines[1:-1])
    assert _run(program, True, vdso=False)[1].startswith(b"vdso: no\n")


@pytest.mark.kvm
def test_go_reads_the_clock_through_the_vdso() -> None:
    """The Go runtime finds the vDSO (its own ELF parser) and runs as natively, the same
    with a budget or without, in fewer exits."""
    import subprocess

    program = built("goroutines.go")
    native = subprocess.run([str(program)], capture_output=True, check=True).stdout
    slow_events, slow_out, slow = _run(program, False, vdso=True)
    fast_events, fast_out, fast = _run(program, True, vdso=True)
    assert fast_out == slow_out == native
    assert packb(fast_events) == packb(slow_events)
    clock_reads = sum(1 for e in fast_events if e[3].get("name") == "clock_gettime")
    assert clock_reads and fast.vm.stats().exits < slow.vm.stats().exits


@pytest.mark.kvm
def test_a_forged_ring_ends_only_its_own_run() -> None:
    program = built("fast_forge.c", "musl")
    config = ProcessConfig(argv=[b"fast_forge"], fast_path=True)
    process = GuestProcess(load_program(program), config)
    assert process.run_to_completion(10) is Status.CRASHED
    assert process.crash is not None and "fast path's ring" in process.crash.reason
    # Without the fast path the page is not mapped: the same store is a plain SIGSEGV.
    process = GuestProcess(load_program(program), ProcessConfig(argv=[b"fast_forge"]))
    assert process.run_to_completion(10) is Status.CRASHED
    assert process.crash is not None and process.crash.signal == 11


def test_the_committed_code_is_what_the_source_assembles_to() -> None:
    if not (shutil.which("as") and shutil.which("ld") and shutil.which("nm")):
        pytest.skip("GNU binutils (as, ld, nm) are not installed")
    import subprocess
    import sys

    result = subprocess.run([sys.executable, str(GEN), "--check"])
    assert result.returncode == 0, "run `python vmm_native/fastpath/gen.py` after editing"


# -- the budget: how many calls may go by without an exit (no KVM needed) --------------
def _task(tid: int, *, ready: bool = True, wake: int | None = None,
          ran_since: int = 0) -> SimpleNamespace:
    return SimpleNamespace(tid=tid, ran_since_ns=ran_since, ready=lambda now: ready,
                           wake_time=lambda: wake)


def _process(**overrides: Any) -> SimpleNamespace:
    current = _task(1)
    p = SimpleNamespace(
        preempt=False, signals_dirty=False, stopped=False, kernel=SimpleNamespace(
            fast_hold=False), clock=SimpleNamespace(rate_ppb=0, offset_ns=0,
                                                    realtime_offset_ns=0),
        space=SimpleNamespace(shares=False), table=None, vtime_ns=10_000, timer_due_ns=None,
        config=SimpleNamespace(syscall_cost_ns=1_000), current=current,
        tasks={1: current}, switch_pending=False,
        scheduler=SimpleNamespace(random=False, config=SimpleNamespace(quantum_ns=200_000)))
    for key, value in overrides.items():
        setattr(p, key, value)
    return p


def test_budget_stops_before_the_deadline_and_timers() -> None:
    assert fastpath.budget(_process(), None) == fastpath.RING
    assert fastpath.budget(_process(), 15_000) == 5  # the call ending at 15 000 still fits
    assert fastpath.budget(_process(), 10_999) == 0
    # A timer due at 14 000 fires after the call that reaches it: that call exits.
    assert fastpath.budget(_process(timer_due_ns=14_000), None) == 3


@pytest.mark.parametrize("change", [{"preempt": True}, {"signals_dirty": True},
                                    {"stopped": True}, {"switch_pending": True}])
def test_budget_is_zero_when_the_exit_path_has_work(change: dict[str, Any]) -> None:
    p = _process(**change)
    if change.get("switch_pending"):
        p.tasks = {1: p.current, 2: _task(2)}
    assert fastpath.budget(p, None) == 0


def test_budget_is_zero_while_paused_skewed_or_sharing() -> None:
    assert fastpath.budget(_process(kernel=SimpleNamespace(fast_hold=True)), None) == 0
    assert fastpath.budget(_process(clock=SimpleNamespace(
        rate_ppb=5, offset_ns=0, realtime_offset_ns=0)), None) == 0
    assert fastpath.budget(_process(space=SimpleNamespace(shares=True)), None) == 0
    # A clock jumped so far back that a reading would be negative: the exit path answers.
    assert fastpath.budget(_process(clock=SimpleNamespace(
        rate_ppb=0, offset_ns=0, realtime_offset_ns=-(1 << 62))), None) == 0


def test_budget_ends_where_the_scheduler_would_switch() -> None:
    p = _process(vtime_ns=100_000)
    # Another task ready now: round-robin switches once the quantum (200 us) is used.
    p.tasks = {1: p.current, 2: _task(2)}
    assert fastpath.budget(p, None) == (200_000 - 1 - 100_000) // 1_000
    # A task that wakes later than the quantum: the switch waits for it.
    p.tasks = {1: p.current, 2: _task(2, ready=False, wake=250_000)}
    assert fastpath.budget(p, None) == (250_000 - 1 - 100_000) // 1_000
    p.tasks = {1: p.current, 2: _task(2, ready=False, wake=150_000)}
    assert fastpath.budget(p, None) == (200_000 - 1 - 100_000) // 1_000
    # One only another party can wake: never a switch.
    p.tasks = {1: p.current, 2: _task(2, ready=False, wake=None)}
    assert fastpath.budget(p, None) == fastpath.RING
    # random draws at every switch point with another task ready: none may go by.
    p.scheduler.random = True
    p.tasks = {1: p.current, 2: _task(2)}
    assert fastpath.budget(p, None) == 0
    p.tasks = {1: p.current, 2: _task(2, ready=False, wake=150_000)}
    assert fastpath.budget(p, None) == (150_000 - 1 - 100_000) // 1_000


@pytest.mark.kvm
def test_demo_recordings_are_the_same_and_replay_either_way(tmp_path: Path) -> None:
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import RunOptions, record_run, replay_run
    from chaosreplay.sim.demo import demo_scenario
    from chaosreplay.sim.programs import resolve_images

    scenario = demo_scenario().with_duration(3000)
    images = resolve_images(scenario, tmp_path)
    rows = {}
    for fast in (True, False):
        path = tmp_path / f"fast-{fast}.ccr"
        record_run(scenario, images, path, RunOptions(fast_path=fast))
        with RecordingReader(path) as reader:
            rows[fast] = packb(list(reader.rows()))
            assert len(reader.checkpoints) >= 2
        for replay_fast in (True, False):
            report = replay_run(path, fast_path=replay_fast)
            assert report.identical and report.checkpoints_checked >= 2, report.divergence
    assert rows[True] == rows[False]


def _scenario(program: Path, duration: str, checkpoint_interval: int, group: str = "") -> Any:
    """One node group of program (a scenario file's defaults: the vDSO on)."""
    from chaosreplay.sim.scenario import loads_scenario

    return loads_scenario(f"""
duration = "{duration}"
checkpoint_interval = {checkpoint_interval}
memory_per_node = "64MiB"
[[nodes]]
program = "{program}"
{group}
""", "fastpath.toml", base_dir=Path("/"))


@pytest.mark.kvm
def test_a_dynamic_program_finds_the_vdso_through_ld_so(dynamic_pthreads: Path) -> None:
    """glibc's ld.so takes the vDSO as a loaded object; the nodes' streams are the same
    with the fast path and without."""
    from chaosreplay.sim.simulation import Simulation

    sc = _scenario(dynamic_pthreads, "1s", 0, 'count = 2\nroot = "host"')
    assert sc.vdso
    images = [load_program(dynamic_pthreads)]
    streams = []
    for fast in (True, False):
        events: list[Any] = []
        result = Simulation(sc, images, sink=lambda *e, out=events: out.append(e),
                            fast_path=fast).run()
        assert not result.failures, result.failures
        streams.append(packb(events))
    assert streams[0] == streams[1]


@pytest.mark.kvm
def test_checkpoints_of_a_forking_program_are_the_same_both_ways() -> None:
    """Every checkpoint digest (memory, registers, the kernel's process table with the
    exits of ended processes) is the same with the fast path and without."""
    from chaosreplay.sim.simulation import Simulation

    program = built("fast_calls.c", "musl")
    sc = _scenario(program, "200ms", 5)
    images = [load_program(program)]
    digests = []
    for fast in (True, False):
        taken: list[bytes] = []
        Simulation(sc, images, fast_path=fast,
                   on_checkpoint=lambda c, out=taken: out.append(c.digest)).run()
        digests.append(taken)
    assert len(digests[0]) >= 5 and digests[0] == digests[1]
