"""Calls that look at a process from outside, used here on the process itself: kcmp,
process_vm_readv, process_vm_writev.

A pid argument must name this process (its pid or one of its tasks' tids); any other is
ESRCH. kcmp orders two
different open files by the lowest descriptor naming each, a deterministic stand-in for
the order of kernel pointers Linux uses (it promises only a consistent order); every other
resource (memory, descriptor table, fs info, signal handlers, I/O context, SysV undo list)
is the process's own and so the same for both sides.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.epoll import Epoll
from chaosreplay.kernel.fs.files import FileDescription
from chaosreplay.kernel.syscalls.args import IOV_MAX, int32, iovecs
from chaosreplay.kernel.task_attributes import names_this_process

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

KCMP_FILE, KCMP_VM, KCMP_FILES, KCMP_FS, KCMP_SIGHAND, KCMP_IO, KCMP_SYSVSEM = range(7)
KCMP_EPOLL_TFD, KCMP_TYPES = 7, 8


def _order(p: GuestProcess, a: FileDescription, b: FileDescription) -> int:
    """0 for the same description, else 1 or 2 as kcmp's "less" and "greater"."""
    if a is b:
        return 0
    first = {}
    for fd, slot in p.files.items():
        first.setdefault(id(slot.file), fd)
    return 1 if first[id(a)] < first[id(b)] else 2


def sys_kcmp(p: GuestProcess, r: Any) -> int:
    pid1, pid2, kind, idx1, idx2 = int32(r.rdi), int32(r.rsi), int32(r.rdx), r.r10, r.r8
    if pid1 <= 0 or pid2 <= 0 or not (names_this_process(p, pid1)
                                       and names_this_process(p, pid2)):
        return -errno.ESRCH
    if kind == KCMP_FILE:
        a, b = p.files.get(int32(idx1)), p.files.get(int32(idx2))
        if a is None or b is None:
            return -errno.EBADF
        return _order(p, a, b)
    if kind == KCMP_EPOLL_TFD:
        a = p.files.get(int32(idx1))
        raw = p.space.read(idx2, 12)
        if raw is None:
            return -errno.EFAULT
        epfd, target_fd, nth = struct.unpack("<III", raw)
        epoll = p.files.get(int32(epfd))
        if a is None or epoll is None:
            return -errno.EBADF
        if not isinstance(epoll, Epoll):
            return -errno.EINVAL
        watched = [e.file for e in epoll._live() if e.fd == target_fd]
        if nth >= len(watched):
            return -errno.ENOENT
        return _order(p, a, watched[nth])
    if 0 < kind < KCMP_TYPES:
        return 0
    return -errno.EINVAL


def _transfer(p: GuestProcess, r: Any, write: bool) -> int:
    """Copy between the local and the "remote" iovecs (both in this process), remote
    element by remote element: a fault stops the copy after the elements before it."""
    pid, flags = int32(r.rdi), r.r9
    if flags:
        return -errno.EINVAL
    if r.rdx > IOV_MAX or r.r8 > IOV_MAX:
        return -errno.EINVAL
    local = iovecs(p, r.rsi, r.rdx)
    remote = iovecs(p, r.r10, r.r8)
    if isinstance(local, int) or isinstance(remote, int):
        return -errno.EFAULT
    if pid <= 0 or not names_this_process(p, pid):
        return -errno.ESRCH
    capacity = sum(length for _, length in local)
    local_at = [(base, length) for base, length in local if length]
    done = 0
    for base, length in remote:
        length = min(length, capacity - done)
        if length <= 0:
            break
        source = _gather_local(p, local_at, done, length) if write else p.space.read(base,
                                                                                      length)
        if source is None:
            break
        ok = p.space.write(base, source) if write else _scatter_local(p, local_at, done,
                                                                       source)
        if not ok:
            break
        done += length
    return done if done else -errno.EFAULT


def _pieces(vecs: list[tuple[int, int]], skip: int, length: int) -> list[tuple[int, int]]:
    """The (address, length) pieces of the local iovecs covering [skip, skip + length)."""
    out, at = [], 0
    for base, size in vecs:
        lo, hi = max(skip, at), min(skip + length, at + size)
        if lo < hi:
            out.append((base + lo - at, hi - lo))
        at += size
    return out


def _gather_local(p: GuestProcess, vecs: list[tuple[int, int]], skip: int, length: int
                  ) -> bytes | None:
    parts = []
    for address, size in _pieces(vecs, skip, length):
        chunk = p.space.read(address, size)
        if chunk is None:
            return None
        parts.append(chunk)
    return b"".join(parts)


def _scatter_local(p: GuestProcess, vecs: list[tuple[int, int]], skip: int, data: bytes
                   ) -> bool:
    at = 0
    for address, size in _pieces(vecs, skip, len(data)):
        if not p.space.write(address, data[at : at + size]):
            return False
        at += size
    return True


def sys_process_vm_readv(p: GuestProcess, r: Any) -> int:
    return _transfer(p, r, write=False)


def sys_process_vm_writev(p: GuestProcess, r: Any) -> int:
    return _transfer(p, r, write=True)


HANDLERS = {
    312: sys_kcmp,
    310: sys_process_vm_readv,
    311: sys_process_vm_writev,
}
