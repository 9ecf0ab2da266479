"""eventfd and eventfd2."""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.eventfd import EFD_SEMAPHORE, EventFd
from chaosreplay.kernel.fs.files import O_CLOEXEC, O_NONBLOCK, O_RDWR
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess


def _eventfd(p: GuestProcess, initval: int, flags: int) -> int:
    if flags & ~(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE):
        return -errno.EINVAL
    file = EventFd(O_RDWR | (flags & O_NONBLOCK), count=initval & 0xFFFFFFFF,
                   semaphore=bool(flags & EFD_SEMAPHORE))
    return p.files.install(file, bool(flags & O_CLOEXEC))


def sys_eventfd(p: GuestProcess, r: Any) -> int:
    return _eventfd(p, r.rdi, 0)


def sys_eventfd2(p: GuestProcess, r: Any) -> int:
    return _eventfd(p, r.rdi, r.rsi & 0xFFFFFFFF)


HANDLERS = {
    NUMBERS["eventfd"]: sys_eventfd,
    NUMBERS["eventfd2"]: sys_eventfd2,
}
