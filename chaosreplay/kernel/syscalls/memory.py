"""Memory system calls: brk, mmap, munmap, mprotect, madvise, mremap, and the protection-key
calls of a CPU without protection keys (the virtual CPU has no PKU)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_APPEND, O_RDWR, S_IFMT, S_IFREG, FileDescription
from chaosreplay.kernel.fs.memfd import F_SEAL_FUTURE_WRITE, F_SEAL_WRITE
from chaosreplay.kernel.fs.shmem import SharedMemory
from chaosreplay.kernel.mm import page_cache
from chaosreplay.kernel.mm.address_space import (
    EAGER_LIMIT,
    MMAP_MIN_ADDR,
    TASK_SIZE,
    Vma,
    page_align,
)
from chaosreplay.kernel.syscalls.io import lookup
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import PAGE_SIZE, Prot

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE, MAP_TYPE = 0x01, 0x02, 0x03, 0x0F
MAP_FIXED, MAP_ANONYMOUS = 0x10, 0x20
MAP_NORESERVE, MAP_FIXED_NOREPLACE = 0x4000, 0x100000
_PROT_ALL = Prot.READ | Prot.WRITE | Prot.EXEC
_PROT_GROWS = 0x01000000 | 0x02000000  # PROT_GROWSDOWN | PROT_GROWSUP: not both at once
_PROT_KNOWN = _PROT_ALL | 0x8 | _PROT_GROWS  # + PROT_SEM


def _guest_prot(prot: int) -> int:
    # x86 cannot express write-only or exec-only pages: both imply read, as on Linux.
    prot &= _PROT_ALL
    return prot | Prot.READ if prot else 0


def sys_brk(p: GuestProcess, r: Any) -> int:
    return p.space.set_brk(r.rdi)


def sys_mmap(p: GuestProcess, r: Any) -> int:
    addr, length, prot, flags, offset = r.rdi, r.rsi, r.rdx, r.r10, r.r9
    fixed = flags & (MAP_FIXED | MAP_FIXED_NOREPLACE)
    if length == 0 or (fixed and addr & (PAGE_SIZE - 1)) or offset & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if flags & MAP_TYPE not in (MAP_SHARED, MAP_PRIVATE, MAP_SHARED_VALIDATE):
        return -errno.EINVAL  # Linux: the other mapping types do not exist (MAP_DROPPABLE,
    if flags & MAP_TYPE == MAP_SHARED_VALIDATE and flags & MAP_ANONYMOUS:  # 6.11+, neither)
        return -errno.EINVAL  # Linux validates flags only for a file
    file = None
    if not flags & MAP_ANONYMOUS:
        file = lookup(p, r.r8 & 0xFFFFFFFF)
        if file is None:
            return -errno.EBADF
        if not file.readable:
            return -errno.EACCES
        if flags & MAP_TYPE in (MAP_SHARED, MAP_SHARED_VALIDATE):
            refused = _refuses_sharing(p, file, prot)
            if refused:
                return refused
    length = page_align(length)
    if length > TASK_SIZE:
        return -errno.ENOMEM  # also a length that wrapped when aligned
    space = p.space
    guest_prot = _guest_prot(prot)
    if space.would_exceed_limit(length):
        return -errno.ENOMEM
    accounted = guest_prot & Prot.WRITE and not flags & (MAP_SHARED | MAP_NORESERVE)
    if accounted and space.overcommit_refuses(length):
        return -errno.ENOMEM
    if fixed:
        # get_unmapped_area takes a fixed address as it is, then checks it like any other.
        if addr > TASK_SIZE - length:
            return -errno.ENOMEM
        if addr < MMAP_MIN_ADDR:
            return -errno.EPERM  # no CAP_SYS_RAWIO, as in a container
        if flags & MAP_FIXED_NOREPLACE and space.find_free(length, addr) != addr:
            return -errno.EEXIST
        start = addr
    else:
        found = space.find_free(length, page_align(addr))  # a hint is rounded up
        if found is None:
            return -errno.ENOMEM
        start = found
    if file is None and flags & MAP_TYPE != MAP_PRIVATE:
        # Shared anonymous memory is a file of its own, as Linux's shmem: a fork child's
        # mapping shares it through the page cache.
        shm = SharedMemory(O_RDWR, b"/dev/zero (deleted)", length)
        return _map_file(p, shm, start, length, guest_prot, 0, shared=True)
    if file is None:
        if not space.map_fixed(start, length, guest_prot, "[anon]",
                               eager=length <= EAGER_LIMIT):
            return -errno.ENOMEM  # vm.max_map_count reached
        return start
    shared = flags & MAP_TYPE != MAP_PRIVATE
    return _map_file(p, file, start, length, guest_prot, offset, shared)


def _refuses_sharing(p: GuestProcess, file: FileDescription, prot: int) -> int:
    """-errno when file cannot back a MAP_SHARED mapping with prot (0 when it can)."""
    if not page_cache.shareable(file):
        return -errno.ENODEV  # pipes, sockets, devices, the program's own file
    st = file.stat(p)
    if isinstance(st, int):
        return st
    if st.mode & S_IFMT != S_IFREG:
        return -errno.ENODEV  # a directory
    if prot & Prot.WRITE:
        if not file.writable or file.flags & O_APPEND:
            return -errno.EACCES
        if getattr(file, "seals", 0) & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            return -errno.EPERM
    return 0


def _map_file(p: GuestProcess, file: FileDescription, start: int, length: int, prot: int,
              offset: int, shared: bool = False) -> int:
    """A file mapping: the file's bytes copied in at mmap time, zeros past its end.

    A private one is a copy: Linux leaves unspecified whether later writes to the file
    show through pages the mapping has not written; here they never do. A shared one is
    kept coherent with the file by kernel/mm/page_cache.py. Pages wholly past the end of
    the file read as zeros (Linux raises SIGBUS there).
    """
    space = p.space
    name = file.path.decode(errors="replace")
    if shared:
        page_cache.flush(p)  # the file's bytes as this process's other mappings left them
        if not space.map_fixed(start, length, prot | Prot.READ, name, eager=False,
                               offset=offset, file=file, shared=True):
            return -errno.ENOMEM
        if not page_cache.refresh(p, [file]):  # pages holding more than zeros get bytes
            return -errno.ENOMEM  # guest RAM ran out filling them: the OOM kill took it
        if prot != prot | Prot.READ:
            space.protect(start, length, prot)
        return start
    contents = file.map_contents(p, offset, length)
    if isinstance(contents, int):
        return contents
    # Filled while readable, then given the asked protection (PROT_NONE included), so the
    # bytes are there whatever a later mprotect makes of them.
    if not space.map_fixed(start, length, prot | Prot.READ, name,
                           eager=len(contents) >= length // 2 and length <= EAGER_LIMIT,
                           offset=offset, file=file, shared=shared):
        return -errno.ENOMEM
    if contents and not space.fill(start, contents):
        return -errno.ENOMEM
    if prot != prot | Prot.READ:
        space.protect(start, length, prot)
    return start


def sys_munmap(p: GuestProcess, r: Any) -> int:
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1) or length == 0 or addr > TASK_SIZE or length > TASK_SIZE - addr:
        return -errno.EINVAL
    return 0 if p.space.unmap(addr, length) else -errno.ENOMEM


def sys_mprotect(p: GuestProcess, r: Any) -> int:
    addr, length, prot = r.rdi, page_align(r.rsi), r.rdx
    if addr & (PAGE_SIZE - 1) or prot & ~_PROT_KNOWN or prot & _PROT_GROWS == _PROT_GROWS:
        return -errno.EINVAL
    if length == 0:
        return 0
    if addr + length > TASK_SIZE:
        return -errno.ENOMEM  # past the user range: not mapped
    result = p.space.protect(addr, length, _guest_prot(prot))
    if result == 0 and p.space.shares:
        # Pages that were PROT_NONE missed the file's changes meanwhile: show them now.
        page_cache.refresh(p, [v.file for v in p.space.vmas() if v.shared
                               and v.start < addr + length and addr < v.end])
    return result


MADV_DONTNEED = 4
_ZERO_PAGE = bytes(PAGE_SIZE)


def sys_madvise(p: GuestProcess, r: Any) -> int:
    """Advice is accepted; MADV_DONTNEED drops private pages as Linux does: anonymous ones
    read zeros again, private file ones the file's bytes, shared ones keep their data."""
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1) or (r.rsi and not length) or addr + length >= 1 << 64:
        return -errno.EINVAL  # unaligned, or a length that wraps (Linux's checks)
    vmas = p.space.vmas()
    # Linux applies the advice to every mapping in range and answers ENOMEM for the holes.
    covered = sum(min(v.end, addr + length) - max(v.start, addr) for v in vmas
                  if v.end > addr and v.start < addr + length)
    if r.rdx == MADV_DONTNEED:
        for vma in vmas:
            if vma.end <= addr or vma.start >= addr + length:
                continue
            # The program's segments have no file here; shared pages are the page cache.
            if vma.name == "[program]" or vma.shared:
                continue
            if vma.offset is not None and vma.file is None:
                continue  # a file mapping from an old checkpoint: its file is not known
            lo, hi = max(vma.start, addr), min(vma.end, addr + length)
            for a, b in p.space.framed_pieces(lo, hi):  # (a huge range: its framed parts)
                for page in range(a, b, PAGE_SIZE):
                    if p.vm.query(page) is None:
                        continue  # no frame: reads as it should already
                    p.space.fill(page, _dropped_page(p, vma, page))
    return 0 if covered == length else -errno.ENOMEM


