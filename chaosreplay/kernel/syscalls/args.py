"""Decoding system call arguments: signed ints, paths, iovec arrays, timespecs, sigsets."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAX_IO = 1 << 24  # one call moves at most 16 MiB, as a bound on host allocation
IOV_MAX = 1024
NS = 1_000_000_000


def int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def path_arg(p: GuestProcess, address: int) -> bytes | int:
    """A NUL-terminated path argument, or -errno (EFAULT, ENAMETOOLONG)."""
    raw = p.space.read_cstring(address, 4097)
    if raw is None:
        return -errno.EFAULT
    return -errno.ENAMETOOLONG if len(raw) >= 4096 else raw


def iovecs(p: GuestProcess, iov: int, count: int) -> list[tuple[int, int]] | int:
    if count > IOV_MAX:
        return -errno.EINVAL
    raw = p.space.read(iov, 16 * count) if count else b""
    if raw is None:
        return -errno.EFAULT
    return list(struct.iter_unpack("<QQ", raw))


def gather(p: GuestProcess, iov: int, count: int) -> bytes | int:
    """The bytes an iovec array points at (at most MAX_IO in all), or -errno."""
    vecs = iovecs(p, iov, count)
    if isinstance(vecs, int):
        return vecs
    parts, total = [], 0
    for base, length in vecs:
        length = min(length, MAX_IO - total)
        chunk = p.space.read(base, length) if length else b""
        if chunk is None:
            return -errno.EFAULT
        parts.append(chunk)
        total += length
    return b"".join(parts)


def scatter(p: GuestProcess, vecs: list[tuple[int, int]], data: bytes) -> int:
    """Copy data across iovecs; the bytes copied or -EFAULT."""
    done = 0
    for base, length in vecs:
        chunk = data[done : done + length]
        if chunk and not p.space.write(base, chunk):
            return -errno.EFAULT
        done += len(chunk)
    return done


KTIME_MAX = (1 << 63) - 1  # Linux's timers saturate here (~292 years) instead of overflowing


def timespec_ns(p: GuestProcess, address: int) -> int | None:
    """A struct timespec in ns, saturated at KTIME_MAX as timespec64_to_ktime does; None
    when unreadable, -1 when invalid."""
    raw = p.space.read(address, 16)
    if raw is None:
        return None
    seconds, nanos = struct.unpack("<qq", raw)
    if seconds < 0 or not 0 <= nanos < NS:
        return -1
    return min(seconds * NS + nanos, KTIME_MAX)


def timespec(ns: int) -> bytes:
    return struct.pack("<qq", ns // NS, ns % NS)
