"""siginfo_t (chaosreplay.kernel.signals.siginfo), sigaltstack (altstack), interrupted
system calls (restart) and CPU exceptions as signals (faults)."""

from __future__ import annotations

import errno
import struct

import pytest

from chaosreplay.kernel.signals import altstack, faults, fpstate, restart, siginfo
from chaosreplay.kernel.signals.actions import SA_RESTART
from chaosreplay.kernel.signals.altstack import (
    MINSIGSTKSZ,
    SS_AUTODISARM,
    SS_DISABLE,
    SS_ONSTACK,
    STACK_T,
    AltStack,
)
from chaosreplay.kernel.signals.registers import Registers
from chaosreplay.kernel.signals.siginfo import SigInfo
from chaosreplay.recording.schema import validate

U64 = (1 << 64) - 1


def test_pack_is_128_bytes_with_a_zero_tail_and_unpack_inverts_it() -> None:
    info = siginfo.child_exit_info(42, 7, 0x8B, 2 * 10**9, 10**7)  # SIGSEGV with core
    data = info.pack()
    assert len(data) == 128 and not any(data[48:])
    assert siginfo.unpack(data) == info
    assert (info.code, info.status, info.pid, info.uid) == (siginfo.CLD_DUMPED, 11, 42, 7)
    assert struct.unpack_from("<qq", data, 32) == (200, 1)  # clock ticks at USER_HZ
    assert SigInfo.from_state(info.to_state()) == info
    validate(info.to_state(), siginfo.STATE, "siginfo")
    with pytest.raises(ValueError):
        SigInfo(10, fields=bytes(31))


def test_child_exit_codes() -> None:
    assert (siginfo.child_exit_info(1, 0, 7 << 8, 0, 0).code,
            siginfo.child_exit_info(1, 0, 7 << 8, 0, 0).status) == (siginfo.CLD_EXITED, 7)
    killed = siginfo.child_exit_info(1, 0, 15, 0, 0)
    assert (killed.code, killed.status) == (siginfo.CLD_KILLED, 15)


def test_rt_sigqueueinfo_takes_48_bytes_and_refuses_hidden_data() -> None:
    """The signal number comes from the call; past byte 48 only zeros, unless the code's
    layout is known (then the rest is simply not kept)."""
    raw = bytearray(128)
    struct.pack_into("<iii4xiiQ", raw, 0, 99, 5, siginfo.SI_QUEUE, 1234, 0, 0xABCDEF)
    info = siginfo.from_user(40, bytes(raw))
    assert isinstance(info, SigInfo)
    assert (info.signo, info.errno, info.code, info.pid, info.value) == (
        40, 5, siginfo.SI_QUEUE, 1234, 0xABCDEF)
    raw[100] = 1
    assert isinstance(siginfo.from_user(40, bytes(raw)), SigInfo)  # SI_QUEUE: known layout
    struct.pack_into("<i", raw, 8, -42)  # an unknown negative code
    assert siginfo.from_user(40, bytes(raw)) == -errno.E2BIG
    raw[100] = 0
    assert isinstance(siginfo.from_user(40, bytes(raw)), SigInfo)


def test_only_a_process_itself_may_pretend_to_be_the_kernel_or_tkill() -> None:
    queued = siginfo.queue_info(40, 1, 0, 0)
    assert siginfo.queueinfo_allowed(queued, 1, 2)
    for forged in (siginfo.kill_info(40, 1, 0), siginfo.kernel_info(40),
                   siginfo.tkill_info(40, 1, 0)):
        assert not siginfo.queueinfo_allowed(forged, 1, 2)
        assert siginfo.queueinfo_allowed(forged, 2, 2)


def test_timer_overrun_updates_in_place_and_saturates() -> None:
    timer = siginfo.timer_info(34, 3, 0, 99)
    later = timer.with_overrun(5)
    assert (later.timer_id, later.overrun, later.value) == (3, 5, 99)
    assert timer.with_overrun(2**40).overrun == 2**31 - 1


def stack_t(sp: int, flags: int, size: int) -> bytes:
    return STACK_T.pack(sp, flags, size)


def test_sigaltstack_rules() -> None:
    """EPERM while on the stack, EINVAL for a bad mode, ENOMEM below MINSIGSTKSZ; disabling
    clears base and size; reports say SS_ONSTACK/SS_DISABLE by the stack pointer."""
    base = 0x6000_0000
    current = altstack.sigaltstack(AltStack(), stack_t(base, 0, 8192), 0x7FFF0000)
    assert current == AltStack(base, 8192, 0)
    assert isinstance(current, AltStack)
    assert altstack.sigaltstack(current, stack_t(0, SS_DISABLE, 0), base + 100) == -errno.EPERM
    assert altstack.sigaltstack(current, stack_t(base, 4, 8192), 0x1000) == -errno.EINVAL
    assert altstack.sigaltstack(current, stack_t(base, 0, MINSIGSTKSZ - 1), 0x1000) == \
        -errno.ENOMEM
    assert altstack.sigaltstack(current, stack_t(5, SS_DISABLE, 77), 0x1000) == AltStack(
        0, 0, SS_DISABLE)
    assert struct.unpack("<QI4xQ", current.report(base + 8192)) == (base, SS_ONSTACK, 8192)
    assert struct.unpack("<QI4xQ", current.report(base)) == (base, 0, 8192)  # base: not on
    armed = AltStack(base, 8192, SS_AUTODISARM | SS_ONSTACK)
    assert not armed.is_on(base + 100)  # never "on" while autodisarm
    assert struct.unpack("<QI4xQ", armed.report(base + 100))[1] == SS_AUTODISARM
    assert AltStack().status(0x1000) == SS_DISABLE
    assert armed.after_delivery() == altstack.DISABLED and current.after_delivery() == current
    assert armed.for_exec() == AltStack(0, 0, armed.flags)
    validate(armed.to_state(), altstack.STATE, "altstack")
    assert AltStack.from_state(armed.to_state()) == armed


