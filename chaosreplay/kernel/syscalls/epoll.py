"""epoll_create, epoll_create1, epoll_ctl, epoll_wait, epoll_pwait, epoll_pwait2."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel import signalling
from chaosreplay.kernel.fs.epoll import EPOLL_CTL_DEL, Epoll
from chaosreplay.kernel.fs.files import O_CLOEXEC, READABLE
from chaosreplay.kernel.fs.waiters import block, deadline_after, timed_out
from chaosreplay.kernel.syscalls.args import int32
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.kernel.syscalls.poll import _timeout_arg

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

EVENT_SIZE = 12  # struct epoll_event is packed on x86-64: u32 events, u64 data
MAX_EVENTS = 0x7FFFFFFF // EVENT_SIZE


def _create(p: GuestProcess, flags: int) -> int:
    if flags & ~O_CLOEXEC:
        return -errno.EINVAL
    return p.files.install(Epoll(2), bool(flags & O_CLOEXEC))  # O_RDWR


def sys_epoll_create(p: GuestProcess, r: Any) -> int:
    return -errno.EINVAL if int32(r.rdi) <= 0 else _create(p, 0)


def sys_epoll_create1(p: GuestProcess, r: Any) -> int:
    return _create(p, r.rdi & 0xFFFFFFFF)


def sys_epoll_ctl(p: GuestProcess, r: Any) -> int:
    epfd, op, fd = int32(r.rdi), int32(r.rsi), int32(r.rdx)
    epoll, file = p.files.get(epfd), p.files.get(fd)
    if epoll is None or file is None:
        return -errno.EBADF
    if not isinstance(epoll, Epoll):
        return -errno.EINVAL
    if not file.pollable:
        return -errno.EPERM
    events = data = 0
    if op != EPOLL_CTL_DEL:
        raw = p.space.read(r.r10, EVENT_SIZE)
        if raw is None:
            return -errno.EFAULT
        events, data = struct.unpack("<IQ", raw)
    return epoll.control(p, op, fd, file, events, data)


def _wait(p: GuestProcess, epfd: int, events_ptr: int, maxevents: int,
          timeout_ns: int | None) -> int:
    epoll = p.files.get(int32(epfd))
    if epoll is None:
        return -errno.EBADF
    if not isinstance(epoll, Epoll) or not 0 < maxevents <= MAX_EVENTS:
        return -errno.EINVAL
    ready = epoll.collect(p, maxevents)
    if ready or timeout_ns == 0 or timed_out(p):
        out = b"".join(struct.pack("<IQ", ev, data) for ev, data in ready)
        return len(ready) if not out or p.space.write(events_ptr, out) else -errno.EFAULT
    return block(p, [(epoll, READABLE)], deadline_after(p, timeout_ns), "epoll_wait")


def _ms(value: int) -> int | None:
    ms = int32(value)
    return None if ms < 0 else ms * 1_000_000


def sys_epoll_wait(p: GuestProcess, r: Any) -> int:
    return _wait(p, r.rdi, r.rsi, int32(r.rdx), _ms(r.r10))


def sys_epoll_pwait(p: GuestProcess, r: Any) -> int:
    return signalling.with_sigmask(p, r.r8, r.r9, lambda: _wait(p, r.rdi, r.rsi, int32(r.rdx),
                                                                _ms(r.r10)))


def sys_epoll_pwait2(p: GuestProcess, r: Any) -> int:
    timeout = _timeout_arg(p, r.r10)
    if timeout is not None and timeout < 0:
        return -errno.EFAULT if timeout == -2 else -errno.EINVAL
    return signalling.with_sigmask(p, r.r8, r.r9, lambda: _wait(p, r.rdi, r.rsi, int32(r.rdx),
                                                                timeout))


HANDLERS = {
    213: sys_epoll_create,
    NUMBERS["epoll_create1"]: sys_epoll_create1,
    NUMBERS["epoll_ctl"]: sys_epoll_ctl,
    NUMBERS["epoll_wait"]: sys_epoll_wait,
    NUMBERS["epoll_pwait"]: sys_epoll_pwait,
    441: sys_epoll_pwait2,
}
