"""Vm.clone (vmm_vm_clone): a child VM with a copy of the parent's memory and vCPU state."""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from pathlib import Path

import capstone
import pytest

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import ExitReason, Prot, Vm, VmmError

pytestmark = pytest.mark.kvm

CODE = 0x400000
DATA = 0x500000
STACK_TOP = 0x800000
RW = Prot.READ | Prot.WRITE
GETPID = 39
SLOTS = 1024  # guest/src/fork_memory.c
# add qword [DATA], 1; mov eax, 1000; syscall; jmp to start (as in test_vmm.py)
INCREMENT_LOOP = bytes.fromhex("4883042500005000" "01" "B8E8030000" "0F05" "EBEE")
# movabs rax, 0x0123456789abcdef; movq xmm0, rax; mov eax, 1000; syscall;
# movq rbx, xmm0; mov eax, 1001; syscall; jmp $
XMM_ROUND_TRIP = bytes.fromhex("48B8EFCDAB8967452301" "66480F6EC0" "B8E8030000" "0F05"
                               "66480F7EC3" "B8E9030000" "0F05" "EBFE")


def make_vm(code: bytes, mem_size: int = 32 << 20) -> Vm:
    vm = Vm(mem_size)
    vm.map(CODE, 4096, Prot.READ | Prot.EXEC)
    vm.write(CODE, code)
    vm.map(DATA, 4096, RW)
    vm.map(STACK_TOP - 0x4000, 0x4000, RW)
    vm.start(CODE, STACK_TOP - 64)
    return vm


def counter(vm: Vm) -> int:
    return int.from_bytes(vm.read(DATA, 8), "little")


def test_clone_has_the_parents_digest_and_allocator() -> None:
    parent = make_vm(INCREMENT_LOOP)
    parent.fs_base = 0x7000_1234_0000
    parent.set_gs_base(0x7000_5678_0000)
    for _ in range(3):
        assert parent.run() == ExitReason.SYSCALL
    child = parent.clone()
    assert child.digest() == parent.digest()
    assert child.export_state() == parent.export_state()
    assert child.fs_base == 0x7000_1234_0000
    p, c = parent.stats(), child.stats()
    assert (c.frames_used, c.frames_high) == (p.frames_used, p.frames_high)
    assert c.exits == 0, "counters are the child's own"


def test_parent_and_child_run_on_independently() -> None:
    parent = make_vm(INCREMENT_LOOP)
    assert parent.run() == ExitReason.SYSCALL
    child = parent.clone()
    for _ in range(5):
        assert parent.run() == ExitReason.SYSCALL
    assert (counter(parent), counter(child)) == (6, 1), "the child did not see the writes"
    for _ in range(2):
        assert child.run() == ExitReason.SYSCALL
    assert (counter(parent), counter(child)) == (6, 3)
    # The child's page tables are its own: unmapping in one leaves the other mapped.
    child.unmap(DATA, 4096)
    assert child.run() == ExitReason.EXCEPTION and child.exit.vector == 14
    assert parent.run() == ExitReason.SYSCALL and counter(parent) == 7


def test_hand_assembled_code_decodes_as_intended() -> None:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(XMM_ROUND_TRIP, CODE)]
    assert text == ["movabs rax, 0x123456789abcdef", "movq xmm0, rax", "mov eax, 0x3e8",
                    "syscall", "movq rbx, xmm0", "mov eax, 0x3e9", "syscall", "jmp 0x400022"]


def test_the_child_vcpu_holds_the_parents_sse_registers() -> None:
    """XMM state is in the child's vCPU itself, not only in its exported state."""
    parent = make_vm(XMM_ROUND_TRIP)
    assert parent.run() == ExitReason.SYSCALL and parent.regs.rax == 1000
    child = parent.clone()
    for vm in (child, parent):
        assert vm.run() == ExitReason.SYSCALL and vm.regs.rax == 1001
        assert vm.regs.rbx == 0x0123456789ABCDEF


def test_a_mapping_removed_just_before_the_clone_is_gone_in_both() -> None:
    """The parent's queued page-table fix-ups are its own; the child starts from memory."""
    parent = make_vm(INCREMENT_LOOP)
    assert parent.run() == ExitReason.SYSCALL  # the guest has touched DATA: it is cached
    parent.unmap(DATA, 4096)
    child = parent.clone()
    for vm in (parent, child):
        assert vm.run() == ExitReason.EXCEPTION
        assert (vm.exit.vector, vm.exit.fault_addr) == (14, DATA)


def test_clone_before_start_is_refused() -> None:
    vm = Vm(4 << 20)
    with pytest.raises(VmmError) as info:
        vm.clone()
    assert info.value.errno == errno.ENOEXEC


