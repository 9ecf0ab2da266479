"""A guest's user address space: its mappings (VMAs), brk heap and mmap placement.

The C core owns frames and page tables; this module decides *where* things go and keeps
the Linux semantics (splitting on partial munmap/mprotect, MAP_FIXED replacing what was
there, top-down mmap placement). Large mappings are populated lazily on the first page
fault so reservations cost nothing; the kernel-side accessors populate before touching.
"""

from __future__ import annotations

import bisect
import errno
from dataclasses import dataclass

from chaosreplay.kernel.mm.code_pages import CodePages, data_prot
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, Vm, VmmError

STACK_TOP = 0x7FFF_FFFF_F000
STACK_LIMIT = 8 << 20
STACK_EAGER = 128 << 10          # mapped up front; the rest grows on page faults
MMAP_TOP = 0x7F00_0000_0000      # top-down mmap placement starts below the stack area
MMAP_BOTTOM = 0x1000_0000
EAGER_LIMIT = 256 << 10          # mappings up to this size are populated at mmap time
FAULT_AROUND = 16 * PAGE_SIZE    # pages populated per lazy fault


def page_align(value: int) -> int:
    """value rounded up to a page boundary."""
    return (value + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


@dataclass(slots=True)
class Vma:
    """One mapping: [start, end) with its protection and a name for display."""

    start: int
    end: int
    prot: int
    name: str


class AddressSpace:
    """The VMAs of one guest, kept sorted and non-overlapping."""

    def __init__(self, vm: Vm, memory_limit: int | None = None) -> None:
        self.vm = vm
        self._vmas: list[Vma] = []
        self.brk_start = 0
        self.brk = 0
        self.memory_limit = memory_limit  # bytes of anonymous memory; None = guest RAM
        self.code = CodePages(self)  # W^X: executable pages are scanned before they run

    # -- queries ---------------------------------------------------------------------------
    def vmas(self) -> list[Vma]:
        return list(self._vmas)

    def find(self, address: int) -> Vma | None:
        """The VMA containing address, if any."""
        i = bisect.bisect_right([v.start for v in self._vmas], address) - 1
        if i >= 0 and self._vmas[i].start <= address < self._vmas[i].end:
            return self._vmas[i]
        return None

    def mapped_bytes(self) -> int:
        return sum(v.end - v.start for v in self._vmas if v.name != "[stack]")

    def _overlaps(self, start: int, end: int) -> bool:
        return any(v.start < end and start < v.end for v in self._vmas)

    # -- changes ---------------------------------------------------------------------------
    def _insert(self, vma: Vma) -> None:
        bisect.insort(self._vmas, vma, key=lambda v: v.start)

    def _carve(self, start: int, end: int) -> list[Vma]:
        """Remove [start, end) from the VMA list, splitting edges; returns removed pieces."""
        removed: list[Vma] = []
        kept: list[Vma] = []
        for v in self._vmas:
            if v.end <= start or v.start >= end:
                kept.append(v)
                continue
            if v.start < start:
                kept.append(Vma(v.start, start, v.prot, v.name))
            if v.end > end:
                kept.append(Vma(end, v.end, v.prot, v.name))
            removed.append(Vma(max(v.start, start), min(v.end, end), v.prot, v.name))
        self._vmas = sorted(kept, key=lambda v: v.start)
        return removed

    def map_fixed(self, start: int, length: int, prot: int, name: str, eager: bool) -> None:
        """Map [start, start+length) with zero pages, replacing whatever was there."""
        end = start + length
        self.unmap(start, length)
        self._insert(Vma(start, end, prot, name))
        if eager and prot:
            self.vm.map(start, length, data_prot(prot))

    def unmap(self, start: int, length: int) -> None:
        self.code.forget(start, start + length)
        for piece in self._carve(start, start + length):
            self.vm.unmap(piece.start, piece.end - piece.start)

    def protect(self, start: int, length: int, prot: int) -> int:
        """mprotect: 0, or -ENOMEM when part of the range is not mapped."""
        end = start + length
        covered = sum(min(v.end, end) - max(v.start, start)
                      for v in self._vmas if v.start < end and start < v.end)
        if covered != length:
            return -errno.ENOMEM
        for piece in self._carve(start, end):
            self._insert(Vma(piece.start, piece.end, prot, piece.name))
        self.code.protect(start, length, prot)
        return 0

    def find_free(self, length: int, hint: int = 0) -> int | None:
        """A free range for length bytes: the hint if free, else the highest gap below MMAP_TOP."""
        if hint and hint + length <= MMAP_TOP and not self._overlaps(hint, hint + length):
            return hint
        top = MMAP_TOP
        for v in reversed(self._vmas):
            if v.start >= MMAP_TOP:
                continue
            if v.end <= top - length:
                return top - length if top - length >= MMAP_BOTTOM else None
            top = min(top, v.start)
        return top - length if top - length >= MMAP_BOTTOM else None

    def would_exceed_limit(self, extra: int) -> bool:
        return self.memory_limit is not None and self.mapped_bytes() + extra > self.memory_limit

    # -- brk -------------------------------------------------------------------------------
    def set_brk_start(self, address: int) -> None:
        self.brk_start = self.brk = page_align(address)

    def set_brk(self, requested: int) -> int:
        """brk(2): grow or shrink the heap; returns the (possibly unchanged) break."""
        if requested < self.brk_start:
            return self.brk
        old_end, new_end = page_align(self.brk), page_align(requested)
        if new_end > old_end:
            if self._overlaps(old_end, new_end) or self.would_exceed_limit(new_end - old_end):
                return self.brk
            try:
                self.map_fixed(old_end, new_end - old_end, Prot.READ | Prot.WRITE, "[heap]",
                               eager=True)
            except VmmError:
                self.unmap(old_end, new_end - old_end)
                return self.brk
        elif new_end < old_end:
            self.unmap(new_end, old_end - new_end)
        self.brk = requested
        return self.brk

    # -- lazy population -------------------------------------------------------------------
    def populate(self, address: int, write: bool) -> bool:
        """Map the pages around a faulting address if its VMA allows the access."""
        vma = self.find(address)
        if vma is None or not vma.prot or (write and not vma.prot & Prot.WRITE):
            return False
        page = address & ~(PAGE_SIZE - 1)
        if self.vm.query(page) is not None:
            return False  # already mapped: a real protection fault
        start = max(vma.start, page - FAULT_AROUND // 2)
        end = min(vma.end, page + FAULT_AROUND // 2)
        self.vm.map(start, end - start, data_prot(vma.prot))
        return True

    def _populate_range(self, address: int, length: int) -> bool:
        for page in range(address & ~(PAGE_SIZE - 1), address + length, PAGE_SIZE):
            if self.vm.query(page) is None:
                vma = self.find(page)
                if vma is None or not vma.prot:
                    return False
                self.vm.map(page, PAGE_SIZE, data_prot(vma.prot))
        return True

    def read(self, address: int, length: int) -> bytes | None:
        """Bytes at address as the kernel reads them, or None for a bad user pointer."""
        try:
            return self.vm.read(address, length)
        except VmmError:
            if not self._populate_range(address, length):
                return None
            return self.vm.read(address, length)

    def write(self, address: int, data: bytes) -> bool:
        """Store data at address as the kernel does (copy_to_user); False on a bad pointer."""
        self.code.before_kernel_write(address, len(data))
        try:
            self.vm.write(address, data)
        except VmmError:
            if not self._populate_range(address, len(data)):
                return False
            self.vm.write(address, data)
        return True

    def read_cstring(self, address: int, limit: int = 4096) -> bytes | None:
        try:
            return self.vm.read_cstring(address, limit)
        except VmmError:
            return None
