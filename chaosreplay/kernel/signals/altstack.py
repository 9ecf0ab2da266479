"""The alternate signal stack of a task: sigaltstack(2)'s rules and the stack_t layout.

stack_t on x86-64: ss_sp u64 @0, ss_flags int @8 (4 bytes padding), ss_size u64 @16.
Linux keeps a task's sas_ss_sp, sas_ss_size and the flags exactly as set (0 for a process
that never set one, SS_DISABLE once disabled or reset, else 0 or SS_ONSTACK, maybe with
SS_AUTODISARM); "on the stack" is computed from the stack pointer each time
(include/linux/sched/signal.h, kernel/signal.c do_sigaltstack). Frames save the flags as
kept, so a program's first frames show 0 and later ones what it set.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass

from chaosreplay.recording.schema import Int, Row

SS_ONSTACK, SS_DISABLE = 1, 2
SS_AUTODISARM = 1 << 31  # the stack is disabled while a handler runs on it
SS_FLAG_BITS = SS_AUTODISARM
MINSIGSTKSZ = 2048
STACK_T = struct.Struct("<QI4xQ")  # ss_sp, ss_flags, ss_size
STACK_T_SIZE = STACK_T.size


@dataclass(frozen=True)
class AltStack:
    """A task's sigaltstack: base, size and flags as last set."""

    sp: int = 0
    size: int = 0
    flags: int = 0  # a first process's: it never had one

    def contains(self, sp: int) -> bool:
        """Whether `sp` lies on the stack (__on_sig_stack: the top itself counts, the
        base does not, the stack growing down)."""
        return self.sp < sp and sp - self.sp <= self.size

    def is_on(self, sp: int) -> bool:
        """on_sig_stack: never while SS_AUTODISARM is set (the stack is dropped as a
        handler enters it, so a corrupt sp near it cannot trap the program)."""
        return not self.flags & SS_AUTODISARM and self.contains(sp)

    def status(self, sp: int) -> int:
        """sas_ss_flags(sp): SS_DISABLE with no stack, SS_ONSTACK on it, else 0."""
        if not self.size:
            return SS_DISABLE
        return SS_ONSTACK if self.is_on(sp) else 0

    def report(self, sp: int) -> bytes:
        """The stack_t sigaltstack(NULL, &old) writes."""
        return STACK_T.pack(self.sp, self.status(sp) | (self.flags & SS_FLAG_BITS), self.size)

    def saved(self) -> bytes:
        """The uc_stack a signal frame holds (__save_altstack: the values as set)."""
        return STACK_T.pack(self.sp, self.flags, self.size)

    def after_delivery(self) -> AltStack:
        """The stack once a handler is entered: gone if SS_AUTODISARM (sas_ss_reset)."""
        return DISABLED if self.flags & SS_AUTODISARM else self

    def for_exec(self) -> AltStack:
        """The stack after execve: base and size cleared, the flags kept (begin_new_exec)."""
        return AltStack(0, 0, self.flags)

    def to_state(self) -> list[int]:
        """Plain data for a checkpoint: [sp, size, flags]."""
        return [self.sp, self.size, self.flags]

    @classmethod
    def from_state(cls, state: list[int]) -> AltStack:
        """The stack to_state() described."""
        return cls(*state)


DISABLED = AltStack(0, 0, SS_DISABLE)  # sas_ss_reset: also a new thread's (CLONE_VM, no VFORK)
STATE = Row(Int(0, 2**64 - 1), Int(0, 2**64 - 1), Int(0, 2**32 - 1))  # AltStack.to_state()


def sigaltstack(current: AltStack, new: bytes, sp: int) -> AltStack | int:
    """The stack after sigaltstack(new, ...) from a task at `sp`, or -errno: EPERM while
    on the current stack, EINVAL for an unknown mode, ENOMEM below MINSIGSTKSZ.
    SS_DISABLE clears base and size; the flags are kept as given."""
    base, flags, size = STACK_T.unpack_from(new)
    if current.is_on(sp):
        return -errno.EPERM
    mode = flags & ~SS_FLAG_BITS
    if mode not in (0, SS_ONSTACK, SS_DISABLE):
        return -errno.EINVAL
    if (base, size, flags) == (current.sp, current.size, current.flags):
        return current
    if mode == SS_DISABLE:
        return AltStack(0, 0, flags)
    if size < MINSIGSTKSZ:
        return -errno.ENOMEM
    return AltStack(base, size, flags)
