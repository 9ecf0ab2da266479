"""I/O system calls on the standard streams, which look like a virtual terminal.

Standard input reads as end of file; standard output and error are a fixed virtual tty
(80x24), so a program's buffering choices never depend on what the host's streams are.
Every other descriptor is a file or directory: these calls hand it to files.py.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.syscalls import files
from chaosreplay.kernel.syscalls.files import AT_EMPTY_PATH, MAX_IO
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

TCGETS, TCSETS, TCSETSW, TCSETSF, TIOCGWINSZ, TIOCSWINSZ, TIOCGPGRP = (
    0x5401, 0x5402, 0x5403, 0x5404, 0x5413, 0x5414, 0x540F)
FIONBIO = 0x5421
S_IFCHR = 0o020000
_TERMIOS = struct.pack("<4IB19s", 0x500, 0x5, 0xBF, 0x8A3B, 0,
                       bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]))
_STDIO = (0, 1, 2)


def _tty_stat(fd: int, node_id: int) -> bytes:
    """struct stat of a virtual pseudo-terminal (the same bytes on every host)."""
    rdev = (136 << 8) | (node_id & 0xFF)
    return struct.pack("<QQQIIIIQqqq6q3q", 0x16, 3 + fd, 1, S_IFCHR | 0o620, 0, 5, 0, rdev,
                       0, 1024, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)


def sys_read(p: GuestProcess, r: Any) -> int:
    fd = r.rdi
    if fd == 0:
        return 0
    return files.sys_read(p, r) if fd not in _STDIO else -errno.EINVAL


def _write(p: GuestProcess, fd: int, data: bytes) -> int:
    if fd not in (1, 2):
        return -errno.EBADF
    p.output(fd, data)
    return len(data)


def sys_write(p: GuestProcess, r: Any) -> int:
    fd, buf, count = r.rdi, r.rsi, min(r.rdx, MAX_IO)
    if fd not in (1, 2):
        return files.sys_write(p, r) if fd != 0 else -errno.EBADF
    data = p.space.read(buf, count) if count else b""
    if data is None:
        return -errno.EFAULT
    return _write(p, fd, data)


def sys_writev(p: GuestProcess, r: Any) -> int:
    fd = r.rdi
    if fd not in (1, 2):
        return files.sys_writev(p, r) if fd != 0 else -errno.EBADF
    data = files.gather(p, r.rsi, r.rdx)
    return data if isinstance(data, int) else _write(p, fd, data)


def sys_ioctl(p: GuestProcess, r: Any) -> int:
    fd, request, arg = r.rdi, r.rsi & 0xFFFFFFFF, r.rdx
    if fd not in _STDIO:
        return files.sys_ioctl(p, r)
    if request == TCGETS:
        return 0 if p.space.write(arg, _TERMIOS) else -errno.EFAULT
    if request == TIOCGWINSZ:
        return 0 if p.space.write(arg, struct.pack("<4H", 24, 80, 0, 0)) else -errno.EFAULT
    if request == TIOCGPGRP:
        return 0 if p.space.write(arg, struct.pack("<i", 1)) else -errno.EFAULT
    if request in (TCSETS, TCSETSW, TCSETSF, TIOCSWINSZ, FIONBIO):
        return 0
    return -errno.ENOTTY


def sys_fstat(p: GuestProcess, r: Any) -> int:
    fd, buf = r.rdi, r.rsi
    if fd not in _STDIO:
        return files.sys_fstat(p, r)
    return 0 if p.space.write(buf, _tty_stat(fd, p.node_id)) else -errno.EFAULT


def sys_newfstatat(p: GuestProcess, r: Any) -> int:
    dirfd, path, buf, flags = r.rdi, r.rsi, r.rdx, r.r10
    if dirfd in _STDIO and flags & AT_EMPTY_PATH and p.space.read_cstring(path) == b"":
        return 0 if p.space.write(buf, _tty_stat(dirfd, p.node_id)) else -errno.EFAULT
    return files.sys_newfstatat(p, r)


def _readlink(p: GuestProcess, path_ptr: int, buf: int, size: int) -> int:
    name = p.space.read_cstring(path_ptr)
    if name is None:
        return -errno.EFAULT
    if name != b"/proc/self/exe":
        return -errno.ENOENT
    target = p.exe_name[:size]
    return len(target) if p.space.write(buf, target) else -errno.EFAULT


def sys_readlink(p: GuestProcess, r: Any) -> int:
    return _readlink(p, r.rdi, r.rsi, r.rdx)


def sys_readlinkat(p: GuestProcess, r: Any) -> int:
    return _readlink(p, r.rsi, r.rdx, r.r10)


def sys_close(p: GuestProcess, r: Any) -> int:
    return 0 if r.rdi in _STDIO else files.sys_close(p, r)


def sys_lseek(p: GuestProcess, r: Any) -> int:
    return -errno.ESPIPE if r.rdi in _STDIO else files.sys_lseek(p, r)


HANDLERS = {
    NUMBERS["read"]: sys_read,
    NUMBERS["write"]: sys_write,
    NUMBERS["writev"]: sys_writev,
    NUMBERS["ioctl"]: sys_ioctl,
    NUMBERS["fstat"]: sys_fstat,
    NUMBERS["newfstatat"]: sys_newfstatat,
    NUMBERS["readlink"]: sys_readlink,
    NUMBERS["readlinkat"]: sys_readlinkat,
    NUMBERS["close"]: sys_close,
    NUMBERS["lseek"]: sys_lseek,
}
