"""Reading and writing descriptors: every call goes through the description's interface.

read/write (and their vector and positioned forms) behave alike for every kind of file;
only the description decides what the bytes are. A call on a description that can block
(pipes, eventfd, timerfd) and is not O_NONBLOCK waits on the description's queue
(kernel.fs.waiters) instead of returning EAGAIN. A write to a pipe with no readers fails
with EPIPE and sends SIGPIPE to the writing thread: its default action ends the program;
a handler runs on the way back; an ignored or blocked one leaves just the EPIPE.
"""

from __future__ import annotations

import errno
import signal
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel import signalling
from chaosreplay.kernel.fs.files import (
    FIOCLEX,
    FIONBIO,
    FIONCLEX,
    FIONREAD,
    O_NONBLOCK,
    READABLE,
    WRITABLE,
    FileDescription,
)
from chaosreplay.kernel.fs.waiters import WAIT, block, deadline_after, progress, timed_out
from chaosreplay.kernel.signals.siginfo import tkill_info
from chaosreplay.kernel.syscalls.args import (
    MAX_IO,
    gather,
    int32,
    int64,
    iovecs,
    scatter,
)
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess


def lookup(p: GuestProcess, fd: int) -> FileDescription | None:
    return p.files.get(int32(fd))


def broken_pipe(p: GuestProcess) -> int:
    """EPIPE, after sending SIGPIPE to the writing thread (its default action kills)."""
    handler = p.signals.actions.get(signal.SIGPIPE).handler
    blocked = p.signal_mask & (1 << (signal.SIGPIPE - 1))
    if handler == 0 and not blocked:
        p._die(signal.SIGPIPE, 0, 0, "SIGPIPE: write to a pipe with no readers")
    else:  # caught (delivered on the way back), ignored (dropped) or blocked (pending)
        signalling.send_to_task(p, p.current, tkill_info(signal.SIGPIPE, p.pid, 0))
    return -errno.EPIPE


def read_from(p: GuestProcess, file: FileDescription, size: int) -> bytes | int:
    """Read, blocking when the description says it would and the call may block."""
    if not file.readable:
        return -errno.EBADF
    if timed_out(p):
        return -errno.EAGAIN  # SO_RCVTIMEO ran out (Linux: EAGAIN)
    data = file.read(p, min(size, MAX_IO))
    if data == -errno.EAGAIN and file.blocking and not file.nonblocking:
        return block(p, [(file, READABLE)], deadline_after(p, file.io_timeout_ns(False)),
                     f"read of {file.path.decode(errors='replace')}")
    return data


def write_to(p: GuestProcess, file: FileDescription, data: bytes) -> int:
    """Write all of data, blocking for room as needed; the bytes written or -errno."""
    if not file.writable:
        return -errno.EBADF
    done = progress(p)
    if timed_out(p):
        return done or -errno.EAGAIN  # SO_SNDTIMEO ran out: what was written, else EAGAIN
    n = file.write(p, data[done:])
    if n == -errno.EPIPE:
        return done or broken_pipe(p)
    if n < 0 and n != -errno.EAGAIN:
        return done or n
    done += max(n, 0)
    if done < len(data) and file.blocking and not file.nonblocking:
        return block(p, [(file, WRITABLE)], deadline_after(p, file.io_timeout_ns(True)),
                     f"write to {file.path.decode(errors='replace')}", moved=done)
    return done if done or n >= 0 else n


def _deliver(p: GuestProcess, data: bytes | int, buf: int) -> int:
    if isinstance(data, int):
        return data
    return len(data) if not data or p.space.write(buf, data) else -errno.EFAULT


