"""A task's and a thread group's signal state, and the three steps of a signal's life in
Linux (kernel/signal.c): generation (send_signal), selection on the way back to user space
(get_signal) and delivery to a handler (handle_signal).

The kernel's task layer owns `TaskSignals` and `GroupSignals` and calls these functions at
its switch points; scheduling (which thread of a group takes a group signal, waking it),
stopping and continuing a group, and ending it are its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chaosreplay.kernel.signals import actions, altstack, faults, frame, queue, restart
from chaosreplay.kernel.signals.actions import Default, SigAction, SignalActions
from chaosreplay.kernel.signals.altstack import DISABLED, AltStack
from chaosreplay.kernel.signals.faults import TrapInfo
from chaosreplay.kernel.signals.queue import Enqueued, SignalQueue, dequeue_for_task
from chaosreplay.kernel.signals.registers import Registers
from chaosreplay.kernel.signals.siginfo import SigInfo, kernel_info
from chaosreplay.kernel.signals.sigset import (
    FULL,
    SIGCONT,
    SIGSEGV,
    STOP_SIGNALS,
    sigmask,
)
from chaosreplay.recording.schema import Int, Maybe, Record


@dataclass
class TaskSignals:
    """One task's signal state: its mask, its own pending queue, its sigaltstack, its last
    fault, and the mask to restore after a sigsuspend-like call (TIF_RESTORE_SIGMASK)."""

    blocked: int = 0
    pending: SignalQueue = field(default_factory=SignalQueue)
    altstack: AltStack = field(default_factory=AltStack)
    trap: TrapInfo = field(default_factory=TrapInfo)
    saved_mask: int | None = None

    def for_thread(self) -> TaskSignals:
        """A new thread's (clone with CLONE_VM, no CLONE_VFORK): the mask inherited, nothing
        pending, no altstack."""
        return TaskSignals(self.blocked, altstack=DISABLED)

    def for_fork(self) -> TaskSignals:
        """A fork or vfork child's: mask and altstack inherited, nothing pending."""
        return TaskSignals(self.blocked, altstack=self.altstack)

    def to_state(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {"blocked": self.blocked, "pending": self.pending.to_state(),
                "altstack": self.altstack.to_state(), "trap": self.trap.to_state(),
                "saved_mask": self.saved_mask}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> TaskSignals:
        """The state to_state() described (TASK_STATE checked it)."""
        return cls(state["blocked"], SignalQueue.from_state(state["pending"]),
                   AltStack.from_state(state["altstack"]), TrapInfo.from_state(state["trap"]),
                   state["saved_mask"])


@dataclass
class GroupSignals:
    """A thread group's signal state: the actions its threads share and its own queue."""

    actions: SignalActions = field(default_factory=SignalActions)
    pending: SignalQueue = field(default_factory=SignalQueue)

    def to_state(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {"actions": self.actions.to_state(), "pending": self.pending.to_state()}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> GroupSignals:
        """The state to_state() described (GROUP_STATE checked it)."""
        return cls(SignalActions.from_state(state["actions"]),
                   SignalQueue.from_state(state["pending"]))


MASK = Int(0, FULL)
TASK_STATE = Record({  # TaskSignals.to_state()
    "blocked": MASK, "pending": queue.STATE, "altstack": altstack.STATE,
    "trap": faults.STATE, "saved_mask": Maybe(MASK),
})
GROUP_STATE = Record({"actions": actions.STATE, "pending": queue.STATE})  # GroupSignals


def generate(info: SigInfo, group: GroupSignals, threads: list[TaskSignals],
             target: TaskSignals | None = None, room: bool = True) -> Enqueued | None:
    """Send a signal (send_signal_locked): to `target`'s own queue (tkill, tgkill, a fault)
    or, with no target, to the group's (kill). SIGCONT first discards pending stop signals
    and a stop signal pending SIGCONTs, in every queue (prepare_signal); a signal that is
    ignored, and not blocked by the thread that would take it (`target`, else the first
    of `threads`, the group leader), is discarded (None). `room`: RLIMIT_SIGPENDING."""
    bit = sigmask(info.signo)
    if bit & (STOP_SIGNALS | sigmask(SIGCONT)):
        cancelled = STOP_SIGNALS if info.signo == SIGCONT else sigmask(SIGCONT)
        for queue_ in [group.pending, *(t.pending for t in threads)]:
            queue_.discard(cancelled)
    checked = target if target is not None else (threads[0] if threads else None)
    blocked = checked is not None and bool(checked.blocked & bit)
    if not blocked and actions.is_ignored(group.actions.get(info.signo), info.signo):
        return None
    return (target.pending if target is not None else group.pending).enqueue(info, room)


def force(info: SigInfo, task: TaskSignals, group: GroupSignals, fatal: bool = False) -> None:
    """Send a signal the task cannot hold off (force_sig_info: faults, a frame that could
    not be written): unblocked and, if blocked or ignored, back to SIG_DFL."""
    task.blocked = group.actions.force(info.signo, task.blocked, fatal)
    task.pending.enqueue(info)


def has_deliverable(task: TaskSignals, group: GroupSignals) -> bool:
    """Whether some pending signal is not blocked (signal_pending: a blocked call wakes)."""
    return bool((task.pending.pending | group.pending.pending) & ~task.blocked & FULL)


@dataclass(frozen=True)
class Taken:
    """A signal get_signal chose: run `action`'s handler (`default` None), or carry out
    `default` (TERMINATE, CORE or STOP)."""

    info: SigInfo
    action: SigAction
    default: Default | None


def take(task: TaskSignals, group: GroupSignals) -> Taken | None:
    """The next signal that does something (get_signal): ignored ones are dropped on the
    way (SIG_IGN, or a default of ignore or continue); SA_RESETHAND takes effect now.
    None when nothing deliverable is pending. (A stop signal for an orphaned process group
    is dropped by Linux too; that test is the caller's, which knows process groups.)"""
    while True:
        taken = dequeue_for_task(task.pending, group.pending, task.blocked)
        if taken is None:
            return None
        info = taken[0]
        action = group.actions.get(info.signo)
        if action.handler == actions.SIG_IGN:
            continue
        if action.is_handler:
            group.actions.reset_on_delivery(info.signo)
            return Taken(info, action, None)
        default = actions.default_action(info.signo)
        if default in (Default.IGNORE, Default.CONTINUE):
            continue
        return Taken(info, action, default)


def run_handler(memory: frame.GuestMemory, regs: Registers, fpu: bytes, orig_rax: int,
                taken: Taken, task: TaskSignals, group: GroupSignals) -> frame.Delivery | None:
    """Enter `taken`'s handler (handle_signal): the interrupted syscall (number `orig_rax`,
    or -1) returns EINTR or is set to run again per SA_RESTART, the frame is written, and
    the task's mask, altstack and saved mask move on.

    Returns the handler's state, which becomes the task's registers and FPU; the caller
    then takes signals again before resuming (Linux stacks a frame for each deliverable
    signal, the last one's handler running first). If it has a `fault` (the handler
    address cannot run), that SIGSEGV is already forced here and the next take finds it.
    None if no frame could be written: SIGSEGV is forced (fatal if the signal was SIGSEGV
    itself), the registers stay `regs` after the restart adjustment, and the caller takes
    signals again."""
    regs = restart.before_handler(regs, orig_rax, taken.action.flags)
    delivery = frame.setup_frame(memory, regs, fpu, taken.info.signo, taken.action,
                                 taken.info, task.blocked, task.altstack, task.trap,
                                 task.saved_mask)
    if delivery is None:
        force(kernel_info(SIGSEGV), task, group, fatal=taken.info.signo == SIGSEGV)
        return None
    task.blocked, task.altstack, task.saved_mask = (delivery.blocked, delivery.altstack, None)
    if delivery.fault is not None:
        task.trap = delivery.trap or task.trap
        force(delivery.fault, task, group)
    return delivery


def resume_without_handler(regs: Registers, orig_rax: int, task: TaskSignals) -> Registers:
    """Nothing to deliver on the way back to user space: an interrupted call runs again, and
    a sigsuspend-like call's saved mask comes back."""
    if task.saved_mask is not None:
        task.blocked, task.saved_mask = task.saved_mask, None
    return restart.without_handler(regs, orig_rax)


def rt_sigreturn(memory: frame.GuestMemory, regs: Registers, fpu: bytes, task: TaskSignals,
                 group: GroupSignals) -> frame.Sigreturn:
    """rt_sigreturn for the task: its mask and altstack become the frame's, its registers
    and FPU the result's. A refused frame, or registers user mode cannot hold, force
    SIGSEGV here (`fault` set): the caller then takes signals again before resuming, and
    never loads such registers into the vCPU. The syscall-restart logic must not run on
    the result (Linux sets orig_ax to -1: rax is the frame's)."""
    result = frame.sigreturn(memory, regs, fpu, task.blocked, task.altstack, task.trap)
    task.blocked, task.altstack = result.blocked, result.altstack
    if result.fault is not None:
        if result.trap is not None:
            task.trap = result.trap
        force(result.fault, task, group)
    return result

