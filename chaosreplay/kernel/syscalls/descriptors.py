"""The descriptor table: close, close_range, dup, dup2, dup3, fcntl, flock.

Descriptors 0-2 are ordinary: they can be closed, duplicated onto and replaced. The table
honours RLIMIT_NOFILE (`FdTable.limit`, set with setrlimit/prlimit64 in task.py).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_CLOEXEC, SETFL_MASK
from chaosreplay.kernel.fs.pipes import PIPE_MAX_SIZE, PipeEnd
from chaosreplay.kernel.syscalls.args import int32
from chaosreplay.kernel.syscalls.memfd import F_ADD_SEALS, F_GET_SEALS, fcntl_seals
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL = 0, 1, 2, 3, 4
F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW = 5, 6, 7, 36, 37, 38
F_SETOWN, F_GETOWN, F_SETSIG, F_GETSIG = 8, 9, 10, 11
F_DUPFD_CLOEXEC, F_SETPIPE_SZ, F_GETPIPE_SZ = 1030, 1031, 1032
F_UNLCK = 2
FD_CLOEXEC = 1
CLOSE_RANGE_UNSHARE, CLOSE_RANGE_CLOEXEC = 2, 4


def sys_close(p: GuestProcess, r: Any) -> int:
    return p.files.close(p, int32(r.rdi))


def sys_close_range(p: GuestProcess, r: Any) -> int:
    first, last, flags = r.rdi & 0xFFFFFFFF, r.rsi & 0xFFFFFFFF, r.rdx
    if flags & ~(CLOSE_RANGE_UNSHARE | CLOSE_RANGE_CLOEXEC) or first > last:
        return -errno.EINVAL
    for fd, slot in p.files.items():
        if first <= fd <= last:
            if flags & CLOSE_RANGE_CLOEXEC:
                slot.cloexec = True
            else:
                p.files.close(p, fd)
    return 0


def sys_dup(p: GuestProcess, r: Any) -> int:
    file = p.files.get(int32(r.rdi))
    return -errno.EBADF if file is None else p.files.install(file)


def sys_dup2(p: GuestProcess, r: Any) -> int:
    old, new = int32(r.rdi), int32(r.rsi)
    file = p.files.get(old)
    if file is None:
        return -errno.EBADF
    if old == new:
        return new
    return p.files.install_at(p, file, new, False)


def sys_dup3(p: GuestProcess, r: Any) -> int:
    old, new, flags = int32(r.rdi), int32(r.rsi), r.rdx
    if old == new or flags & ~O_CLOEXEC:
        return -errno.EINVAL
    file = p.files.get(old)
    if file is None:
        return -errno.EBADF
    return p.files.install_at(p, file, new, bool(flags & O_CLOEXEC))


def _lock(p: GuestProcess, cmd: int, arg: int) -> int:
    """Record locks: one process per node, so every lock is granted and none conflicts."""
    if cmd in (F_GETLK, F_OFD_GETLK):
        raw = p.space.read(arg, 2)
        if raw is None:
            return -errno.EFAULT
        return 0 if p.space.write(arg, F_UNLCK.to_bytes(2, "little")) else -errno.EFAULT
    return 0


def sys_fcntl(p: GuestProcess, r: Any) -> int:
    fd, cmd, arg = int32(r.rdi), r.rsi & 0xFFFFFFFF, r.rdx
    slot = p.files.slots.get(fd)
    if slot is None:
        return -errno.EBADF
    file = slot.file
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        lowest = int32(arg)
        if not 0 <= lowest < p.files.limit:
            return -errno.EINVAL
        return p.files.install(file, cmd == F_DUPFD_CLOEXEC, lowest)
    if cmd == F_GETFD:
        return FD_CLOEXEC if slot.cloexec else 0
    if cmd == F_SETFD:
        slot.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return file.flags
    if cmd == F_SETFL:
        file.flags = (file.flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        return 0
    if cmd in (F_GETLK, F_SETLK, F_SETLKW, F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW):
        return _lock(p, cmd, arg)
    if cmd in (F_GETOWN, F_GETSIG):
        return 0
    if cmd in (F_SETOWN, F_SETSIG):
        return 0
    if cmd in (F_GETPIPE_SZ, F_SETPIPE_SZ):
        if not isinstance(file, PipeEnd):
            return -errno.EBADF
        if cmd == F_GETPIPE_SZ:
            return file.pipe.capacity
        size = max(4096, 1 << (max(int32(arg), 1) - 1).bit_length())
        if size > PIPE_MAX_SIZE:
            return -errno.EPERM
        if size < len(file.pipe.buffer):
            return -errno.EBUSY
        file.pipe.capacity = size
        return size
    if cmd in (F_ADD_SEALS, F_GET_SEALS):
        return fcntl_seals(p, file, cmd, arg)
    return -errno.EINVAL


def sys_flock(p: GuestProcess, r: Any) -> int:
    """One process per node: every flock is granted at once."""
    if p.files.get(int32(r.rdi)) is None:
        return -errno.EBADF
    return 0 if r.rsi & ~(1 | 2 | 4 | 8) == 0 and r.rsi & 7 else -errno.EINVAL


HANDLERS = {
    NUMBERS["close"]: sys_close,
    NUMBERS["close_range"]: sys_close_range,
    NUMBERS["dup"]: sys_dup,
    NUMBERS["dup2"]: sys_dup2,
    NUMBERS["dup3"]: sys_dup3,
    NUMBERS["fcntl"]: sys_fcntl,
    NUMBERS["flock"]: sys_flock,
}
