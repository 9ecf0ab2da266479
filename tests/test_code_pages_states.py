"""The W^X state machine of code_pages on a real VM's page tables, driven by faults."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.mm.code_pages import TF
from chaosreplay.vm.nonvirt import GuestFault, Kind, Site
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, Vm

pytestmark = pytest.mark.kvm

BASE = 0x7E00_0000_0000
RWX = Prot.READ | Prot.WRITE | Prot.EXEC
FETCH, WRITE_RO = 0x15, 0x7  # #PF error codes: user fetch / user write, page present
RDTSC_RET = b"\x0f\x31\xc3"


@dataclass
class Regs:
    rip: int = 0
    rsp: int = 0
    rflags: int = 0x2


def _space(pages: int = 3, prot: int = RWX) -> AddressSpace:
    space = AddressSpace(Vm(16 << 20))
    space.map_fixed(BASE, pages * PAGE_SIZE, prot, "[anon]", eager=True)
    return space


def _no_emulation(site: Site) -> GuestFault | None:
    raise AssertionError(f"nothing should be emulated here, got {site}")


def _execute(space: AddressSpace, address: int) -> bool | GuestFault:
    return space.code.on_page_fault(address, FETCH, Regs(rip=address), _no_emulation)


def test_rwx_mapping_is_mapped_without_exec_until_scanned() -> None:
    space = _space()
    assert space.vm.query(BASE) == Prot.READ | Prot.WRITE


def test_execute_fault_scans_patches_and_maps_read_only_executable() -> None:
    space = _space()
    space.vm.write(BASE + 64, RDTSC_RET)
    assert _execute(space, BASE + 64) is True
    assert space.vm.query(BASE) == Prot.READ | Prot.EXEC
    assert space.vm.read(BASE + 64, 3) == b"\x0f\x0b\xc3"
    assert space.code.sites[BASE + 64].kind is Kind.RDTSC
    assert space.vm.query(BASE + PAGE_SIZE) == Prot.READ  # its first bytes were scanned too


def test_write_fault_restores_the_bytes_and_makes_the_page_data_again() -> None:
    space = _space()
    space.vm.write(BASE + PAGE_SIZE + 64, RDTSC_RET)
    _execute(space, BASE + PAGE_SIZE + 64)
    regs = Regs(rip=BASE + 2 * PAGE_SIZE + 8)  # the store runs from another page
    assert space.code.on_page_fault(BASE + PAGE_SIZE + 64, WRITE_RO, regs, _no_emulation)
    assert space.vm.query(BASE + PAGE_SIZE) == Prot.READ | Prot.WRITE
    assert space.vm.read(BASE + PAGE_SIZE + 64, 3) == RDTSC_RET
    assert space.code.sites == {} and regs.rflags & TF == 0


def test_write_to_the_next_page_sends_the_scanned_page_back_to_data() -> None:
    """A page's scan reads the next page's first bytes: writing them invalidates it."""
    space = _space()
    space.vm.write(BASE + 64, RDTSC_RET)
    _execute(space, BASE + 64)
    regs = Regs(rip=BASE + 2 * PAGE_SIZE)
    assert space.code.on_page_fault(BASE + PAGE_SIZE, WRITE_RO, regs, _no_emulation)
    assert space.vm.query(BASE) == Prot.READ | Prot.WRITE
    assert space.vm.query(BASE + PAGE_SIZE) == Prot.READ | Prot.WRITE
    assert space.vm.read(BASE + 64, 3) == RDTSC_RET


def test_store_into_its_own_page_runs_alone_under_the_trap_flag() -> None:
    """W^X cannot hold for the one instruction that writes the page it runs from: that
    instruction runs with both, single-stepped, and the page is data right after it."""
    space = _space()
    _execute(space, BASE + 64)
    regs = Regs(rip=BASE + 64)
    assert space.code.on_page_fault(BASE + 128, WRITE_RO, regs, _no_emulation) is True
    assert space.code.write_step == BASE and regs.rflags & TF
    assert space.vm.query(BASE) == RWX
    assert space.code.on_debug_trap(regs, _no_emulation) is True
    assert space.code.write_step is None and not regs.rflags & TF
    assert space.vm.query(BASE) == Prot.READ | Prot.WRITE


def test_kernel_copy_into_code_makes_it_data() -> None:
    """read() into code that already ran: the VMM's own store invalidates the scan."""
    space = _space()
    _execute(space, BASE + 64)
    assert space.write(BASE + 64, RDTSC_RET)
    assert space.vm.query(BASE) == Prot.READ | Prot.WRITE
    assert _execute(space, BASE + 64) is True
    assert BASE + 64 in space.code.sites


