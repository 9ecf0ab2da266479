"""timerfd_create, timerfd_settime, timerfd_gettime on the guest's (skewable) clocks."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_CLOEXEC, O_NONBLOCK, O_RDONLY
from chaosreplay.kernel.fs.timerfd import (
    TFD_TIMER_ABSTIME,
    TFD_TIMER_CANCEL_ON_SET,
    TIMER_CLOCKS,
    TimerFd,
)
from chaosreplay.kernel.syscalls.args import NS, int32, timespec

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess


def sys_timerfd_create(p: GuestProcess, r: Any) -> int:
    clock_id, flags = int32(r.rdi), r.rsi & 0xFFFFFFFF
    if flags & ~(O_CLOEXEC | O_NONBLOCK):
        return -errno.EINVAL
    if clock_id not in TIMER_CLOCKS:
        return -errno.EINVAL
    return p.files.install(TimerFd(O_RDONLY | (flags & O_NONBLOCK), clock_id=clock_id),
                           bool(flags & O_CLOEXEC))


def _timer(p: GuestProcess, fd: int) -> TimerFd | int:
    file = p.files.get(int32(fd))
    if file is None:
        return -errno.EBADF
    return file if isinstance(file, TimerFd) else -errno.EINVAL


def _itimerspec(remaining: int, interval: int) -> bytes:
    return timespec(interval) + timespec(remaining)


def sys_timerfd_settime(p: GuestProcess, r: Any) -> int:
    timer = _timer(p, r.rdi)
    if isinstance(timer, int):
        return timer
    flags = r.rsi & 0xFFFFFFFF
    if flags & ~(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET):
        return -errno.EINVAL
    raw = p.space.read(r.rdx, 32)
    if raw is None:
        return -errno.EFAULT
    i_sec, i_nsec, v_sec, v_nsec = struct.unpack("<4q", raw)
    if min(i_sec, v_sec) < 0 or not (0 <= i_nsec < NS and 0 <= v_nsec < NS):
        return -errno.EINVAL
    old = timer.set(p, flags, v_sec * NS + v_nsec, i_sec * NS + i_nsec)
    if r.r10 and not p.space.write(r.r10, _itimerspec(*old)):
        return -errno.EFAULT
    return 0


def sys_timerfd_gettime(p: GuestProcess, r: Any) -> int:
    timer = _timer(p, r.rdi)
    if isinstance(timer, int):
        return timer
    return 0 if p.space.write(r.rsi, _itimerspec(*timer.get(p))) else -errno.EFAULT


HANDLERS = {
    283: sys_timerfd_create,
    286: sys_timerfd_settime,
    287: sys_timerfd_gettime,
}
