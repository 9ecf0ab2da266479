"""The C core through its bindings (chaosreplay.vm.vmm), with hand-assembled guest code."""

from __future__ import annotations

import errno

import capstone
import pytest

from chaosreplay.errors import KvmUnavailableError
from chaosreplay.vm.vmm import SCRATCH_END, SCRATCH_START, ExitReason, Prot, Vm, _kvm_error

CODE = 0x400000
DATA = 0x500000
STACK_TOP = 0x800000
RW = Prot.READ | Prot.WRITE

# mov rax, [DATA]; mov eax, 1000 (a syscall number nobody answers); syscall; jmp to start
LOAD_SYSCALL_LOOP = bytes.fromhex("488B042500005000" "B8E8030000" "0F05" "EBEF")
# add qword [DATA], 1; mov eax, 1000; syscall; jmp to start
INCREMENT_LOOP = bytes.fromhex("4883042500005000" "01" "B8E8030000" "0F05" "EBEE")


def make_vm(code: bytes) -> Vm:
    vm = Vm(32 << 20)
    vm.map(CODE, 4096, Prot.READ | Prot.EXEC)
    vm.write(CODE, code)
    vm.map(DATA, 4096, RW)
    vm.map(STACK_TOP - 0x4000, 0x4000, RW)
    vm.start(CODE, STACK_TOP - 64)
    return vm


def test_hand_assembled_code_decodes_as_intended() -> None:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(INCREMENT_LOOP, CODE)]
    assert text == ["add qword ptr [0x500000], 1", "mov eax, 0x3e8", "syscall", "jmp 0x400000"]
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(LOAD_SYSCALL_LOOP, CODE)]
    assert text == ["mov rax, qword ptr [0x500000]", "mov eax, 0x3e8", "syscall", "jmp 0x400000"]


pytestmark_kvm = pytest.mark.kvm


@pytestmark_kvm
def test_syscall_exit_shows_user_registers_and_resumes() -> None:
    vm = make_vm(LOAD_SYSCALL_LOOP)
    vm.write(DATA, (0x1122334455667788).to_bytes(8, "little"))
    assert vm.run() == ExitReason.SYSCALL
    assert vm.regs.rax == 1000
    assert vm.regs.rip == CODE + 15, "rip is the continuation after the syscall instruction"
    assert vm.regs.rcx == vm.regs.rip, "rcx holds the return address, as Linux leaves it"
    vm.regs.rax = 7
    assert vm.run() == ExitReason.SYSCALL
    assert vm.stats().syscalls == 2


@pytestmark_kvm
def test_unmapped_page_faults_after_munmap() -> None:
    """The CPL0 fix-up makes a removed mapping visible to the guest's MMU."""
    vm = make_vm(LOAD_SYSCALL_LOOP)
    assert vm.run() == ExitReason.SYSCALL  # the guest has now touched DATA
    vm.unmap(DATA, 4096)
    assert vm.run() == ExitReason.EXCEPTION
    assert (vm.exit.vector, vm.exit.fault_addr) == (14, DATA)
    assert vm.exit.error_code & 1 == 0, "not-present fault"
    assert vm.stats().pte_ops >= 1


@pytestmark_kvm
def test_readonly_protection_applies_to_a_page_already_written() -> None:
    vm = make_vm(INCREMENT_LOOP)
    assert vm.run() == ExitReason.SYSCALL
    vm.protect(DATA, 4096, Prot.READ)
    assert vm.run() == ExitReason.EXCEPTION
    assert vm.exit.vector == 14 and vm.exit.error_code & 0b11 == 0b11, "write to present page"
    vm.protect(DATA, 4096, RW)
    assert vm.run() == ExitReason.SYSCALL  # the faulting add is retried and completes
    assert int.from_bytes(vm.read(DATA, 8), "little") == 2


@pytestmark_kvm
def test_remapped_page_is_fresh_zero_memory() -> None:
    vm = make_vm(LOAD_SYSCALL_LOOP)
    vm.write(DATA, b"\xff" * 8)
    assert vm.run() == ExitReason.SYSCALL and vm.regs.rax == 1000
    vm.unmap(DATA, 4096)
    vm.map(DATA, 4096, RW)
    vm.regs.rip = CODE
    assert vm.run() == ExitReason.SYSCALL
    assert vm.read(DATA, 8) == bytes(8)


