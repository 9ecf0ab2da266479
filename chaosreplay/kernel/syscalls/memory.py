"""Memory system calls: brk, mmap, munmap, mprotect, madvise, mremap."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.mm.address_space import EAGER_LIMIT, page_align
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.vm.vmm import PAGE_SIZE, Prot, VmmError

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAP_SHARED, MAP_PRIVATE, MAP_FIXED, MAP_ANONYMOUS = 0x01, 0x02, 0x10, 0x20
MAP_FIXED_NOREPLACE = 0x100000
_PROT_ALL = Prot.READ | Prot.WRITE | Prot.EXEC


def _guest_prot(prot: int) -> int:
    # x86 cannot express write-only or exec-only pages: both imply read, as on Linux.
    prot &= _PROT_ALL
    return prot | Prot.READ if prot else 0


def sys_brk(p: GuestProcess, r: Any) -> int:
    return p.space.set_brk(r.rdi)


def sys_mmap(p: GuestProcess, r: Any) -> int:
    addr, length, prot, flags = r.rdi, r.rsi, r.rdx, r.r10
    if length == 0 or addr & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if not flags & MAP_ANONYMOUS:
        return -errno.ENODEV  # file mappings arrive with the file system
    if not flags & (MAP_SHARED | MAP_PRIVATE):
        return -errno.EINVAL
    length = page_align(length)
    space = p.space
    if space.would_exceed_limit(length):
        return -errno.ENOMEM
    if flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
        if flags & MAP_FIXED_NOREPLACE and space.find_free(length, addr) != addr:
            return -errno.EEXIST
        start = addr
    else:
        found = space.find_free(length, addr)
        if found is None:
            return -errno.ENOMEM
        start = found
    try:
        space.map_fixed(start, length, _guest_prot(prot), "[anon]", eager=length <= EAGER_LIMIT)
    except VmmError:
        space.unmap(start, length)
        return -errno.ENOMEM
    return start


def sys_munmap(p: GuestProcess, r: Any) -> int:
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1) or length == 0:
        return -errno.EINVAL
    p.space.unmap(addr, length)
    return 0


def sys_mprotect(p: GuestProcess, r: Any) -> int:
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if length == 0:
        return 0
    return p.space.protect(addr, length, _guest_prot(r.rdx))


MADV_DONTNEED = 4
_ZERO_PAGE = bytes(PAGE_SIZE)


def sys_madvise(p: GuestProcess, r: Any) -> int:
    """Advice is accepted; MADV_DONTNEED zeroes private anonymous pages, as Linux does."""
    addr, length = r.rdi, page_align(r.rsi)
    if addr & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if r.rdx == MADV_DONTNEED:
        # Only pages already present can hold data; program segments (file-backed on Linux,
        # where they would read back from the file) are left as they are.
        for vma in p.space.vmas():
            if vma.name == "[program]" or vma.end <= addr or vma.start >= addr + length:
                continue
            for page in range(max(vma.start, addr), min(vma.end, addr + length), PAGE_SIZE):
                if p.vm.query(page) is not None:
                    p.vm.write(page, _ZERO_PAGE)
    return 0


def sys_mremap(p: GuestProcess, r: Any) -> int:
    # musl and glibc fall back to mmap+copy+munmap when mremap is refused.
    return -errno.ENOMEM


HANDLERS = {
    NUMBERS["brk"]: sys_brk,
    NUMBERS["mmap"]: sys_mmap,
    NUMBERS["munmap"]: sys_munmap,
    NUMBERS["mprotect"]: sys_mprotect,
    NUMBERS["madvise"]: sys_madvise,
    NUMBERS["mremap"]: sys_mremap,
}
