"""W^X for guest code: no page is writable and executable at once, and none runs unscanned.

The CPU here cannot trap rdtsc, cpuid, rdrand & co. (DESIGN §2), so the VMM must see every
byte before it can execute. The program's text is scanned at load (nonvirt.find_sites);
this module covers code the load never saw: RWX and mprotect(PROT_EXEC) mappings (JITs)
and text the program rewrites after mprotect(PROT_WRITE).

Every page of an executable VMA is in one of three states:

- data: mapped without EXEC (writable if the VMA is). Holds the guest's own bytes.
- code: scanned, sites patched to ud2 and registered, mapped read-only + EXEC. A stray (a
  pattern hidden inside another instruction) there is *trapped*: the decoded instructions
  it could begin in are filled with int3, so execution traps (#BP) when it reaches them,
  at their start or by a jump into their middle. The VMM then emulates what starts at
  rip if it is non-virtualizable (the hidden instruction) or a plain mov/call/jmp
  (vm/plain_insn.py), else puts the bytes back, runs that one instruction under TF and
  fills them again at its #DB.
- guarded: scanned, but holds a stray that cannot be trapped (the decode is unsure
  there, or the instruction straddles a page): mapped read-only without EXEC, and
  whenever execution enters it, it runs single-stepped (TF) with every instruction checked
  before it executes; leaving it makes it non-executable again.

An execute fault on a data page scans it; a write fault on a code or guarded page (where
the VMA allows writing) restores the original bytes of its sites and makes it data again.
A page's scan reads the first bytes of the next page (an instruction may straddle), so that
page is made read-only while its neighbour is code, and writing it sends the neighbour back
to data. Changing present entries goes through Vm.protect, which queues the CPL0 re-store.
"""

from __future__ import annotations

import bisect
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from chaosreplay.vm import nonvirt, plain_insn
from chaosreplay.vm.nonvirt import Emulated, GuestFault, Kind, Site, SpinYield
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, VmmError

if TYPE_CHECKING:
    from chaosreplay.kernel.mm.address_space import AddressSpace
    from chaosreplay.vm.elf import ProgramImage

TF = 1 << 8
_PF_PRESENT, _PF_WRITE, _PF_FETCH = 1, 2, 16
_DB_VECTOR = 1
# RFLAGS bits popf may change at CPL3 with IOPL 0: CF PF AF ZF SF TF DF OF AC ID.
_POPF_MASK = 0x254DD5
_MASK64 = (1 << 64) - 1
_CODE_PROT = Prot.READ | Prot.EXEC
# After these the next instruction runs before the single-step trap is taken.
_SHADOWING = ("syscall",)
# These may clear TF or jump with a frame of the guest's making: refused while stepping
# (capstone calls the 16-bit popfw "popf"; the 64-bit one, "popfq", is emulated).
_UNSTEPPABLE = ("popf", "popfw", "iretq", "iretd", "iret", "sysretq", "sysretd", "sysexit")
# What must not run natively while a trap's bytes are back: whatever could take rip
# elsewhere before the #DB (a system call, an interrupt, I/O to the VMM's ports, a
# transaction's abort, uiret) or delay or switch off the trap (popf, mov/pop ss). Only a
# jump into an instruction's middle finds these inside a trap; the guest is ended instead.
_NOT_ALONE = frozenset({*_UNSTEPPABLE, "popfq", "syscall", "sysenter", "int", "int1", "int3",
                        "into", "in", "out", "insb", "insw", "insd", "outsb", "outsw",
                        "outsd", "hlt", "xbegin", "xabort", "xend", "uiret", "(bad)"})
INT3 = 0xCC

Emulate = Callable[[Site], Emulated]
Handled = bool | GuestFault | SpinYield
"""A fault handler's answer: not ours (False), resume (True or SpinYield: resume, and a
pause was emulated on the way), or a fault to deliver."""


class _Registers(Protocol):
    rip: int
    rsp: int
    rflags: int


