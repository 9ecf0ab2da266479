"""How the kernel sends signals, interrupts blocked calls with them and delivers them.

The signal model itself — queues, actions, siginfo, the rt_sigframe, syscall restart — is
the pure `kernel/signals/` package, Linux's kernel/signal.c step by step. This module is
its use by the process: which thread takes a signal sent to the process, waking a thread
blocked in a call (which then returns EINTR or runs again, as Linux decides), entering
handlers on the way back to user mode, the default actions, the interval timer and CPU
exceptions. Signals are looked at only at the deterministic points where a task returns
to user mode: after a system call or an exception, and when a task is switched in.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.signals import delivery, faults
from chaosreplay.kernel.signals.actions import Default
from chaosreplay.kernel.signals.queue import Enqueued
from chaosreplay.kernel.signals.registers import REGISTER_NAMES, Registers
from chaosreplay.kernel.signals.restart import ERESTART_RESTARTBLOCK, ERESTARTNOHAND, ERESTARTSYS
from chaosreplay.kernel.signals.siginfo import (
    SI_KERNEL,
    SI_TIMER,
    SI_TKILL,
    SI_USER,
    SigInfo,
    kernel_info,
    timer_info,
)
from chaosreplay.kernel.signals.sigset import SIGALRM, SIGCONT, SIGKILL, SIGSEGV, blockable, sigmask
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import TaskContext, VmmError

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess
    from chaosreplay.kernel.task import Task

_MASK64 = (1 << 64) - 1
# What an interrupted blocking call returns, by syscall (signal(7), "Interruption of system
# calls and library functions by signal handlers"): restarted under SA_RESTART, never
# restarted when a handler runs (EINTR), or restarted through the remaining time.
NEVER_RESTARTED = frozenset(NUMBERS[name] for name in (
    "poll", "ppoll", "select", "pselect6", "epoll_wait", "epoll_pwait", "epoll_pwait2",
    "pause", "rt_sigsuspend", "rt_sigtimedwait"))
SLEEPS = frozenset((NUMBERS["nanosleep"], NUMBERS["clock_nanosleep"]))
NR_FUTEX = NUMBERS["futex"]
CPU_TIMER_SIGNALS = {1: 26, 2: 27}  # ITIMER_VIRTUAL: SIGVTALRM, ITIMER_PROF: SIGPROF
NR_RT_SIGTIMEDWAIT = NUMBERS["rt_sigtimedwait"]


def threads(p: GuestProcess) -> list[delivery.TaskSignals]:
    """Every thread's signal state, the group leader (the main thread) first."""
    return [t.signals for t in p.tasks.values()]


def send_to_process(p: GuestProcess, info: SigInfo) -> int:
    """kill(): queue on the process and wake a thread that can take it; 0 or -EAGAIN."""
    if info.signo in (SIGCONT, SIGKILL):
        continue_if_stopped(p, info.signo)
    result = delivery.generate(info, p.signals, threads(p))
    if result is None:
        return 0  # ignored: discarded
    if result is Enqueued.OVERFLOW:
        return -errno.EAGAIN
    p.signals_dirty = True
    _notify_signalfds(p)
    bit = sigmask(info.signo)
    current = p.current
    if not current.exited and not current.blocked() and not current.signals.blocked & bit:
        return 0  # the running thread takes it on its way back to user mode
    for task in p.tasks.values():  # complete_signal: the first thread that wants it
        if not task.signals.blocked & bit:
            _wake(p, task)
            break
    else:
        _wake_sigwaiters(p, bit)
    return 0


def send_to_task(p: GuestProcess, task: Task, info: SigInfo) -> int:
    """tgkill()/tkill() or a fault: queue on one thread and wake it if it can take it."""
    if info.signo in (SIGCONT, SIGKILL):
        continue_if_stopped(p, info.signo)
    result = delivery.generate(info, p.signals, threads(p), target=task.signals)
    if result is None:
        return 0
    if result is Enqueued.OVERFLOW:
        return -errno.EAGAIN
    p.signals_dirty = True
    _notify_signalfds(p)
    if task.signals.blocked & sigmask(info.signo):
        _wake_sigwaiters(p, sigmask(info.signo), only=task)
    else:
        _wake(p, task)
    return 0


def _notify_signalfds(p: GuestProcess) -> None:
    """A signal was queued: the process's signalfds may have become readable."""
    from chaosreplay.kernel.fs.signalfd import SignalFd

    for _, slot in p.files.items():
        if isinstance(slot.file, SignalFd):
            slot.file.signalled(p)


