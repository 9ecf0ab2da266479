"""MAP_SHARED file mappings kept coherent with the file, as Linux's page cache keeps them.

The file's bytes (the disk's current, not yet durable content, or a memfd's) are the
truth; every shared mapping of a file holds a copy of its range in guest frames. The guest
stores into those frames without an exit, so the copies are synchronised at every point
where another party could observe a difference:

- before a system call of a process with shared file mappings (`flush`): pages that differ
  from the file are written into it, byte by byte where they differ, so two mappings that
  stored into different bytes of one page both win (where both stored into one byte, the
  mapping at the higher address wins: a fixed, documented order);
- after the call, when it changed a mapped file (`refresh_changed`), and after every flush
  that wrote something: every shared mapping of that file in every process of the node is
  made equal to the file again (zeros past its end);
- when a process leaves the vCPU to another process of the node (`flush` again), so a fork
  child's MAP_SHARED mapping of a file sees the parent's stores at its next call.

So between two system calls a process's stores are seen by its own mapping at once, and by
another mapping of the same file (in this process or another) at the next system call or
process switch: Linux shows them at once (one frame). Stores reach the file's page cache,
never its durable state: only fsync, fdatasync and msync(MS_SYNC) make them durable, so a
crash loses what was not synced, as the disk's model says.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.mm.address_space import CHUNK_SHIFT, Vma, page_align
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import PAGE_SIZE, VmmError

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

# Calls that observe no file and change none: no flush before them (the common ones of
# spinning and waiting threads; a switch to another process flushes anyway).
NO_FILE_CALLS = frozenset(NUMBERS[name] for name in (
    "futex", "clock_gettime", "gettimeofday", "getpid", "gettid", "sched_yield",
    "nanosleep", "clock_nanosleep", "rt_sigprocmask"))

# Any nonzero byte becomes 0xFF: turns an XOR of two pages into a byte mask.
_MASK_TABLE = bytes([0] + [0xFF] * 255)


def shareable(file: Any) -> bool:
    """Whether a description can back a MAP_SHARED mapping (regular disk files, memfds)."""
    return hasattr(file, "cache_read")


def _node(p: GuestProcess) -> list[GuestProcess]:
    """The live processes of p's node that have an address space."""
    procs = p.table.live() if getattr(p, "table", None) is not None else [p]
    return [q for q in procs if q.space is not None]


def active(p: GuestProcess) -> bool:
    """Whether any process of p's node has a shared file mapping (the hot path's check)."""
    if getattr(p, "table", None) is None:
        return p.space is not None and p.space.shares
    return any(q.space.shares for q in _node(p))


def _shared(q: GuestProcess) -> list[Vma]:
    """q's shared file mappings that can be reached: a PROT_NONE page can neither be
    stored into nor read (sys_mprotect refreshes it when it becomes accessible)."""
    return [v for v in q.space.vmas() if v.shared and v.prot]


def _file_range(p: GuestProcess, vma: Vma, start: int, end: int, size: int) -> bytes:
    """What [start, end) of vma shows of the file: its bytes, zeros past its end."""
    length = end - start
    offset = (vma.offset or 0) + start - vma.start
    data = vma.file.cache_read(p, offset, min(length, max(0, size - offset)))
    return data + bytes(length - len(data))


def _memory(q: GuestProcess, start: int, end: int) -> bytes | None:
    """The bytes of [start, end) in q's VM in one read, or None when a page has no frame
    (then the caller goes page by page)."""
    try:
        return q.vm.read(start, end - start)
    except VmmError:
        return None


def _merge(base: bytes, mine: bytes, current: bytes) -> bytes:
    """current with the bytes where mine differs from base taken from mine."""
    n = len(base)
    mask = (int.from_bytes(base, "little") ^ int.from_bytes(mine, "little")).to_bytes(
        n, "little").translate(_MASK_TABLE)
    m = int.from_bytes(mask, "little")
    merged = (int.from_bytes(current, "little") & ~m) | (int.from_bytes(mine, "little") & m)
    return merged.to_bytes(n, "little")


def _pieces(q: GuestProcess, vma: Vma, end: int) -> list[tuple[int, int]]:
    """The parts of [vma.start, end) where q's pages may have frames, a chunk at most each."""
    return q.space.framed_pieces(vma.start, end)


