"""A signal's life across the modules (chaosreplay.kernel.signals.delivery): generation,
selection, handler entry with syscall restart, rt_sigreturn, and the task/group state."""

from __future__ import annotations

import errno

from signal_memory import FakeMemory

from chaosreplay.kernel.signals import delivery, fpstate, frame, restart
from chaosreplay.kernel.signals.actions import (
    SA_RESETHAND,
    SA_RESTART,
    SA_RESTORER,
    SA_SIGINFO,
    SIG_IGN,
    Default,
    SigAction,
)
from chaosreplay.kernel.signals.altstack import DISABLED
from chaosreplay.kernel.signals.delivery import GroupSignals, TaskSignals
from chaosreplay.kernel.signals.queue import Enqueued
from chaosreplay.kernel.signals.registers import Registers
from chaosreplay.kernel.signals.siginfo import SI_KERNEL, kill_info, tkill_info
from chaosreplay.kernel.signals.sigset import (
    SIGCHLD,
    SIGCONT,
    SIGINT,
    SIGSEGV,
    SIGSTOP,
    SIGTERM,
    SIGTSTP,
    SIGUSR1,
    SIGUSR2,
    sigmask,
)
from chaosreplay.recording.schema import validate

U64 = (1 << 64) - 1
STACK_TOP = 0x7FFF_0000
HANDLER = SigAction(0x401000, SA_SIGINFO | SA_RESTORER, 0x402000)


def memory() -> FakeMemory:
    mem = FakeMemory()
    mem.add(STACK_TOP - 0x10000, 0x10000)
    return mem


def test_ignored_signals_are_discarded_when_sent_unless_blocked() -> None:
    group, task = GroupSignals(), TaskSignals()
    assert delivery.generate(kill_info(SIGCHLD, 1, 0), group, [task]) is None
    group.actions.sigaction(SIGUSR1, SigAction(SIG_IGN))
    assert delivery.generate(kill_info(SIGUSR1, 1, 0), group, [task]) is None
    task.blocked = sigmask(SIGUSR1)
    assert delivery.generate(kill_info(SIGUSR1, 1, 0), group, [task]) is Enqueued.QUEUED
    assert delivery.generate(tkill_info(SIGTERM, 1, 0), group, [task], task) is \
        Enqueued.QUEUED
    assert (group.pending.pending, task.pending.pending) == (sigmask(SIGUSR1), sigmask(SIGTERM))


def test_sigcont_and_stop_signals_cancel_each_other_in_every_queue() -> None:
    group, task = GroupSignals(), TaskSignals(blocked=sigmask(SIGTSTP) | sigmask(SIGCONT))
    delivery.generate(kill_info(SIGTSTP, 1, 0), group, [task])
    delivery.generate(tkill_info(SIGTSTP, 1, 0), group, [task], task)
    delivery.generate(kill_info(SIGCONT, 1, 0), group, [task])
    assert (group.pending.pending, task.pending.pending) == (sigmask(SIGCONT), 0)
    delivery.generate(kill_info(SIGSTOP, 1, 0), group, [task])
    assert group.pending.pending == sigmask(SIGSTOP)


def test_take_skips_what_does_nothing_and_reports_defaults() -> None:
    """SIG_IGN'd (pending while blocked, then unblocked) and default-ignored signals are
    dropped; a handler is taken with SA_RESETHAND applied; SIGTERM's default is reported."""
    group, task = GroupSignals(), TaskSignals()
    task.pending.enqueue(kill_info(SIGINT, 1, 0))
    group.actions.sigaction(SIGINT, SigAction(SIG_IGN))
    task.pending.enqueue(kill_info(SIGCHLD, 1, 0))
    task.pending.enqueue(kill_info(SIGCONT, 1, 0))
    group.actions.sigaction(SIGUSR2, SigAction(0x401000, SA_RESETHAND | SA_RESTORER, 0x402000))
    group.pending.enqueue(kill_info(SIGUSR2, 1, 0))
    group.pending.enqueue(kill_info(SIGTERM, 1, 0))
    first = delivery.take(task, group)
    assert first is not None and first.default is None and first.info.signo == SIGUSR2
    assert first.action.handler == 0x401000 and group.actions.get(SIGUSR2).handler == 0
    second = delivery.take(task, group)
    assert second is not None and (second.info.signo, second.default) == (SIGTERM,
                                                                           Default.TERMINATE)
    assert delivery.take(task, group) is None
    assert not delivery.has_deliverable(task, group)


def test_a_handler_interrupting_a_restartable_call_saves_the_restart() -> None:
    """ERESTARTSYS with SA_RESTART: the frame holds rax = the syscall number and rip back
    over `syscall`, so after rt_sigreturn the call is made again; without SA_RESTART the
    frame holds -EINTR."""
    for flags, rax, rip in ((SA_RESTART, 7, 0x400FFE), (0, (-errno.EINTR) & U64, 0x401000)):
        group, task = GroupSignals(), TaskSignals()
        group.actions.sigaction(SIGUSR1, SigAction(0x401000, SA_RESTORER | flags, 0x402000))
        delivery.generate(kill_info(SIGUSR1, 1, 0), group, [task])
        taken = delivery.take(task, group)
        assert taken is not None
        mem = memory()
        regs = Registers(rax=(-restart.ERESTARTSYS) & U64, rsp=STACK_TOP - 64, rip=0x401000)
        entered = delivery.run_handler(mem, regs, fpstate.INIT_IMAGE, 7, taken, task, group)
        assert entered is not None and task.blocked == sigmask(SIGUSR1)
        back = delivery.rt_sigreturn(mem, Registers(rsp=entered.frame + 8), entered.fpu,
                                     task, group)
        assert back.fault is None and (back.regs.rax, back.regs.rip) == (rax, rip)
        assert task.blocked == 0


