"""CPU exceptions as the signals Linux sends for them (arch/x86/kernel/traps.c, mm/fault.c).

Each exception a guest instruction raises at CPL3 becomes one forced signal with a
siginfo, and updates the thread's trap record (`thread.trap_nr`, `error_code`, `cr2`),
which every later signal frame of that thread shows in sigcontext trapno/err/cr2 until
the next fault replaces it.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from chaosreplay.kernel.signals import fpstate
from chaosreplay.kernel.signals.registers import RFLAGS_RF
from chaosreplay.kernel.signals.siginfo import (
    BUS_ADRALN,
    FPE_FLTDIV,
    FPE_FLTINV,
    FPE_FLTOVF,
    FPE_FLTRES,
    FPE_FLTUND,
    FPE_INTDIV,
    ILL_ILLOPN,
    SEGV_ACCERR,
    SEGV_MAPERR,
    TRAP_BRKPT,
    TRAP_HWBKPT,
    TRAP_TRACE,
    SigInfo,
    fault_info,
    kernel_info,
)
from chaosreplay.kernel.signals.sigset import SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGTRAP
from chaosreplay.recording.schema import Int, Row

DE, DB, BP, OF, BR, UD, NM, DF, TS, NP, SS, GP, PF, MF, AC, MC, XM = (
    0, 1, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 16, 17, 18, 19)
PF_PROT, PF_WRITE, PF_USER, PF_INSTR = 0x1, 0x2, 0x4, 0x10
DR6_BS = 1 << 14  # single step
DR6_TRAP_BITS = 0xF  # B0..B3: a hardware breakpoint hit
USER_VA_END = 1 << 47
TASK_SIZE_MAX = USER_VA_END - 4096  # the last user page is a guard page (Linux)


@dataclass(frozen=True)
class TrapInfo:
    """The thread's last fault as sigcontext reports it: trapno, err, cr2."""

    trapno: int = 0
    error_code: int = 0
    cr2: int = 0

    def to_state(self) -> list[int]:
        """Plain data for a checkpoint: [trapno, error_code, cr2]."""
        return [self.trapno, self.error_code, self.cr2]

    @classmethod
    def from_state(cls, state: list[int]) -> TrapInfo:
        """The record to_state() described."""
        return cls(*state)


STATE = Row(Int(0, 255), Int(0, 2**64 - 1), Int(0, 2**64 - 1))  # TrapInfo.to_state()


# Exceptions that are faults (the saved rip is the faulting instruction's): the CPU sets RF
# in the rflags it saves for them, and Linux's sigcontext shows it. #BP and a single-step
# #DB are traps and do not.
FAULT_VECTORS = frozenset((DE, BR, UD, NM, TS, NP, SS, GP, PF, MF, AC, XM))


def exception_rflags(vector: int, rflags: int) -> int:
    """The rflags Linux saves in the frame of a signal for exception `vector` raised with
    `rflags`: with RF for a fault (the CPU's exception frame has it)."""
    return rflags | RFLAGS_RF if vector in FAULT_VECTORS else rflags


def page_fault(address: int, error_code: int, mapped: bool) -> tuple[SigInfo, TrapInfo]:
    """A #PF Linux cannot resolve: SIGSEGV with SEGV_ACCERR where a mapping forbids the
    access, else SEGV_MAPERR, si_addr the address. Kernel addresses always look like
    protection faults in the error code (sanitize_error_code), which has PF_USER."""
    if address >= TASK_SIZE_MAX:
        error_code |= PF_PROT
    code = SEGV_ACCERR if mapped and address < TASK_SIZE_MAX else SEGV_MAPERR
    return fault_info(SIGSEGV, code, address), TrapInfo(PF, error_code | PF_USER, address)


def fpu_exception_code(vector: int, fpu: bytes) -> int:
    """The si_code of an x87 (#MF) or SIMD (#XM) exception from the state at the fault
    (fpu__exception_code): the first unmasked exception flag; 0 for a spurious one."""
    if vector == MF:
        cwd, swd = struct.unpack_from("<HH", fpu, fpstate.FCW_OFFSET)
        err = swd & ~cwd
    else:
        mxcsr = struct.unpack_from("<I", fpu, fpstate.MXCSR_OFFSET)[0]
        err = ~(mxcsr >> 7) & mxcsr
    for bits, code in ((0x001, FPE_FLTINV), (0x004, FPE_FLTDIV), (0x008, FPE_FLTOVF),
                       (0x012, FPE_FLTUND), (0x020, FPE_FLTRES)):
        if err & bits:
            return code
    return 0


def exception_signal(vector: int, error_code: int, rip: int, cr2: int, fpu: bytes,
                     last: TrapInfo, mapped: bool = False,
                     dr6: int = 0) -> tuple[SigInfo | None, TrapInfo]:
    """The signal a user-mode exception sends and the thread's new trap record; no signal
    (None) for a spurious x87/SIMD exception. `rip` is the faulting instruction's (the
    next one's for #BP and traps), `cr2` the #PF address, `mapped` whether a mapping
    covers it, `dr6` the debug status of a #DB, `last` the record so far (cr2 survives
    every exception but #PF)."""
    if vector == PF:
        return page_fault(cr2, error_code, mapped)
    trap = TrapInfo(vector, error_code, last.cr2)
    if vector == DE:
        return fault_info(SIGFPE, FPE_INTDIV, rip), trap
    if vector == UD:
        return fault_info(SIGILL, ILL_ILLOPN, rip), trap
    if vector in (MF, XM):
        code = fpu_exception_code(vector, fpu)
        return (fault_info(SIGFPE, code, rip) if code else None), trap
    if vector == DB:
        code = (TRAP_TRACE if dr6 & DR6_BS else TRAP_HWBKPT if dr6 & DR6_TRAP_BITS
                else TRAP_BRKPT)
        return fault_info(SIGTRAP, code, rip), TrapInfo(DB, 0, last.cr2)
    if vector == BP:
        return kernel_info(SIGTRAP), TrapInfo(BP, 0, last.cr2)
    if vector == AC:
        return fault_info(SIGBUS, BUS_ADRALN, 0), trap
    if vector in (NP, SS):
        return kernel_info(SIGBUS), trap
    return kernel_info(SIGSEGV), trap  # #GP, #TS, #OF, #BR and anything else
