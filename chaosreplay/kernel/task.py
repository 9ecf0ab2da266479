"""A task: one thread of a guest program, with its own CPU state, ids and blocking state.

All tasks of a node share its one vCPU. The task on the vCPU keeps its registers there
(`Vm.regs`); every other task keeps them in a saved `TaskContext`, which the kernel loads
when the scheduler switches to it. Everything else a thread owns alone in Linux (its tid,
signal mask, clear_child_tid, robust list, the call it is blocked in) lives here; what the
threads of a process share (memory, descriptors, signal handlers) stays with the process.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chaosreplay.kernel.fs.waiters import Wait
from chaosreplay.vm.vmm import TaskContext


@dataclass(slots=True)
class FutexWait:
    """Where a task sleeps in FUTEX_WAIT: the word's address, its bitset, queue order."""

    address: int
    bitset: int
    sequence: int  # enqueue order across the node: wakes take the oldest waiter first
    woken: bool = False
    requeued: bool = False  # moved by FUTEX_(CMP_)REQUEUE to another word

    def to_list(self) -> list[Any]:
        return [self.address, self.bitset, self.sequence, self.woken]


@dataclass(slots=True)
class Task:
    """One guest thread."""

    tid: int
    context: TaskContext | None = None  # saved CPU state; None while on the vCPU
    signal_mask: int = 0
    clear_child_tid: int = 0  # set_tid_address / CLONE_CHILD_CLEARTID
    robust_list: int = 0  # set_robust_list head (0: none)
    robust_list_len: int = 0
    wake_at_ns: int | None = None  # blocked until this virtual time (a sleep or deadline)
    waiting: Wait | None = None  # the blocked call to run again when woken
    futex: FutexWait | None = None
    exited: bool = False
    priority: int = 0  # the random scheduling policy's priority (higher runs first)
    ran_since_ns: int = 0  # virtual time it was last switched in (for the time slice)
    in_sdk_recv: bool = False  # blocked in cr_recv: a datagram delivery completes the call

    def blocked(self) -> bool:
        return self.wake_at_ns is not None or self.waiting is not None

    def ready(self, now_ns: int) -> bool:
        """Whether the task can run at virtual time now_ns."""
        if self.exited:
            return False
        if self.waiting is not None and (self.waiting.waiter.woken_at_ns is not None
                                         or (self.futex is not None and self.futex.woken)):
            return True
        if self.wake_at_ns is not None:
            return self.wake_at_ns <= now_ns
        return self.waiting is None

    def wake_time(self) -> int | None:
        """When this blocked task wakes by itself (None: only another party can wake it)."""
        if self.waiting is not None and self.waiting.waiter.woken_at_ns is not None:
            return self.waiting.waiter.woken_at_ns
        return self.wake_at_ns
