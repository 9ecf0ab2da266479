"""Moving data through pipes without a user buffer: splice, tee, vmsplice.

One side of a splice is a pipe; the other is a pipe or any file read or written through the
description interface (so a disk file moves its bytes at the given offset, or its own).
A call waits, as the pipe calls do, until the pipe it reads has data (or no writer left) and
the pipe it writes has room (or no reader: EPIPE and SIGPIPE), unless SPLICE_F_NONBLOCK or
the pipe's O_NONBLOCK make it EAGAIN; then it moves what is there and fits, which may be
less than asked. Nothing is moved before a call blocks, so its retry starts afresh.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_APPEND, READABLE, WRITABLE, FileDescription
from chaosreplay.kernel.fs.pipes import PipeEnd
from chaosreplay.kernel.fs.waiters import block
from chaosreplay.kernel.syscalls.args import MAX_IO, iovecs, scatter
from chaosreplay.kernel.syscalls.io import broken_pipe, lookup, read_from, write_to

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

SPLICE_F_MOVE, SPLICE_F_NONBLOCK, SPLICE_F_MORE, SPLICE_F_GIFT = 1, 2, 4, 8
SPLICE_FLAGS = 0xF


def _wait_data(p: GuestProcess, end: PipeEnd, nonblock: bool, what: str) -> int | None:
    """None when the pipe can be read now (data, or no writers: end of file), else -EAGAIN
    or the WAIT of a blocked call."""
    pipe = end.pipe
    if pipe.buffer or pipe.writers == 0:
        return None
    if nonblock or end.nonblocking:
        return -errno.EAGAIN
    return block(p, [(end, READABLE)], None, what)


def _wait_room(p: GuestProcess, end: PipeEnd, nonblock: bool, what: str) -> int | None:
    """None when the pipe can take bytes now, else -EPIPE (after SIGPIPE), -EAGAIN or WAIT."""
    pipe = end.pipe
    if pipe.readers == 0:
        return broken_pipe(p)
    if pipe.free:
        return None
    if nonblock or end.nonblocking:
        return -errno.EAGAIN
    return block(p, [(end, WRITABLE)], None, what)


def _put(p: GuestProcess, end: PipeEnd, data: bytes) -> None:
    end.pipe.buffer += data
    end.pipe.readable_changed(p)


def _take(p: GuestProcess, end: PipeEnd, count: int) -> None:
    del end.pipe.buffer[:count]
    end.pipe.writable_changed(p)


def _offset(p: GuestProcess, address: int) -> int | None:
    raw = p.space.read(address, 8)
    return None if raw is None else struct.unpack("<q", raw)[0]


def _check_ends(src: FileDescription | None, dst: FileDescription | None) -> int:
    if src is None or dst is None or not src.readable or not dst.writable:
        return -errno.EBADF
    if dst.flags & O_APPEND:
        return -errno.EINVAL
    return 0


def sys_splice(p: GuestProcess, r: Any) -> int:
    src, dst = lookup(p, r.rdi), lookup(p, r.rdx)
    off_in, off_out, length, flags = r.rsi, r.r10, min(r.r8, MAX_IO), r.r9 & 0xFFFFFFFF
    checked = _check_ends(src, dst)
    if checked:
        return checked
    assert src is not None and dst is not None
    if flags & ~SPLICE_FLAGS:
        return -errno.EINVAL
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    in_pipe, out_pipe = isinstance(src, PipeEnd), isinstance(dst, PipeEnd)
    if not in_pipe and not out_pipe:
        return -errno.EINVAL
    if (in_pipe and off_in) or (out_pipe and off_out):
        return -errno.ESPIPE
    if (off_in and not src.seekable) or (off_out and not dst.seekable):
        return -errno.ESPIPE
    if length == 0:
        return 0
    if isinstance(src, PipeEnd) and isinstance(dst, PipeEnd):
        if src.pipe is dst.pipe:
            return -errno.EINVAL
        waited = _wait_data(p, src, nonblock, "splice from a pipe")
        if waited is None:
            waited = _wait_room(p, dst, nonblock, "splice into a pipe")
        if waited is not None:
            return waited
        count = min(length, len(src.pipe.buffer), dst.pipe.free)
        if count:
            _put(p, dst, bytes(src.pipe.buffer[:count]))
            _take(p, src, count)
        return count
    if isinstance(dst, PipeEnd):
        waited = _wait_room(p, dst, nonblock, "splice into a pipe")
        if waited is not None:
            return waited
        want = min(length, dst.pipe.free)
        if off_in:
            position = _offset(p, off_in)
            if position is None:
                return -errno.EFAULT
            if position < 0:
                return -errno.EINVAL
            data = src.pread(p, want, position)
        else:
            data = read_from(p, src, want)
        if isinstance(data, int):
            return data
        if data:
            _put(p, dst, data)
        if off_in and not p.space.write(off_in, struct.pack("<q", position + len(data))):
            return -errno.EFAULT
        return len(data)
    assert isinstance(src, PipeEnd)
    waited = _wait_data(p, src, nonblock, "splice from a pipe")
    if waited is not None:
        return waited
    data = bytes(src.pipe.buffer[:length])
    if not data:
        return 0  # no writer left: end of file
    if off_out:
        position = _offset(p, off_out)
        if position is None:
            return -errno.EFAULT
        if position < 0:
            return -errno.EINVAL
        written = dst.pwrite(p, data, position)
    else:
        written = write_to(p, dst, data)
    if written <= 0:
        return written
    _take(p, src, written)
    if off_out and not p.space.write(off_out, struct.pack("<q", position + written)):
        return -errno.EFAULT
    return written


def sys_tee(p: GuestProcess, r: Any) -> int:
    src, dst = lookup(p, r.rdi), lookup(p, r.rsi)
    length, flags = min(r.rdx, MAX_IO), r.r10 & 0xFFFFFFFF
    checked = _check_ends(src, dst)
    if checked:
        return checked
    if flags & ~SPLICE_FLAGS:
        return -errno.EINVAL
    if not isinstance(src, PipeEnd) or not isinstance(dst, PipeEnd) or src.pipe is dst.pipe:
        return -errno.EINVAL
    if length == 0:
        return 0
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    waited = _wait_data(p, src, nonblock, "tee from a pipe")
    if waited is None:
        waited = _wait_room(p, dst, nonblock, "tee into a pipe")
    if waited is not None:
        return waited
    count = min(length, len(src.pipe.buffer), dst.pipe.free)
    if count:
        _put(p, dst, bytes(src.pipe.buffer[:count]))  # the source keeps its bytes
    return count


def sys_vmsplice(p: GuestProcess, r: Any) -> int:
    end = lookup(p, r.rdi)
    flags = r.r10 & 0xFFFFFFFF
    if end is None:
        return -errno.EBADF
    if flags & ~SPLICE_FLAGS:
        return -errno.EINVAL
    if not isinstance(end, PipeEnd):
        return -errno.EBADF  # vmsplice works on pipes only
    vecs = iovecs(p, r.rsi, r.rdx)
    if isinstance(vecs, int):
        return vecs
    total = min(sum(length for _, length in vecs), MAX_IO)
    nonblock = bool(flags & SPLICE_F_NONBLOCK)
    if end.writable:
        if total == 0:
            return 0
        waited = _wait_room(p, end, nonblock, "vmsplice into a pipe")
        if waited is not None:
            return waited
        want = min(total, end.pipe.free)
        parts, got = [], 0
        for base, length in vecs:
            length = min(length, want - got)
            if length <= 0:
                break
            chunk = p.space.read(base, length)
            if chunk is None:
                break
            parts.append(chunk)
            got += length
        if not got:
            return -errno.EFAULT
        _put(p, end, b"".join(parts))
        return got
    if total == 0:
        return 0
    waited = _wait_data(p, end, nonblock, "vmsplice from a pipe")
    if waited is not None:
        return waited
    data = bytes(end.pipe.buffer[:total])
    moved = scatter(p, vecs, data) if data else 0
    if moved > 0:
        _take(p, end, moved)
    return moved


HANDLERS = {
    275: sys_splice,
    276: sys_tee,
    278: sys_vmsplice,
}
