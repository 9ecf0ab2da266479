"""poll, ppoll, select, pselect6: written once against descriptions' readiness.

A call with nothing ready blocks on the wait queues of every description it watches
until one changes, a timer among them fires, or its timeout (on the guest's clock, so a
skewed node clock stretches it) runs out, or a signal interrupts it (EINTR). ppoll and
pselect6 wait with the mask they are given in place (signalling.with_sigmask).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel import signalling
from chaosreplay.kernel.fs.files import (
    ALWAYS_REPORTED,
    POLLERR,
    POLLHUP,
    POLLIN,
    POLLNVAL,
    POLLOUT,
    POLLPRI,
    READABLE,
    WRITABLE,
    FileDescription,
)
from chaosreplay.kernel.fs.waiters import block, deadline_after, timed_out
from chaosreplay.kernel.syscalls.args import NS, int32, timespec_ns
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

FD_SETSIZE = 1024
SELECT_READ = READABLE | POLLHUP | POLLERR
SELECT_WRITE = WRITABLE | POLLERR
SELECT_EXCEPT = POLLPRI


def _do_poll(p: GuestProcess, fds_ptr: int, nfds: int, timeout_ns: int | None) -> int:
    if nfds > p.files.limit:
        return -errno.EINVAL
    raw = p.space.read(fds_ptr, 8 * nfds) if nfds else b""
    if raw is None:
        return -errno.EFAULT
    entries = list(struct.iter_unpack("<ihh", raw))
    out, targets, count = bytearray(), [], 0
    for fd, events, _ in entries:
        events &= 0xFFFF
        revents = 0
        if fd >= 0:
            file = p.files.get(fd)
            if file is None:
                revents = POLLNVAL
            else:
                revents = file.readiness(p, events | ALWAYS_REPORTED) & (events | ALWAYS_REPORTED)
                targets.append((file, events | ALWAYS_REPORTED))
        count += revents != 0
        out += struct.pack("<ihh", fd, events - (1 << 16) if events >= 1 << 15 else events,
                           revents)
    if count or timeout_ns == 0 or timed_out(p):
        return count if not out or p.space.write(fds_ptr, bytes(out)) else -errno.EFAULT
    return block(p, targets, deadline_after(p, timeout_ns), "poll")


def sys_poll(p: GuestProcess, r: Any) -> int:
    timeout_ms = int32(r.rdx)
    return _do_poll(p, r.rdi, r.rsi & 0xFFFFFFFF,
                    None if timeout_ms < 0 else timeout_ms * 1_000_000)


def _timeout_arg(p: GuestProcess, address: int) -> int | None:
    """A timespec timeout argument in ns (None: none given), or -1 / -2 for EINVAL / EFAULT."""
    if not address:
        return None
    value = timespec_ns(p, address)
    if value is None:
        return -2
    return value


def sys_ppoll(p: GuestProcess, r: Any) -> int:
    timeout = _timeout_arg(p, r.rdx)
    if timeout is not None and timeout < 0:
        return -errno.EFAULT if timeout == -2 else -errno.EINVAL
    return signalling.with_sigmask(p, r.r10, r.r8,
                                   lambda: _do_poll(p, r.rdi, r.rsi & 0xFFFFFFFF, timeout))


def _read_set(p: GuestProcess, address: int, nbytes: int) -> int | None:
    if not address:
        return 0
    raw = p.space.read(address, nbytes)
    return None if raw is None else int.from_bytes(raw, "little")


def _do_select(p: GuestProcess, nfds: int, sets: tuple[int, int, int],
               timeout_ns: int | None) -> int:
    if not 0 <= nfds <= FD_SETSIZE:
        return -errno.EINVAL
    nbytes = (nfds + 63) // 64 * 8
    wanted = [_read_set(p, a, nbytes) for a in sets]
    if None in wanted:
        return -errno.EFAULT
    masks = (SELECT_READ, SELECT_WRITE, SELECT_EXCEPT)
    results = [0, 0, 0]
    targets: list[tuple[FileDescription, int]] = []
    for fd in range(nfds):
        bit = 1 << fd
        asked = [masks[i] for i in range(3) if wanted[i] & bit]  # type: ignore[operator]
        if not asked:
            continue
        file = p.files.get(fd)
        if file is None:
            return -errno.EBADF
        mask = 0
        for m in asked:
            mask |= m
        ready = file.readiness(p, mask | POLLIN | POLLOUT)
        for i in range(3):
            if wanted[i] & bit and ready & masks[i]:  # type: ignore[operator]
                results[i] |= bit
        targets.append((file, mask))
    count = sum(bin(x).count("1") for x in results)
    if count or timeout_ns == 0 or timed_out(p):
        for address, value in zip(sets, results, strict=True):
            if address and not p.space.write(address, value.to_bytes(nbytes, "little")):
                return -errno.EFAULT
        return count
    return block(p, targets, deadline_after(p, timeout_ns), "select")


def sys_select(p: GuestProcess, r: Any) -> int:
    timeout: int | None = None
    if r.r8:
        raw = p.space.read(r.r8, 16)
        if raw is None:
            return -errno.EFAULT
        seconds, micros = struct.unpack("<qq", raw)
        if seconds < 0 or not 0 <= micros < 1_000_000:
            return -errno.EINVAL
        timeout = seconds * NS + micros * 1000
    result = _do_select(p, int32(r.rdi), (r.rsi, r.rdx, r.r10), timeout)
    if timeout is not None and result >= 0:  # Linux writes back the time left
        wait = p.waiting
        left = timeout if wait is None else max(0, (wait.deadline_ns or 0) - p.vtime_ns)
        p.space.write(r.r8, struct.pack("<qq", left // NS, left % NS // 1000))
    return result


def sys_pselect6(p: GuestProcess, r: Any) -> int:
    timeout = _timeout_arg(p, r.r8)
    if timeout is not None and timeout < 0:
        return -errno.EFAULT if timeout == -2 else -errno.EINVAL
    mask_at, mask_size = 0, 8
    if r.r9:  # struct { const sigset_t *ss; size_t ss_len; }
        raw = p.space.read(r.r9, 16)
        if raw is None:
            return -errno.EFAULT
        mask_at, mask_size = struct.unpack("<QQ", raw)
    return signalling.with_sigmask(p, mask_at, mask_size, lambda: _do_select(
        p, int32(r.rdi), (r.rsi, r.rdx, r.r10), timeout))


HANDLERS = {
    NUMBERS["poll"]: sys_poll,
    NUMBERS["ppoll"]: sys_ppoll,
    NUMBERS["select"]: sys_select,
    NUMBERS["pselect6"]: sys_pselect6,
}