def test_clone_at_an_exception_resumes_both_at_the_faulting_instruction() -> None:
    parent = make_vm(INCREMENT_LOOP)
    parent.unmap(DATA, 4096)
    assert parent.run() == ExitReason.EXCEPTION
    assert (parent.exit.vector, parent.exit.fault_addr) == (14, DATA)
    child = parent.clone()
    assert child.regs.rip == parent.regs.rip == CODE
    for vm, value in ((parent, 10), (child, 20)):
        vm.map(DATA, 4096, RW)
        vm.write(DATA, value.to_bytes(8, "little"))
        assert vm.run() == ExitReason.SYSCALL, "the faulting add is retried"
    assert (counter(parent), counter(child)) == (11, 21)


def test_snapshots_work_on_both_after_a_clone() -> None:
    parent = make_vm(INCREMENT_LOOP)
    base = parent.snapshot()
    assert parent.run() == ExitReason.SYSCALL
    base.take()
    child = parent.clone()
    child_snap = child.snapshot()
    assert child_snap.take() == child.stats().frames_high, "the child's first take is full"
    at_clone = child.digest()
    for vm in (parent, child):
        for _ in range(4):
            assert vm.run() == ExitReason.SYSCALL
    assert child_snap.take(incremental=True) < 10, "the child logs its own dirty pages"
    child_snap_5 = child.digest()
    assert child.run() == ExitReason.SYSCALL
    child_snap.restore()
    assert child.digest() == child_snap_5 and counter(child) == 5
    base.restore()
    assert parent.digest() == at_clone and counter(parent) == 1
    assert parent.run() == ExitReason.SYSCALL and counter(parent) == 2


def test_a_large_vm_clone_copies_only_the_memory_in_use() -> None:
    parent = make_vm(INCREMENT_LOOP, mem_size=256 << 20)
    assert parent.run() == ExitReason.SYSCALL
    child = parent.clone()
    assert child.mem_size == 256 << 20
    used = len(child.memory_view())
    assert used == len(parent.memory_view()) < 4 << 20, f"{used} bytes in use"
    assert child.run() == ExitReason.SYSCALL and counter(child) == 2


def _at_second_getpid(program: Path, rounds: int) -> GuestProcess:
    """A process of fork_memory stopped at its second getpid exit, not yet answered."""
    process: GuestProcess

    def stop_at_getpid(p: GuestProcess, kind: object, fields: dict) -> None:
        if fields.get("nr") == GETPID:
            p.preempt = True

    process = GuestProcess(load_program(program), ProcessConfig(argv=[b"fork_memory",
                                                                      str(rounds).encode()]),
                           on_event=stop_at_getpid)
    assert process.run() == Status.RUNNING, process.crash
    assert process.vm.run() == ExitReason.SYSCALL and process.regs.rax == GETPID
    return process


def _answer_getpids(vm: Vm, pid: int, calls: int) -> None:
    """Answer `calls` getpid syscalls with pid, the first being the one vm stopped at."""
    for i in range(calls):
        if i:
            assert vm.run() == ExitReason.SYSCALL
        assert vm.regs.rax == GETPID, f"syscall {vm.regs.rax} in the loop"
        vm.regs.rax = pid


def _guest_state(vm: Vm, address: int) -> tuple[int, int, list[int]]:
    rounds, total = struct.unpack("<qq", vm.read(address, 16))
    return rounds, total, list(struct.unpack(f"<{SLOTS}q", vm.read(address + 16, SLOTS * 8)))


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_program_cloned_mid_syscall_runs_on_in_both(
        libc: str, guest_bin: Callable[[str, str], Path]) -> None:
    """Cloned at an unanswered getpid, both VMs take their own answer and loop on."""
    process = _at_second_getpid(guest_bin(libc, "fork_memory"), rounds=50)
    parent = process.vm
    state_at, heap_at = parent.regs.rdi, parent.regs.rsi
    child = parent.clone()
    assert child.digest() == parent.digest()
    # The same answers keep the two identical: the clone is exact, not merely close.
    _answer_getpids(parent, 7, 3)
    _answer_getpids(child, 7, 3)
    assert parent.run() == child.run() == ExitReason.SYSCALL
    assert child.digest() == parent.digest()
    before = _guest_state(parent, state_at)
    _answer_getpids(parent, 100, 10)
    _answer_getpids(child, 200, 10)
    assert parent.run() == child.run() == ExitReason.SYSCALL
    assert child.digest() != parent.digest()
    p_rounds, p_sum, p_slots = _guest_state(parent, state_at)
    c_rounds, c_sum, c_slots = _guest_state(child, state_at)
    assert p_rounds == c_rounds == before[0] + 10
    assert p_sum - before[1] == 100 * 10 and c_sum - before[1] == 200 * 10
    assert p_slots[p_rounds - 1] == 100 * p_rounds and c_slots[c_rounds - 1] == 200 * c_rounds
    assert p_slots[:before[0]] == c_slots[:before[0]] == before[2][:before[0]]
    heap = (struct.unpack("<q", parent.read(heap_at + 8 * (p_rounds - 1), 8))[0],
            struct.unpack("<q", child.read(heap_at + 8 * (c_rounds - 1), 8))[0])
    assert heap == (p_sum, c_sum), "heap (brk) pages are copied too"
