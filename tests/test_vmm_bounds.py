"""The C core defends itself: bounds on every guest-physical address, snapshots from a file
checked before use (state, system area, page tables), and the flags of frames it returns
through. Hand-assembled guests as in test_vmm.py; the C-level half is tests/native."""

from __future__ import annotations

import errno
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import capstone
import pytest
from test_vmm import CODE, DATA, INCREMENT_LOOP, RW, make_vm

from chaosreplay.vm.vmm import PAGE_SIZE, ExitReason, Prot, Vm, VmmError

ROOT = Path(__file__).resolve().parent.parent
MEM = 32 << 20
PML4_PFN = 0x20
FIRST_FRAME = 0x100
# Offsets in the canonical state bytes (vmm_internal.h STATE_OFF_*).
OFF_RSP, OFF_RIP, OFF_RFLAGS = 8 + 6 * 8, 8 + 16 * 8, 8 + 17 * 8
OFF_FS, OFF_GS, OFF_KGS = 152, 160, 168
OFF_FCW, OFF_MXCSR = 176, 176 + 6 * 8
OFF_ALLOC, FIXED = 616, 640
IOPL3, RF, VM86, VIF, VIP, NT = 0x3000, 0x10000, 0x20000, 0x80000, 0x100000, 0x4000
SYSTEM_FLAGS = IOPL3 | RF | VM86 | VIF | VIP


def u64(data: bytes, off: int) -> int:
    return int.from_bytes(data[off:off + 8], "little")


def put64(data: bytes, off: int, value: int) -> bytes:
    return data[:off] + value.to_bytes(8, "little") + data[off + 8:]


def captured() -> tuple[Vm, bytes, dict[int, bytes]]:
    """A VM that ran a little and freed frames, with its snapshot's state and every page."""
    vm = make_vm(INCREMENT_LOOP)
    for _ in range(3):
        assert vm.run() == ExitReason.SYSCALL
    vm.map(0x600000, 4 * PAGE_SIZE, RW)
    vm.write(0x600000, b"x" * 4 * PAGE_SIZE)
    vm.unmap(0x600000, 4 * PAGE_SIZE)  # four frames on the free list
    snap = vm.snapshot()
    snap.take(incremental=False)
    memory = snap.memory_view()
    pages = {pfn: bytes(memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE])
             for pfn in range(len(memory) // PAGE_SIZE)}
    return vm, snap.state(), pages


def restore_into_fresh(state: bytes, pages: dict[int, bytes]) -> Vm:
    """Load state + pages into a new VM's snapshot and restore it (as a checkpoint does)."""
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, pages)
    snap.restore()
    vm._test_snapshot = snap  # type: ignore[attr-defined]  # keep it alive with the VM
    return vm


def leaf_entry(pages: dict[int, bytes], va: int) -> tuple[int, int]:
    """(pfn, byte offset) of va's leaf page-table entry in the captured pages."""
    pfn = PML4_PFN
    for level in (3, 2, 1):
        index = (va >> (12 + 9 * level)) & 511
        pfn = (u64(pages[pfn], index * 8) & 0x000FFFFFFFFFF000) >> 12
    return pfn, ((va >> 12) & 511) * 8


def frame_of(pages: dict[int, bytes], va: int) -> int:
    """The frame number behind va in the captured pages."""
    pfn, off = leaf_entry(pages, va)
    return (u64(pages[pfn], off) & 0x000FFFFFFFFFF000) >> 12


def with_entry(pages: dict[int, bytes], pfn: int, off: int, value: int) -> dict[int, bytes]:
    return {**pages, pfn: put64(pages[pfn], off, value)}


@pytest.fixture(scope="module")
def honest() -> tuple[bytes, dict[int, bytes]]:
    _, state, pages = captured()
    return state, pages


@pytest.mark.kvm
def test_an_honest_snapshot_restores_into_a_fresh_vm_and_runs(honest) -> None:
    state, pages = honest
    vm = restore_into_fresh(state, pages)
    before = int.from_bytes(vm.read(DATA, 8), "little")
    assert vm.run() == ExitReason.SYSCALL
    assert int.from_bytes(vm.read(DATA, 8), "little") == before + 1


