"""Pending signals (chaosreplay.kernel.signals.queue): what is kept, the delivery order,
and the checkpoint state with its checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chaosreplay.kernel.signals import siginfo
from chaosreplay.kernel.signals.queue import (
    MAX_QUEUED,
    STATE,
    Enqueued,
    SignalQueue,
    dequeue_for_task,
    pending_for_task,
)
from chaosreplay.kernel.signals.siginfo import (
    SEGV_MAPERR,
    SI_USER,
    fault_info,
    kill_info,
    queue_info,
    tkill_info,
)
from chaosreplay.kernel.signals.sigset import (
    SIGCHLD,
    SIGHUP,
    SIGINT,
    SIGSEGV,
    SIGTERM,
    SIGUSR1,
    sigmask,
)
from chaosreplay.recording.schema import SchemaError, validate


def drain(queue: SignalQueue, blocked: int = 0) -> list[tuple[int, int]]:
    out = []
    while (info := queue.dequeue(blocked)) is not None:
        out.append((info.signo, info.value))
    return out


def test_a_pending_standard_signal_is_not_queued_again() -> None:
    """The second SIGUSR1 is lost; the first one's siginfo is the one delivered."""
    queue = SignalQueue()
    assert queue.enqueue(queue_info(SIGUSR1, 1, 0, 11)) is Enqueued.QUEUED
    assert queue.enqueue(queue_info(SIGUSR1, 1, 0, 22)) is Enqueued.COALESCED
    assert drain(queue) == [(SIGUSR1, 11)]
    assert queue.enqueue(queue_info(SIGUSR1, 1, 0, 33)) is Enqueued.QUEUED  # not pending now


def test_real_time_signals_queue_every_instance_in_order() -> None:
    queue = SignalQueue()
    for value in (1, 2, 3):
        assert queue.enqueue(queue_info(40, 1, 0, value)) is Enqueued.QUEUED
    assert len(queue) == 3
    assert drain(queue) == [(40, 1), (40, 2), (40, 3)]
    assert queue.pending == 0


def test_lowest_signal_first_but_synchronous_faults_before_all() -> None:
    """next_signal: synchronous signals first, else the lowest number; blocked ones wait."""
    queue = SignalQueue()
    for signo in (SIGTERM, 40, SIGSEGV, SIGHUP, 35):
        queue.enqueue(kill_info(signo, 1, 0))
    assert queue.next_signal(0) == SIGSEGV
    assert queue.next_signal(sigmask(SIGSEGV)) == SIGHUP
    order = [info.signo for info in iter(lambda: queue.dequeue(sigmask(SIGHUP)), None)]
    assert order == [SIGSEGV, SIGTERM, 35, 40]
    assert queue.pending == sigmask(SIGHUP)


def test_the_kernels_faults_come_out_first_in_queue_order() -> None:
    """dequeue_synchronous takes the first queued kernel-sent fault (si_code > 0), not a
    kill()ed SIGSEGV, and only while some synchronous signal is unblocked."""
    queue = SignalQueue()
    queue.enqueue(kill_info(SIGHUP, 1, 0))
    queue.enqueue(kill_info(4, 1, 0))  # SIGILL from kill(): si_code SI_USER
    queue.enqueue(fault_info(SIGSEGV, SEGV_MAPERR, 0x10))
    assert queue.dequeue_synchronous(sigmask(SIGSEGV) | sigmask(4)) is None
    first = queue.dequeue_synchronous(0)
    assert first is not None and (first.signo, first.addr) == (SIGSEGV, 0x10)
    assert queue.dequeue_synchronous(0) is None  # the SIGILL is the user's
    assert [i.signo for i in iter(lambda: queue.dequeue(0), None)] == [4, SIGHUP]