def test_instruction_straddling_into_the_next_page_guards_the_page() -> None:
    """A site crossing into the next page can be neither patched nor trapped: stepped."""
    space = _space()
    space.vm.write(BASE, b"\x90" * (PAGE_SIZE - 1) + b"\x0f\x31\xc3")
    emulated: list[Site] = []

    def emulate(site: Site) -> GuestFault | None:
        emulated.append(site)
        regs.rip = site.address + site.length
        return None

    regs = Regs(rip=BASE + PAGE_SIZE - 1)
    assert space.code.on_page_fault(BASE + PAGE_SIZE - 1, FETCH, regs, emulate) is True
    assert BASE in space.code.guarded
    # Single-stepping checked the instruction at rip before the CPU could run it.
    assert [s.kind for s in emulated] == [Kind.RDTSC] and regs.rip == BASE + PAGE_SIZE + 1
    assert not regs.rflags & TF  # rip left the guarded page: stepping stopped
    assert space.vm.query(BASE) == Prot.READ


# In the second page, where the decode start is unsure (the first page is executable and
# unscanned), a hidden pattern cannot be trapped: its page is guarded (single-stepped).
UNSURE = BASE + PAGE_SIZE + 1


def test_stepping_emulates_hidden_instructions_and_popf_keeps_the_trap_flag() -> None:
    space = _space()
    space.map_fixed(BASE + 0x10000, PAGE_SIZE, Prot.READ | Prot.WRITE, "[stack]", eager=True)
    space.vm.write(BASE + 0x10000, (0x202).to_bytes(8, "little"))  # IF only: TF clear
    space.vm.write(UNSURE, b"\xb8\x0f\x31\xc3\x90" + b"\x9d\x90")  # mov (hides rdtsc); popf
    regs = Regs(rip=UNSURE + 1, rsp=BASE + 0x10000)
    kinds: list[Kind] = []

    def emulate(site: Site) -> GuestFault | None:
        kinds.append(site.kind)
        regs.rip = site.address + site.length
        return None

    assert space.code.on_page_fault(UNSURE + 1, FETCH, regs, emulate) is True
    assert UNSURE - 1 in space.code.guarded and space.code.traps == {}
    assert kinds == [Kind.RDTSC] and regs.rip == UNSURE + 3 and regs.rflags & TF
    regs.rip = UNSURE + 5  # the CPU ran ret; say it returned to the popf
    assert space.code.on_debug_trap(regs, emulate) is True
    assert regs.rip == UNSURE + 6 and regs.rsp == BASE + 0x10008
    assert regs.rflags & TF, "popf must not switch single-stepping off"


def test_mprotect_away_from_exec_restores_bytes_and_back_rescans() -> None:
    space = _space()
    space.vm.write(BASE + 64, RDTSC_RET)
    _execute(space, BASE + 64)
    assert space.protect(BASE, PAGE_SIZE, Prot.READ | Prot.WRITE) == 0
    assert space.vm.read(BASE + 64, 3) == RDTSC_RET and space.code.sites == {}
    assert space.protect(BASE, PAGE_SIZE, Prot.READ | Prot.EXEC) == 0
    assert space.vm.query(BASE) == Prot.READ  # executable again only once scanned
    assert _execute(space, BASE + 64) is True and BASE + 64 in space.code.sites


def test_unmap_forgets_the_sites() -> None:
    space = _space()
    space.vm.write(BASE + 64, RDTSC_RET)
    _execute(space, BASE + 64)
    space.unmap(BASE, PAGE_SIZE)
    assert space.code.sites == {} and space.code.code == set()


def test_fetch_from_a_non_executable_mapping_is_not_handled() -> None:
    space = _space(prot=Prot.READ | Prot.WRITE)
    assert _execute(space, BASE + 64) is False


def test_state_round_trips() -> None:
    space = _space()
    space.vm.write(BASE + 64, RDTSC_RET)
    _execute(space, BASE + 64)
    state = space.code.to_state()
    other = _space()
    other.code.load_state(state)
    assert other.code.to_state() == state
    assert other.code.sites == space.code.sites


@pytest.mark.parametrize(("code", "offset", "why"), [
    (b"\x66\x9d", 0, "popf cannot be single-stepped safely"),  # popfw, 16 bits
    (b"\x0f\x05\x0f\x31", 2, "rdtsc right after syscall"),
])
def test_instructions_that_would_escape_the_check_are_refused(code: bytes, offset: int,
                                                               why: str) -> None:
    """In a guarded page, what could run an instruction unchecked ends the guest instead."""
    space = _space()
    space.vm.write(UNSURE, b"\xb8\x0f\x31\xc3\x90")  # a hidden rdtsc guards the page
    space.vm.write(UNSURE + 128, code)
    result = space.code.on_page_fault(UNSURE + 128, FETCH, Regs(rip=UNSURE + 128),
                                      _no_emulation)
    assert isinstance(result, GuestFault), result
    assert result.reason.startswith(f"non-virtualizable code at {UNSURE + 128 + offset:#x}")
    assert result.reason.endswith(why), result.reason
