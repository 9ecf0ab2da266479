"""Waiter queues and blocking (kernel/fs/waiters.py) and the descriptor table's plain-data
form, without KVM: a fake process stands in for the task."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from chaosreplay.kernel.clock import NodeClock
from chaosreplay.kernel.fs.epoll import EPOLL_CTL_ADD, EPOLLET, Epoll
from chaosreplay.kernel.fs.eventfd import EventFd
from chaosreplay.kernel.fs.files import POLLIN, POLLOUT, FdTable
from chaosreplay.kernel.fs.pipes import Pipe, make_pipe
from chaosreplay.kernel.fs.timerfd import TimerFd
from chaosreplay.kernel.fs.waiters import WAIT, Waiter, WaitQueue, block, load_wait, wait_state


class FakeTask:
    """What waiters and descriptions need of a process."""

    def __init__(self) -> None:
        self.vtime_ns = 0
        self.clock = NodeClock()
        self.regs = SimpleNamespace(rax=0)
        self.waiting: Any = None
        self.wake_at_ns: int | None = None
        self.died: str | None = None
        self.files = FdTable()
        self.other_tasks = False

    def others_alive(self) -> bool:
        return self.other_tasks

    def block_until(self, wake_ns: int) -> None:
        self.wake_at_ns = max(wake_ns, self.vtime_ns)

    def realtime_ns(self) -> int:
        return self.clock.realtime(self.vtime_ns)

    def guest_time_ns(self) -> int:
        return self.clock.read(self.vtime_ns)

    def _die(self, signo: int, vector: int, address: int, reason: str) -> None:
        self.died = reason


def test_a_queue_wakes_every_waiter_that_asked_for_the_event_at_its_time() -> None:
    queue = WaitQueue()
    readers = [Waiter(), Waiter()]
    writer = Waiter()
    for w in readers:
        queue.register(w, POLLIN)
    queue.register(writer, POLLOUT)
    queue.notify(POLLIN, 500)
    queue.notify(POLLIN, 300)
    assert [w.woken_at_ns for w in readers] == [300, 300]
    assert writer.woken_at_ns is None
    queue.unregister(readers[0])
    assert len(queue) == 2


def test_a_pipe_write_wakes_tasks_blocked_on_its_read_end_at_the_writers_time() -> None:
    task = FakeTask()
    read_end, write_end = make_pipe(2, 0)
    blocked = [Waiter(), Waiter()]  # two tasks in read() (the threads slice)
    for w in blocked:
        read_end.register(w, POLLIN)
    task.vtime_ns = 7_000
    assert write_end.write(task, b"x") == 1
    assert [w.woken_at_ns for w in blocked] == [7_000, 7_000]


def test_blocking_with_no_waker_and_no_deadline_is_a_deadlock() -> None:
    task = FakeTask()
    read_end, _ = make_pipe(2, 0)
    assert block(task, [(read_end, POLLIN)], None, "read of pipe:[2]") == WAIT
    assert task.died is not None and "deadlock: read of pipe:[2]" in task.died
    assert task.waiting is None and task.wake_at_ns is None


def test_with_another_task_alive_a_wait_without_deadline_sleeps_until_woken() -> None:
    task = FakeTask()
    task.other_tasks = True
    read_end, write_end = make_pipe(2, 0)
    assert block(task, [(read_end, POLLIN)], None, "read of pipe:[2]") == WAIT
    assert task.died is None and task.wake_at_ns is None
    assert task.waiting.waiter.woken_at_ns is None
    task.vtime_ns = 7_000
    assert write_end.write(task, b"x") == 1  # another task writes: the reader is woken
    assert task.waiting.waiter.woken_at_ns == 7_000


def test_a_blocked_timer_read_wakes_at_the_expiry_on_the_skewed_guest_clock() -> None:
    task = FakeTask()
    timer = TimerFd(0)
    timer.set(task, 0, 100_000_000, 0)
    task.clock.start_skew(0, 0.25)  # the guest's clock runs 25% fast
    assert block(task, [(timer, POLLIN)], None, "read of timerfd") == WAIT
    assert task.died is None
    assert task.wake_at_ns == 80_000_000
    assert len(timer.queue) == 1, "the waiter is on the timer's queue"
    task.vtime_ns = task.wake_at_ns
    assert timer.readiness(task, POLLIN) == POLLIN


def test_a_deadline_bounds_the_wait() -> None:
    task = FakeTask()
    read_end, _ = make_pipe(2, 0)
    block(task, [(read_end, POLLIN)], 5_000, "poll")
    assert task.wake_at_ns == 5_000 and task.waiting.deadline_ns == 5_000
    assert not task.waiting.expired(4_999) and task.waiting.expired(5_000)


def test_descriptor_table_with_pipes_epoll_eventfd_and_timer_round_trips() -> None:
    task = FakeTask()
    table = task.files
    read_end, write_end = make_pipe(table.anon_ino(), 0)
    table.install(read_end)
    table.install(write_end)
    table.install(read_end, cloexec=True)  # a dup shares the description
    events = EventFd(2, count=3, semaphore=True)
    table.install(events)
    timer = TimerFd(0)
    timer.set(task, 0, 50, 10)
    table.install(timer)
    epoll = Epoll(2)
    table.install(epoll)
    assert epoll.control(task, EPOLL_CTL_ADD, 0, read_end, POLLIN | EPOLLET, 99) == 0
    write_end.write(task, b"data")
    assert epoll.collect(task, 4) == [(POLLIN, 99)]
    block(task, [(read_end, POLLIN), (timer, POLLIN)], 1_000, "poll")
    refs, state = table.save()
    waiting = wait_state(task.waiting, refs.index)

    loaded, new_refs = FdTable.load(state, Pipe.from_state)
    again_refs, again = loaded.save()
    assert again == state
    assert wait_state(load_wait(waiting, lambda i: new_refs.descriptions[i]),
                      again_refs.index) == waiting
    new_read, new_write = loaded.get(0), loaded.get(1)
    assert new_read is loaded.get(2) and new_read.refs == 2
    assert new_read.pipe is new_write.pipe and bytes(new_read.pipe.buffer) == b"data"
    new_epoll = loaded.get(5)
    assert new_epoll.entries[0].file is new_read
    assert new_epoll.collect(task, 4) == [], "the edge already reported stays reported"
    new_write.write(task, b"more")
    assert new_epoll.collect(task, 4) == [(POLLIN, 99)], "a new write is a new edge"


def test_a_version_1_descriptor_table_loads_with_stdio_as_descriptors() -> None:
    """Checkpoints written before the descriptor interface still load."""
    from chaosreplay.kernel.syscalls.files import files_state, load_files_state

    holder = SimpleNamespace(node_id=0, config=SimpleNamespace(node_count=1),
                             current=SimpleNamespace(tid=1000, waiting=None))
    holder.tasks = {1000: holder.current}
    load_files_state(holder, {"version": 1, "open": [[7, 2, b"/data/x", 5]],  # type: ignore
                              "fds": [[3, 0, False], [4, 0, True]]})
    assert [fd for fd, _ in holder.files.items()] == [0, 1, 2, 3, 4]
    assert holder.files.get(3) is holder.files.get(4) and holder.files.get(3).offset == 5
    assert holder.files.slots[4].cloexec and holder.files.get(1).stream == 1
    state = files_state(holder)  # type: ignore[arg-type]
    assert state["version"] == 5 and state["net"]["sockets"] == []  # upgraded through 2-4
