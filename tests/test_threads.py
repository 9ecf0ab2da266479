"""Threads on one vCPU: clone, futexes, the deterministic scheduler and checkpoints.

Real C programs (tests/programs/, built once per source digest) run under the kernel; the
futex and pthread ones print what they print natively (tests/test_real_programs.py). Here:
determinism across runs, seeded random schedules, deadlock reports, tids in events, and a
checkpoint with eight threads in flight moving to a fresh VM.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import program_cache
import pytest

from chaosreplay.events import EventKind
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.scheduler import Scheduler, SchedulerConfig
from chaosreplay.kernel.task import Task
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm.elf import load_program

PID = 1000


def _program(source: str, flavour: str = "musl") -> Path:
    return program_cache.built(source, flavour)


def _traced(path: Path, seed: int = 0, policy: str = "round-robin",
            events: list[Any] | None = None) -> GuestProcess:
    sink = events if events is not None else []

    def on_event(process: GuestProcess, kind: EventKind, fields: dict[str, Any]) -> None:
        sink.append((process.vtime_ns, kind.value, sorted(fields.items())))

    return GuestProcess(load_program(path), ProcessConfig(
        argv=[path.name.encode()], seed=seed, scheduler=SchedulerConfig(policy)),
        on_event=on_event)


def _finish(p: GuestProcess) -> GuestProcess:
    p.run_to_completion(hang_seconds=20)
    return p


# -- the scheduler's choices (no VM) ----------------------------------------------------------

def _tasks(*tids: int) -> list[Task]:
    return [Task(tid) for tid in tids]


def test_round_robin_takes_the_next_ready_task_in_tid_order() -> None:
    scheduler = Scheduler(SchedulerConfig(), DeterministicStream(0, "sched", 0))
    a, b, c = _tasks(1000, 1001, 1002)
    b.wake_at_ns = 50  # asleep until 50
    assert scheduler.pick([a, b, c], a, now_ns=10, yielding=True) is c
    assert scheduler.pick([a, b, c], c, now_ns=10, yielding=True) is a  # wraps around
    assert scheduler.pick([a, b, c], c, now_ns=60, yielding=True) is a
    assert scheduler.pick([a, b, c], a, now_ns=60, yielding=True) is b
    assert scheduler.pick([a], a, now_ns=0, yielding=True) is a  # nobody else: go on


def test_round_robin_switches_only_after_a_time_slice_with_another_task_ready() -> None:
    scheduler = Scheduler(SchedulerConfig(quantum_ns=1_000), DeterministicStream(0, "sched"))
    task = Task(1000, ran_since_ns=0)
    assert not scheduler.should_switch(task, 999, others_ready=True)
    assert scheduler.should_switch(task, 1_000, others_ready=True)
    assert not scheduler.should_switch(task, 5_000, others_ready=False)


def test_the_random_policy_is_a_function_of_the_seed() -> None:
    def picks(seed: int) -> list[int]:
        scheduler = Scheduler(SchedulerConfig("random", change_every=2),
                              DeterministicStream(seed, "sched", 0))
        tasks = _tasks(1000, 1001, 1002, 1003)
        for task in tasks:
            scheduler.admit(task)
        current, out = tasks[0], []
        for _ in range(40):
            scheduler.should_switch(current, 0, others_ready=True)
            current = scheduler.pick(tasks, current, 0)
            out.append(current.tid)
        return out

    assert picks(1) == picks(1)
    assert len({tuple(picks(seed)) for seed in range(6)}) > 1


def test_a_task_blocked_in_a_futex_is_ready_once_woken() -> None:
    from chaosreplay.kernel.fs.waiters import Wait
    from chaosreplay.kernel.task import FutexWait

    task = Task(1001, waiting=Wait(202, "futex wait at 0x10"), futex=FutexWait(0x10, 1, 1))
    assert not task.ready(0) and task.wake_time() is None
    task.futex.woken = True
    assert task.ready(0)


# -- real programs ----------------------------------------------------------------------------

@pytest.mark.kvm
def test_twenty_runs_of_a_seed_give_identical_event_streams_and_digests() -> None:
    path = _program("pthreads.c", "musl")
    streams, digests = set(), set()
    for _ in range(20):
        events: list[Any] = []
        p = _finish(_traced(path, seed=3, events=events))
        assert p.status is Status.EXITED and p.exit_code == 0
        streams.add(repr(events))
        digests.add(p.digest())
    assert len(streams) == 1 and len(digests) == 1


@pytest.mark.kvm
def test_events_name_the_thread_and_threads_start_and_end() -> None:
    events: list[Any] = []
    _finish(_traced(_program("pthreads.c", "glibc"), events=events))
    started = [dict(f)["child"] for _, kind, f in events if kind == EventKind.TASK_START]
    assert len(started) == 8 and len(set(started)) == 8 and PID not in started
    ended = {dict(f).get("tid") for _, kind, f in events if kind == EventKind.TASK_EXIT}
    assert ended == set(started)
    tids = {dict(f).get("tid") for _, kind, f in events if kind == EventKind.SYSCALL}
    assert None in tids and set(started) <= tids  # the main thread's events carry no tid


@pytest.mark.kvm
def test_a_seeded_random_schedule_explores_interleavings_of_a_racy_program() -> None:
    path = _program("racy.c")
    outputs = {}
    for seed in range(6):
        runs = [bytes(_finish(_traced(path, seed, "random")).stdout) for _ in range(2)]
        assert runs[0] == runs[1], "one seed, one interleaving"
        outputs[seed] = runs[0]
    assert len(set(outputs.values())) > 1, outputs
    default = {bytes(_finish(_traced(path, seed)).stdout) for seed in range(3)}
    assert len(default) == 1  # round-robin does not depend on the seed


@pytest.mark.kvm
@pytest.mark.parametrize("flavour", ["musl", "glibc"])
def test_a_deadlock_of_every_thread_is_reported_with_each_wait(flavour: str) -> None:
    p = _finish(_traced(_program("deadlock.c", flavour)))
    assert p.status is Status.CRASHED and p.crash is not None
    reason = p.crash.reason
    assert reason.startswith("deadlock: every task blocks forever (tid 1000 in futex wait at")
    assert "tid 1001 in futex wait at" in reason
    assert b"unreachable" not in bytes(p.stdout)


def _moved_to_fresh_vm(source: GuestProcess, path: Path, seed: int = 0) -> GuestProcess:
    """A full checkpoint of source loaded into a new process of the same program."""
    checkpoint = source.checkpoint(incremental=False)
    state, memory = checkpoint.snapshot.state(), checkpoint.snapshot.memory_view()
    pages = {pfn: bytes(memory[pfn * 4096:(pfn + 1) * 4096])
             for pfn in range(len(memory) // 4096) if any(memory[pfn * 4096:(pfn + 1) * 4096])}
    target = _traced(path, seed=seed)
    snap = target.vm.snapshot()
    snap.load(state, pages)
    snap.restore()
    target.load_kernel_state(checkpoint.kernel)
    assert target.kernel_state() == checkpoint.kernel
    return target


@pytest.mark.kvm
def test_a_checkpoint_with_eight_threads_in_flight_continues_identically_in_a_fresh_vm() -> None:
    """Moved mid-run into a fresh VM, the process goes on exactly as the original: the
    same kernel state a few switches later (each thread's saved registers byte for byte,
    although the restore marked x87/SSE in use on the vCPU), the same end."""
    path = _program("pthreads.c", "glibc")
    reference = _finish(_traced(path, seed=5))
    source = _traced(path, seed=5)
    while len(source.tasks) < 9 and source.run(deadline_ns=source.vtime_ns + 1) in (
            Status.RUNNING, Status.BLOCKED):
        pass
    for _ in range(40):  # into the thick of it: threads blocked, some mid-critical-section
        source.run(deadline_ns=source.vtime_ns + 1)
    assert len(source.tasks) == 9
    assert sum(t.blocked() for t in source.tasks.values()) >= 1
    target = _moved_to_fresh_vm(source, path, seed=5)
    for _ in range(40):  # threads switched out after the move save the same registers
        source.run(deadline_ns=source.vtime_ns + 1)
        target.run(deadline_ns=target.vtime_ns + 1)
    assert target.kernel_state() == source.kernel_state()
    _finish(target)
    _finish(source)
    assert bytes(target.stdout) == bytes(source.stdout) == bytes(reference.stdout)
    assert target.digest() == source.digest() == reference.digest()
    assert target.vtime_ns == reference.vtime_ns


# -- the scenario's [scheduler] table ---------------------------------------------------------

def test_the_scenario_chooses_the_policy_and_refuses_bad_values() -> None:
    from chaosreplay.errors import ConfigError
    from chaosreplay.sim.scenario import loads_scenario

    scenario = loads_scenario('[scheduler]\npolicy = "random"\nchange_every = 8\n')
    assert scenario.scheduler == SchedulerConfig("random", 200_000, 8)
    assert scenario.to_dict()["scheduler"] == {"policy": "random", "quantum_us": 200,
                                               "change_every": 8}
    assert "scheduler" not in loads_scenario("").to_dict()  # old scenarios keep their digest
    assert loads_scenario("[scheduler]\nquantum_us = 50\n").scheduler.quantum_ns == 50_000
    for text, message in [
        ('[scheduler]\npolicy = "fair"\n', "scheduler.policy: expected one of round-robin, "
                                           "random, got 'fair'"),
        ("[scheduler]\nquantum = 3\n", 'scheduler.quantum: unknown key (did you mean '
                                       '"quantum_us"?)'),
        ("[scheduler]\nchange_every = 0\n", "scheduler.change_every"),
    ]:
        with pytest.raises(ConfigError) as caught:
            loads_scenario(text)
        assert message in str(caught.value)


@pytest.mark.kvm
def test_the_debugger_lists_every_thread_with_what_it_waits_for() -> None:
    from chaosreplay.debugger.views import _threads

    p = _traced(_program("pthreads.c", "glibc"), seed=5)
    while len(p.tasks) < 9 and p.run(deadline_ns=p.vtime_ns + 1) in (Status.RUNNING,
                                                                      Status.BLOCKED):
        pass
    for _ in range(40):
        p.run(deadline_ns=p.vtime_ns + 1)
    views = _threads(p, p.image.symbols)
    assert [v.tid for v in views] == sorted(p.tasks)
    assert sum(v.state == "on cpu" for v in views) == 1
    assert any(v.state.startswith("futex wait at 0x") for v in views)
    on_cpu = next(v for v in views if v.state == "on cpu")
    assert on_cpu.rip == p.regs.rip
    assert all(v.location for v in views)


@pytest.mark.kvm
def test_a_guest_cannot_start_more_threads_than_threads_max() -> None:
    """clone beyond Linux's threads-max for the guest's memory (an eighth of it in 16 KiB
    kernel stacks) is EAGAIN, so a thread bomb costs the host a bounded amount."""
    from chaosreplay.kernel.syscalls.thread import max_threads

    path = _program("thread_limit.c")
    p = GuestProcess(load_program(path), ProcessConfig(argv=[b"thread_limit"],
                                                       mem_size=64 << 20))
    assert p.run_to_completion(hang_seconds=30) is Status.EXITED and p.exit_code == 0
    limit = max_threads(64 << 20)
    assert limit == 512
    assert bytes(p.stdout) == f"created {limit - 1}, then EAGAIN\n".encode()


@pytest.mark.kvm
@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_datagram_reaches_the_thread_in_cr_recv_while_another_runs(guest_bin: Any,
                                                                     libc: str) -> None:
    """One thread of node 0 waits in cr_recv while its main thread keeps running: the
    datagram sent at 5 ms (1 ms latency) completes that call at 6 ms, not when every thread
    of the node sleeps; two runs give the same event stream."""
    from simulate import scenario, simulate

    program = guest_bin(libc, "recv_thread")
    runs = [simulate(scenario(program, ["50"], count=2, duration="1s")) for _ in range(2)]
    assert [line for _, line in runs[0].lines(0)] == [
        b"got 'hello from 1' from 1 at 6 ms", b"main busy until 50 ms"]
    assert runs[0].result.reason == "all nodes ended"
    assert runs[0].stream() == runs[1].stream()


@pytest.mark.kvm
def test_a_checkpoint_after_the_running_thread_exited_resumes() -> None:
    """A detached thread exits while the main thread sleeps: the checkpoint taken then has
    no thread on the vCPU (the current one is gone); it passes the kernel's checks and the
    process resumed from it in a fresh VM ends exactly as the uninterrupted one."""
    path = _program("thread_exit_idle.c")
    reference = _finish(_traced(path))
    source = _traced(path)
    while not source.current.exited and source.run(deadline_ns=source.vtime_ns + 1) in (
            Status.RUNNING, Status.BLOCKED):
        pass
    assert source.current.exited and len(source.tasks) == 1, source.tasks
    target = _moved_to_fresh_vm(source, path)
    kernel = target.kernel_state()
    assert kernel["current_tid"] not in {row[0] for row in kernel["tasks"]}
    _finish(target)
    assert bytes(target.stdout) == bytes(reference.stdout) == b"worker done\nmain done\n"
    assert target.digest() == reference.digest()
    assert target.vtime_ns == reference.vtime_ns