ERESTARTSYS = (-restart.ERESTARTSYS) & U64


@pytest.mark.parametrize(("code", "flags", "with_handler", "expected"), [
    (restart.ERESTARTSYS, 0, True, "eintr"),
    (restart.ERESTARTSYS, SA_RESTART, True, "again"),
    (restart.ERESTARTNOINTR, 0, True, "again"),
    (restart.ERESTARTNOHAND, SA_RESTART, True, "eintr"),
    (restart.ERESTART_RESTARTBLOCK, SA_RESTART, True, "eintr"),
    (restart.ERESTARTSYS, 0, False, "again"),
    (restart.ERESTARTNOHAND, 0, False, "again"),
    (restart.ERESTART_RESTARTBLOCK, 0, False, "restart_syscall"),
])
def test_interrupted_calls_return_eintr_or_run_again(code: int, flags: int, with_handler: bool,
                                                     expected: str) -> None:
    regs = Registers(rax=(-code) & U64, rip=0x401002)
    out = (restart.before_handler(regs, 7, flags) if with_handler
           else restart.without_handler(regs, 7))
    if expected == "eintr":
        assert (out.rax, out.rip) == ((-errno.EINTR) & U64, 0x401002)
    elif expected == "again":
        assert (out.rax, out.rip) == (7, 0x401000)
    else:
        assert (out.rax, out.rip) == (restart.NR_RESTART_SYSCALL, 0x401000)


def test_results_that_are_not_restart_codes_pass_through() -> None:
    regs = Registers(rax=(-errno.EAGAIN) & U64, rip=0x401002)
    assert restart.before_handler(regs, 0, 0) == regs
    assert restart.without_handler(Registers(rax=ERESTARTSYS), -1) == Registers(rax=ERESTARTSYS)


def fpu_with(fcw: int = 0x37F, fsw: int = 0, mxcsr: int = 0x1F80) -> bytes:
    image = bytearray(fpstate.INIT_IMAGE)
    struct.pack_into("<HH", image, 0, fcw, fsw)
    struct.pack_into("<I", image, fpstate.MXCSR_OFFSET, mxcsr)
    return bytes(image)


def test_floating_point_exceptions_report_the_first_unmasked_flag() -> None:
    """#MF from x87 status & ~control, #XM from MXCSR flags not masked; none is spurious."""
    unmask_all = 0x37F & ~0x3F
    assert faults.fpu_exception_code(faults.MF, fpu_with(unmask_all, 0x04)) == \
        siginfo.FPE_FLTDIV
    assert faults.fpu_exception_code(faults.MF, fpu_with(0x37F, 0x04)) == 0  # masked
    assert faults.fpu_exception_code(faults.XM, fpu_with(mxcsr=0x1F80 & ~0x80 | 0x01)) == \
        siginfo.FPE_FLTINV
    assert faults.fpu_exception_code(faults.XM, fpu_with(mxcsr=0x1F80 & ~0x1000 | 0x20)) == \
        siginfo.FPE_FLTRES
    info, trap = faults.exception_signal(faults.MF, 0, 0x401000, 0, fpu_with(0x37F, 0x04),
                                         faults.TrapInfo())
    assert info is None and trap.trapno == faults.MF


def test_other_exceptions_and_the_trap_record() -> None:
    last = faults.TrapInfo(faults.PF, 6, 0x1234)
    cases = {faults.AC: (7, siginfo.BUS_ADRALN, 0), faults.NP: (7, siginfo.SI_KERNEL, 0),
             faults.SS: (7, siginfo.SI_KERNEL, 0), faults.TS: (11, siginfo.SI_KERNEL, 0)}
    for vector, (signo, code, addr) in cases.items():
        info, trap = faults.exception_signal(vector, 0x18, 0x401000, 0, fpstate.INIT_IMAGE, last)
        assert info is not None
        assert (info.signo, info.code, info.addr) == (signo, code, addr), vector
        assert trap == faults.TrapInfo(vector, 0x18, 0x1234)
    step, trap = faults.exception_signal(faults.DB, 0, 0x401005, 0, fpstate.INIT_IMAGE, last,
                                         dr6=faults.DR6_BS)
    assert step is not None and (step.signo, step.code, step.addr) == (
        5, siginfo.TRAP_TRACE, 0x401005)
    assert faults.exception_rflags(faults.DB, 0x246) == 0x246
    validate(trap.to_state(), faults.STATE, "trap")
    assert faults.TrapInfo.from_state(trap.to_state()) == trap
