"""A guest's user address space: its mappings (VMAs), brk heap and mmap placement.

The C core owns frames and page tables; this module decides *where* things go and keeps
the Linux semantics (splitting on partial munmap/mprotect, MAP_FIXED replacing what was
there, top-down mmap placement). Large mappings are populated lazily on the first page
fault so reservations cost nothing; the kernel-side accessors populate before touching.

Limits are Linux's on x86-64 (docs/guests.md, "Memory"): user mappings live in
[MMAP_MIN_ADDR, TASK_SIZE), at most MAX_MAP_COUNT of them, and the kernel's own copies
honour each mapping's protection (copy_to_user into read-only memory is EFAULT). Guest RAM
is overcommitted as `vm.overcommit_memory = 0` does; a page that cannot get a frame when it
is first touched raises GuestOutOfMemory, which the process turns into an OOM kill.
"""

from __future__ import annotations

import bisect
import errno
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaosreplay.kernel.mm.code_pages import CodePages, data_prot
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, Vm, VmmError

TASK_SIZE = 0x7FFF_FFFF_F000     # x86-64 4-level: the user range ends one guard page below 2^47
MMAP_MIN_ADDR = 0x10000          # vm.mmap_min_addr: nothing may be mapped below it
MAX_MAP_COUNT = 65530            # vm.max_map_count: mmap/mprotect/munmap fail with ENOMEM past it
CHUNK_SHIFT = 21                 # 2 MiB, one page table's reach: the unit of `framed`
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


class GuestOutOfMemory(Exception):
    """A page the guest touched cannot get a frame: guest RAM is exhausted (an OOM kill)."""


def user_range_ok(start: int, length: int) -> bool:
    """[start, start+length) lies within the user range [0, TASK_SIZE)."""
    return start >= 0 and length >= 0 and start + length <= TASK_SIZE


@dataclass(slots=True)
class Vma:
    """One mapping: [start, end) with its protection, a name for display and, for a file
    mapping, the file offset of start (None for anonymous memory and the program), the open
    description it maps (held while mapped, as Linux's vm_file) and whether it is MAP_SHARED
    (its pages are the file's page cache: kernel/mm/page_cache.py)."""

    start: int
    end: int
    prot: int
    name: str
    offset: int | None = None
    file: Any = None
    shared: bool = False

    def piece(self, start: int, end: int, prot: int | None = None) -> Vma:
        """The part [start, end) of this mapping (its file offset moved along)."""
        offset = None if self.offset is None else self.offset + start - self.start
        return Vma(start, end, self.prot if prot is None else prot, self.name, offset,
                   self.file, self.shared)

    def continues(self, before: Vma) -> bool:
        """Whether this mapping could be one with the one just before it (Linux merges)."""
        if before.end != self.start or (before.prot, before.name) != (self.prot, self.name):
            return False
        if before.file is not self.file or before.shared != self.shared:
            return False
        if before.offset is None or self.offset is None:
            return before.offset is self.offset
        return before.offset + (before.end - before.start) == self.offset

    def saved(self, index: Callable[[Any], int] | None = None) -> list[Any]:
        """As the kernel state holds it: the offset only for file mappings, then (with
        index, which numbers descriptions) the mapped description and the shared flag."""
        row: list[Any] = [self.start, self.end, self.prot, self.name]
        if self.offset is None:
            return row
        if self.file is None or index is None:
            return [*row, self.offset]
        return [*row, self.offset, index(self.file), int(self.shared)]