def data_prot(prot: int) -> int:
    """How a page of a VMA with protection `prot` is mapped until its code is scanned."""
    return (prot & ~Prot.EXEC) | Prot.READ if prot else 0


def _page(address: int) -> int:
    return address & ~(PAGE_SIZE - 1)


def _guarded_pages(strays: list[nonvirt.Stray],
                   pages: set[int]) -> tuple[set[int], list[tuple[int, int]]]:
    """(pages to single-step, trap ranges to fill) for the strays of scanned `pages`.

    A stray without a trap range guards its page. Overlapping ranges merge into one; a
    range touching a guarded page (stepping checks every instruction there anyway) or
    reaching outside `pages` guards its pages instead.
    """
    guarded = {_page(s.address) for s in strays if s.trap is None}
    merged: list[list[int]] = []
    for start, end in sorted(s.trap for s in strays if s.trap is not None):
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    traps = [(start, end) for start, end in merged]
    while True:
        spans = [(trap, set(range(_page(trap[0]), trap[1], PAGE_SIZE))) for trap in traps]
        bad = [(trap, span) for trap, span in spans if span & guarded or not span <= pages]
        if not bad:
            return guarded, traps
        for trap, span in bad:
            guarded.update(span & pages)
            traps.remove(trap)


class CodePages:
    """The W^X state of one address space: scanned pages, patched sites, single-stepping."""

    def __init__(self, space: AddressSpace) -> None:
        self.space = space
        self.vm = space.vm
        self.sites: dict[int, Site] = {}
        self.code: set[int] = set()
        self.guarded: set[int] = set()
        self.overhang: dict[int, int] = {}  # decoded page -> bytes its last insn reaches on
        self.decode_start: dict[int, int] = {}  # scanned page -> where its decode began
        self.blind_tail: set[int] = set()  # scanned while the next page had no frame
        self.stepping: set[int] = set()  # guarded pages mapped EXEC while single-stepping
        self.write_step: int | None = None  # page left writable + EXEC for one instruction
        self.traps: dict[int, bytes] = {}  # int3-filled range start -> the bytes it replaced
        self._trap_starts: list[int] = []  # the same starts, sorted (bisect)
        self.disarmed: list[int] | None = None  # traps whose bytes are back for one step
        # rip in a trap -> its instruction decoded (a trap hit in a hot loop decodes once)
        self._decoded: dict[int, tuple[bytes, str, str, int, Site | None]] = {}
        self.scans = 0
        self.steps = 0  # single-step traps of guarded pages and of stores into their page
        self.trap_hits = 0  # int3 traps taken at trapped instructions
        self.trap_steps = 0  # single-step traps of instructions run from a trap's bytes
        self.describe: Callable[[int], str] = lambda address: f"{address:#x}"

    # -- the program image -----------------------------------------------------------------
    def adopt_image(self, image: ProgramImage, sites: list[Site],
                    strays: list[nonvirt.Stray]) -> None:
        """Take over the loaded program's executable pages: scanned (and patched) at load."""
        self.sites.update((s.address, s) for s in sites)
        pages = {page for seg in image.executable_segments()
                 for page in range(_page(seg.vaddr), seg.end, PAGE_SIZE)}
        guarded, traps = _guarded_pages(strays, pages)
        for page in sorted(pages):
            if page in guarded:
                self.guarded.add(page)
                self.vm.protect(page, PAGE_SIZE, Prot.READ)
            else:
                self.code.add(page)
                self.vm.protect(page, PAGE_SIZE, _CODE_PROT)
        for start, end in traps:
            self._arm(start, end)

    # -- hooks of the address space --------------------------------------------------------
    def forget(self, start: int, end: int) -> None:
        """[start, end) is about to be unmapped or replaced: its scans and sites go with it."""
        self._invalidate(_page(start) - PAGE_SIZE)  # its scan read bytes of this range
        for page in sorted(p for p in self.code | self.guarded if start <= p < end):
            self._invalidate(page)
        self.stepping.difference_update([p for p in self.stepping if start <= p < end])

    def protect(self, start: int, length: int, prot: int) -> None:
        """mprotect of [start, start+length): scanned pages stay scanned while still EXEC.

        Called after the VMAs changed. A range made executable may hold bytes the page
        before it read as its tail while they were writable: that page is rescanned.
        """
        end = start + length
        scanned = sorted(p for p in self.code | self.guarded if start <= p < end)
        if prot & Prot.EXEC:
            self._invalidate(_page(start) - PAGE_SIZE)
        else:
            for page in scanned:
                self._invalidate(page)
            scanned = []
        self.space.protect_frames(start, end, data_prot(prot))
        for page in scanned:
            executable = page in self.code or page in self.stepping
            self.vm.protect(page, PAGE_SIZE, _CODE_PROT if executable else Prot.READ)
        for page in scanned:
            if self._executable_vma(page + PAGE_SIZE):
                self._guard_tail(page + PAGE_SIZE)

    def before_kernel_write(self, address: int, length: int) -> None:
        """The VMM is about to store into guest memory: scanned code there becomes data."""
        # On every copy_to_user, so only set lookups unless code is involved. The store
        # itself ignores page permissions: invalidating the scans is all that is needed.
        for page in range(_page(address), address + length, PAGE_SIZE):
            self._invalidate(page)
            previous = page - PAGE_SIZE
            if (previous in self.code or previous in self.guarded) and self._executable_vma(page):
                self._invalidate(previous)

    # -- faults ----------------------------------------------------------------------------
    def on_page_fault(self, address: int, error_code: int, regs: _Registers,
                      emulate: Emulate) -> Handled:
        """Handle a W^X fault: True when handled, False when not ours, or a fault to deliver."""
        vma = self.space.find(address)
        if vma is None or not vma.prot & Prot.EXEC:
            return False
        page = _page(address)
        if error_code & _PF_FETCH:
            if not error_code & _PF_PRESENT and not self.space.populate(address, False):
                return False
            if page in self.code or self.vm.query(page) is None:
                return False
            if page not in self.guarded:
                self._scan(page)
            if page in self.guarded:
                # An instruction straddling into this page from rip's page is checked too.
                return self._start_stepping({page, _page(regs.rip)}, regs, emulate)
            return True
        if error_code & _PF_WRITE and error_code & _PF_PRESENT and vma.prot & Prot.WRITE:
            prot = self.vm.query(page)
            if prot is not None and not prot & Prot.WRITE:
                self._make_writable(page)
                if page in (_page(regs.rip), _page(regs.rip + nonvirt._MAX_INSN - 1)):
                    # The store is fetched from the page it writes: it can never run with
                    # the page W xor X. Let exactly this instruction run with both (TF).
                    self.write_step = page
                    self.vm.protect(page, PAGE_SIZE, Prot.READ | Prot.WRITE | Prot.EXEC)
                    regs.rflags |= TF
                return True
        return False

    def on_debug_trap(self, regs: _Registers, emulate: Emulate) -> Handled:
        """A single-step trap: re-arm the trap or page that let one instruction run, then
        check the next instruction, or stop stepping when rip left the stepped pages."""
        ours = False
        if self.disarmed is not None:
            self.trap_steps += 1
            for start in self.disarmed:
                if start in self.traps:  # unless a store to its page dropped it meanwhile
                    self.vm.write(start, bytes([INT3]) * len(self.traps[start]))
            self.disarmed = None
            ours = True
        if self.write_step is not None:
            self.steps += 1
            page, self.write_step = self.write_step, None
            vma = self.space.find(page)
            if vma is not None and self.vm.query(page) is not None:
                self.vm.protect(page, PAGE_SIZE, data_prot(vma.prot))
            ours = True
        if self.stepping:
            self.steps += 1
            if _page(regs.rip) not in self.stepping:
                self._stop_stepping(regs)
        elif not ours:
            return False
        return self._run_checks(regs, emulate)

    def suspend(self, regs: _Registers) -> None:
        """The task on the vCPU is about to be switched out: end every one-instruction
        window now, since the next task shares the memory and page tables but not TF.

        A trap's bytes are filled again and the stepped pages made non-executable, the
        store's page data again, and TF cleared: the instruction has not run yet (rip is
        still at it, or a restartable fault of it), so when the task resumes it meets the
        int3, the non-executable page or the write fault again and the window reopens.
        """
        if self.disarmed is not None:
            for start in self.disarmed:
                if start in self.traps:
                    self.vm.write(start, bytes([INT3]) * len(self.traps[start]))
            self.disarmed = None
        if self.write_step is not None:
            page, self.write_step = self.write_step, None
            vma = self.space.find(page)
            if vma is not None and self.vm.query(page) is not None:
                self.vm.protect(page, PAGE_SIZE, data_prot(vma.prot))
        if self.stepping:
            self._stop_stepping(regs)
        regs.rflags &= ~TF & _MASK64

    def on_breakpoint(self, regs: _Registers, emulate: Emulate) -> Handled:
        """An int3 trap (#BP, rip after the int3): ours when it is a trapped instruction's."""
        if not self.traps:
            return False
        at = (regs.rip - 1) & _MASK64
        start = self._trap_at(at)
        if start is None or (self.disarmed is not None and start in self.disarmed):
            return False  # the guest's own int3 (a debugger's, an assert's): not ours
        if self._read(at, 1) != bytes([INT3]):
            return False  # `int 3` (cd 03) ends with 03, and a trap's bytes are all int3
        self.trap_hits += 1
        regs.rip = at
        return self._run_checks(regs, emulate)

    # -- scanning --------------------------------------------------------------------------
    def _read(self, page: int, length: int) -> bytes | None:
        try:
            return self.vm.read(page, length)
        except VmmError:
            return None

    def _executable_vma(self, page: int) -> bool:
        vma = self.space.find(page)
        return vma is not None and bool(vma.prot & Prot.EXEC)

    def _scan(self, page: int, neighbours: bool = True) -> None:
        """Scan a data page and patch it; it becomes code or guarded."""
        self.scans += 1
        data = self._read(page, PAGE_SIZE)
        if data is None:  # callers scan mapped pages only
            raise ValueError(f"scanning unmapped page {page:#x}")
        following = page + PAGE_SIZE
        tail = b""
        if self._executable_vma(following):
            tail = self._read(following, nonvirt._MAX_INSN - 1) or b""
            self._guard_tail(following)
        previous = page - PAGE_SIZE
        if self.overhang.get(previous) is not None:
            start, trusted = self.overhang[previous], True
        else:
            start, trusted = 0, not self._executable_vma(previous)
        result = nonvirt.scan_page(page, data + tail, start, trusted, self.describe(page))
        for site in result.sites:
            self.vm.write(site.address, nonvirt.patch_bytes(site))
            self.sites[site.address] = site
        if result.overhang is not None:
            self.overhang[page] = result.overhang
        self.decode_start[page] = start
        if tail:
            self.blind_tail.discard(page)
        else:
            self.blind_tail.add(page)
        guarded, traps = _guarded_pages(result.strays, {page})
        if guarded:
            self.guarded.add(page)
            self.vm.protect(page, PAGE_SIZE, Prot.READ)
        else:
            for start, end in traps:
                self._arm(start, end)
            self.code.add(page)
            self.vm.protect(page, PAGE_SIZE, _CODE_PROT)
        if not neighbours:
            return
        # The previous page was scanned without these bytes; the next page's decode began
        # where this page's last instruction was thought to end. Rescan either if stale.
        if previous in self.blind_tail and previous in self.code | self.guarded:
            self._invalidate(previous)
            self._scan(previous, neighbours=False)
        if (result.overhang is not None
                and self.decode_start.get(following, result.overhang) != result.overhang):
            self._invalidate(following)
            self._scan(following, neighbours=False)

    def _guard_tail(self, page: int) -> None:
        """A scanned neighbour read this page's first bytes: make writing it fault."""
        prot = self.vm.query(page)
        if prot is not None and prot & Prot.WRITE:
            self.vm.protect(page, PAGE_SIZE, Prot.READ)

    def _invalidate(self, page: int) -> None:
        """Put a scanned page's original bytes back and make it data again."""
        if page not in self.code and page not in self.guarded:
            return
        self.code.discard(page)
        self.guarded.discard(page)
        self.stepping.discard(page)
        self.overhang.pop(page, None)
        self.decode_start.pop(page, None)
        self.blind_tail.discard(page)
        touched = {page}
        for address in sorted(a for a in self.sites if page <= a < page + PAGE_SIZE
                              or a < page < a + self.sites[a].length):
            site = self.sites.pop(address)
            self.vm.write(site.address, site.original)
            touched.add(_page(site.address + site.length - 1))
            touched.add(_page(site.address))
        for start, original in self._traps_over(page, page + PAGE_SIZE):
            self._disarm_for_good(start)
            touched.update((_page(start), _page(start + len(original) - 1)))
        vma = self.space.find(page)
        self.vm.protect(page, PAGE_SIZE, data_prot(vma.prot) if vma is not None else 0)
        for other in sorted(touched - {page}):
            self._invalidate(other)

    def _make_writable(self, page: int) -> None:
        """A write to a page: it and the page whose scan read its first bytes become data."""
        self._invalidate(page)
        self._invalidate(page - PAGE_SIZE)
        vma = self.space.find(page)
        if vma is not None and vma.prot & Prot.EXEC and self.vm.query(page) is not None:
            self.vm.protect(page, PAGE_SIZE, data_prot(vma.prot))

    # -- single-stepping guarded pages -----------------------------------------------------
    def _start_stepping(self, pages: set[int], regs: _Registers,
                        emulate: Emulate) -> Handled:
        for page in sorted(pages - self.stepping):
            self.stepping.add(page)
            if page in self.guarded:
                self.vm.protect(page, PAGE_SIZE, _CODE_PROT)
        regs.rflags |= TF
        return self._run_checks(regs, emulate)

    def _stop_stepping(self, regs: _Registers) -> None:
        for page in sorted(self.stepping):
            if page in self.guarded:
                self.vm.protect(page, PAGE_SIZE, Prot.READ)
        self.stepping.clear()
        regs.rflags &= ~TF & _MASK64

    def _run_checks(self, regs: _Registers, emulate: Emulate) -> Handled:
        """Before the CPU resumes: emulate every non-virtualizable instruction at rip while
        rip is in a stepped page or an armed trap, refuse what could escape the check, and
        leave TF set only while a page, a trap or a store needs the next #DB."""
        yielded: SpinYield | None = None
        while True:
            rip = regs.rip
            trap = self._trap_at(rip) if self.traps else None
            if trap is not None and (self.disarmed is None or trap not in self.disarmed):
                outcome = self._at_trap(rip, regs, emulate)
                if isinstance(outcome, GuestFault):
                    return outcome
                if outcome is None:
                    return yielded or True  # one instruction runs alone, under TF
                yielded = outcome if isinstance(outcome, SpinYield) else yielded
                continue
            if _page(rip) not in self.stepping:
                break
            outcome = self._check(regs, emulate)
            if isinstance(outcome, GuestFault):
                return outcome
            if outcome is None:
                return yielded or True  # the CPU runs it, under TF
            yielded = outcome if isinstance(outcome, SpinYield) else yielded
        if self.stepping:
            self._stop_stepping(regs)
        elif self.write_step is None and self.disarmed is None:
            regs.rflags &= ~TF & _MASK64
        return yielded or True

    def _at_trap(self, rip: int, regs: _Registers, emulate: Emulate) -> Emulated | bool:
        """rip is in an armed trap: emulate the instruction starting there (True, or its
        outcome) or run it alone from the original bytes under TF (None)."""
        decoded = self._decoded.get(rip)
        if decoded is None:
            code = self._original_code(rip)
            decoded = (code, *nonvirt.decode_instruction(rip, code))
            trap = self._trap_at(rip)
            assert trap is not None
            if rip + decoded[3] <= trap + len(self.traps[trap]):  # its bytes cannot change
                self._decoded[rip] = decoded
        code, mnemonic, operands, size, site = decoded
        if site is not None:  # the hidden instruction itself (a jump into the middle)
            return emulate(site) or True
        if (not size or mnemonic.split()[-1] in _NOT_ALONE
                or (mnemonic in ("mov", "pop") and operands.startswith("ss"))):
            return self._refuse(rip, f"{mnemonic} inside a trapped instruction cannot run "
                                     "alone safely")
        if plain_insn.perform(rip, code, mnemonic, operands, size, regs, self.space.read,
                              self.space.write):
            return True  # a mov imm, a relative call/jmp, a ret: one exit, no step
        self.disarmed = [start for start, _ in self._traps_over(rip, rip + size)]
        for start in self.disarmed:
            self.vm.write(start, self.traps[start])
        regs.rflags |= TF
        return None

    def _check(self, regs: _Registers, emulate: Emulate) -> Emulated | bool:
        """rip is in a stepped page: emulate a non-virtualizable instruction there (True, or
        its outcome), refuse one that could escape stepping, else None: the CPU runs it."""
        rip = regs.rip
        code = self._fetch(rip)
        mnemonic, operands, size, site = nonvirt.decode_instruction(rip, code)
        patched = self.sites.get(rip)
        if patched is not None and code[: patched.length] == nonvirt.patch_bytes(patched):
            site = patched
        if site is not None:
            return emulate(site) or True
        if mnemonic == "popfq":
            raw = self.space.read(regs.rsp, 8)
            if raw is None:
                return None  # the CPU's own popf takes the page fault
            value = int.from_bytes(raw, "little")
            regs.rflags = (regs.rflags & ~_POPF_MASK) | (value & _POPF_MASK) | TF
            regs.rsp = (regs.rsp + 8) & _MASK64
            regs.rip = (rip + size) & _MASK64
            return True
        if mnemonic in _UNSTEPPABLE or (mnemonic == "mov" and operands.startswith("ss")):
            return self._refuse(rip, f"{mnemonic} cannot be single-stepped safely")
        if mnemonic in _SHADOWING and size:
            after = nonvirt.decode_instruction(rip + size, self._fetch(rip + size))[3]
            if after is not None:
                return self._refuse(rip + size, f"{after.text} right after {mnemonic}")
        return None

    # -- trapped instructions ----------------------------------------------------------------
    def _arm(self, start: int, end: int) -> None:
        """Fill [start, end) with int3, keeping the bytes it held."""
        original = self._read(start, end - start)
        if original is None:  # callers trap mapped code only
            raise ValueError(f"trapping unmapped bytes at {start:#x}")
        self.traps[start] = original
        bisect.insort(self._trap_starts, start)
        self.vm.write(start, bytes([INT3]) * len(original))

    def _disarm_for_good(self, start: int) -> None:
        """Put a trap's bytes back and forget it (its page stops being code)."""
        original = self.traps.pop(start)
        self._trap_starts.remove(start)
        self._decoded.clear()
        self.vm.write(start, original)
        if self.disarmed is not None and start in self.disarmed:
            self.disarmed.remove(start)

    def _trap_at(self, address: int) -> int | None:
        """Start of the trap whose bytes include address, or None."""
        index = bisect.bisect_right(self._trap_starts, address) - 1
        if index < 0:
            return None
        start = self._trap_starts[index]
        return start if address < start + len(self.traps[start]) else None

    def _traps_over(self, lo: int, hi: int) -> list[tuple[int, bytes]]:
        """(start, original bytes) of every trap overlapping [lo, hi), in address order."""
        index = max(0, bisect.bisect_right(self._trap_starts, lo) - 1)
        found = []
        for start in self._trap_starts[index:]:
            if start >= hi:
                break
            if start + len(self.traps[start]) > lo:
                found.append((start, self.traps[start]))
        return found

    def _original_code(self, address: int) -> bytes:
        """The instruction bytes at address as they are without the traps' int3 fill."""
        code = bytearray(self._fetch(address))
        for start, original in self._traps_over(address, address + len(code)):
            for offset, byte in enumerate(original):
                if 0 <= start + offset - address < len(code):
                    code[start + offset - address] = byte
        return bytes(code)

    def _fetch(self, address: int) -> bytes:
        """Up to 15 instruction bytes at address, fewer where the mapping ends."""
        first = PAGE_SIZE - (address & (PAGE_SIZE - 1))
        head = self._read(address, min(first, nonvirt._MAX_INSN)) or b""
        if len(head) < nonvirt._MAX_INSN and len(head) == first:
            head += self._read(address + first, nonvirt._MAX_INSN - first) or b""
        return head

    def _refuse(self, address: int, why: str) -> GuestFault:
        return GuestFault(_DB_VECTOR, signal.SIGKILL,
                          f"non-virtualizable code at {address:#x} ({self.describe(address)}) "
                          f"cannot run deterministically: {why}")

    # -- checkpoints -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """The registry and page states as plain data, in a host-independent order."""
        return {
            "sites": [[s.address, s.length, s.kind.value, s.original, s.symbol, s.register,
                       s.width] for s in sorted(self.sites.values(), key=lambda s: s.address)],
            "code": sorted(self.code), "guarded": sorted(self.guarded),
            "overhang": sorted(self.overhang.items()),
            "decode_start": sorted(self.decode_start.items()),
            "blind_tail": sorted(self.blind_tail), "stepping": sorted(self.stepping),
            "write_step": self.write_step,
            "traps": sorted(self.traps.items()), "disarmed": self.disarmed,
            "scans": self.scans, "steps": self.steps,
            "trap_hits": self.trap_hits, "trap_steps": self.trap_steps,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Adopt to_state() output (the page tables come back with the VM snapshot)."""
        sites = {}
        for address, length, kind, original, symbol, register, width in state["sites"]:
            if not isinstance(original, bytes) or len(original) != length:
                raise ValueError(f"code_pages: site {address!r} has bad bytes")
            sites[int(address)] = Site(int(address), int(length), Kind(kind), original,
                                       str(symbol), register, int(width))
        self.sites.clear()
        self.sites.update(sites)
        self.code = {int(p) for p in state["code"]}
        self.guarded = {int(p) for p in state["guarded"]}
        self.overhang = {int(p): int(n) for p, n in state["overhang"]}
        self.decode_start = {int(p): int(n) for p, n in state["decode_start"]}
        self.blind_tail = {int(p) for p in state["blind_tail"]}
        self.stepping = {int(p) for p in state["stepping"]}
        self.write_step = None if state["write_step"] is None else int(state["write_step"])
        traps = {}
        for start, original in state["traps"]:
            if not isinstance(original, bytes) or not original:
                raise ValueError(f"code_pages: trap {start!r} has bad bytes")
            traps[int(start)] = original
        self.traps = traps
        self._trap_starts = sorted(traps)
        self._decoded.clear()
        disarmed = state["disarmed"]
        self.disarmed = None if disarmed is None else [int(a) for a in disarmed]
        self.scans = int(state["scans"])
        self.steps = int(state["steps"])
        self.trap_hits = int(state["trap_hits"])
        self.trap_steps = int(state["trap_steps"])
