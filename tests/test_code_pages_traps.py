"""Trapped instructions (kernel/mm/code_pages.py): a pattern hidden inside an instruction
fills that instruction with int3 instead of single-stepping its whole page.

Driven by calling the fault handlers as the exit loop would, on a real VM's memory and
page tables; the CPU's part (running the one instruction under TF) is played by the test.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.mm.code_pages import TF
from chaosreplay.kernel.state_check import CODE_PAGES
from chaosreplay.recording.schema import SchemaError, validate
from chaosreplay.vm.nonvirt import GuestFault, Kind, Site, SpinYield
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, Vm

pytestmark = pytest.mark.kvm

BASE = 0x7E00_0000_0000
STACK = BASE + 0x10000
RWX = Prot.READ | Prot.WRITE | Prot.EXEC
FETCH, WRITE_RO = 0x15, 0x7
HIDDEN_AT = BASE + 64
# add eax, 0x9090310f: hides rdtsc at +1, and is no instruction the VMM performs itself
ADD_HIDING_RDTSC = b"\x05\x0f\x31\x90\x90"
# mov eax, 0x90c3310f; ret: hides `rdtsc; ret` at +1
MOV_HIDING_RDTSC = b"\xb8\x0f\x31\xc3\x90\xc3"


@dataclass
class Regs:
    rip: int = 0
    rsp: int = STACK + 0x800
    rflags: int = 0x202
    rax: int = 0
    rcx: int = 0
    rdx: int = 0


def _space(code: bytes) -> AddressSpace:
    space = AddressSpace(Vm(16 << 20))
    space.map_fixed(BASE, 3 * PAGE_SIZE, RWX, "[anon]", eager=True)
    space.map_fixed(STACK, PAGE_SIZE, Prot.READ | Prot.WRITE, "[stack]", eager=True)
    space.vm.write(BASE, b"\x90" * PAGE_SIZE)  # nops: a decode that is sure of itself
    space.vm.write(HIDDEN_AT, code)
    return space


class Emulator:
    """Records what the policy asks to emulate and performs rdtsc/pause like nonvirt."""

    def __init__(self, regs: Regs) -> None:
        self.regs, self.kinds = regs, []

    def __call__(self, site: Site) -> GuestFault | SpinYield | None:
        self.kinds.append(site.kind)
        self.regs.rip = site.address + site.length
        return SpinYield(site.address) if site.kind is Kind.PAUSE else None


def _scanned(code: bytes) -> AddressSpace:
    space = _space(code)
    assert space.code.on_page_fault(HIDDEN_AT, FETCH, Regs(rip=HIDDEN_AT), Emulator(Regs()))
    return space


def _breakpoint(space: AddressSpace, regs: Regs, at: int, emulate: Emulator | None = None):
    """The CPU ran the int3 at `at`: #BP with rip after it."""
    regs.rip = at + 1
    return space.code.on_breakpoint(regs, emulate or Emulator(regs))


def test_a_hidden_pattern_fills_only_its_instruction_and_the_page_stays_code() -> None:
    space = _scanned(ADD_HIDING_RDTSC)
    code = space.code
    assert code.traps == {HIDDEN_AT: ADD_HIDING_RDTSC} and code.guarded == set()
    assert BASE in code.code and space.vm.query(BASE) == Prot.READ | Prot.EXEC
    assert space.vm.read(HIDDEN_AT - 1, 7) == b"\x90" + b"\xcc" * 5 + b"\x90"


def test_reaching_the_instruction_runs_it_alone_from_its_bytes_then_rearms() -> None:
    """The normal flow: #BP at the instruction's start, its bytes back, TF for one
    instruction, and at the #DB the int3 fill is back and TF is off."""
    space = _scanned(ADD_HIDING_RDTSC)
    regs = Regs()
    assert _breakpoint(space, regs, HIDDEN_AT) is True
    assert regs.rip == HIDDEN_AT and regs.rflags & TF
    assert space.vm.read(HIDDEN_AT, 5) == ADD_HIDING_RDTSC
    assert space.code.disarmed == [HIDDEN_AT]
    regs.rip = HIDDEN_AT + 5  # the CPU ran the add
    assert space.code.on_debug_trap(regs, Emulator(regs)) is True
    assert not regs.rflags & TF and space.code.disarmed is None
    assert space.vm.read(HIDDEN_AT, 5) == b"\xcc" * 5
    assert (space.code.trap_hits, space.code.trap_steps, space.code.steps) == (1, 1, 0)


