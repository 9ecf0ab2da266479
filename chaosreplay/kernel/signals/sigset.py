"""Signal sets: 64-bit masks (bit signo-1) and the rules of rt_sigprocmask.

x86-64 Linux has 64 signals, so one u64 holds a whole sigset_t as the kernel sees it
(rt_sigprocmask and friends refuse any sigsetsize but 8). SIGKILL and SIGSTOP can never be
blocked: every path that sets a task's mask from user data drops them.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable

NSIG = 64
SIGSET_SIZE = 8  # the only sigsetsize the rt_sig* calls accept on x86-64
FULL = (1 << NSIG) - 1
SIGHUP, SIGINT, SIGQUIT, SIGILL, SIGTRAP, SIGABRT, SIGBUS, SIGFPE = 1, 2, 3, 4, 5, 6, 7, 8
SIGKILL, SIGUSR1, SIGSEGV, SIGUSR2, SIGPIPE, SIGALRM, SIGTERM = 9, 10, 11, 12, 13, 14, 15
SIGSTKFLT, SIGCHLD, SIGCONT, SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU = 16, 17, 18, 19, 20, 21, 22
SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGWINCH, SIGIO = 23, 24, 25, 26, 27, 28, 29
SIGPWR, SIGSYS = 30, 31
SIGRTMIN = 32  # the kernel's; glibc keeps 32 and 33 for itself and calls 34 SIGRTMIN
SIGRTMAX = 64

SIG_BLOCK, SIG_UNBLOCK, SIG_SETMASK = 0, 1, 2


def sigmask(signo: int) -> int:
    """The mask holding only `signo` (1..64)."""
    return 1 << (signo - 1)


def mask_of(signals: Iterable[int]) -> int:
    """The mask holding every signal of `signals`."""
    mask = 0
    for signo in signals:
        mask |= sigmask(signo)
    return mask


def members(mask: int) -> list[int]:
    """The signals of `mask`, lowest first."""
    return [signo for signo in range(1, NSIG + 1) if mask & sigmask(signo)]


UNBLOCKABLE = sigmask(SIGKILL) | sigmask(SIGSTOP)
# Signals the kernel delivers before any other pending one (kernel/signal.c
# SYNCHRONOUS_MASK): the faults a thread's own instruction raised.
SYNCHRONOUS = mask_of((SIGSEGV, SIGBUS, SIGILL, SIGTRAP, SIGFPE, SIGSYS))
STOP_SIGNALS = mask_of((SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU))


def valid_signal(signo: int) -> bool:
    """Whether `signo` names a signal (1..64; 0 is only a probe for kill)."""
    return 1 <= signo <= NSIG


def blockable(mask: int) -> int:
    """`mask` as a task may block it: without SIGKILL and SIGSTOP, within 64 bits."""
    return mask & FULL & ~UNBLOCKABLE


def procmask(blocked: int, how: int, change: int) -> int:
    """The mask rt_sigprocmask(how, &change) leaves, or -EINVAL for an unknown `how`.

    Linux drops SIGKILL/SIGSTOP from the new set before applying it (kernel/signal.c
    rt_sigprocmask); with no new set the call does not look at `how` at all, so the
    caller skips this function then."""
    change = blockable(change)
    if how == SIG_BLOCK:
        return blocked | change
    if how == SIG_UNBLOCK:
        return blocked & ~change
    if how == SIG_SETMASK:
        return change
    return -errno.EINVAL