# -- the vCPU state bytes -------------------------------------------------------------------

def _free_list_entry(state: bytes, i: int, pfn: int) -> bytes:
    off = FIXED + 4 * i
    return state[:off] + struct.pack("<I", pfn) + state[off + 4:]


STATE_ATTACKS: dict[str, tuple[Callable[[bytes], bytes], int, str]] = {
    "free list of 0xfffffff0": (lambda s: _free_list_entry(s, 0, 0xFFFFFFF0), errno.EFAULT,
                                "free frame list entry 0 (0xfffffff0) is outside"),
    "free frame in the system area": (lambda s: _free_list_entry(s, 1, 0x1), errno.EFAULT,
                                      "free frame list entry 1 (0x1) is outside"),
    "free frame above high": (lambda s: _free_list_entry(s, 2, u64(s, OFF_ALLOC) & 0xFFFFFFFF),
                              errno.EFAULT, "is outside the user frames"),
    "duplicate free frame": (lambda s: _free_list_entry(s, 1, int.from_bytes(s[FIXED:FIXED + 4],
                                                                            "little")),
                             errno.EINVAL, "names frame"),
    "allocator counts": (lambda s: s[:OFF_ALLOC + 4] + struct.pack("<I", 7) + s[OFF_ALLOC + 8:],
                         errno.EINVAL, "allocator counts disagree"),
    "high past RAM": (lambda s: s[:OFF_ALLOC] + struct.pack("<I", 0xFFFFFFF0) + s[OFF_ALLOC + 4:],
                      errno.EINVAL, "allocator high 0xfffffff0 is outside"),
    "rflags IOPL 3": (lambda s: put64(s, OFF_RFLAGS, 0x3202), errno.EINVAL, "rflags 0x3202"),
    "rflags VM": (lambda s: put64(s, OFF_RFLAGS, 0x20202), errno.EINVAL, "rflags 0x20202"),
    "rflags VIF VIP": (lambda s: put64(s, OFF_RFLAGS, 0x180202), errno.EINVAL, "rflags"),
    "rflags reserved bit": (lambda s: put64(s, OFF_RFLAGS, 0x8202), errno.EINVAL, "rflags"),
    "non-canonical rip": (lambda s: put64(s, OFF_RIP, 0x0000800000000000), errno.EINVAL,
                          "rip 0x800000000000 is not canonical"),
    "non-canonical rsp": (lambda s: put64(s, OFF_RSP, 0x1234000000000000), errno.EINVAL,
                          "rsp 0x1234000000000000 is not canonical"),
    "kernel fs base": (lambda s: put64(s, OFF_FS, 0xFFFF800000001000), errno.EINVAL,
                       "fs base 0xffff800000001000 is not a user address"),
    "kernel gs base": (lambda s: put64(s, OFF_GS, 0xFFFFFFFFFF600000), errno.EINVAL,
                       "gs base"),
    "kernel gs base msr": (lambda s: put64(s, OFF_KGS, 0x1000), errno.EINVAL,
                           "kernel gs base 0x1000 is not the VMM's 0"),
    "mxcsr reserved bits": (lambda s: put64(s, OFF_MXCSR, 0xFFFF1F80), errno.EINVAL,
                            "mxcsr 0xffff1f80 sets reserved bits"),
    "fcw too wide": (lambda s: put64(s, OFF_FCW, 0x1037F), errno.EINVAL, "fcw 0x1037f"),
    "reserved padding": (lambda s: s[:636] + b"\x01" + s[637:], errno.EINVAL,
                         "reserved state byte 636"),
    "wrong magic": (lambda s: b"CRVCPU99" + s[8:], errno.EINVAL, "magic"),
    "truncated": (lambda s: s[:600], errno.EINVAL, "not canonical vCPU state"),
    "trailing bytes (selectors smuggled after the free list)": (
        lambda s: s + b"\x10\x00\x00\x00", errno.EINVAL, "does not fit the state"),
}


