"""Character devices: the virtual terminal and /dev/{null,zero,full,random,urandom}.

The terminal is a fixed virtual tty (80x24): reading it is end of file, writing it is the
program's output (`GuestProcess.output`, stream 1 or 2), so a program's buffering choices
never depend on what the host's streams are. /dev/random and /dev/urandom read from the
node's seeded `urandom` stream (one stream for both, never blocking, as on Linux >= 5.6).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any, ClassVar

from chaosreplay.kernel.fs.files import (
    S_IFCHR,
    WRITABLE,
    FileDescription,
    Refs,
    StatInfo,
)
from chaosreplay.kernel.fs.synthetic import BOOT_REALTIME_NS, DEV_DEV

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

TCGETS, TCSETS, TCSETSW, TCSETSF = 0x5401, 0x5402, 0x5403, 0x5404
TIOCGPGRP, TIOCSPGRP, TIOCGWINSZ, TIOCSWINSZ, TIOCGSID = 0x540F, 0x5410, 0x5413, 0x5414, 0x5429
TERMIOS = struct.pack("<4IB19s", 0x500, 0x5, 0xBF, 0x8A3B, 0,
                      bytes([3, 28, 127, 21, 4, 0, 1, 0, 17, 19, 26, 0, 18, 15, 23, 22, 0, 0, 0]))
PTS_MAJOR = 136
URANDOM_STREAM = "urandom"


def mkdev(major: int, minor: int) -> int:
    return (major << 8) | minor


class Tty(FileDescription):
    """The node's virtual terminal; `stream` says where output goes (1 stdout, 2 stderr)."""

    kind = "tty"

    def __init__(self, flags: int, path: bytes, stream: int = 1) -> None:
        super().__init__(flags, path)
        self.stream = stream

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        return b""  # nobody types: end of file

    def write(self, p: GuestProcess, data: bytes) -> int:
        p.output(self.stream, data)
        return len(data)

    def readiness(self, p: GuestProcess, mask: int) -> int:
        return mask & (0x1 | 0x40 | WRITABLE)

    def ioctl(self, p: GuestProcess, request: int, arg: int) -> int:
        out = {TCGETS: TERMIOS, TIOCGWINSZ: struct.pack("<4H", 24, 80, 0, 0),
               TIOCGPGRP: struct.pack("<i", 1000), TIOCGSID: struct.pack("<i", 1000)}.get(request)
        if out is not None:
            return 0 if p.space.write(arg, out) else -errno.EFAULT
        if request in (TCSETS, TCSETSW, TCSETSF, TIOCSWINSZ, TIOCSPGRP):
            return 0
        return -errno.ENOTTY

    def stat(self, p: GuestProcess) -> StatInfo | int:
        rdev = mkdev(PTS_MAJOR, p.node_id & 0xFF)
        return StatInfo(0x16, 3, S_IFCHR | 0o620, 1, 0, 5, rdev, 0, 1024)

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        return Tty(flags, self.path, self.stream)

    def save(self, refs: Refs) -> Any:
        return self.stream

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, data)


class Device(FileDescription):
    """One of the memory devices (major 1): null, zero, full, random, urandom."""

    kind = "device"
    RDEV: ClassVar[dict[bytes, int]] = {
        b"null": mkdev(1, 3), b"zero": mkdev(1, 5), b"full": mkdev(1, 7),
        b"random": mkdev(1, 8), b"urandom": mkdev(1, 9)}

    def __init__(self, flags: int, path: bytes, name: bytes = b"null") -> None:
        super().__init__(flags, path)
        self.name = name

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        if self.name == b"null":
            return b""
        if self.name in (b"zero", b"full"):
            return bytes(size)
        return p.random[URANDOM_STREAM].read(size)

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return self.read(p, size)

    def write(self, p: GuestProcess, data: bytes) -> int:
        return -errno.ENOSPC if self.name == b"full" else len(data)

    def pwrite(self, p: GuestProcess, data: bytes, offset: int) -> int:
        return self.write(p, data)

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        return 0  # seeking a memory device always succeeds and means nothing

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(DEV_DEV, 4 + sorted(self.RDEV).index(self.name), S_IFCHR | 0o666, 1,
                        rdev=self.RDEV[self.name], atime_ns=BOOT_REALTIME_NS,
                        mtime_ns=BOOT_REALTIME_NS, ctime_ns=BOOT_REALTIME_NS)

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        return Device(flags, self.path, self.name)

    def save(self, refs: Refs) -> Any:
        return self.name

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, bytes(data))
