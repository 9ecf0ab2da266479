"""Where memory lives: mincore, mlock/munlock/mlockall/munlockall/mlock2, msync, and the NUMA
policy calls (set_mempolicy, get_mempolicy, mbind) of a machine with one node.

Guest memory is the VM's and is never swapped out, so a locked page stays resident as
mlock promises with nothing to do; RLIMIT_MEMLOCK is unlimited (getrlimit says so), so no
lock is refused for size. mincore counts a page resident when the VM backs it: small
mappings are backed when they are made (EAGER_LIMIT), where Linux would wait for the first
touch. msync checks its arguments and the range; the shared mappings' stores already
reached the page cache before the call (kernel/mm/page_cache.py), so MS_SYNC makes the
files of the shared mappings in the range durable (fdatasync) and MS_ASYNC, as on Linux,
has nothing left to start. The memory policy is stored and read back; with one node, every
policy places pages on node 0.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.mm.address_space import TASK_SIZE, page_align
from chaosreplay.kernel.syscalls.args import int32
from chaosreplay.kernel.task_attributes import MPOL_DEFAULT, attributes_of
from chaosreplay.vm.vmm import PAGE_SIZE

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MS_ASYNC, MS_INVALIDATE, MS_SYNC = 1, 2, 4
MCL_CURRENT, MCL_FUTURE, MCL_ONFAULT = 1, 2, 4
MLOCK_ONFAULT = 1
MPOL_PREFERRED, MPOL_BIND, MPOL_INTERLEAVE, MPOL_LOCAL, MPOL_PREFERRED_MANY = 1, 2, 3, 4, 5
MPOL_WEIGHTED_INTERLEAVE = 6
MPOL_MAX = 7
MPOL_F_NUMA_BALANCING, MPOL_F_RELATIVE_NODES, MPOL_F_STATIC_NODES = 1 << 13, 1 << 14, 1 << 15
MPOL_MODE_FLAGS = MPOL_F_STATIC_NODES | MPOL_F_RELATIVE_NODES | MPOL_F_NUMA_BALANCING
MPOL_F_NODE, MPOL_F_ADDR, MPOL_F_MEMS_ALLOWED = 1, 2, 4
MPOL_MF_STRICT, MPOL_MF_MOVE, MPOL_MF_MOVE_ALL = 1, 2, 4
MAX_NUMNODES = 1024  # CONFIG_NODES_SHIFT=10, Debian's
NODE0 = 1
NR_NODE_IDS = 1


def _mapped(p: GuestProcess, start: int, end: int) -> bool:
    """Whether every page of [start, end) belongs to a mapping."""
    at = start
    for vma in p.space.vmas():
        if vma.end <= at:
            continue
        if vma.start > at:
            return False
        at = vma.end
        if at >= end:
            return True
    return at >= end


def _range(start: int, length: int) -> tuple[int, int] | int:
    """The page range an (address, length) pair covers, as mlock and munlock round it."""
    end = page_align(start + length)
    start &= ~(PAGE_SIZE - 1)
    if end < start or end > TASK_SIZE:
        return -errno.ENOMEM
    return start, end


def sys_mincore(p: GuestProcess, r: Any) -> int:
    start, length, vec = r.rdi, r.rsi, r.rdx
    if start & (PAGE_SIZE - 1):
        return -errno.EINVAL
    end = page_align(start + length)
    if end > TASK_SIZE or end < start:
        return -errno.ENOMEM
    if start == end:
        return 0
    if not _mapped(p, start, end):
        return -errno.ENOMEM
    chunk = PAGE_SIZE * PAGE_SIZE  # one page of the vector at a time, as Linux fills it
    for at in range(start, end, chunk):
        resident = bytes(int(p.vm.query(page) is not None)
                         for page in range(at, min(end, at + chunk), PAGE_SIZE))
        if not p.space.write(vec + (at - start) // PAGE_SIZE, resident):
            return -errno.EFAULT
    return 0


def _lock(p: GuestProcess, start: int, length: int) -> int:
    span = _range(start, length)
    if isinstance(span, int):
        return span
    return 0 if span[0] == span[1] or _mapped(p, *span) else -errno.ENOMEM


def sys_mlock(p: GuestProcess, r: Any) -> int:
    return _lock(p, r.rdi, r.rsi)


def sys_mlock2(p: GuestProcess, r: Any) -> int:
    return -errno.EINVAL if r.rdx & ~MLOCK_ONFAULT else _lock(p, r.rdi, r.rsi)


def sys_mlockall(p: GuestProcess, r: Any) -> int:
    flags = r.rdi & 0xFFFFFFFF
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        return -errno.EINVAL
    return 0


def sys_munlockall(p: GuestProcess, r: Any) -> int:
    return 0


def sys_msync(p: GuestProcess, r: Any) -> int:
    start, length, flags = r.rdi, r.rsi, r.rdx & 0xFFFFFFFF
    if flags & ~(MS_ASYNC | MS_INVALIDATE | MS_SYNC) or start & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if flags & MS_ASYNC and flags & MS_SYNC:
        return -errno.EINVAL
    end = page_align(start + length)
    if end < start:
        return -errno.ENOMEM
    if start == end:
        return 0
    if not _mapped(p, start, end):
        return -errno.ENOMEM
    if flags & MS_SYNC:
        synced: set[int] = set()
        for vma in p.space.vmas():
            if not vma.shared or vma.end <= start or vma.start >= end or id(vma.file) in synced:
                continue
            synced.add(id(vma.file))
            result = vma.file.cache_sync(p)
            if result < 0:
                return result
    return 0


# -- NUMA policy ------------------------------------------------------------------------------
def _nodes(p: GuestProcess, address: int, maxnode: int) -> int:
    """A node mask argument as an int (bits past maxnode ignored), or -errno."""
    maxnode -= 1
    if maxnode <= 0 or not address:
        return 0
    if maxnode > PAGE_SIZE * 8:
        return -errno.EINVAL
    words = (maxnode + 63) // 64
    raw = p.space.read(address, words * 8)
    if raw is None:
        return -errno.EFAULT
    mask = int.from_bytes(raw, "little") & ((1 << maxnode) - 1)
    if mask >> MAX_NUMNODES:
        return -errno.EINVAL  # nodes this kernel cannot have
    return mask


def _policy(mode_and_flags: int, nodes: int) -> tuple[int, int] | int:
    """(stored mode with flags, node mask) of a new policy, or -errno, as mpol_new checks."""
    mode, flags = mode_and_flags & ~MPOL_MODE_FLAGS, mode_and_flags & MPOL_MODE_FLAGS
    if mode_and_flags < 0 or mode >= MPOL_MAX:
        return -errno.EINVAL
    if flags & MPOL_F_STATIC_NODES and flags & MPOL_F_RELATIVE_NODES:
        return -errno.EINVAL
    if flags & MPOL_F_NUMA_BALANCING and mode != MPOL_BIND:
        return -errno.EINVAL
    if mode == MPOL_DEFAULT:
        return (MPOL_DEFAULT, 0) if not nodes else -errno.EINVAL
    if not nodes:
        if mode == MPOL_PREFERRED and not flags & (MPOL_F_STATIC_NODES
                                                   | MPOL_F_RELATIVE_NODES):
            return MPOL_LOCAL, 0  # "prefer no node" is the local policy
        return -errno.EINVAL
    if mode == MPOL_LOCAL:
        return -errno.EINVAL  # the local policy takes no nodes
    if flags & MPOL_F_RELATIVE_NODES:
        return mode | flags, NODE0  # relative to the allowed nodes: folded onto node 0
    if not nodes & NODE0:
        return -errno.EINVAL  # no allowed node in the mask
    return mode | flags, NODE0


def sys_set_mempolicy(p: GuestProcess, r: Any) -> int:
    nodes = _nodes(p, r.rsi, r.rdx)
    if nodes < 0:
        return nodes
    policy = _policy(int32(r.rdi), nodes)
    if isinstance(policy, int):
        return policy
    a = attributes_of(p)
    a.mempolicy, a.mempolicy_nodes = policy
    return 0


def sys_mbind(p: GuestProcess, r: Any) -> int:
    start, length, mode, mask, maxnode, flags = r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9
    if flags & ~(MPOL_MF_STRICT | MPOL_MF_MOVE | MPOL_MF_MOVE_ALL) or start & (PAGE_SIZE - 1):
        return -errno.EINVAL
    if flags & MPOL_MF_MOVE_ALL:
        return -errno.EPERM  # needs CAP_SYS_NICE in the initial namespace
    nodes = _nodes(p, mask, maxnode)
    if nodes < 0:
        return nodes
    policy = _policy(int32(mode), nodes)
    if isinstance(policy, int):
        return policy
    end = page_align(start + length)
    if end < start:
        return -errno.EINVAL
    if start == end:
        return 0
    return 0 if _mapped(p, start, end) else -errno.EFAULT  # every page is on node 0 already


def sys_get_mempolicy(p: GuestProcess, r: Any) -> int:
    policy_ptr, mask_ptr, maxnode, address, flags = r.rdi, r.rsi, r.rdx, r.r10, r.r8
    if flags & ~(MPOL_F_NODE | MPOL_F_ADDR | MPOL_F_MEMS_ALLOWED):
        return -errno.EINVAL
    if mask_ptr and maxnode < NR_NODE_IDS:
        return -errno.EINVAL  # the mask must hold every node there is
    a = attributes_of(p)
    if flags & MPOL_F_MEMS_ALLOWED:
        if flags & (MPOL_F_NODE | MPOL_F_ADDR):
            return -errno.EINVAL
        mode, nodes = 0, NODE0
    elif flags & MPOL_F_ADDR:
        if p.space.find(address) is None:
            return -errno.EFAULT
        mode, nodes = (0 if flags & MPOL_F_NODE else a.mempolicy), a.mempolicy_nodes
    elif address:
        return -errno.EINVAL
    elif flags & MPOL_F_NODE:
        if a.mempolicy & ~MPOL_MODE_FLAGS != MPOL_INTERLEAVE:
            return -errno.EINVAL
        mode, nodes = 0, a.mempolicy_nodes  # the next interleave node: the only one
    else:
        mode, nodes = a.mempolicy, a.mempolicy_nodes
    if flags & MPOL_F_NODE and not flags & MPOL_F_MEMS_ALLOWED:
        mode = 0  # the node the page (or the next interleave) is on: node 0
    if policy_ptr and not p.space.write(policy_ptr, struct.pack("<i", mode)):
        return -errno.EFAULT
    if mask_ptr:
        size = (maxnode - 1 + 63) // 64 * 8
        if size > PAGE_SIZE:
            return -errno.EINVAL
        data = nodes.to_bytes(8, "little").ljust(size, b"\0")[:size]
        if data and not p.space.write(mask_ptr, data):
            return -errno.EFAULT
    return 0


HANDLERS = {
    26: sys_msync,
    27: sys_mincore,
    149: sys_mlock,
    150: sys_mlock,  # munlock: same checks, nothing to undo
    151: sys_mlockall,
    152: sys_munlockall,
    325: sys_mlock2,
    237: sys_mbind,
    238: sys_set_mempolicy,
    239: sys_get_mempolicy,
}
