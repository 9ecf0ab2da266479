"""The plain instructions a trap performs itself (chaosreplay.vm.plain_insn): exactly what
the CPU would do, or nothing at all so that the CPU does it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from chaosreplay.vm import plain_insn
from chaosreplay.vm.nonvirt import decode_instruction

RIP = 0x401000
SP = 0x7FFF_0000_1000


@dataclass
class Regs:
    rax: int = 0xFFFF_FFFF_FFFF_FFFF
    rdi: int = 0
    r8: int = 0
    rsp: int = SP
    rip: int = RIP


@dataclass
class Memory:
    """Guest memory the guest may write only inside `writable` (a range)."""

    writable: range = range(SP - 64, SP + 64)
    cells: dict[int, bytes] = field(default_factory=dict)

    def store(self, address: int, data: bytes) -> bool:
        if address not in self.writable or address + len(data) - 1 not in self.writable:
            return False
        self.cells[address] = data
        return True

    def load(self, address: int, length: int) -> bytes | None:
        return self.cells.get(address)


def _perform(code: bytes, regs: Regs, memory: Memory | None = None) -> bool:
    memory = memory or Memory()
    mnemonic, operands, size, _ = decode_instruction(RIP, code)
    return plain_insn.perform(RIP, code, mnemonic, operands, size, regs, memory.load,
                              memory.store)


@pytest.mark.parametrize(("code", "register", "value"), [
    (b"\xb8\x0f\x31\x90\x90", "rax", 0x9090_310F),  # mov eax: zero-extends
    (b"\x66\xb8\x0f\x31", "rax", 0xFFFF_FFFF_FFFF_310F),  # mov ax: keeps the upper bits
    (b"\x48\xb8\x0f\x31\x90\x90\x90\x90\x90\x90", "rax", 0x9090_9090_9090_310F),  # movabs
    (b"\x48\xc7\xc0\x0f\x31\x00\x80", "rax", 0xFFFF_FFFF_8000_310F),  # imm32 sign-extended
    (b"\x41\xb8\x0f\x31\x00\x00", "r8", 0x310F),
])
def test_mov_immediate_writes_like_the_cpu(code: bytes, register: str, value: int) -> None:
    regs = Regs()
    assert _perform(code, regs)
    assert getattr(regs, register) == value and regs.rip == RIP + len(code)


def test_call_pushes_the_return_address_and_jumps() -> None:
    regs, memory = Regs(), Memory()
    assert _perform(b"\xe8\x0f\x31\x00\x00", regs, memory)
    assert regs.rip == RIP + 5 + 0x310F and regs.rsp == SP - 8
    assert memory.cells == {SP - 8: (RIP + 5).to_bytes(8, "little")}


def test_jmp_and_ret() -> None:
    regs, memory = Regs(), Memory(cells={SP: (0x402000).to_bytes(8, "little")})
    assert _perform(b"\xeb\x0f", regs, memory) and regs.rip == RIP + 2 + 0x0F
    assert _perform(b"\xc3", regs, memory) and (regs.rip, regs.rsp) == (0x402000, SP + 8)


@pytest.mark.parametrize(("code", "regs", "why"), [
    (b"\xb0\x0f", Regs(), "an 8-bit register"),
    (b"\xc7\x00\x0f\x31\x00\x00", Regs(), "a memory destination"),
    (b"\x66\xe9\x0f\x31", Regs(), "an operand-size prefix on a branch"),
    (b"\xe8\x0f\x31\x00\x00", Regs(rsp=0x1000), "a push the guest may not make"),
    (b"\xc3", Regs(rsp=0x1000), "a pop from memory it may not read"),
    (b"\xff\xd0", Regs(), "an indirect call"),
    (b"\x05\x0f\x31\x90\x90", Regs(), "an instruction that sets flags"),
])
def test_anything_else_is_left_to_the_cpu(code: bytes, regs: Regs, why: str) -> None:
    before = Regs(**vars(regs))
    assert not _perform(code, regs), why
    assert regs == before, why


def test_a_branch_out_of_the_user_half_is_left_to_the_cpu() -> None:
    """The CPU faults on the branch itself (rip still at it): so must we, by not doing it."""
    regs = Regs(rip=0x7FFF_FFFF_F000)
    code = b"\xe9\x00\x20\x00\x00"
    mnemonic, operands, size, _ = decode_instruction(regs.rip, code)
    assert not plain_insn.perform(regs.rip, code, mnemonic, operands, size, regs,
                                  Memory().load, Memory().store)
    memory = Memory(cells={SP: (1 << 47).to_bytes(8, "little")})
    assert not _perform(b"\xc3", Regs(), memory)