def flush(p: GuestProcess) -> None:
    """Write what p's shared mappings hold and the file does not into the file, then make
    every shared mapping of a changed file equal to it."""
    if p.space is None or not p.space.has_shared_files():
        return
    vm = p.vm
    stores: list[tuple[Any, int, bytes, bytes]] = []  # (file, offset, base, mine)
    for vma in _shared(p):
        size = vma.file.cache_size(p)
        end = min(vma.end, page_align(vma.start + max(0, size - vma.offset)))  # in the file
        for a, b in _pieces(p, vma, end):
            shown = _file_range(p, vma, a, b, size)
            held = _memory(p, a, b)
            if held == shown:
                continue  # the common case: nothing stored since the last synchronisation
            for page in range(a, b, PAGE_SIZE):
                i = page - a
                mine = held[i : i + PAGE_SIZE] if held is not None else (
                    None if vm.query(page) is None else vm.read(page, PAGE_SIZE))
                base = shown[i : i + PAGE_SIZE]
                if mine is not None and mine != base:  # (None: never touched, nothing stored)
                    stores.append((vma.file, vma.offset + page - vma.start, base, mine))
    if not stores:
        return
    changed: dict[int, Any] = {}
    for file, offset, base, mine in stores:
        size = file.cache_size(p)
        current = file.cache_read(p, offset, PAGE_SIZE)
        current += bytes(PAGE_SIZE - len(current))
        within = max(0, size - offset)
        merged = _merge(base, mine, current)[:within]
        if merged == current[:within]:
            continue  # only bytes past the end differ: they never reach the file
        file.cache_write(p, offset, merged)
        changed[id(file)] = file
    if changed:
        refresh(p, list(changed.values()))


def refresh(p: GuestProcess, files: list[Any]) -> bool:
    """Make every shared mapping of these files, in every process of p's node, show the
    files' bytes (zeros past their ends); False when guest RAM ran out on the way (the
    process that needed a frame was OOM-killed)."""
    keys = {id(f) for f in files}
    filled = True
    for q in _node(p):
        for vma in _shared(q):
            if id(vma.file) not in keys:
                continue
            size = vma.file.cache_size(p)
            # Pages without a frame read as zeros: besides those with frames, only where
            # the file may hold other bytes needs looking at.
            pieces = set(_pieces(q, vma, vma.end))
            for lo, hi in vma.file.cache_extents(p):
                a = max(vma.start, vma.start + lo - vma.offset)
                b = min(vma.end, page_align(vma.start + hi - vma.offset))
                pieces.update(_chunks(a & ~(PAGE_SIZE - 1), b))
            for a, b in _disjoint(sorted(pieces)):
                filled = _refresh_piece(p, q, vma, a, b, size) and filled
    return filled


def _refresh_piece(p: GuestProcess, q: GuestProcess, vma: Vma, a: int, b: int,
                   size: int) -> bool:
    """Make [a, b) of q's mapping vma show the file (False: guest RAM ran out)."""
    shown = _file_range(p, vma, a, b, size)
    held = _memory(q, a, b)
    if held == shown:
        return True
    for page in range(a, b, PAGE_SIZE):
        i = page - a
        want = shown[i : i + PAGE_SIZE]
        if held is not None:
            if held[i : i + PAGE_SIZE] == want:
                continue
        elif q.vm.query(page) is None:
            if not any(want):
                continue  # an untouched page reads as zeros already
        elif q.vm.read(page, PAGE_SIZE) == want:
            continue
        if not q.space.fill(page, want):
            return False
    return True


def _chunks(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) cut at 2 MiB chunk boundaries."""
    out: list[tuple[int, int]] = []
    while start < end:
        cut = min(end, ((start >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT)
        out.append((start, cut))
        start = cut
    return out


def _disjoint(pieces: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sorted pieces, each cut at chunk boundaries, without overlaps: each range once."""
    out: list[tuple[int, int]] = []
    for a, b in pieces:
        if out and a < out[-1][1]:
            a = out[-1][1]
        if a < b:
            out.append((a, b))
    return out


def mapped_files(p: GuestProcess) -> list[Any]:
    """The files shared-mapped anywhere in p's node, once each."""
    seen: dict[int, Any] = {}
    for q in _node(p):
        for vma in q.space.vmas():
            if not vma.shared:
                continue
            seen.setdefault(id(vma.file), vma.file)
    return list(seen.values())


def stamps(p: GuestProcess, files: list[Any]) -> list[int]:
    """Change counters of files, to compare across one system call."""
    return [f.cache_stamp(p) for f in files]


def refresh_changed(p: GuestProcess, files: list[Any], before: list[int]) -> None:
    """After a call: refresh the mappings of the files whose counters moved."""
    moved = [f for f, stamp in zip(files, before, strict=True) if f.cache_stamp(p) != stamp]
    if moved:
        refresh(p, moved)
