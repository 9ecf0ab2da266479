"""pipe and pipe2: a new pipe's two ends on the two lowest free descriptors."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_CLOEXEC, O_DIRECT, O_NONBLOCK
from chaosreplay.kernel.fs.pipes import make_pipe
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess


def _pipe(p: GuestProcess, fds_ptr: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | O_DIRECT):
        return -errno.EINVAL
    read_end, write_end = make_pipe(p.files.anon_ino(), flags & (O_NONBLOCK | O_DIRECT))
    cloexec = bool(flags & O_CLOEXEC)
    rfd = p.files.install(read_end, cloexec)
    if rfd < 0:
        return rfd
    wfd = p.files.install(write_end, cloexec)
    if wfd < 0:
        p.files.close(p, rfd)
        return wfd
    if not p.space.write(fds_ptr, struct.pack("<ii", rfd, wfd)):
        p.files.close(p, rfd)
        p.files.close(p, wfd)
        return -errno.EFAULT
    return 0


def sys_pipe(p: GuestProcess, r: Any) -> int:
    return _pipe(p, r.rdi, 0)


def sys_pipe2(p: GuestProcess, r: Any) -> int:
    return _pipe(p, r.rdi, r.rsi & 0xFFFFFFFF)


HANDLERS = {
    NUMBERS["pipe"]: sys_pipe,
    NUMBERS["pipe2"]: sys_pipe2,
}