def test_a_mov_immediate_is_performed_without_a_step() -> None:
    space = _scanned(MOV_HIDING_RDTSC)
    regs = Regs()
    assert _breakpoint(space, regs, HIDDEN_AT) is True
    assert regs.rax == 0x90C3310F and regs.rip == HIDDEN_AT + 5 and not regs.rflags & TF
    assert space.code.disarmed is None and space.code.trap_steps == 0


def test_a_jump_into_the_middle_emulates_the_hidden_instruction() -> None:
    """Entered at +1, the bytes are `rdtsc; ret`: rdtsc is emulated (never native), then
    the ret (still inside the trap) is performed from the stack."""
    space = _scanned(MOV_HIDING_RDTSC)
    regs = Regs()
    space.vm.write(regs.rsp, (BASE + 0x200).to_bytes(8, "little"))
    emulate = Emulator(regs)
    assert _breakpoint(space, regs, HIDDEN_AT + 1, emulate) is True
    assert emulate.kinds == [Kind.RDTSC]
    assert regs.rip == BASE + 0x200 and regs.rsp == STACK + 0x808 and not regs.rflags & TF


def test_a_jump_into_a_prefix_before_the_pattern_is_caught_too() -> None:
    """`48 0f c7 f0` (rdrand rax) hidden in a movabs: entering at the REX prefix traps."""
    space = _scanned(b"\x48\xb8\x48\x0f\xc7\xf0\xc3\x90\x90\x90")
    assert space.code.traps.keys() == {HIDDEN_AT}
    regs = Regs()
    emulate = Emulator(regs)
    space.vm.write(regs.rsp, (BASE + 0x200).to_bytes(8, "little"))
    assert _breakpoint(space, regs, HIDDEN_AT + 2, emulate) is True
    assert emulate.kinds == [Kind.RDRAND]


@pytest.mark.parametrize(("code", "entry", "why"), [
    (b"\xb8\x0f\x31\x0f\x05", 3, "syscall"),  # mov eax, imm hiding `syscall` at +3
    (b"\xb8\x0f\x31\x9d\x90", 3, "popfq"),
    (b"\xb8\x0f\x31\xcd\x80", 3, "int"),
    (b"\xb8\x0f\x31\xe6\xe0", 3, "out"),
    (b"\x48\xb8\x0f\x31\xc7\xf8\x00\x00\x00\x00", 4, "xbegin"),
    (b"\xb8\x0f\x31\x8e\xd0", 3, "mov"),  # mov ss, eax: the trap would come one late
])
def test_what_could_leave_before_the_trap_returns_is_refused(code: bytes, entry: int,
                                                               why: str) -> None:
    """Run alone from restored bytes, these could take rip elsewhere (a system call, an
    interrupt, the VMM's port) or switch TF off before the fill is back: the guest ends."""
    space = _scanned(code)
    regs = Regs()
    result = _breakpoint(space, regs, HIDDEN_AT + entry)
    assert isinstance(result, GuestFault), result
    assert why in result.reason and f"{HIDDEN_AT + entry:#x}" in result.reason
    assert space.vm.read(HIDDEN_AT, 5) == b"\xcc" * 5, "nothing was disarmed"


def test_an_int3_that_is_not_a_trap_is_not_ours() -> None:
    space = _scanned(ADD_HIDING_RDTSC)
    space.vm.write(BASE + 0x100, b"\xcc")  # the guest's own int3, outside every trap
    assert _breakpoint(space, Regs(), BASE + 0x100) is False
    assert space.code.trap_hits == 0


def test_a_store_into_the_page_during_the_step_drops_the_trap() -> None:
    """The stepped instruction writes its own page: the page becomes data (the one store
    under TF), the trap is gone, and the #DB leaves the original bytes in place."""
    space = _scanned(ADD_HIDING_RDTSC)
    regs = Regs()
    _breakpoint(space, regs, HIDDEN_AT)
    assert space.code.on_page_fault(BASE + 0x300, WRITE_RO, regs, Emulator(regs)) is True
    assert space.code.traps == {} and space.code.disarmed == []
    regs.rip = HIDDEN_AT + 5
    assert space.code.on_debug_trap(regs, Emulator(regs)) is True
    assert space.vm.read(HIDDEN_AT, 5) == ADD_HIDING_RDTSC and not regs.rflags & TF
    assert space.vm.query(BASE) == Prot.READ | Prot.WRITE