def test_a_sigsuspend_mask_is_saved_in_the_frame_and_restored_after() -> None:
    """While sigsuspend's temporary mask is in force the handler's frame saves the old one;
    with nothing delivered, resume_without_handler restores it."""
    group = GroupSignals()
    group.actions.sigaction(SIGUSR1, HANDLER)
    task = TaskSignals(blocked=sigmask(SIGUSR2), saved_mask=sigmask(SIGUSR1) | sigmask(SIGTERM))
    task.pending.enqueue(kill_info(SIGUSR1, 1, 0))
    taken = delivery.take(task, group)
    assert taken is not None
    mem = memory()
    entered = delivery.run_handler(mem, Registers(rsp=STACK_TOP - 64), fpstate.INIT_IMAGE, -1,
                                   taken, task, group)
    assert entered is not None and task.saved_mask is None
    assert task.blocked == sigmask(SIGUSR2) | sigmask(SIGUSR1)
    delivery.rt_sigreturn(mem, Registers(rsp=entered.frame + 8), entered.fpu, task, group)
    assert task.blocked == sigmask(SIGUSR1) | sigmask(SIGTERM)
    idle = TaskSignals(blocked=0, saved_mask=sigmask(SIGTERM))
    delivery.resume_without_handler(Registers(), -1, idle)
    assert (idle.blocked, idle.saved_mask) == (sigmask(SIGTERM), None)


def test_a_frame_that_cannot_be_written_forces_sigsegv() -> None:
    """Another signal: SIGSEGV queued for its handler; SIGSEGV itself: fatal, its handler
    gone for good."""
    for signo in (SIGUSR1, SIGSEGV):
        group, task = GroupSignals(), TaskSignals()
        group.actions.sigaction(signo, HANDLER)
        group.actions.sigaction(SIGSEGV, HANDLER)
        task.pending.enqueue(kill_info(signo, 1, 0))
        taken = delivery.take(task, group)
        assert taken is not None
        result = delivery.run_handler(FakeMemory(), Registers(rsp=STACK_TOP - 64),
                                      fpstate.INIT_IMAGE, -1, taken, task, group)
        assert result is None
        assert task.pending.pending == sigmask(SIGSEGV) and not task.blocked & sigmask(SIGSEGV)
        again = delivery.take(task, group)
        assert again is not None and (again.info.signo, again.info.code) == (SIGSEGV, SI_KERNEL)
        fatal = signo == SIGSEGV
        assert (again.default is Default.CORE) == fatal
        assert (group.actions.sigaction(SIGSEGV, HANDLER) == -errno.EINVAL) == fatal


def test_a_refused_sigreturn_forces_sigsegv_on_the_task() -> None:
    group, task = GroupSignals(), TaskSignals()
    group.actions.sigaction(SIGSEGV, HANDLER)
    back = delivery.rt_sigreturn(memory(), Registers(rsp=0x1000), fpstate.INIT_IMAGE, task,
                                 group)
    assert back.fault is not None and task.pending.pending == sigmask(SIGSEGV)
    taken = delivery.take(task, group)
    assert taken is not None and taken.default is None and taken.info.signo == SIGSEGV


def test_a_handler_address_outside_user_space_forces_its_fault() -> None:
    group, task = GroupSignals(), TaskSignals()
    group.actions.sigaction(SIGUSR1, SigAction(0xFFFF_8000_0000_1000, SA_RESTORER, 0x402000))
    task.pending.enqueue(kill_info(SIGUSR1, 1, 0))
    taken = delivery.take(task, group)
    assert taken is not None
    entered = delivery.run_handler(memory(), Registers(rsp=STACK_TOP - 64), fpstate.INIT_IMAGE,
                                   -1, taken, task, group)
    assert entered is not None and entered.fault is not None
    assert task.pending.pending == sigmask(SIGSEGV) and task.trap.cr2 == 0xFFFF_8000_0000_1000


def test_task_and_group_states_round_trip_and_pass_their_checks() -> None:
    group, task = GroupSignals(), TaskSignals(blocked=5, saved_mask=3)
    group.actions.sigaction(SIGUSR1, HANDLER)
    group.pending.enqueue(kill_info(40, 1, 0))
    task.pending.enqueue(tkill_info(SIGTERM, 1, 0))
    task.altstack = DISABLED
    validate(task.to_state(), delivery.TASK_STATE, "task")
    validate(group.to_state(), delivery.GROUP_STATE, "group")
    assert TaskSignals.from_state(task.to_state()) == task
    twin = GroupSignals.from_state(group.to_state())
    assert twin.pending == group.pending and twin.actions.get(SIGUSR1) == HANDLER
    thread = task.for_thread()
    assert (thread.blocked, len(thread.pending), thread.altstack) == (5, 0, DISABLED)
    assert task.for_fork().altstack == task.altstack
    assert frame.RT_SIGFRAME_SIZE == 440
