"""The few plain instructions a trapped instruction usually is, performed by the VMM.

A pattern hidden in another instruction (kernel/mm/code_pages.py) mostly sits in an
immediate or a displacement: `mov reg, imm` or a `call`/`jmp rel32` (gcc's coverage
calls, say); a `ret` often follows a hidden instruction inside the same immediate. When
execution reaches such an instruction in its int3-filled trap, performing it here costs
the #BP exit alone; any other instruction runs natively from its original bytes under
TF, which costs a second exit (the #DB). What is performed must be exactly what the CPU
would do, so anything unusual (8-bit registers, an operand-size prefix on a branch, a
target outside the user half, a push or pop the guest could not make) is left to the CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chaosreplay.vm import nonvirt

_MASK64 = (1 << 64) - 1
_USER_END = 1 << 47  # the first non-canonical address: a branch there faults natively
_BRANCH_OPCODES = {"call": (0xE8,), "jmp": (0xE9, 0xEB)}

Store = Callable[[int, bytes], bool]
"""Writes guest memory as the guest could (False where it may not: the CPU must fault)."""
Load = Callable[[int, int], bytes | None]
"""Reads guest memory as the guest could (None where it may not)."""


def perform(rip: int, code: bytes, mnemonic: str, operands: str, size: int, regs: Any,
            load: Load, store: Store) -> bool:
    """Perform the instruction at rip (decoded as mnemonic, operands, size from code) on
    regs when it is one of the plain kinds; False, changing nothing, when it is not."""
    if mnemonic in ("mov", "movabs"):
        return _move_immediate(rip, operands, size, regs)
    if mnemonic in _BRANCH_OPCODES and code[:1] and code[0] in _BRANCH_OPCODES[mnemonic]:
        return _branch(rip, mnemonic, operands, size, regs, store)
    if mnemonic == "ret" and code[:1] == b"\xc3":
        return _return(regs, load)
    return False


def _move_immediate(rip: int, operands: str, size: int, regs: Any) -> bool:
    """mov reg, imm (capstone has already sign-extended an imm32 moved to a 64-bit one)."""
    destination, _, source = operands.partition(", ")
    try:
        register, width = nonvirt.register_operand(destination)
        value = int(source, 0)
    except ValueError:  # a memory operand, an 8-bit or segment register: the CPU does it
        return False
    nonvirt.write_register(regs, register, value & ((1 << width) - 1), width)
    regs.rip = (rip + size) & _MASK64
    return True


def _branch(rip: int, mnemonic: str, operands: str, size: int, regs: Any,
            store: Store) -> bool:
    """jmp rel8/rel32, call rel32: the target is in the operands, as an absolute address."""
    try:
        target = int(operands, 0) & _MASK64
    except ValueError:
        return False
    if target >= _USER_END:
        return False  # non-canonical or the kernel half: the CPU raises the #GP or #PF
    if mnemonic == "call":
        sp = (regs.rsp - 8) & _MASK64
        if not store(sp, ((rip + size) & _MASK64).to_bytes(8, "little")):
            return False  # the CPU's own push takes the fault
        regs.rsp = sp
    regs.rip = target
    return True


def _return(regs: Any, load: Load) -> bool:
    """ret (c3): pop rip."""
    raw = load(regs.rsp, 8)
    if raw is None:
        return False  # the CPU's own pop takes the fault
    target = int.from_bytes(raw, "little")
    if target >= _USER_END:
        return False
    regs.rsp = (regs.rsp + 8) & _MASK64
    regs.rip = target
    return True