def test_writing_the_page_later_restores_the_bytes() -> None:
    space = _scanned(ADD_HIDING_RDTSC)
    assert space.write(BASE + 0x300, b"\x90")  # the VMM's copy_to_user (a read() into it)
    assert space.code.traps == {} and space.vm.read(HIDDEN_AT, 5) == ADD_HIDING_RDTSC


def test_a_pause_in_a_guarded_page_yields_and_the_check_goes_on() -> None:
    """Stepping emulates a pause (a SpinYield for the scheduler) and still checks the next
    instruction before the CPU may run it: the rdtsc hidden right after is emulated too."""
    space = _space(b"")
    unsure = BASE + PAGE_SIZE + 1  # unsure decode start: a hidden pattern guards the page
    space.vm.write(unsure, b"\xb8\x0f\x31\x90\x90" + b"\xf3\x90" + b"\x0f\x31" + b"\x90")
    regs = Regs(rip=unsure + 5)
    emulate = Emulator(regs)
    result = space.code.on_page_fault(unsure + 5, FETCH, regs, emulate)
    assert isinstance(result, SpinYield) and result.address == unsure + 5
    assert emulate.kinds == [Kind.PAUSE, Kind.RDTSC] and regs.rip == unsure + 9


def test_traps_and_a_pending_step_survive_a_state_round_trip() -> None:
    space = _scanned(ADD_HIDING_RDTSC)
    regs = Regs()
    _breakpoint(space, regs, HIDDEN_AT)
    state = space.code.to_state()
    validate(state, CODE_PAGES, "code_pages")
    assert state["traps"] == [(HIDDEN_AT, ADD_HIDING_RDTSC)] and state["disarmed"] == [HIDDEN_AT]
    other = AddressSpace(Vm(16 << 20))
    other.code.load_state(state)
    assert other.code.to_state() == state


@pytest.mark.parametrize(("edit", "message"), [
    ({"traps": [[HIDDEN_AT, b""]]}, "has an empty trap"),
    ({"traps": [[HIDDEN_AT, b"\x90" * 5], [HIDDEN_AT + 4, b"\x90"]]}, "overlapping the one"),
    ({"traps": [[(1 << 47) - 2, b"\x90" * 5]]}, "reaching past the user half"),
    ({"traps": [[HIDDEN_AT, b"\x90" * 65]]}, "more than 64"),
    ({"disarmed": [HIDDEN_AT + 1]}, "not traps each named once"),
])
def test_a_hostile_trap_table_is_refused(edit: dict, message: str) -> None:
    state = {**_scanned(ADD_HIDING_RDTSC).code.to_state(), **edit}
    with pytest.raises(SchemaError, match=message):
        validate(state, CODE_PAGES, "code_pages")


@pytest.mark.parametrize("code", [
    ADD_HIDING_RDTSC, MOV_HIDING_RDTSC,
    b"\x48\xb8\x48\x0f\xc7\xf0\xc3\x0f\xa2\x90",  # movabs hiding rdrand rax; ret; cpuid
    b"\x81\xc1\x0f\x01\xf9\xc3",  # add ecx, imm hiding rdtscp; ret
    b"\x8d\x80\x0f\x31\x0f\x05",  # lea eax, [rax+disp] hiding rdtsc; syscall
])
def test_no_entry_offset_runs_a_hidden_instruction_natively(code: bytes) -> None:
    """Whatever byte of a trapped instruction execution enters at, the VMM emulates what
    starts there, performs it, refuses it, or lets the CPU run one instruction that is
    neither non-virtualizable nor able to leave before the fill is back."""
    from chaosreplay.kernel.mm.code_pages import _NOT_ALONE
    from chaosreplay.vm.nonvirt import decode_instruction

    for entry in range(len(code)):
        space = _scanned(code)
        (start, original), = space.code.traps.items()
        if not start <= HIDDEN_AT + entry < start + len(original):
            continue
        regs = Regs()
        space.vm.write(regs.rsp, (BASE + 0x200).to_bytes(8, "little"))
        result = _breakpoint(space, regs, HIDDEN_AT + entry)
        if space.code.disarmed is None or isinstance(result, GuestFault):
            assert space.vm.read(start, len(original)) == b"\xcc" * len(original)
            continue
        mnemonic, _, _, site = decode_instruction(regs.rip, space.vm.read(regs.rip, 15))
        assert site is None and mnemonic.split()[-1] not in _NOT_ALONE, (entry, mnemonic)
        assert regs.rflags & TF  # (rip may have moved on: an emulated rdtsc, then a nop)


