"""Waiter queues and blocked calls: how a task waits for a file's state to change.

Every file description owns wait queues. A call that cannot finish yet (a read of an empty
pipe, a poll with nothing ready, a timerfd read before expiry) registers a `Waiter` on the
queues of what it waits for and blocks with an optional virtual-time deadline; it never
waits on the host. A state change (a pipe write, an eventfd write, a close) notifies the
queue, which wakes the waiters interested in those events at that virtual time. Timers
need no callback: a description whose readiness changes by itself at a known virtual time
says so through `next_change_ns`, and the blocked task's wake-up time is the earliest such
time or its deadline.

A woken call is run again from the start (Linux's wait loop): the handler re-checks the
state and either finishes or blocks again; `Wait` keeps what must survive between tries
(the deadline and the bytes already moved). With one task per node, a call that would
block with no deadline and nothing that can change by itself is a deadlock: the process
ends with a report that names the call (Linux would block it forever). Many tasks can
block on the same queues; a woken task is ready to run, and the scheduler picks when.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from chaosreplay.kernel.fs.files import FileDescription
    from chaosreplay.kernel.process import GuestProcess

WAIT = -(1 << 40)
"""What a handler returns when its call blocked: the run loop answers it later."""


class Notifiable(Protocol):
    """Anything a queue can wake: a blocked task's waiter, an epoll entry."""

    def notify(self, mask: int, at_ns: int) -> None: ...


class WaitQueue:
    """The parties waiting for events of one object, in registration order."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: list[tuple[Notifiable, int]] = []

    def register(self, party: Notifiable, mask: int) -> None:
        """Wake `party` on any of the events in mask (registering again replaces the mask)."""
        self.unregister(party)
        self._entries.append((party, mask))

    def unregister(self, party: Notifiable) -> None:
        self._entries = [(p, m) for p, m in self._entries if p is not party]

    def notify(self, mask: int, at_ns: int) -> None:
        """Events in mask happened at virtual time at_ns: wake everyone waiting for them."""
        for party, wanted in list(self._entries):
            if wanted & mask:
                party.notify(mask, at_ns)

    def __len__(self) -> int:
        return len(self._entries)


@dataclass(slots=True)
class Waiter:
    """A blocked task's registration: the earliest virtual time something woke it."""

    woken_at_ns: int | None = None

    def notify(self, mask: int, at_ns: int) -> None:
        if self.woken_at_ns is None or at_ns < self.woken_at_ns:
            self.woken_at_ns = at_ns


@dataclass(slots=True)
class Wait:
    """A call a task is blocked in: retried from the start when it wakes."""

    number: int  # the syscall to run again
    reason: str  # what it waits for, for reports and the debugger
    deadline_ns: int | None = None  # virtual time the call gives up (None: never)
    progress: int = 0  # bytes already moved by a call that blocked part way
    targets: list[tuple[FileDescription, int]] = field(default_factory=list)
    waiter: Waiter = field(default_factory=Waiter)

    def expired(self, now_ns: int) -> bool:
        return self.deadline_ns is not None and now_ns >= self.deadline_ns

    def detach(self) -> None:
        """Leave every queue this call registered on."""
        for target, _ in self.targets:
            target.unregister(self.waiter)


def retrying(p: GuestProcess) -> Wait | None:
    """The blocked call being run again, if the current call is such a retry."""
    return p.waiting


def deadline_after(p: GuestProcess, timeout_ns: int | None) -> int | None:
    """The virtual deadline of a call with a guest-clock timeout (kept across retries)."""
    if p.waiting is not None:
        return p.waiting.deadline_ns
    if timeout_ns is None:
        return None
    # Linux clamps timeouts to KTIME_MAX: a longer one is forever, and stays in range.
    return min(p.vtime_ns + p.clock.to_virtual(max(0, timeout_ns)), 2**63 - 1)


def timed_out(p: GuestProcess) -> bool:
    """Whether the call being retried has reached its deadline."""
    return p.waiting is not None and p.waiting.expired(p.vtime_ns)


def progress(p: GuestProcess) -> int:
    """Bytes the call being retried had already moved (0 on a first try)."""
    return p.waiting.progress if p.waiting is not None else 0


def block(p: GuestProcess, targets: list[tuple[FileDescription, int]], deadline_ns: int | None,
          reason: str, moved: int = 0) -> int:
    """Block the current call on `targets` (description, events) until woken or deadline.

    Returns WAIT for the handler to return. With nothing that can wake the call (no
    deadline, no target that changes by itself, no other task) the process is ended as
    deadlocked instead, which is what blocking forever looks like on one node; with other
    tasks alive it waits to be woken (the scheduler reports a node whose tasks all do).
    """
    end_wait(p)
    wake = deadline_ns
    for target, _ in targets:
        change = target.next_change_ns(p)
        if change is not None and (wake is None or change < wake):
            wake = change
    if wake is None and not p.others_alive():
        p._die(signal.SIGKILL, 0, 0,
               f"deadlock: {reason} blocks forever (no timeout, no other task to wake it)")
        return WAIT
    wait = Wait(int(p.regs.rax), reason, deadline_ns, moved, list(targets))
    for target, mask in targets:
        target.register(wait.waiter, mask)
    p.waiting = wait
    if wake is not None:
        p.block_until(wake)
    return WAIT


def wake_if_woken(p: GuestProcess) -> None:
    """Something outside the run loop (a packet arriving) notified queues: a blocked call
    whose waiter fired, in any task of any process of the node, runs again at that time
    instead of the node's old wake-up time."""
    table = getattr(p, "table", None)  # (the tests' stand-in processes have none)
    node = table.init if table is not None else p
    if node.wake_at_ns is None:
        return
    waits = [t.waiting for q in (table.live() if table is not None else [p])
             for t in getattr(q, "tasks", {}).values()] or [p.waiting]
    woken = [w.waiter.woken_at_ns for w in waits
             if w is not None and w.waiter.woken_at_ns is not None]
    if woken:
        node.wake_at_ns = min(node.wake_at_ns, max(min(woken), node.vtime_ns))


def end_wait(p: GuestProcess) -> None:
    """The current call finished (or blocks anew): drop its old registrations."""
    if p.waiting is not None:
        p.waiting.detach()
        p.waiting = None


def wait_state(wait: Wait | None, index: Any) -> list[Any] | None:
    """A blocked call as plain data; `index` maps a description to its table index."""
    if wait is None:
        return None
    return [wait.number, wait.reason, wait.deadline_ns, wait.progress,
            [[index(t), m] for t, m in wait.targets]]


def load_wait(data: list[Any] | None, description: Any) -> Wait | None:
    """The inverse of wait_state; `description` maps an index back, re-registering."""
    if data is None:
        return None
    number, reason, deadline, moved, targets = data
    wait = Wait(number, reason, deadline, moved, [(description(i), m) for i, m in targets])
    for target, mask in wait.targets:
        target.register(wait.waiter, mask)
    return wait
