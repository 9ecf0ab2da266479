"""Memory system calls: brk, mmap, munmap, mprotect, madvise, mremap, and the protection-key
calls of a CPU without protection keys (the virtual CPU has no PKU)."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import FileDescription
from chaosreplay.kernel.mm.address_space import EAGER_LIMIT, MMAP_MIN_ADDR, TASK_SIZE, page_align
from chaosreplay.kernel.syscalls.io import lookup
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import PAGE_SIZE, Prot

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
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
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        return -errno.EINVAL
    file = None
    if not flags & MAP_ANONYMOUS:
        file = lookup(p, r.r8 & 0xFFFFFFFF)
        if file is None:
            return -errno.EBADF
        if flags & MAP_SHARED:
            return -errno.ENODEV  # shared file mappings need a page cache: not yet
        if not file.readable:
            return -errno.EACCES
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
    if file is None:
        if not space.map_fixed(start, length, guest_prot, "[anon]",
                               eager=length <= EAGER_LIMIT):
            return -errno.ENOMEM  # vm.max_map_count reached
        return start
    return _map_file(p, file, start, length, guest_prot, offset)


def _map_file(p: GuestProcess, file: FileDescription, start: int, length: int, prot: int,
              offset: int) -> int:
    """A private file mapping: the file's bytes copied in at mmap time, zeros past its end.

    Linux leaves unspecified whether later writes to the file show through pages the
    mapping has not written; here they never do. Pages wholly past the end of the file
    read as zeros (Linux raises SIGBUS there).
    """
    contents = file.map_contents(p, offset, length)
    if isinstance(contents, int):
        return contents
    space = p.space
    # Filled while readable, then given the asked protection (PROT_NONE included), so the
    # bytes are there whatever a later mprotect makes of them.
    if not space.map_fixed(start, length, prot | Prot.READ, file.path.decode(errors="replace"),
                           eager=len(contents) >= length // 2 and length <= EAGER_LIMIT,
                           offset=offset):
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
    return p.space.protect(addr, length, _guest_prot(prot))


MADV_DONTNEED = 4
_ZERO_PAGE = bytes(PAGE_SIZE)


def sys_madvise(p: GuestProcess, r: Any) -> int:
    """Advice is accepted; MADV_DONTNEED zeroes private anonymous pages, as Linux does."""
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if r.rdx == MADV_DONTNEED:
        # Only pages already present can hold data; program segments and file mappings
        # (where Linux would read the file's bytes back) are left as they are.
        for vma in p.space.vmas():
            if (vma.name == "[program]" or vma.offset is not None or vma.end <= addr
                    or vma.start >= addr + length):
                continue
            for page in range(max(vma.start, addr), min(vma.end, addr + length), PAGE_SIZE):
                if p.vm.query(page) is not None:
                    p.vm.write(page, _ZERO_PAGE)
    return 0


def sys_mremap(p: GuestProcess, r: Any) -> int:
    # musl and glibc fall back to mmap+copy+munmap when mremap is refused.
    return -errno.ENOMEM


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