def test_a_trap_across_a_page_boundary_goes_when_either_page_is_written() -> None:
    """A program's trapped instruction may cross pages (load-time traps): writing the
    second page must put the whole instruction back and make the first page data too, or
    the first page would run the hidden bytes' instruction unfilled."""
    space = _space(b"")
    code = space.code
    for page in (BASE, BASE + PAGE_SIZE):
        code.code.add(page)
        space.vm.protect(page, PAGE_SIZE, Prot.READ | Prot.EXEC)
    start = BASE + PAGE_SIZE - 2
    space.vm.write(start, ADD_HIDING_RDTSC)
    code._arm(start, start + 5)
    assert space.vm.read(start, 5) == b"\xcc" * 5
    assert space.write(BASE + PAGE_SIZE + 0x100, b"\x90")
    assert code.traps == {} and space.vm.read(start, 5) == ADD_HIDING_RDTSC
    assert code.code == set() and space.vm.query(BASE) == Prot.READ | Prot.WRITE


def test_guarded_pages_take_the_traps_that_touch_them() -> None:
    """A trap reaching a page that is stepped anyway (or outside the scanned pages) is
    dropped and its pages stepped: one mechanism per page."""
    from chaosreplay.kernel.mm.code_pages import _guarded_pages
    from chaosreplay.vm.nonvirt import Stray

    def stray(address: int, trap: tuple[int, int] | None) -> Stray:
        return Stray(address, Kind.RDTSC, address - 1, "f", trap=trap)

    pages = {BASE, BASE + PAGE_SIZE, BASE + 2 * PAGE_SIZE}
    crossing = stray(BASE + PAGE_SIZE - 1, (BASE + PAGE_SIZE - 2, BASE + PAGE_SIZE + 3))
    assert _guarded_pages([crossing], pages) == (set(), [crossing.trap])
    untrappable = stray(BASE + PAGE_SIZE + 100, None)
    assert _guarded_pages([crossing, untrappable], pages) == ({BASE, BASE + PAGE_SIZE}, [])
    assert _guarded_pages([crossing], {BASE}) == ({BASE}, [])
    twice = [stray(BASE + 65, (BASE + 64, BASE + 69)), stray(BASE + 67, (BASE + 64, BASE + 69))]
    assert _guarded_pages(twice, pages) == (set(), [(BASE + 64, BASE + 69)])


def test_suspend_ends_a_pending_trap_step_and_stepping() -> None:
    """Before another task takes the vCPU: the trap's fill is back and TF off (the task
    meets the int3 again when it resumes), and guarded pages are non-executable again."""
    space = _scanned(ADD_HIDING_RDTSC)
    regs = Regs()
    _breakpoint(space, regs, HIDDEN_AT)
    space.code.suspend(regs)
    assert space.code.disarmed is None and not regs.rflags & TF
    assert space.vm.read(HIDDEN_AT, 5) == b"\xcc" * 5
    assert _breakpoint(space, regs, HIDDEN_AT) is True and space.code.disarmed == [HIDDEN_AT]

    guarded = _space(b"")
    unsure = BASE + PAGE_SIZE + 1
    guarded.vm.write(unsure, b"\xb8\x0f\x31\x90\x90")
    regs = Regs(rip=unsure + 20)
    guarded.code.on_page_fault(unsure + 20, FETCH, regs, Emulator(regs))
    assert guarded.code.stepping and regs.rflags & TF
    guarded.code.suspend(regs)
    assert not guarded.code.stepping and not regs.rflags & TF
    assert guarded.vm.query(BASE + PAGE_SIZE) == Prot.READ