def _dropped_page(p: GuestProcess, vma: Vma, page: int) -> bytes:
    """What a page of vma reads after MADV_DONTNEED: zeros, or the file's bytes."""
    if vma.file is None or vma.offset is None:
        return _ZERO_PAGE
    at = vma.offset + page - vma.start
    if page_cache.shareable(vma.file):
        data = vma.file.cache_read(p, at, PAGE_SIZE)  # the page cache: no disk read
    else:
        contents = vma.file.map_contents(p, at, PAGE_SIZE)
        data = b"" if isinstance(contents, int) else contents
    return data + bytes(PAGE_SIZE - len(data))


MREMAP_MAYMOVE, MREMAP_FIXED, MREMAP_DONTUNMAP = 1, 2, 4


def sys_mremap(p: GuestProcess, r: Any) -> int:
    """Grow, shrink or move one mapping (anonymous or file), as Linux's mremap does.

    A move copies the pages' contents to the new place (Linux moves the page-table
    entries; the guest cannot tell). MREMAP_DONTUNMAP and an old size of 0 (duplicating a
    shared mapping) are refused with EINVAL.
    """
    old, old_size, new_size, flags, new_addr = r.rdi, r.rsi, r.rdx, r.r10, r.r8
    if old & (PAGE_SIZE - 1) or flags & ~(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP):
        return -errno.EINVAL
    if flags & MREMAP_FIXED and not flags & MREMAP_MAYMOVE:
        return -errno.EINVAL
    if flags & MREMAP_DONTUNMAP or old_size == 0:
        return -errno.EINVAL
    old_size, new_size = page_align(old_size), page_align(new_size)
    if new_size == 0 or new_size > TASK_SIZE or old_size > TASK_SIZE:
        return -errno.EINVAL
    space = p.space
    vma = space.find(old)
    if vma is None or old + old_size > vma.end:
        return -errno.EFAULT  # the old range must lie in one mapping
    if flags & MREMAP_FIXED:
        if new_addr & (PAGE_SIZE - 1) or new_addr > TASK_SIZE - new_size:
            return -errno.EINVAL
        if new_addr < old + old_size and old < new_addr + new_size:
            return -errno.EINVAL  # the ranges may not overlap
        return _move(p, vma, old, old_size, new_size, new_addr)
    if new_size <= old_size:
        if new_size < old_size and not space.unmap(old + new_size, old_size - new_size):
            return -errno.ENOMEM
        return old
    grow = new_size - old_size
    if space.would_exceed_limit(grow):
        return -errno.ENOMEM
    tail = old + old_size
    if old + old_size == vma.end and space.find_free(grow, tail) == tail:
        return old if _extend(p, vma, old, old_size, new_size) else -errno.ENOMEM
    if not flags & MREMAP_MAYMOVE:
        return -errno.ENOMEM
    target = space.find_free(new_size)
    if target is None:
        return -errno.ENOMEM
    return _move(p, vma, old, old_size, new_size, target)