def sys_read(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    return _deliver(p, read_from(p, file, r.rdx), r.rsi)


def _guest_bytes(p: GuestProcess, buf: int, count: int) -> bytes | int:
    data = p.space.read(buf, min(count, MAX_IO)) if count else b""
    return -errno.EFAULT if data is None else data


def sys_write(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    data = _guest_bytes(p, r.rsi, r.rdx)
    return data if isinstance(data, int) else write_to(p, file, data)


def sys_readv(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    vecs = iovecs(p, r.rsi, r.rdx)
    if isinstance(vecs, int):
        return vecs
    data = read_from(p, file, sum(length for _, length in vecs))
    return data if isinstance(data, int) else scatter(p, vecs, data)


def sys_writev(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    data = gather(p, r.rsi, r.rdx)
    return data if isinstance(data, int) else write_to(p, file, data)


def _offset(r: Any) -> int:
    return int64(r.r10)


def sys_pread64(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.readable:
        return -errno.EBADF
    if _offset(r) < 0:
        return -errno.EINVAL if file.seekable else -errno.ESPIPE
    return _deliver(p, file.pread(p, min(r.rdx, MAX_IO), _offset(r)), r.rsi)


def sys_pwrite64(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.writable:
        return -errno.EBADF
    if _offset(r) < 0:
        return -errno.EINVAL if file.seekable else -errno.ESPIPE
    data = _guest_bytes(p, r.rsi, r.rdx)
    return data if isinstance(data, int) else file.pwrite(p, data, _offset(r))


def sys_preadv(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.readable:
        return -errno.EBADF
    vecs = iovecs(p, r.rsi, r.rdx)
    if isinstance(vecs, int):
        return vecs
    if _offset(r) < 0:
        return -errno.EINVAL
    data = file.pread(p, min(sum(n for _, n in vecs), MAX_IO), _offset(r))
    return data if isinstance(data, int) else scatter(p, vecs, data)


def sys_pwritev(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.writable:
        return -errno.EBADF
    data = gather(p, r.rsi, r.rdx)
    if isinstance(data, int):
        return data
    return -errno.EINVAL if _offset(r) < 0 else file.pwrite(p, data, _offset(r))


def sys_lseek(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    return file.seek(p, int64(r.rsi), r.rdx & 0xFFFFFFFF)


def sys_sendfile(p: GuestProcess, r: Any) -> int:
    out, src = lookup(p, r.rdi), lookup(p, r.rsi)
    if out is None or src is None or not src.readable or not out.writable:
        return -errno.EBADF
    if not src.seekable:
        return -errno.EINVAL  # callers fall back to read and write
    count = min(r.r10, MAX_IO)
    if r.rdx:
        raw = p.space.read(r.rdx, 8)
        if raw is None:
            return -errno.EFAULT
        (offset,) = struct.unpack("<q", raw)
        data = src.pread(p, count, offset)
    else:
        data = read_from(p, src, count)
    if isinstance(data, int):
        return data
    written = write_to(p, out, data) if data else 0
    if written == WAIT and not r.rdx:
        src.offset -= len(data)  # the retry reads the same bytes again and skips those sent
    if written < 0:
        return written
    if r.rdx:
        p.space.write(r.rdx, struct.pack("<q", offset + written))
    elif written < len(data) and src.seekable:
        src.offset -= len(data) - written
    return written


def sys_ioctl(p: GuestProcess, r: Any) -> int:
    fd, request, arg = int32(r.rdi), r.rsi & 0xFFFFFFFF, r.rdx
    file = p.files.get(fd)
    if file is None:
        return -errno.EBADF
    if request in (FIOCLEX, FIONCLEX):
        p.files.slots[fd].cloexec = request == FIOCLEX
        return 0
    if request == FIONBIO:
        raw = p.space.read(arg, 4)
        if raw is None:
            return -errno.EFAULT
        on = struct.unpack("<i", raw)[0] != 0
        file.flags = file.flags | O_NONBLOCK if on else file.flags & ~O_NONBLOCK
        return 0
    if request == FIONREAD:
        pending = file.pending_bytes(p)
        if pending is None:
            return file.ioctl(p, request, arg)
        return 0 if p.space.write(arg, struct.pack("<i", min(pending, 0x7FFFFFFF))) \
            else -errno.EFAULT
    return file.ioctl(p, request, arg)


def _fsync(p: GuestProcess, r: Any, data_only: bool) -> int:
    file = lookup(p, r.rdi)
    return -errno.EBADF if file is None else file.fsync(p, data_only)


def sys_fsync(p: GuestProcess, r: Any) -> int:
    return _fsync(p, r, False)


def sys_fdatasync(p: GuestProcess, r: Any) -> int:
    return _fsync(p, r, True)


HANDLERS = {
    NUMBERS["read"]: sys_read,
    NUMBERS["write"]: sys_write,
    NUMBERS["readv"]: sys_readv,
    NUMBERS["writev"]: sys_writev,
    NUMBERS["pread64"]: sys_pread64,
    NUMBERS["pwrite64"]: sys_pwrite64,
    295: sys_preadv,
    296: sys_pwritev,
    NUMBERS["lseek"]: sys_lseek,
    NUMBERS["sendfile"]: sys_sendfile,
    NUMBERS["ioctl"]: sys_ioctl,
    NUMBERS["fsync"]: sys_fsync,
    NUMBERS["fdatasync"]: sys_fdatasync,
}