def test_a_task_takes_its_own_signals_before_its_groups() -> None:
    own, group = SignalQueue(), SignalQueue()
    group.enqueue(kill_info(SIGHUP, 1, 0))
    own.enqueue(tkill_info(SIGTERM, 1, 0))
    own.enqueue(fault_info(SIGSEGV, SEGV_MAPERR, 0))
    taken = [dequeue_for_task(own, group, 0) for _ in range(4)]
    assert [(t[0].signo, t[1]) if t else None for t in taken] == [
        (SIGSEGV, False), (SIGTERM, False), (SIGHUP, True), None]
    group.enqueue(kill_info(SIGINT, 1, 0))
    own.enqueue(kill_info(SIGCHLD, 1, 0))
    assert pending_for_task(own, group) == sigmask(SIGINT) | sigmask(SIGCHLD)


def test_the_pending_limit_fails_user_rt_signals_and_loses_other_info() -> None:
    """Without room: an rt signal from sigqueue is EAGAIN; kill() and the kernel go over the
    limit; at the host bound a standard signal is pending with a bare SI_USER siginfo."""
    queue = SignalQueue()
    assert queue.enqueue(queue_info(40, 1, 0, 5), room=False) is Enqueued.OVERFLOW
    assert queue.pending == 0
    assert queue.enqueue(kill_info(41, 1, 0), room=False) is Enqueued.QUEUED
    assert queue.enqueue(queue_info(SIGUSR1, 7, 0, 9), room=False) is Enqueued.INFO_LOST
    info = queue.dequeue(0)
    assert info is not None and (info.signo, info.code, info.pid) == (SIGUSR1, SI_USER, 0)
    full = SignalQueue(entries=[kill_info(40, 1, 0)] * MAX_QUEUED, pending=sigmask(40))
    assert full.enqueue(kill_info(SIGHUP, 1, 0)) is Enqueued.INFO_LOST
    assert full.enqueue(queue_info(42, 1, 0, 0)) is Enqueued.OVERFLOW


def test_discard_drops_a_signal_everywhere_in_the_queue() -> None:
    queue = SignalQueue()
    for value in (1, 2):
        queue.enqueue(queue_info(40, 1, 0, value))
    queue.enqueue(kill_info(SIGHUP, 1, 0))
    queue.discard(sigmask(40))
    assert drain(queue) == [(SIGHUP, 0)]


infos = st.one_of(
    st.builds(kill_info, st.integers(1, 64), st.integers(0, 2**31 - 1), st.integers(0, 2**32 - 1)),
    st.builds(queue_info, st.integers(1, 64), st.integers(0, 100), st.integers(0, 100),
              st.integers(0, 2**64 - 1)),
    st.builds(fault_info, st.sampled_from([4, 5, 7, 8, 11]), st.integers(1, 3),
              st.integers(0, 2**64 - 1)))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(infos, st.booleans()), max_size=30), st.integers(0, 2**64 - 1))
def test_state_round_trips_and_passes_its_checks(sends: list[tuple[siginfo.SigInfo, bool]],
                                                 blocked: int) -> None:
    """to_state/from_state give back a queue that delivers the same signals in the same
    order; STATE accepts every state enqueue can make."""
    queue = SignalQueue()
    for info, room in sends:
        queue.enqueue(info, room)
    state = queue.to_state()
    validate(state, STATE, "queue")
    twin = SignalQueue.from_state(state)
    assert twin == queue
    assert [twin.dequeue(blocked) for _ in range(40)] == [queue.dequeue(blocked)
                                                        for _ in range(40)]


@pytest.mark.parametrize(("state", "problem"), [
    ({"pending": 0, "entries": [[10, 0, 0, bytes(32)]]}, "not pending"),
    ({"pending": 1 << 9, "entries": [[10, 0, 0, bytes(32)], [10, 0, 0, bytes(32)]]},
     "queued twice"),
    ({"pending": 1 << 64, "entries": []}, "outside"),
    ({"pending": 0, "entries": [[65, 0, 0, bytes(32)]]}, r"entries\[0\]"),
    ({"pending": 1, "entries": [[1, 0, 0, bytes(31)]]}, r"entries\[0\]"),
    ({"pending": 0}, "no field 'entries'"),
])
def test_hostile_queue_states_are_refused(state: object, problem: str) -> None:
    with pytest.raises(SchemaError, match=problem):
        validate(state, STATE, "queue")