@pytest.mark.kvm
@pytest.mark.parametrize("attack", sorted(STATE_ATTACKS))
def test_hostile_vcpu_state_is_refused_at_import_naming_the_field(honest, attack: str) -> None:
    state, pages = honest
    rewrite, err, message = STATE_ATTACKS[attack]
    vm = Vm(MEM)
    snap = vm.snapshot()
    with pytest.raises(VmmError) as caught:
        snap.load(rewrite(state), pages)
    assert caught.value.errno == err, caught.value
    assert message in str(caught.value), caught.value


@pytest.mark.kvm
def test_state_bytes_carry_no_selectors_or_control_registers(honest) -> None:
    """CPL3 CS/SS and CR0/CR4/EFER are not in the bytes: restore loads the VMM's own, so a
    restored guest is at CPL3 whatever the file holds (it faults on a CPL0 instruction)."""
    state, pages = honest
    assert len(state) == FIXED + 4 * 4, "the fixed part and four free frames, nothing else"
    # hlt at CPL3 is a #GP; at CPL0 it would stop the vCPU instead.
    code_pfn = frame_of(pages, CODE)
    hlt = {**pages, code_pfn: b"\xf4" + pages[code_pfn][1:]}
    vm = restore_into_fresh(put64(state, OFF_RIP, CODE), hlt)
    assert vm.run() == ExitReason.EXCEPTION
    assert vm.exit.vector == 13, "hlt ran at CPL3"


@pytest.mark.kvm
def test_a_state_only_a_guest_reaches_restores_live_but_not_from_a_file() -> None:
    """movabs rsp, 1 << 63; mov eax, 1000; syscall; jmp $ — the VM's own snapshot of that
    restores (it is what the VM held); the same bytes from a file are refused."""
    code = bytes.fromhex("48BC" + (1 << 63).to_bytes(8, "little").hex() + "B8E8030000"
                         "0F05" "EBFE")
    vm = make_vm(code)
    assert vm.run() == ExitReason.SYSCALL and vm.regs.rsp == 1 << 63
    snap = vm.snapshot()
    snap.take(incremental=False)
    vm.regs.rax = 0
    assert snap.restore() >= 0
    memory = snap.memory_view()
    pages = {pfn: bytes(memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE])
             for pfn in range(len(memory) // PAGE_SIZE)}
    with pytest.raises(VmmError, match="rsp 0x8000000000000000 is not canonical"):
        Vm(MEM).snapshot().load(snap.state(), pages)


# -- the memory image: system area and page tables ------------------------------------------

SYSTEM_PAGES = {"GDT": 0x1, "IDT": 0x2, "TSS and I/O bitmap": 0x3, "CPL0 stubs": 0x6,
                "entry page": 0x7, "direct map": 0x22, "entry-page tables": 0x34,
                "unused system area": 0x80}


@pytest.mark.kvm
@pytest.mark.parametrize("name", sorted(SYSTEM_PAGES))
def test_a_checkpoint_page_over_the_system_area_is_refused(honest, name: str) -> None:
    state, pages = honest
    pfn = SYSTEM_PAGES[name]
    hostile = {**pages, pfn: b"\xcc" * 16 + pages[pfn][16:]}
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, hostile)
    with pytest.raises(VmmError) as caught:
        snap.restore()
    assert f"page {pfn:#x} ({name}) is not the VMM's own" in str(caught.value)


@pytest.mark.kvm
def test_a_pml4_kernel_half_entry_from_a_file_is_refused(honest) -> None:
    state, pages = honest
    hostile = with_entry(pages, PML4_PFN, 300 * 8, 0x200000 | 0x7)  # maps RAM for CPL3
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, hostile)
    with pytest.raises(VmmError, match=r"page 0x20 \(PML4 kernel half\)"):
        snap.restore()