def _remap(p: GuestProcess, vma: Vma, at: int, length: int, offset: int | None) -> bool:
    """Map [at, at+length) as vma's kind of mapping would continue there (offset: the file
    offset of at), filled with what a fresh mapping shows: zeros or the file's bytes."""
    if vma.file is None:
        return p.space.map_fixed(at, length, vma.prot, vma.name, eager=length <= EAGER_LIMIT,
                                 offset=offset)
    assert offset is not None
    result = _map_file(p, vma.file, at, length, vma.prot, offset, vma.shared)
    return result == at


def _extend(p: GuestProcess, vma: Vma, old: int, old_size: int, new_size: int) -> bool:
    """Grow the mapping at old in place (the pages after it are free)."""
    offset = None if vma.offset is None else vma.offset + old + old_size - vma.start
    return _remap(p, vma, old + old_size, new_size - old_size, offset)


def _move(p: GuestProcess, vma: Vma, old: int, old_size: int, new_size: int,
          target: int) -> int:
    """Move [old, old+old_size) to target with new_size bytes: the kept pages' contents
    copied, the rest as a fresh mapping of the same kind shows it."""
    space = p.space
    if space.would_exceed_limit(max(0, new_size - old_size)):
        return -errno.ENOMEM
    offset = None if vma.offset is None else vma.offset + old - vma.start
    kept = min(old_size, new_size)
    pages = [(page - old, p.vm.read(page, PAGE_SIZE))
             for a, b in space.framed_pieces(old, old + kept)
             for page in range(a, b, PAGE_SIZE) if p.vm.query(page) is not None]
    file = vma.file
    if file is not None:
        file.refs += 1  # the move may unmap the old mapping's last hold before the new one
    try:
        if not _remap(p, vma, target, new_size, offset):
            return -errno.ENOMEM
        for delta, data in pages:
            space.fill(target + delta, data)
        if not space.unmap(old, old_size):
            return -errno.ENOMEM
    finally:
        if file is not None and space.drop_hold is not None:
            space.drop_hold(file)
        elif file is not None:
            file.refs -= 1
    return target


