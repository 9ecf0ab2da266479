"""The user registers of a task as signal delivery reads and writes them."""

from __future__ import annotations

from dataclasses import astuple, dataclass, fields

U64_MAX = (1 << 64) - 1
RFLAGS_CF, RFLAGS_FIXED, RFLAGS_PF, RFLAGS_AF = 0x1, 0x2, 0x4, 0x10
RFLAGS_ZF, RFLAGS_SF, RFLAGS_TF, RFLAGS_IF = 0x40, 0x80, 0x100, 0x200
RFLAGS_DF, RFLAGS_OF, RFLAGS_IOPL, RFLAGS_NT = 0x400, 0x800, 0x3000, 0x4000
RFLAGS_RF, RFLAGS_VM, RFLAGS_AC, RFLAGS_ID = 0x10000, 0x20000, 0x40000, 0x200000
# What CPL3 code sets itself (the C core's RFLAGS_USER_MASK: CF PF AF ZF SF TF DF OF NT AC
# ID); IF and bit 1 are always set in user mode, everything else (IOPL, VM, RF, VIF, VIP)
# is the kernel's.
RFLAGS_USER_MASK = 0x244DD5
RFLAGS_USER_ALWAYS = RFLAGS_FIXED | RFLAGS_IF


@dataclass(frozen=True)
class Registers:
    """General registers, rip and rflags, in `struct kvm_regs` order."""

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = RFLAGS_USER_ALWAYS

    def as_tuple(self) -> tuple[int, ...]:
        """The 18 values in kvm_regs order."""
        return astuple(self)


REGISTER_NAMES = tuple(f.name for f in fields(Registers))


def user_rflags(rflags: int) -> int:
    """`rflags` as user mode may hold it: only the user bits, with IF and bit 1 set."""
    return (rflags & RFLAGS_USER_MASK) | RFLAGS_USER_ALWAYS
