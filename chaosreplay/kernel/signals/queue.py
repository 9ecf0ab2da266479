"""Pending signals: one `SignalQueue` per task and one per thread group, with Linux's rules
for what is kept and in which order it comes out (kernel/signal.c).

- A standard signal (1..31) already pending in a queue is not queued again: the second
  one is lost and the first one's siginfo stays (legacy_queue).
- Real-time signals (32..64) queue every instance in order, each with its siginfo. One
  sent from user space (si_code < 0: sigqueue, tkill, timers) when the sender's
  RLIMIT_SIGPENDING is used up fails with EAGAIN; kill() and the kernel's own signals
  (si_code >= 0) go over the limit.
- A signal with no room for its siginfo at all is still pending, and comes out with a
  bare SI_USER siginfo (pid 0, uid 0), as Linux's collect_signal gives it.
- Order (next_signal, dequeue_signal): a task takes first the synchronous faults the
  kernel queued on it (SEGV, BUS, ILL, TRAP, FPE, SYS with si_code > 0, the first in
  queue order), then the lowest-numbered unblocked signal of its own queue, preferring
  the synchronous ones; then the same from its thread group's queue.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chaosreplay.kernel.signals import siginfo
from chaosreplay.kernel.signals.siginfo import SI_USER, SigInfo, kill_info
from chaosreplay.kernel.signals.sigset import FULL, SIGRTMIN, SYNCHRONOUS, sigmask
from chaosreplay.recording.schema import Int, ListOf, Record, Where

# A bound on one queue's stored siginfos, whatever the guest's limit (host memory is not
# the guest's to fill); past it a signal is pending without its siginfo, as on a kernel
# out of memory.
MAX_QUEUED = 1 << 16
# RLIMIT_SIGPENDING as Linux sets it for a machine of a few GiB (max_threads/2): the
# default soft and hard limit of every task here.
RLIMIT_SIGPENDING_DEFAULT = 31_615


class Enqueued(Enum):
    """What `SignalQueue.enqueue` did with a signal."""

    QUEUED = "queued"  # pending with its siginfo
    COALESCED = "coalesced"  # a standard signal already pending: this instance is lost
    INFO_LOST = "info_lost"  # pending, but its siginfo did not fit (bare SI_USER info)
    OVERFLOW = "overflow"  # not queued: the sender gets EAGAIN


@dataclass
class SignalQueue:
    """The pending set of a task (`task->pending`) or a thread group (`shared_pending`)."""

    pending: int = 0  # the signals pending here, bit signo-1
    entries: list[SigInfo] = field(default_factory=list)  # their siginfos, in arrival order

    def __len__(self) -> int:
        """How many siginfos are stored (what RLIMIT_SIGPENDING counts)."""
        return len(self.entries)

    def enqueue(self, info: SigInfo, room: bool = True) -> Enqueued:
        """Add a signal. `room`: whether the sender's user is below RLIMIT_SIGPENDING
        (the kernel counts per user over every queue; the caller knows them all)."""
        bit = sigmask(info.signo)
        if info.signo < SIGRTMIN and self.pending & bit:
            return Enqueued.COALESCED
        override = info.code >= 0  # kill() and the kernel are not held to the limit
        if (room or override) and len(self.entries) < MAX_QUEUED:
            self.entries.append(info)
            self.pending |= bit
            return Enqueued.QUEUED
        if info.signo >= SIGRTMIN and info.code != SI_USER:
            return Enqueued.OVERFLOW
        self.pending |= bit
        return Enqueued.INFO_LOST

    def next_signal(self, blocked: int) -> int:
        """The signal dequeue would take with `blocked` masked (0 when none): the lowest
        unblocked synchronous one if any, else the lowest unblocked one."""
        ready = self.pending & ~blocked & FULL
        if ready & SYNCHRONOUS:
            ready &= SYNCHRONOUS
        return (ready & -ready).bit_length()

    def dequeue(self, blocked: int) -> SigInfo | None:
        """Take the next unblocked signal with its siginfo (dequeue_signal on this queue)."""
        signo = self.next_signal(blocked)
        return self._collect(signo) if signo else None

    def dequeue_synchronous(self, blocked: int) -> SigInfo | None:
        """Take the first fault the kernel queued here, if some synchronous signal is
        unblocked (dequeue_synchronous_signal: a task's own queue, before anything else)."""
        if not self.pending & ~blocked & SYNCHRONOUS:
            return None
        for i, info in enumerate(self.entries):
            if info.from_kernel and sigmask(info.signo) & SYNCHRONOUS:
                del self.entries[i]
                if not any(other.signo == info.signo for other in self.entries[i:]):
                    self.pending &= ~sigmask(info.signo)
                return info
        return None

    def discard(self, mask: int) -> None:
        """Drop every pending signal of `mask` (flush_sigqueue_mask: it became ignored, or
        SIGCONT/a stop signal cancels the other kind)."""
        self.pending &= ~mask
        self.entries = [info for info in self.entries if not sigmask(info.signo) & mask]

    def _collect(self, signo: int) -> SigInfo:
        for i, info in enumerate(self.entries):
            if info.signo == signo:
                del self.entries[i]
                if not any(other.signo == signo for other in self.entries[i:]):
                    self.pending &= ~sigmask(signo)
                return info
        self.pending &= ~sigmask(signo)
        return kill_info(signo, 0, 0)  # queued without room for its siginfo

    def to_state(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return {"pending": self.pending, "entries": [info.to_state() for info in self.entries]}

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> SignalQueue:
        """The queue to_state() described (STATE checked it)."""
        return cls(int(state["pending"]), [SigInfo.from_state(e) for e in state["entries"]])


def _entries_are_pending(state: dict[str, Any]) -> str | None:
    """Every stored siginfo's signal is pending, a standard signal at most once (as
    enqueue keeps them)."""
    seen = 0
    for i, (signo, *_) in enumerate(state["entries"]):
        if not state["pending"] & sigmask(signo):
            return f"has entry {i} for signal {signo}, which is not pending"
        if signo < SIGRTMIN and seen & sigmask(signo):
            return f"has standard signal {signo} queued twice"
        seen |= sigmask(signo)
    return None


STATE = Where(Record({  # SignalQueue.to_state()
    "pending": Int(0, FULL),
    "entries": ListOf(siginfo.STATE, max_len=MAX_QUEUED),
}), _entries_are_pending)


def dequeue_for_task(own: SignalQueue, group: SignalQueue,
                     blocked: int) -> tuple[SigInfo, bool] | None:
    """The signal a task takes next and whether it came from the group's queue, in
    get_signal's order: its own synchronous faults, its own queue, the group's queue."""
    info = own.dequeue_synchronous(blocked) or own.dequeue(blocked)
    if info is not None:
        return info, False
    info = group.dequeue(blocked)
    return (info, True) if info is not None else None


def pending_for_task(own: SignalQueue, group: SignalQueue) -> int:
    """The signals pending for a task, blocked or not (rt_sigpending reports these & its
    blocked mask)."""
    return own.pending | group.pending