PKEY_NONE = (1 << 64) - 1  # pkey -1: the default key, the only one without PKU


def sys_pkey_mprotect(p: GuestProcess, r: Any) -> int:
    """mprotect with a key: key -1 is plain mprotect; no other key was ever allocated."""
    if r.r10 == PKEY_NONE or r.r10 & 0xFFFFFFFF == 0xFFFFFFFF:
        return sys_mprotect(p, r)
    if r.rdi & (PAGE_SIZE - 1) or r.rdx & ~_PROT_KNOWN:
        return -errno.EINVAL
    return 0 if r.rsi == 0 else -errno.EINVAL


def sys_pkey_alloc(p: GuestProcess, r: Any) -> int:
    return -errno.EINVAL  # no protection keys on this CPU (Linux answers EINVAL then)


HANDLERS = {
    329: sys_pkey_mprotect,
    330: sys_pkey_alloc,
    331: sys_pkey_alloc,  # pkey_free: no key was ever allocated
    NUMBERS["brk"]: sys_brk,
    NUMBERS["mmap"]: sys_mmap,
    NUMBERS["munmap"]: sys_munmap,
    NUMBERS["mprotect"]: sys_mprotect,
    NUMBERS["madvise"]: sys_madvise,
    NUMBERS["mremap"]: sys_mremap,
}