@pytest.mark.kvm
def test_scratch_pages_from_a_file_are_ignored_not_run(honest) -> None:
    """The IST stack and the fix-up list are VMM scratch: a file's bytes there are zeroed."""
    state, pages = honest
    # A fix-up list of one store into the IDT, waiting for a stray trampoline jump.
    fixops = struct.pack("<QQQ", 1, 0xFFFF800000002000, 0xDEAD) + bytes(PAGE_SIZE - 24)
    hostile = {**pages, 0x10: fixops, 0xF: b"\xff" * PAGE_SIZE}
    vm = restore_into_fresh(state, hostile)
    memory = vm.memory_view()
    assert bytes(memory[0x10000:0x10008]) == bytes(8), "the fix-up count was taken from the file"
    assert vm.run() == ExitReason.SYSCALL


PTE_ATTACKS: dict[str, tuple[int, str]] = {
    "past RAM": (MEM + 0x5000, "points past the VM's RAM"),
    "into the GDT": (0x1000, "points into the VMM's system area"),
    "into the stubs": (0x6000, "points into the VMM's system area"),
    "frame 0xfffffff0": (0xFFFFFFF0 << 12, "points past the VM's RAM"),
    "above high": (MEM - 0x1000, "points above the frames in use"),
}


@pytest.mark.kvm
@pytest.mark.parametrize("attack", sorted(PTE_ATTACKS))
def test_a_leaf_pte_outside_the_user_frames_is_refused(honest, attack: str) -> None:
    state, pages = honest
    target, message = PTE_ATTACKS[attack]
    pfn, off = leaf_entry(pages, DATA)
    flags = u64(pages[pfn], off) & ~0x000FFFFFFFFFF000
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, with_entry(pages, pfn, off, target | flags))
    with pytest.raises(VmmError) as caught:
        snap.restore()
    assert caught.value.errno == errno.EFAULT
    assert message in str(caught.value), caught.value


@pytest.mark.kvm
def test_a_table_entry_into_the_pml4_is_refused(honest) -> None:
    state, pages = honest
    index = (CODE >> 39) & 511
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, with_entry(pages, PML4_PFN, index * 8, (PML4_PFN << 12) | 0x27))
    with pytest.raises(VmmError, match="points into the VMM's system area"):
        snap.restore()


@pytest.mark.kvm
@pytest.mark.parametrize("extra, what", [(1 << 7, "large page"), (1 << 8, "global"),
                                          (1 << 4, "cache disable")])
def test_a_leaf_with_flags_the_vmm_never_sets_is_refused(honest, extra: int, what: str) -> None:
    state, pages = honest
    pfn, off = leaf_entry(pages, DATA)
    vm = Vm(MEM)
    snap = vm.snapshot()
    snap.load(state, with_entry(pages, pfn, off, u64(pages[pfn], off) | extra))
    with pytest.raises(VmmError, match="flags the VMM never sets on a page"):
        snap.restore()


@pytest.mark.kvm
def test_two_entries_naming_one_frame_or_a_free_frame_are_refused(honest) -> None:
    state, pages = honest
    pfn, off = leaf_entry(pages, DATA)
    code_pfn, code_off = leaf_entry(pages, CODE)
    data_pte = u64(pages[pfn], off)
    aliased = with_entry(pages, code_pfn, code_off,
                         (u64(pages[code_pfn], code_off) & ~0x000FFFFFFFFFF000)
                         | (data_pte & 0x000FFFFFFFFFF000))
    free_pfn = int.from_bytes(state[FIXED:FIXED + 4], "little")
    onto_free = with_entry(pages, pfn, off, (data_pte & ~0x000FFFFFFFFFF000) | free_pfn << 12)
    for hostile in (aliased, onto_free):
        vm = Vm(MEM)
        snap = vm.snapshot()
        snap.load(state, hostile)
        with pytest.raises(VmmError, match="which is free or already mapped"):
            snap.restore()


@pytest.mark.kvm
def test_a_refused_restore_leaves_the_vm_as_it_was() -> None:
    vm, state, pages = captured()
    before = vm.digest()
    snap = vm.snapshot()
    snap.load(state, {**pages, 0x2: bytes(PAGE_SIZE)})
    with pytest.raises(VmmError):
        snap.restore()
    assert vm.digest() == before
    assert vm.run() == ExitReason.SYSCALL