def _wake_sigwaiters(p: GuestProcess, bit: int, only: Task | None = None) -> None:
    """A blocked signal arrived: threads in rt_sigtimedwait for it look again."""
    for task in p.tasks.values():
        if only is not None and task is not only:
            continue
        wait = task.waiting
        if wait is not None and wait.number == NR_RT_SIGTIMEDWAIT \
                and task.sigwait_set & bit:
            wait.waiter.notify(0, p.vtime_ns)


def _wake(p: GuestProcess, task: Task) -> None:
    """A deliverable signal for `task`: a blocked call of its ends (EINTR or restart)."""
    if task is p.current and not task.blocked():
        return
    wait = task.waiting
    if wait is not None and wait.number == NR_RT_SIGTIMEDWAIT:
        wait.waiter.notify(0, p.vtime_ns)  # it looks at its set (and then its mask) again
        return
    if not task.blocked():
        return
    interrupt(p, task)


def interrupt(p: GuestProcess, task: Task) -> None:
    """End the call `task` sleeps in because a signal is to be delivered (or to kill)."""
    wait, number = task.waiting, task.blocked_nr
    if wait is not None:
        number = wait.number
        wait.detach()
        task.waiting = None
    if task.in_sdk_recv:
        task.in_sdk_recv = False
        if p.on_recv_timeout is not None:
            p.on_recv_timeout()
    regs = p.task_regs(task)
    if wait is not None and wait.progress:
        code = None  # a call that already moved data returns what it moved
        regs.rax = wait.progress
    elif number in NEVER_RESTARTED:
        code = ERESTARTNOHAND
    elif number in SLEEPS or (number == NR_FUTEX and task.wake_at_ns is not None):
        code = ERESTART_RESTARTBLOCK  # EINTR when a handler runs
        if number in SLEEPS:
            _write_remaining(p, task, number, regs)
    elif number is None:
        code = None  # not in a system call (cannot happen while blocked)
    else:
        code = ERESTARTSYS
    if code is not None:
        regs.rax = -code & _MASK64
    task.futex = None
    task.wake_at_ns = None
    task.interrupted_nr = number if number is not None else -1