class AddressSpace:
    """The VMAs of one guest, kept sorted and non-overlapping."""

    def __init__(self, vm: Vm, memory_limit: int | None = None) -> None:
        self.vm = vm
        self._vmas: list[Vma] = []
        self.brk_start = 0
        self.brk = 0
        self.memory_limit = memory_limit  # bytes of anonymous memory; None = guest RAM
        # Called when a kernel copy runs out of guest RAM (the process installs its OOM
        # kill); without it GuestOutOfMemory propagates.
        self.oom_kill: Callable[[str], None] | None = None
        # 2 MiB chunks that may hold pages with frames (None: unknown, assume all). munmap
        # and mprotect visit only these, so a huge reservation costs no page-table walk of
        # its whole length (the C core walks page by page: ~7 s per TiB).
        self.framed: set[int] | None = set()
        self.code = CodePages(self)  # W^X: executable pages are scanned before they run
        # Descriptions the mappings hold (by id), and what drops a hold (the process's
        # close of a description: release once nothing else refers to it).
        self.held: dict[int, Any] = {}
        self.shares = False  # whether a mapping is MAP_SHARED of a file (kept by sweep_holds)
        self.drop_hold: Callable[[Any], None] | None = None

    def fork(self, vm: Vm) -> AddressSpace:
        """This space's twin over vm, a clone of this space's VM (fork): the same
        mappings, break and code-page state; the page tables came with the clone."""
        twin = AddressSpace(vm, self.memory_limit)
        twin._vmas = [v.piece(v.start, v.end) for v in self._vmas]
        twin.brk_start, twin.brk = self.brk_start, self.brk
        twin.framed = None if self.framed is None else set(self.framed)
        twin.code.load_state(self.code.to_state())
        twin.code.describe = self.code.describe
        twin.sweep_holds()
        return twin

    # -- mapped files ----------------------------------------------------------------------
    def mapped_files(self) -> list[Any]:
        """The descriptions this space's file mappings hold, in address order, once each."""
        seen: dict[int, Any] = {}
        for v in self._vmas:
            if v.file is not None:
                seen.setdefault(id(v.file), v.file)
        return list(seen.values())

    def has_shared_files(self) -> bool:
        return self.shares

    def sweep_holds(self) -> None:
        """Take a hold on newly mapped descriptions and drop those no mapping names now."""
        now = {id(d): d for d in self.mapped_files()}
        for key, d in now.items():
            if key not in self.held:
                d.refs += 1
        gone = [d for key, d in self.held.items() if key not in now]
        self.held = now
        self.shares = any(v.shared for v in self._vmas)
        for d in gone:
            if self.drop_hold is not None:
                self.drop_hold(d)
            else:
                d.refs -= 1

    def adopt_files(self, descriptions: list[Any], where: str) -> None:
        """After a checkpoint's descriptions are loaded: mappings that name one by index
        get it (and hold it); a shared one must name a file that can be shared."""
        from chaosreplay.kernel.mm.page_cache import shareable
        from chaosreplay.recording.schema import SchemaError

        for v in self._vmas:
            if v.file is None:
                continue
            if not 0 <= v.file < len(descriptions):
                raise SchemaError(f"part {where}: the mapping at {v.start:#x} names "
                                  f"description {v.file} of {len(descriptions)}")
            v.file = descriptions[v.file]
            if v.shared and not shareable(v.file):
                raise SchemaError(f"part {where}: the shared mapping at {v.start:#x} maps a "
                                  f"{v.file.kind} description, which cannot be shared")
        self.sweep_holds()

    def release_holds(self) -> None:
        """Drop every hold (the space is going away: exit or exec)."""
        self._vmas = [v for v in self._vmas if v.file is None]
        self.sweep_holds()

    # -- queries ---------------------------------------------------------------------------
    def vmas(self) -> list[Vma]:
        return list(self._vmas)

    def find(self, address: int) -> Vma | None:
        """The VMA containing address, if any."""
        i = bisect.bisect_right(self._vmas, address, key=lambda v: v.start) - 1
        if i >= 0 and self._vmas[i].start <= address < self._vmas[i].end:
            return self._vmas[i]
        return None

    def accessible(self, address: int, length: int, write: bool) -> bool:
        """Whether every byte of the range is mapped with the access (read, or write)."""
        if length <= 0:
            return length == 0
        if not user_range_ok(address, length):
            return False
        end = address + length
        i = bisect.bisect_right(self._vmas, address, key=lambda v: v.start) - 1
        position = address
        while position < end:
            if i < 0 or i >= len(self._vmas):
                return False
            vma = self._vmas[i]
            if not vma.start <= position < vma.end or not vma.prot:
                return False
            if write and not vma.prot & Prot.WRITE:
                return False
            position = vma.end
            i += 1
        return True

    def mapped_bytes(self) -> int:
        return sum(v.end - v.start for v in self._vmas if v.name != "[stack]")

    def _span(self, start: int, end: int) -> tuple[int, int]:
        """Indices [i, j) of the VMAs that overlap [start, end) (O(log n))."""
        vmas = self._vmas
        i = bisect.bisect_right(vmas, start, key=lambda v: v.start) - 1
        if i < 0 or vmas[i].end <= start:
            i += 1
        j = bisect.bisect_left(vmas, end, lo=i, key=lambda v: v.start)
        return i, j

    def _overlaps(self, start: int, end: int) -> bool:
        i, j = self._span(start, end)
        return i < j

    # -- changes ---------------------------------------------------------------------------
    def _replace(self, start: int, end: int, prot: int | None, name: str = "",
                 offset: int | None = None, file: Any = None,
                 shared: bool = False) -> list[Vma] | None:
        """Make [start, end) unmapped (prot None), a new mapping (name given) or the same
        mappings with a new protection (name ""). Neighbours with equal protection and name
        are merged, as Linux merges them. Returns the pieces that were there before, or
        None (and changes nothing) when the result would exceed MAX_MAP_COUNT."""
        vmas = self._vmas
        i, j = self._span(start, end)
        old = vmas[i:j]
        removed = [v.piece(max(v.start, start), min(v.end, end)) for v in old]
        middle: list[Vma] = []
        if old and old[0].start < start:
            middle.append(old[0].piece(old[0].start, start))
        if prot is not None:
            middle += [Vma(start, end, prot, name, offset, file, shared)] if name else [
                v.piece(v.start, v.end, prot) for v in removed]
        if old and old[-1].end > end:
            middle.append(old[-1].piece(end, old[-1].end))
        lo, hi = max(i - 1, 0), min(j + 1, len(vmas))
        window = vmas[lo:i] + middle + vmas[j:hi]
        merged: list[Vma] = []
        for v in window:
            if merged and v.continues(merged[-1]):
                merged[-1] = Vma(merged[-1].start, v.end, v.prot, v.name, merged[-1].offset,
                                 v.file, v.shared)
            else:
                merged.append(v)
        if len(vmas) - (hi - lo) + len(merged) > MAX_MAP_COUNT:
            return None
        vmas[lo:hi] = merged
        return removed

    def map_fixed(self, start: int, length: int, prot: int, name: str, eager: bool,
                  offset: int | None = None, file: Any = None, shared: bool = False) -> bool:
        """Map [start, start+length) with zero pages, replacing whatever was there (offset:
        where in its file a file mapping starts, file: the description it maps); False when
        that would exceed MAX_MAP_COUNT (nothing changes then)."""
        removed = self._replace(start, start + length, prot, name, offset, file, shared)
        if removed is None:
            return False
        if file is not None or any(piece.file is not None for piece in removed):
            self.sweep_holds()  # only file mappings change what is held
        self.code.forget(start, start + length)
        for piece in removed:
            self._unmap_frames(piece.start, piece.end)
        if eager and prot:
            self._mark(start, length)
            try:
                self.vm.map(start, length, data_prot(prot))
            except VmmError as exc:
                if exc.errno != errno.ENOMEM:
                    raise
                # Overcommit: the mapping stands; its pages get frames when first touched.
        return True

    def unmap(self, start: int, length: int) -> bool:
        """munmap: False when splitting a mapping would exceed MAX_MAP_COUNT."""
        if not self._overlaps(start, start + length):
            return True
        removed = self._replace(start, start + length, None)
        if removed is None:
            return False
        if any(piece.file is not None for piece in removed):
            self.sweep_holds()
        self.code.forget(start, start + length)
        for piece in removed:
            self._unmap_frames(piece.start, piece.end)
        return True

    def protect(self, start: int, length: int, prot: int) -> int:
        """mprotect: 0, or -ENOMEM when part of the range is not mapped or the change
        would split mappings past MAX_MAP_COUNT."""
        end = start + length
        i, j = self._span(start, end)
        covered = sum(min(v.end, end) - max(v.start, start) for v in self._vmas[i:j])
        if covered != length or self._replace(start, end, prot) is None:
            return -errno.ENOMEM
        self.code.protect(start, length, prot)
        return 0

    def protect_frames(self, start: int, end: int, prot: int) -> None:
        """Set the page-table protection of [start, end) where pages may have frames."""
        for a, b in self._framed_runs(start, end):
            self.vm.protect(a, b - a, prot)

    # -- where frames may be ---------------------------------------------------------------
    def _mark(self, start: int, length: int) -> None:
        if self.framed is not None and length > 0:
            last = (start + length - 1) >> CHUNK_SHIFT
            self.framed.update(range(start >> CHUNK_SHIFT, last + 1))

    def _framed_runs(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) that lie in chunks that may hold frames."""
        if self.framed is None or start >= end:
            return [(start, end)] if start < end else []
        first, last = start >> CHUNK_SHIFT, (end - 1) >> CHUNK_SHIFT
        if last - first < len(self.framed):
            chunks = [c for c in range(first, last + 1) if c in self.framed]
        else:
            chunks = sorted(c for c in self.framed if first <= c <= last)
        runs: list[tuple[int, int]] = []
        for c in chunks:
            a, b = max(start, c << CHUNK_SHIFT), min(end, (c + 1) << CHUNK_SHIFT)
            if runs and runs[-1][1] == a:
                runs[-1] = (runs[-1][0], b)
            else:
                runs.append((a, b))
        return runs

    def framed_pieces(self, start: int, end: int) -> list[tuple[int, int]]:
        """The parts of [start, end) that may hold frames, cut at 2 MiB chunks (so a caller
        reading one piece at a time never reads more than a chunk)."""
        pieces: list[tuple[int, int]] = []
        for a, b in self._framed_runs(start, end):
            while a < b:
                cut = min(b, ((a >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT)
                pieces.append((a, cut))
                a = cut
        return pieces

    def _unmap_frames(self, start: int, end: int) -> None:
        """Free the frames of [start, end) and forget chunks left without any."""
        for a, b in self._framed_runs(start, end):
            self.vm.unmap(a, b - a)
            if self.framed is None:
                continue
            for c in range(a >> CHUNK_SHIFT, ((b - 1) >> CHUNK_SHIFT) + 1):
                lo, hi = c << CHUNK_SHIFT, (c + 1) << CHUNK_SHIFT
                if (a <= lo and hi <= b) or not self.vm.count_mapped(lo, hi - lo):
                    self.framed.discard(c)

    def find_free(self, length: int, hint: int = 0) -> int | None:
        """A free range for length bytes: the hint if usable, else the highest gap below
        MMAP_TOP (a hint below MMAP_MIN_ADDR or past TASK_SIZE is ignored, as on Linux)."""
        if hint >= MMAP_MIN_ADDR and user_range_ok(hint, length) and not self._overlaps(
                hint, hint + length):
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

    def overcommit_refuses(self, length: int) -> bool:
        """vm.overcommit_memory = 0 (the heuristic): one request larger than RAM (+ swap,
        of which a node has none) fails; everything else is granted and paid on touch."""
        return length > self.vm.mem_size

    # -- brk -------------------------------------------------------------------------------
    def set_brk_start(self, address: int) -> None:
        self.brk_start = self.brk = page_align(address)

    def set_brk(self, requested: int) -> int:
        """brk(2): grow or shrink the heap; returns the (possibly unchanged) break."""
        if requested < self.brk_start or requested > TASK_SIZE:
            return self.brk
        old_end, new_end = page_align(self.brk), page_align(requested)
        if new_end > old_end:
            grow = new_end - old_end
            if self._overlaps(old_end, new_end) or self.would_exceed_limit(grow) \
                    or self.overcommit_refuses(grow):
                return self.brk
            if not self.map_fixed(old_end, grow, Prot.READ | Prot.WRITE, "[heap]",
                                  eager=grow <= EAGER_LIMIT):
                return self.brk
        elif new_end < old_end and not self.unmap(new_end, old_end - new_end):
            return self.brk
        self.brk = requested
        return self.brk

    # -- lazy population -------------------------------------------------------------------
    def _map_frames(self, start: int, length: int, prot: int) -> None:
        """Give pages frames; guest RAM running out is an OOM kill, not an error."""
        self._mark(start, length)
        try:
            self.vm.map(start, length, prot)
        except VmmError as exc:
            if exc.errno == errno.ENOMEM:
                raise GuestOutOfMemory(f"out of guest memory: {self.vm.mem_size >> 20} MiB") \
                    from None
            raise

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
        try:
            self._map_frames(start, end - start, data_prot(vma.prot))
        except GuestOutOfMemory:
            # Fault-around is an optimisation: only the faulting page itself must fit.
            if self.vm.query(page) is None:
                self._map_frames(page, PAGE_SIZE, data_prot(vma.prot))
        return True

    def _populate_range(self, address: int, length: int) -> bool:
        """Give every page of an accessible range a frame (callers checked access); False
        when guest RAM ran out and the OOM kill took the process."""
        try:
            for page in range(address & ~(PAGE_SIZE - 1), address + length, PAGE_SIZE):
                if self.vm.query(page) is None:
                    vma = self.find(page)
                    if vma is None or not vma.prot:
                        raise RuntimeError(f"populating inaccessible page {page:#x}")
                    self._map_frames(page, PAGE_SIZE, data_prot(vma.prot))
        except GuestOutOfMemory as exc:
            if self.oom_kill is None:
                raise
            self.oom_kill(str(exc))
            return False
        return True

    def read(self, address: int, length: int) -> bytes | None:
        """Bytes at address as the kernel reads them (copy_from_user), or None for a bad
        user pointer: unmapped, PROT_NONE, or outside the user range."""
        if not self.accessible(address, length, write=False):
            return None
        try:
            return self.vm.read(address, length)
        except VmmError:
            if not self._populate_range(address, length):
                return None
            return self.vm.read(address, length)

    def write(self, address: int, data: bytes) -> bool:
        """Store data at address as the kernel does (copy_to_user); False on a bad pointer,
        including memory the guest may not write (read-only text): Linux's EFAULT."""
        if not self.accessible(address, len(data), write=True):
            return False
        return self.fill(address, data)

    def fill(self, address: int, data: bytes) -> bool:
        """Store data into mapped memory whatever its protection (write's store once access
        is checked; a file mapping's first contents); False when guest RAM ran out and the
        OOM kill took the process."""
        self.code.before_kernel_write(address, len(data))
        try:
            self.vm.write(address, data)
        except VmmError:
            if not self._populate_range(address, len(data)):
                return False
            self.vm.write(address, data)
        return True

    def read_cstring(self, address: int, limit: int = 4096) -> bytes | None:
        """The NUL-terminated string at address (at most limit bytes), or None for a bad
        pointer; the string may end in a lazily mapped page not touched yet."""
        try:
            return self.vm.read_cstring(address, limit)
        except VmmError:
            pass
        readable = 0
        while readable < limit:
            page_end = ((address + readable) | (PAGE_SIZE - 1)) + 1
            step = min(page_end - (address + readable), limit - readable)
            if not self.accessible(address + readable, step, write=False):
                break
            readable += step
        if readable == 0:
            return None
        if not self._populate_range(address, readable):
            return None
        try:
            text = self.vm.read_cstring(address, readable)
        except VmmError:
            return None
        # Running into an inaccessible page before the NUL is EFAULT, as strncpy_from_user.
        return None if len(text) == readable < limit else text
