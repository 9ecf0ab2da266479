"""System calls interrupted by a signal: return EINTR or run again, as Linux decides on the
way back to user space (arch/x86/kernel/signal.c handle_signal and arch_do_signal_or_restart).

A blocking call that a signal interrupts returns one of the kernel-internal codes below
instead of finishing; what the program sees then depends on whether a handler runs and
on its SA_RESTART. "Run again" means rax back to the call's number and rip back over the
2-byte `syscall`, so the call is made afresh after the handler returns.
"""

from __future__ import annotations

import errno
from dataclasses import replace

from chaosreplay.kernel.signals.actions import SA_RESTART
from chaosreplay.kernel.signals.registers import Registers

ERESTARTSYS = 512  # restart if the handler has SA_RESTART (or no handler runs)
ERESTARTNOINTR = 513  # always restart
ERESTARTNOHAND = 514  # restart only if no handler runs
ERESTART_RESTARTBLOCK = 516  # like NOHAND, but restart through restart_syscall
RESTART_CODES = (ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND, ERESTART_RESTARTBLOCK)
NR_RESTART_SYSCALL = 219
SYSCALL_INSN_LEN = 2
_U64 = (1 << 64) - 1


def _error(rax: int) -> int:
    """The positive errno a syscall return value carries, or 0."""
    value = rax - (1 << 64) if rax & (1 << 63) else rax
    return -value if -4095 <= value < 0 else 0


def before_handler(regs: Registers, orig_rax: int, sa_flags: int) -> Registers:
    """The registers to save in the frame of a handler that interrupts a syscall which
    returned `regs.rax` (orig_rax: its number; -1 when no syscall was interrupted)."""
    err = _error(regs.rax)
    if orig_rax < 0 or err not in RESTART_CODES:
        return regs
    if err in (ERESTART_RESTARTBLOCK, ERESTARTNOHAND) or (
            err == ERESTARTSYS and not sa_flags & SA_RESTART):
        return replace(regs, rax=-errno.EINTR & _U64)
    return replace(regs, rax=orig_rax, rip=(regs.rip - SYSCALL_INSN_LEN) & _U64)


def without_handler(regs: Registers, orig_rax: int) -> Registers:
    """The registers to resume with when no handler runs (nothing to deliver, or the
    signal was ignored): every restart code restarts the call."""
    err = _error(regs.rax)
    if orig_rax < 0 or err not in RESTART_CODES:
        return regs
    number = NR_RESTART_SYSCALL if err == ERESTART_RESTARTBLOCK else orig_rax
    return replace(regs, rax=number, rip=(regs.rip - SYSCALL_INSN_LEN) & _U64)