def _write_remaining(p: GuestProcess, task: Task, number: int, regs: Any) -> None:
    """nanosleep's `rem`: the guest-clock time left (relative sleeps only)."""
    if task.wake_at_ns is None:
        return
    if number == NUMBERS["nanosleep"]:
        rem = regs.rsi
    elif regs.rsi & 1:  # clock_nanosleep with TIMER_ABSTIME writes nothing
        return
    else:
        rem = regs.r10
    if rem:
        left = max(0, p.clock.read(task.wake_at_ns) - p.guest_time_ns())
        p.space.write(rem, struct.pack("<qq", left // 10**9, left % 10**9))


def with_sigmask(p: GuestProcess, address: int, size: int, wait: Callable[[], int]) -> int:
    """ppoll, pselect6, epoll_pwait: make the call with the signal mask at `address` in
    place (0: the thread's own), as one atomic step; the old mask comes back when the call
    ends, or after the handler of the signal that interrupted it."""
    from chaosreplay.kernel.fs.waiters import WAIT, retrying

    task = p.current
    if address and retrying(p) is None:
        if size != 8:
            return -errno.EINVAL
        raw = p.space.read(address, 8)
        if raw is None:
            return -errno.EFAULT
        task.signals.saved_mask = task.signals.blocked
        task.signals.blocked = blockable(struct.unpack("<Q", raw)[0])
        recheck(p)
        if delivery.has_deliverable(task.signals, p.signals):
            return -ERESTARTNOHAND  # a signal the mask lets through is already pending
    result = wait()
    if result != WAIT and address and task.signals.saved_mask is not None:
        task.signals.blocked, task.signals.saved_mask = task.signals.saved_mask, None
        recheck(p)
    return result


# -- on the way back to user mode -------------------------------------------------------------

def _registers(regs: Any) -> Registers:
    return Registers(*(int(getattr(regs, name)) for name in REGISTER_NAMES))


def _load(p: GuestProcess, regs: Registers, fpu: bytes | None) -> bool:
    """Put registers (and an FPU image) on the vCPU; False if the CPU refused them."""
    context = None
    if fpu is not None:  # through a whole context, which the C core checks on loading
        context = TaskContext()
        p.vm.save_context(context)
    target = p.regs if context is None else context.regs
    for name, value in zip(REGISTER_NAMES, regs.as_tuple(), strict=True):
        setattr(target, name, value)
    if context is None:
        return True
    context.raw.fpu = fpu
    try:
        p.vm.load_context(context)
    except VmmError:
        return False
    return True


def _fpu(p: GuestProcess) -> bytes:
    context = TaskContext()
    p.vm.save_context(context)
    return context.fpu


def deliver(p: GuestProcess, orig_rax: int) -> None:
    """The current task returns to user mode: enter handlers for its deliverable signals
    (the last one's runs first), or carry out their default actions; an interrupted call
    `orig_rax` (-1: none) returns EINTR or runs again."""
    task = p.current
    while True:
        taken = delivery.take(task.signals, p.signals)
        stops = taken is not None and taken.default is Default.STOP and _stop(p, taken)
        if taken is None or stops:  # (a stopped call restarts once the process continues)
            if orig_rax >= 0:
                regs = delivery.resume_without_handler(_registers(p.regs), orig_rax,
                                                       task.signals)
                _load(p, regs, None)
            break
        if taken.default is not None:
            _default_action(p, taken)
            return
        # A one-instruction window of the code-page policy (a trap step, TF) must not
        # carry over into the handler: close it; after rt_sigreturn it opens again.
        p.space.code.suspend(p.regs)
        entered = delivery.run_handler(p.space, _registers(p.regs), _fpu(p), orig_rax, taken,
                                       task.signals, p.signals)
        orig_rax = -1
        if entered is None or entered.fault is not None:
            continue  # SIGSEGV is forced: the next take finds it
        if not _load(p, entered.regs, entered.fpu):
            delivery.force(kernel_info(SIGSEGV), task.signals, p.signals, fatal=True)
            continue
        p.emit_signal_delivered(taken.info.signo, entered.frame)
    recheck(p)


def recheck(p: GuestProcess) -> None:
    """Whether some thread has a signal it would take now (then calls look for it)."""
    p.signals_dirty = any(delivery.has_deliverable(t.signals, p.signals)
                          for t in p.tasks.values())


def _stop(p: GuestProcess, taken: delivery.Taken) -> bool:
    """A stop signal's default action: the process stops until a SIGCONT from another
    process of the node (False when there is none: then it ends, as no one could)."""
    table = p.table
    if table is None or not table.others_alive(p):
        return False
    table.stop(p, taken.info.signo)
    return True


def continue_if_stopped(p: GuestProcess, signo: int) -> None:
    """SIGCONT (or SIGKILL) sent to a stopped process resumes it, blocked or not."""
    if p.stopped and p.table is not None:
        p.table.resume(p, report=signo == SIGCONT)


def _default_action(p: GuestProcess, taken: delivery.Taken) -> None:
    """SIG_DFL of a signal that terminates, dumps core or stops the process."""
    signo = taken.info.signo
    if taken.default is Default.STOP:
        reason = "stopped by the signal; no other process of the node can continue it"
    elif taken.info.code == SI_USER and taken.info.pid == p.pid:
        reason = "signal sent by the program to itself"
    elif taken.info.code == SI_TKILL:
        reason = "signal sent by the program to one of its threads"
    elif taken.info.code == SI_KERNEL:
        reason = "signal sent by the kernel (an interval timer, a bad signal frame...)"
    else:
        reason = "signal delivered with its default action"
    p._die(signo, 0, 0, reason)


def rt_sigreturn(p: GuestProcess) -> int:
    """rt_sigreturn: back to the state the signal frame saved; its rax is the result."""
    task = p.current
    p.space.code.suspend(p.regs)
    result = delivery.rt_sigreturn(p.space, _registers(p.regs), _fpu(p), task.signals,
                                   p.signals)
    if result.fault is not None:
        p.signals_dirty = True
        return int(p.regs.rax)  # SIGSEGV is forced; the registers stay as they are
    if not _load(p, result.regs, result.fpu):
        delivery.force(kernel_info(SIGSEGV), task.signals, p.signals, fatal=True)
        p.signals_dirty = True
        return int(p.regs.rax)
    if delivery.has_deliverable(task.signals, p.signals):
        p.signals_dirty = True  # a signal the restored mask unblocks
    return result.regs.rax


# -- CPU exceptions ---------------------------------------------------------------------------

def exception_to_handler(p: GuestProcess, vector: int, error_code: int, cr2: int,
                         signo: int) -> bool | None:
    """A user-mode exception whose signal the program handles: force it and enter the
    handler. None when the program has no handler for it (the caller reports the crash as
    before), else whether the task goes on."""
    task = p.current
    action = p.signals.actions.get(signo)
    if not action.is_handler or task.signals.blocked & sigmask(signo):
        return None
    regs = p.regs
    mapped = vector == 14 and p.space.find(cr2) is not None
    info, trap = faults.exception_signal(vector, error_code, int(regs.rip), cr2, _fpu(p),
                                         task.signals.trap, mapped)
    task.signals.trap = trap
    if info is None:
        return True  # a spurious x87/SIMD exception
    regs.rflags = faults.exception_rflags(vector, int(regs.rflags))  # RF, as Linux saves it
    delivery.force(info, task.signals, p.signals)
    deliver(p, -1)
    return p.status.value == "running"


# -- timers: ITIMER_REAL and timer_create --------------------------------------------------------

SIGEV_SIGNAL, SIGEV_NONE, SIGEV_THREAD_ID = 0, 1, 4


@dataclass(slots=True)
class PosixTimer:
    """A timer_create timer: what it sends, to whom, and when it next expires (virtual)."""

    clock_id: int
    notify: int  # SIGEV_SIGNAL, SIGEV_NONE or SIGEV_THREAD_ID
    signo: int
    tid: int  # SIGEV_THREAD_ID's target thread
    value: int  # sigev_value, as its 8 bytes
    at_ns: int | None = None  # next expiry in virtual time (None: disarmed)
    interval_ns: int = 0  # virtual
    overrun: int = 0  # expiries missed at the last one delivered

    def to_list(self) -> list[Any]:
        return [self.clock_id, self.notify, self.signo, self.tid, self.value, self.at_ns,
                self.interval_ns, self.overrun]


def rearm(p: GuestProcess) -> None:
    """Recompute the earliest timer expiry the run loop looks out for."""
    dues = [t.at_ns for t in p.posix_timers.values() if t.at_ns is not None]
    if p.itimer_real[0] is not None:
        dues.append(p.itimer_real[0])
    dues.extend(at for at, _ in p.itimer_cpu.values())
    p.timer_due_ns = min(dues) if dues else None


def _next_expiry(at: int, interval: int, now: int) -> tuple[int | None, int]:
    """After an expiry at `at` seen at `now`: the next one, and the expiries missed."""
    if not interval:
        return None, 0
    missed = (now - at) // interval
    return at + (missed + 1) * interval, missed


def _timer_signal_pending(p: GuestProcess, timer_id: int) -> bool:
    queues = [p.signals.pending, *(t.signals.pending for t in p.tasks.values())]
    return any(info.code == SI_TIMER and info.timer_id == timer_id
               for queue in queues for info in queue.entries)


def fire_timers(p: GuestProcess) -> None:
    """Every timer due by now expires: ITIMER_REAL sends SIGALRM to the process, a POSIX
    timer its signal (SI_TIMER with its id, value and overrun) to the process or thread."""
    now = p.vtime_ns
    at, interval = p.itimer_real
    if at is not None and at <= now:
        p.itimer_real = (_next_expiry(at, interval, now)[0], interval)
        send_to_process(p, kernel_info(SIGALRM))
    for which, (at, interval) in sorted(p.itimer_cpu.items()):  # ITIMER_VIRTUAL, _PROF
        if at <= now:
            following = _next_expiry(at, interval, now)[0]
            if following is None:
                del p.itimer_cpu[which]
            else:
                p.itimer_cpu[which] = (following, interval)
            send_to_process(p, kernel_info(CPU_TIMER_SIGNALS[which]))
    for timer_id, timer in sorted(p.posix_timers.items()):
        if timer.at_ns is None or timer.at_ns > now:
            continue
        timer.at_ns, missed = _next_expiry(timer.at_ns, timer.interval_ns, now)
        if timer.notify == SIGEV_NONE:
            continue
        if _timer_signal_pending(p, timer_id):  # one signal per timer in flight (POSIX)
            timer.overrun += missed + 1
            continue
        timer.overrun = missed
        info = timer_info(timer.signo, timer_id, timer.overrun, timer.value)
        target = p.find_task(timer.tid) if timer.notify == SIGEV_THREAD_ID else None
        if target is not None:
            send_to_task(p, target, info)
        else:
            send_to_process(p, info)
    rearm(p)
