"""Signals: actions, masks, sending, waiting, rt_sigreturn and the interval timer.

The model is kernel/signals/ (Linux's kernel/signal.c); sending, waking and delivery are
kernel/signalling.py. The process is pid 1000, its threads 1000 and up; there is no other
process on the node, so a signal to any other pid is ESRCH.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel import signalling
from chaosreplay.kernel.fs.files import O_CLOEXEC, O_NONBLOCK, O_RDONLY
from chaosreplay.kernel.fs.signalfd import SignalFd
from chaosreplay.kernel.fs.waiters import WAIT, Wait, deadline_after, retrying, timed_out
from chaosreplay.kernel.signals import altstack, delivery, sigset
from chaosreplay.kernel.signals.actions import KSIGACTION_SIZE, SigAction
from chaosreplay.kernel.signals.queue import dequeue_for_task, pending_for_task
from chaosreplay.kernel.signals.restart import ERESTARTNOHAND
from chaosreplay.kernel.signals.siginfo import (
    SIGINFO_SIZE,
    from_user,
    kill_info,
    queueinfo_allowed,
    tkill_info,
)
from chaosreplay.kernel.syscalls.args import NS, int32, timespec_ns
from chaosreplay.kernel.syscalls.clock import clock_value
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.kernel.syscalls.process import signal_targets

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

SIGSET_SIZE = 8
UID = 0
ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF = 0, 1, 2
US = 1_000


def _sigset(p: GuestProcess, address: int, size: int) -> int | None:
    raw = p.space.read(address, SIGSET_SIZE)
    return None if raw is None else struct.unpack("<Q", raw)[0]


def sys_rt_sigaction(p: GuestProcess, r: Any) -> int:
    signo, act, oldact, size = int32(r.rdi), r.rsi, r.rdx, r.r10
    if size != SIGSET_SIZE:
        return -errno.EINVAL
    new = None
    if act:
        raw = p.space.read(act, KSIGACTION_SIZE)
        if raw is None:
            return -errno.EFAULT
        new = SigAction.unpack(raw)
    change = p.signals.actions.sigaction(signo, new)
    if isinstance(change, int):
        return change
    if oldact and not p.space.write(oldact, change.old.pack()):
        return -errno.EFAULT
    if change.flush_pending:  # now ignored: pending instances of it are discarded
        for queue in [p.signals.pending, *(t.signals.pending for t in p.tasks.values())]:
            queue.discard(sigset.sigmask(signo))
    return 0


def sys_rt_sigprocmask(p: GuestProcess, r: Any) -> int:
    how, new, old, size = r.rdi, r.rsi, r.rdx, r.r10
    if size != SIGSET_SIZE:
        return -errno.EINVAL
    task = p.current
    change = None
    if new:
        change = _sigset(p, new, size)
        if change is None:
            return -errno.EFAULT
    if old and not p.space.write(old, struct.pack("<Q", task.signals.blocked)):
        return -errno.EFAULT
    if change is not None:
        mask = sigset.procmask(task.signals.blocked, how, change)
        if mask < 0:
            return mask
        task.signals.blocked = mask
        signalling.recheck(p)
    return 0


def sys_rt_sigpending(p: GuestProcess, r: Any) -> int:
    if r.rsi > SIGSET_SIZE:
        return -errno.EINVAL
    task = p.current
    pending = pending_for_task(task.signals.pending, p.signals.pending) & task.signals.blocked
    return 0 if p.space.write(r.rdi, struct.pack("<Q", pending)[: r.rsi]) else -errno.EFAULT


def sys_sigaltstack(p: GuestProcess, r: Any) -> int:
    new, old = r.rdi, r.rsi
    task = p.current
    sp = int(p.regs.rsp)
    if old and not p.space.write(old, task.signals.altstack.report(sp)):
        return -errno.EFAULT
    if new:
        raw = p.space.read(new, altstack.STACK_T_SIZE)
        if raw is None:
            return -errno.EFAULT
        result = altstack.sigaltstack(task.signals.altstack, raw, sp)
        if isinstance(result, int):
            return result
        task.signals.altstack = result
    return 0


def _check_signal(signo: int) -> int | None:
    """None when signo may be sent (0 probes), else -EINVAL."""
    return None if 0 <= signo <= sigset.NSIG else -errno.EINVAL


def sys_kill(p: GuestProcess, r: Any) -> int:
    pid, signo = int32(r.rdi), int32(r.rsi)
    bad = _check_signal(signo)
    if bad is not None:
        return bad
    if p.table is None:  # the node's only process: itself, its group, or everyone
        if pid not in (0, -1, p.pid, -p.pid):
            return -errno.ESRCH
        return 0 if signo == 0 else signalling.send_to_process(p, kill_info(signo, p.pid, UID))
    targets = signal_targets(p, pid)
    if isinstance(targets, int):
        return targets
    if signo == 0:
        return 0
    result = 0
    for target in targets:
        sent = signalling.send_to_process(target, kill_info(signo, p.pid, UID))
        result = result or sent
    return result


def _to_thread(p: GuestProcess, tgid: int | None, tid: int, signo: int) -> int:
    if tid <= 0 or (tgid is not None and tgid <= 0):
        return -errno.EINVAL
    bad = _check_signal(signo)
    if bad is not None:
        return bad
    owner = p if p.find_task(tid) is not None else _owner_of(p, tid)
    task = owner.find_task(tid) if owner is not None else None
    if owner is None or task is None or (tgid is not None and tgid != owner.pid):
        return -errno.ESRCH
    if signo == 0:
        return 0
    return signalling.send_to_task(owner, task, tkill_info(signo, p.pid, UID))


def _owner_of(p: GuestProcess, tid: int) -> GuestProcess | None:
    """The live process of the node that has thread tid."""
    if p.table is None:
        return None
    return next((q for q in p.table.live() if tid in q.tasks), None)


def sys_tgkill(p: GuestProcess, r: Any) -> int:
    return _to_thread(p, int32(r.rdi), int32(r.rsi), int32(r.rdx))


def sys_tkill(p: GuestProcess, r: Any) -> int:
    return _to_thread(p, None, int32(r.rdi), int32(r.rsi))


def _queued_info(p: GuestProcess, signo: int, address: int) -> Any:
    raw = p.space.read(address, SIGINFO_SIZE)
    if raw is None:
        return -errno.EFAULT
    info = from_user(signo, raw)
    if isinstance(info, int):
        return info
    if not queueinfo_allowed(info, p.pid, p.pid):
        return -errno.EPERM
    return info


def sys_rt_sigqueueinfo(p: GuestProcess, r: Any) -> int:
    pid, signo = int32(r.rdi), int32(r.rsi)
    if not sigset.valid_signal(signo):
        return -errno.EINVAL
    info = _queued_info(p, signo, r.rdx)
    if isinstance(info, int):
        return info
    if pid != p.pid:
        return -errno.ESRCH
    return signalling.send_to_process(p, info)


def sys_rt_tgsigqueueinfo(p: GuestProcess, r: Any) -> int:
    tgid, tid, signo = int32(r.rdi), int32(r.rsi), int32(r.rdx)
    if not sigset.valid_signal(signo) or tgid <= 0 or tid <= 0:
        return -errno.EINVAL
    info = _queued_info(p, signo, r.r10)
    if isinstance(info, int):
        return info
    task = p.find_task(tid)
    if task is None or tgid != p.pid:
        return -errno.ESRCH
    return signalling.send_to_task(p, task, info)


def sys_rt_sigreturn(p: GuestProcess, r: Any) -> int:
    return signalling.rt_sigreturn(p)


def sys_restart_syscall(p: GuestProcess, r: Any) -> int:
    return -errno.EINTR  # no restart block is ever left behind (do_no_restart_syscall)


def _sleep_until_signal(p: GuestProcess, reason: str) -> int:
    """Sleep until a signal ends the call (pause, sigsuspend): it returns EINTR then."""
    task = p.current
    if delivery.has_deliverable(task.signals, p.signals):
        return -ERESTARTNOHAND
    task.waiting = Wait(int(p.regs.rax), reason, None)
    return WAIT


def sys_pause(p: GuestProcess, r: Any) -> int:
    if retrying(p) is not None:
        return WAIT  # only a signal ends it
    return _sleep_until_signal(p, "pause")


def sys_rt_sigsuspend(p: GuestProcess, r: Any) -> int:
    if retrying(p) is not None:
        return WAIT
    if r.rsi != SIGSET_SIZE:
        return -errno.EINVAL
    mask = _sigset(p, r.rdi, r.rsi)
    if mask is None:
        return -errno.EFAULT
    task = p.current
    task.signals.saved_mask = task.signals.blocked  # back after the handler (uc_sigmask)
    task.signals.blocked = sigset.blockable(mask)
    signalling.recheck(p)
    return _sleep_until_signal(p, "rt_sigsuspend")


def sys_rt_sigtimedwait(p: GuestProcess, r: Any) -> int:
    wanted_at, info_at, timeout, size = r.rdi, r.rsi, r.rdx, r.r10
    if size != SIGSET_SIZE:
        return -errno.EINVAL
    wanted = _sigset(p, wanted_at, size)
    if wanted is None:
        return -errno.EFAULT
    wanted = sigset.blockable(wanted)
    task = p.current
    taken = dequeue_for_task(task.signals.pending, p.signals.pending, ~wanted & sigset.FULL)
    if taken is not None:
        info = taken[0]
        signalling.recheck(p)
        task.sigwait_set = 0
        if info_at and not p.space.write(info_at, info.pack()):
            return -errno.EFAULT
        return info.signo
    if retrying(p) is not None and timed_out(p):
        task.sigwait_set = 0
        return -errno.EAGAIN
    timeout_ns = None
    if timeout and retrying(p) is None:
        timeout_ns = timespec_ns(p, timeout)
        if timeout_ns is None:
            return -errno.EFAULT
        if timeout_ns < 0:
            return -errno.EINVAL
        if timeout_ns == 0:
            return -errno.EAGAIN
    deadline = deadline_after(p, timeout_ns)
    task.sigwait_set = wanted
    task.waiting = Wait(int(p.regs.rax), "rt_sigtimedwait", deadline)
    task.wake_at_ns = deadline
    return WAIT


# -- the interval timer -------------------------------------------------------------------------

def _timeval(p: GuestProcess, address: int) -> tuple[int, int] | int:
    raw = p.space.read(address, 32)
    if raw is None:
        return -errno.EFAULT
    interval_s, interval_us, value_s, value_us = struct.unpack("<qqqq", raw)
    if min(interval_s, value_s) < 0 or not (0 <= interval_us < 10**6 and 0 <= value_us < 10**6):
        return -errno.EINVAL
    return interval_s * NS + interval_us * US, value_s * NS + value_us * US


def _current_timer(p: GuestProcess) -> bytes:
    """The struct itimerval of ITIMER_REAL now: interval and time left (guest clock)."""
    at, interval = p.itimer_real
    left = 0 if at is None else max(1, p.clock.read(at) - p.guest_time_ns())
    left_us = -(-left // US) if at is not None else 0  # rounded up: never 0 while armed
    return struct.pack("<qqqq", interval // NS, (interval % NS) // US, left_us // 10**6,
                       left_us % 10**6)


def _arm(p: GuestProcess, value_ns: int, interval_ns: int) -> None:
    if value_ns == 0:
        p.itimer_real = (None, interval_ns)
    else:
        p.itimer_real = (p.vtime_ns + p.clock.to_virtual(value_ns),
                         p.clock.to_virtual(interval_ns))
    signalling.rearm(p)


# -- POSIX timers (timer_create) ------------------------------------------------------------------

TIMER_CLOCKS = (0, 1, 2, 3, 7)  # REALTIME, MONOTONIC, PROCESS/THREAD_CPUTIME, BOOTTIME
CPU_CLOCKS = (2, 3)  # CPU time is virtual time itself: no clock fault bends it
TIMER_ABSTIME = 1
MAX_TIMERS = 1 << 16  # a bound on host memory (Linux: RLIMIT_SIGPENDING)


def _timer_arg(p: GuestProcess, timer_id: int) -> signalling.PosixTimer | None:
    return p.posix_timers.get(int32(timer_id))


def sys_timer_create(p: GuestProcess, r: Any) -> int:
    clock_id, event_at, id_at = int32(r.rdi), r.rsi, r.rdx
    if clock_id not in TIMER_CLOCKS:
        return -errno.EINVAL
    timer_id = p.next_timer_id
    if event_at:
        raw = p.space.read(event_at, 20)
        if raw is None:
            return -errno.EFAULT
        value, signo, notify, tid = struct.unpack("<Qiii", raw)
    else:  # NULL: SIGALRM, with the timer id as its value
        value, signo, notify, tid = timer_id, 14, signalling.SIGEV_SIGNAL, 0
    if notify not in (signalling.SIGEV_SIGNAL, signalling.SIGEV_NONE,
                      signalling.SIGEV_THREAD_ID):
        return -errno.EINVAL  # SIGEV_THREAD is the C library's, built on SIGEV_THREAD_ID
    if notify != signalling.SIGEV_NONE and not sigset.valid_signal(signo):
        return -errno.EINVAL
    if notify == signalling.SIGEV_THREAD_ID and p.find_task(tid) is None:
        return -errno.EINVAL
    if len(p.posix_timers) >= MAX_TIMERS:
        return -errno.EAGAIN
    if not p.space.write(id_at, struct.pack("<i", timer_id)):
        return -errno.EFAULT
    p.posix_timers[timer_id] = signalling.PosixTimer(clock_id, notify, signo, tid, value)
    p.next_timer_id += 1
    return 0


def _timer_left(p: GuestProcess, timer: signalling.PosixTimer) -> bytes:
    """struct itimerspec: the interval and the time left, on the timer's clock."""
    if timer.at_ns is None:
        left = 0
    elif timer.clock_id in CPU_CLOCKS:
        left = max(1, timer.at_ns - p.vtime_ns)
    else:
        left = max(1, p.clock.read(timer.at_ns) - p.guest_time_ns())
    interval = timer.interval_ns
    return struct.pack("<qqqq", interval // NS, interval % NS, left // NS, left % NS)


def sys_timer_settime(p: GuestProcess, r: Any) -> int:
    timer = _timer_arg(p, r.rdi)
    flags, new, old = r.rsi, r.rdx, r.r10
    if timer is None:
        return -errno.EINVAL
    raw = p.space.read(new, 32)
    if raw is None:
        return -errno.EFAULT
    interval_s, interval_ns, value_s, value_ns = struct.unpack("<qqqq", raw)
    if min(interval_s, value_s) < 0 or not (0 <= interval_ns < NS and 0 <= value_ns < NS):
        return -errno.EINVAL
    if old and not p.space.write(old, _timer_left(p, timer)):
        return -errno.EFAULT
    interval, value = interval_s * NS + interval_ns, value_s * NS + value_ns
    cpu = timer.clock_id in CPU_CLOCKS
    if value == 0:
        timer.at_ns = None
    else:
        if flags & TIMER_ABSTIME:
            now = clock_value(p, timer.clock_id) or 0
            value = max(0, value - now)
        timer.at_ns = p.vtime_ns + (value if cpu else p.clock.to_virtual(value))
    timer.interval_ns = interval if cpu else p.clock.to_virtual(interval)
    timer.overrun = 0
    signalling.rearm(p)
    return 0


def sys_timer_gettime(p: GuestProcess, r: Any) -> int:
    timer = _timer_arg(p, r.rdi)
    if timer is None:
        return -errno.EINVAL
    return 0 if p.space.write(r.rsi, _timer_left(p, timer)) else -errno.EFAULT


def sys_timer_getoverrun(p: GuestProcess, r: Any) -> int:
    timer = _timer_arg(p, r.rdi)
    return -errno.EINVAL if timer is None else min(timer.overrun, 2**31 - 1)


def sys_timer_delete(p: GuestProcess, r: Any) -> int:
    if p.posix_timers.pop(int32(r.rdi), None) is None:
        return -errno.EINVAL
    signalling.rearm(p)
    return 0


def sys_setitimer(p: GuestProcess, r: Any) -> int:
    which, new, old = int32(r.rdi), r.rsi, r.rdx
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    value = _timeval(p, new) if new else (0, 0)
    if isinstance(value, int):
        return value
    if old and not p.space.write(old, _itimer_value(p, which)):
        return -errno.EFAULT
    interval_ns, value_ns = value
    if which == ITIMER_REAL:
        _arm(p, value_ns, interval_ns)
        return 0
    # CPU-time timers: the process's CPU time is virtual time itself, as for the CPU
    # clocks (no clock fault bends it); they fire SIGVTALRM and SIGPROF.
    if value_ns:
        p.itimer_cpu[which] = (p.vtime_ns + value_ns, interval_ns)
    else:
        p.itimer_cpu.pop(which, None)
    signalling.rearm(p)
    return 0


def _itimer_value(p: GuestProcess, which: int) -> bytes:
    """The struct itimerval of an interval timer now: its interval and the time left."""
    if which == ITIMER_REAL:
        return _current_timer(p)
    at, interval = p.itimer_cpu.get(which, (None, 0))
    left_us = 0 if at is None else -(-max(1, at - p.vtime_ns) // US)
    return struct.pack("<qqqq", interval // NS, (interval % NS) // US, left_us // 10**6,
                       left_us % 10**6)


def sys_getitimer(p: GuestProcess, r: Any) -> int:
    which = int32(r.rdi)
    if which not in (ITIMER_REAL, ITIMER_VIRTUAL, ITIMER_PROF):
        return -errno.EINVAL
    return 0 if p.space.write(r.rsi, _itimer_value(p, which)) else -errno.EFAULT


def sys_alarm(p: GuestProcess, r: Any) -> int:
    at, _ = p.itimer_real
    left = 0 if at is None else max(0, p.clock.read(at) - p.guest_time_ns())
    previous = 0 if at is None else max(1, (left + NS // 2) // NS)  # rounded, never 0
    _arm(p, (r.rdi & 0xFFFFFFFF) * NS, 0)
    return previous


# -- signalfd --------------------------------------------------------------------------------

SFD_CLOEXEC, SFD_NONBLOCK = O_CLOEXEC, O_NONBLOCK


def _signalfd(p: GuestProcess, fd: int, mask_at: int, size: int, flags: int) -> int:
    if flags & ~(SFD_CLOEXEC | SFD_NONBLOCK) or size != SIGSET_SIZE:
        return -errno.EINVAL
    mask = _sigset(p, mask_at, size)
    if mask is None:
        return -errno.EFAULT
    mask = sigset.blockable(mask)
    if fd != -1:
        file = p.files.get(fd)
        if file is None:
            return -errno.EBADF
        if not isinstance(file, SignalFd):
            return -errno.EINVAL
        file.mask = mask
        file.signalled(p)  # readiness may have changed
        return fd
    return p.files.install(SignalFd(O_RDONLY | (flags & SFD_NONBLOCK), mask=mask),
                           bool(flags & SFD_CLOEXEC))


def sys_signalfd(p: GuestProcess, r: Any) -> int:
    return _signalfd(p, int32(r.rdi), r.rsi, r.rdx, 0)


def sys_signalfd4(p: GuestProcess, r: Any) -> int:
    return _signalfd(p, int32(r.rdi), r.rsi, r.rdx, r.r10 & 0xFFFFFFFF)


HANDLERS = {
    222: sys_timer_create,
    223: sys_timer_settime,
    224: sys_timer_gettime,
    225: sys_timer_getoverrun,
    226: sys_timer_delete,
    NUMBERS["signalfd"]: sys_signalfd,
    NUMBERS["signalfd4"]: sys_signalfd4,
    NUMBERS["rt_sigaction"]: sys_rt_sigaction,
    NUMBERS["rt_sigprocmask"]: sys_rt_sigprocmask,
    NUMBERS["rt_sigpending"]: sys_rt_sigpending,
    NUMBERS["sigaltstack"]: sys_sigaltstack,
    NUMBERS["kill"]: sys_kill,
    NUMBERS["tgkill"]: sys_tgkill,
    200: sys_tkill,
    NUMBERS["rt_sigqueueinfo"]: sys_rt_sigqueueinfo,
    NUMBERS["rt_tgsigqueueinfo"]: sys_rt_tgsigqueueinfo,
    NUMBERS["rt_sigreturn"]: sys_rt_sigreturn,
    NUMBERS["restart_syscall"]: sys_restart_syscall,
    NUMBERS["pause"]: sys_pause,
    NUMBERS["rt_sigsuspend"]: sys_rt_sigsuspend,
    NUMBERS["rt_sigtimedwait"]: sys_rt_sigtimedwait,
    NUMBERS["setitimer"]: sys_setitimer,
    NUMBERS["getitimer"]: sys_getitimer,
    NUMBERS["alarm"]: sys_alarm,
}