@pytest.mark.kvm
def test_import_page_refuses_frames_beyond_the_state(honest) -> None:
    state, pages = honest
    vm = Vm(MEM)
    with pytest.raises(VmmError, match="is not below the state's high"):
        vm.snapshot().load(state, {**pages, MEM // PAGE_SIZE + 10: bytes(PAGE_SIZE)})


# -- frames the VMM returns through ----------------------------------------------------------

# mov r11, FLAGS; mov rcx, CODE+0x40; mov eax, 1000; out 0xe0, al (a syscall exit with a
# forged R11, no syscall instruction); then at +0x40: pushfq; pop rbx; mov eax, 1001;
# syscall; jmp $
FORGED = 0x3202 | NT | RF | VM86 | VIF | VIP


def forged_rflags_code() -> bytes:
    head = (bytes.fromhex("49C7C3") + struct.pack("<I", FORGED) + bytes.fromhex("48C7C1")
            + struct.pack("<I", CODE + 0x40) + bytes.fromhex("B8E8030000" "E6E0" "EBFE"))
    return head.ljust(0x40, b"\xcc") + bytes.fromhex("9C" "5B" "B8E9030000" "0F05" "EBFE")


def test_forged_rflags_code_decodes_as_intended() -> None:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    code = forged_rflags_code()
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(code[:0x17], CODE)]
    assert text == [f"mov r11, {FORGED:#x}", f"mov rcx, {CODE + 0x40:#x}", "mov eax, 0x3e8",
                    "out 0xe0, al", "jmp 0x400015"]
    text = [f"{i.mnemonic} {i.op_str}".strip() for i in md.disasm(code[0x40:], CODE + 0x40)]
    assert text == ["pushfq", "pop rbx", "mov eax, 0x3e9", "syscall", "jmp 0x400049"]


def iretq_frames(vm: Vm, rip: int) -> list[int]:
    """rflags of every iretq frame [rip, 0x33, rflags, rsp, 0x2b] on the IST stack."""
    memory = bytes(vm.memory_view()[0x8000:0x10000])
    words = struct.unpack(f"<{len(memory) // 8}Q", memory)
    return [words[i + 2] for i in range(len(words) - 4)
            if words[i] == rip and words[i + 1] == 0x33 and words[i + 4] == 0x2B]


@pytest.mark.kvm
def test_a_forged_r11_never_puts_system_flags_into_the_frame_the_vmm_returns_through() -> None:
    vm = make_vm(forged_rflags_code())
    assert vm.run() == ExitReason.SYSCALL
    assert vm.regs.rip == CODE + 0x40
    vm.unmap(DATA, PAGE_SIZE)  # a queued fix-up: the resume goes through an iretq frame
    assert vm.run() == ExitReason.SYSCALL and vm.regs.rax == 1001
    frames = iretq_frames(vm, CODE + 0x40)
    assert frames, "no iretq frame for the resume was found"
    for rflags in frames:
        assert rflags & SYSTEM_FLAGS == 0, f"frame rflags {rflags:#x} keeps system flags"
        assert rflags & NT, "NT is the user's own (popf sets it at CPL3) and is kept"
    assert vm.regs.rbx & (IOPL3 | VM86 | VIF | VIP) == 0, f"guest saw {vm.regs.rbx:#x}"


@pytest.mark.kvm
def test_a_forged_r11_never_reaches_the_user_view_or_a_snapshot() -> None:
    """The user view after the exit holds only user flags, so the snapshot taken there is
    one the VMM's own checks accept on restore."""
    vm = make_vm(forged_rflags_code())
    assert vm.run() == ExitReason.SYSCALL
    assert vm.regs.rflags == (FORGED & 0x244DD5) | 0x202, hex(vm.regs.rflags)
    snap = vm.snapshot()
    snap.take(incremental=False)
    memory = snap.memory_view()
    pages = {pfn: bytes(memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE])
             for pfn in range(len(memory) // PAGE_SIZE)}
    restored = restore_into_fresh(snap.state(), pages)
    assert restored.run() == ExitReason.SYSCALL and restored.regs.rax == 1001


@pytest.mark.kvm
def test_rflags_set_from_python_are_masked_in_the_frame() -> None:
    """A handler (or a future sigreturn) writing ones to rflags gets only the user bits."""
    vm = make_vm(forged_rflags_code())
    assert vm.run() == ExitReason.SYSCALL
    trap = 0x100  # TF is the user's own too, but it would single-step the rest of the test
    vm.regs.rflags = 0xFFFFFFFFFFFFFFFF & ~trap
    vm.unmap(DATA, PAGE_SIZE)
    assert vm.run() == ExitReason.SYSCALL
    assert iretq_frames(vm, CODE + 0x40) == [(0x244DD5 & ~trap) | 0x202]


@pytest.mark.kvm
def test_popf_with_iopl_bits_changes_nothing_the_vmm_returns() -> None:
    # push 0x3202 | NT | AC; popfq; mov eax, 1000; syscall; pushfq; pop rbx; mov eax, 1001;
    # syscall; jmp $
    code = bytes.fromhex("68" "02720400" "9D" "B8E8030000" "0F05" "9C" "5B" "B8E9030000"
                         "0F05" "EBFE")
    vm = make_vm(code)
    assert vm.run() == ExitReason.SYSCALL
    assert vm.regs.rflags & IOPL3 == 0, "popf at CPL3 cannot set IOPL"
    assert vm.regs.rflags & NT and vm.regs.rflags & 0x40000, "NT and AC are the user's"
    vm.unmap(DATA, PAGE_SIZE)
    assert vm.run() == ExitReason.SYSCALL
    assert vm.regs.rbx & SYSTEM_FLAGS == 0
    assert vm.regs.rbx & 0x40000, "AC, a user flag, survives the syscall"


@pytest.mark.kvm
def test_a_non_canonical_rip_is_a_gp_before_anything_runs() -> None:
    vm = make_vm(INCREMENT_LOOP)
    assert vm.run() == ExitReason.SYSCALL
    vm.regs.rip = 0x0000800000000000
    assert vm.run() == ExitReason.EXCEPTION
    assert vm.exit.vector == 13
    vm.regs.rip = CODE
    assert vm.run() == ExitReason.SYSCALL, "a valid rip resumes normally"


@pytest.mark.kvm
def test_segment_bases_outside_the_user_half_are_refused() -> None:
    vm = make_vm(INCREMENT_LOOP)
    with pytest.raises(VmmError) as caught:
        vm.fs_base = 0xFFFF800000000000
    assert caught.value.errno == errno.EPERM
    with pytest.raises(VmmError):
        vm.set_gs_base(1 << 47)
    vm.fs_base = 0x7FFFFFFFF000
    assert vm.fs_base == 0x7FFFFFFFF000


# -- the C-level half ------------------------------------------------------------------------

@pytest.mark.kvm
def test_c_core_refuses_guest_physical_addresses_outside_the_user_frames(tmp_path: Path) -> None:
    """tests/native/bounds_test.c corrupts page tables, the free list and frames in guest
    memory directly and expects -EFAULT from every API call (no host access outside)."""
    cc = shutil.which("gcc") or shutil.which("cc")
    if cc is None:
        pytest.skip("no C compiler")
    native = ROOT / "vmm_native"
    binary = tmp_path / "bounds_test"
    sources = [str(p) for p in sorted(native.glob("*.c"))]
    subprocess.run([cc, "-std=c11", "-O1", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE",
                    f"-I{native}", str(ROOT / "tests" / "native" / "bounds_test.c"), *sources,
                    "-o", str(binary)], check=True, capture_output=True)
    result = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
    if result.returncode == 77:
        pytest.skip(result.stdout.strip())
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.kvm
def test_memory_protections_still_apply_after_a_restore(honest) -> None:
    state, pages = honest
    vm = restore_into_fresh(state, pages)
    assert vm.query(CODE) == Prot.READ | Prot.EXEC
    assert vm.query(DATA) == Prot.READ | Prot.WRITE