@pytestmark_kvm
def test_incremental_snapshot_copies_only_written_pages() -> None:
    vm = make_vm(INCREMENT_LOOP)
    snap = vm.snapshot()
    full = snap.take(incremental=False)
    assert vm.run() == ExitReason.SYSCALL
    copied = snap.take(incremental=True)
    assert 0 < copied < full
    assert len(set(snap.last_pages())) == copied


@pytestmark_kvm
def test_restore_returns_memory_registers_and_mappings() -> None:
    vm = make_vm(INCREMENT_LOOP)
    assert vm.run() == ExitReason.SYSCALL
    snap = vm.snapshot()
    snap.take(incremental=False)
    digest = vm.digest()
    for _ in range(5):
        assert vm.run() == ExitReason.SYSCALL
    vm.unmap(DATA, 4096)  # a present mapping the shadow MMU has cached
    assert vm.digest() != digest
    snap.restore()
    assert vm.digest() == digest
    assert int.from_bytes(vm.read(DATA, 8), "little") == 1
    assert vm.run() == ExitReason.SYSCALL, "the stale unmapping must not survive restore"
    assert int.from_bytes(vm.read(DATA, 8), "little") == 2


@pytestmark_kvm
def test_digest_ignores_vmm_scratch_but_sees_guest_memory() -> None:
    vm = make_vm(INCREMENT_LOOP)
    before = vm.digest()
    assert SCRATCH_START < SCRATCH_END <= 1 << 20
    vm.write(DATA, b"\x01")
    assert vm.digest() != before


def test_missing_kvm_is_reported_in_one_line() -> None:
    for err in (errno.ENOENT, errno.EACCES):
        message = str(_kvm_error(err))
        assert isinstance(_kvm_error(err), KvmUnavailableError)
        assert "/dev/kvm" in message and "\n" not in message


@pytestmark_kvm
def test_restore_flushes_a_mapping_that_moved_to_another_frame() -> None:
    """Shadow paging never sees host page-table writes: restore must drop what it cached."""
    vm = make_vm(INCREMENT_LOOP)
    assert vm.run() == ExitReason.SYSCALL  # DATA (frame F) now holds 1
    snap = vm.snapshot()
    snap.take(incremental=False)
    vm.unmap(DATA, 4096)
    vm.map(0x600000, 4096, RW)  # takes frame F back from the free list
    vm.map(DATA, 4096, RW)      # so DATA moves to a fresh frame G
    for _ in range(3):
        assert vm.run() == ExitReason.SYSCALL  # the guest's MMU now maps DATA -> G
    assert int.from_bytes(vm.read(DATA, 8), "little") == 3
    snap.restore()  # page tables say DATA -> F again
    assert vm.run() == ExitReason.SYSCALL
    assert int.from_bytes(vm.read(DATA, 8), "little") == 2, "the guest wrote through a stale map"


# lea rcx, [rip+0x11]; mov eax, 1000; movabs rdx, 0xffffffffff600000; jmp rdx (the entry
# page's `out`, reached from CPL3 without a syscall); then mov eax, 1000; syscall; jmp $
JUMP_TO_ENTRY_OUT = bytes.fromhex("488D0D11000000" "B8E8030000" "48BA" "000060FFFFFFFFFF"
                                  "FFE2" "B8E8030000" "0F05" "EBFE")


@pytestmark_kvm
def test_the_syscall_entry_mode_is_the_hosts_before_the_guest_runs() -> None:
    """The mode comes from the VMM's own probe, set at creation: a guest whose first exit is
    a jump to the entry page's `out` cannot choose how later syscalls are resumed."""
    from chaosreplay.vm.vmm import lib, syscall_enters_cpl0

    host = int(syscall_enters_cpl0())
    vm = make_vm(JUMP_TO_ENTRY_OUT)
    assert lib.vmm_vm_syscall_mode(vm._vm) == host, "known before the first run"
    assert vm.run() == ExitReason.SYSCALL and vm.regs.rip == CODE + 0x18
    assert lib.vmm_vm_syscall_mode(vm._vm) == host
    assert vm.run() == ExitReason.SYSCALL and vm.regs.rip == CODE + 0x1F
    assert lib.vmm_vm_syscall_mode(vm._vm) == host
    assert lib.vmm_vm_set_syscall_mode(vm._vm, 2) == -errno.EINVAL
