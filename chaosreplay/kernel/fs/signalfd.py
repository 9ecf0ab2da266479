"""signalfd(2): a descriptor that reads the calling thread's pending signals of a mask.

A read takes the signals in the mask that are pending for the reading thread (its own
queue, then the process's), in the order signal delivery would take them, each as a
128-byte struct signalfd_siginfo; with none pending it blocks (or EAGAIN). The signals
are usually blocked, so they are never delivered to a handler: the descriptor is how the
program receives them. Readiness is the same test, for poll/select/epoll.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    READABLE,
    S_IFREG,
    FileDescription,
    Refs,
    StatInfo,
    id_of,
)
from chaosreplay.kernel.signals.queue import dequeue_for_task, pending_for_task
from chaosreplay.kernel.signals.siginfo import SI_KERNEL, SI_QUEUE, SI_TIMER, SI_USER, SigInfo
from chaosreplay.kernel.signals.sigset import FULL, SIGCHLD, SYNCHRONOUS, sigmask
from chaosreplay.recording.schema import U64_MAX, Int, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

SIGNALFD_SIGINFO_SIZE = 128
# struct signalfd_siginfo (uapi linux/signalfd.h): signo errno code pid uid fd tid band
# overrun trapno status int ptr utime stime addr addr_lsb pad syscall call_addr arch pad
_LAYOUT = struct.Struct("<IiiIIiIIIIiiQQQQHHiQI28x")


def _u32(info: SigInfo, offset: int) -> int:
    return struct.unpack_from("<I", info.fields, offset)[0]


def _u64(info: SigInfo, offset: int) -> int:
    return struct.unpack_from("<Q", info.fields, offset)[0]


def signalfd_siginfo(info: SigInfo) -> bytes:
    """One signal as read(2) returns it: the fields of its siginfo layout (signalfd.c
    signalfd_copyinfo), the rest zero."""
    pid = uid = tid = overrun = status = value = utime = stime = addr = 0
    signo, code = info.signo, info.code
    if code == SI_TIMER:
        tid, overrun, value = _u32(info, 0), _u32(info, 4), _u64(info, 8)
    elif signo == SIGCHLD and code > SI_USER and code < SI_KERNEL:
        pid, uid, status = _u32(info, 0), _u32(info, 4), _u32(info, 8)
        utime, stime = _u64(info, 16), _u64(info, 24)
    elif sigmask(signo) & SYNCHRONOUS and SI_USER < code < SI_KERNEL:
        addr = _u64(info, 0)
    else:  # kill, tkill, sigqueue and the kernel's own: the sender (and a value)
        pid, uid = _u32(info, 0), _u32(info, 4)
        if code == SI_QUEUE or code < 0:
            value = _u64(info, 8)
    return _LAYOUT.pack(signo, info.errno, code, pid, uid, 0, tid, 0, overrun, 0,
                        status - (1 << 32) if status >= 1 << 31 else status,
                        (value & 0xFFFFFFFF) - (1 << 32) if value & 0x80000000
                        else value & 0xFFFFFFFF, value, utime, stime, addr, 0, 0, 0, 0, 0)


class SignalFd(FileDescription):
    """A signalfd: the mask of the signals it reads."""

    kind = "signalfd"
    STATE = Row(Int(0, FULL), Int(0, U64_MAX))  # [mask, events]
    blocking = True

    def __init__(self, flags: int, path: bytes = b"anon_inode:[signalfd]",
                 mask: int = 0) -> None:
        super().__init__(flags, path)
        self.mask = mask
        self.events = 0

    def signalled(self, p: GuestProcess) -> None:
        """A signal was sent: readers and pollers look again."""
        self.events += 1
        self.queue.notify(READABLE, p.vtime_ns)

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        if size < SIGNALFD_SIGINFO_SIZE:
            return -errno.EINVAL
        task = p.current
        out = bytearray()
        while len(out) + SIGNALFD_SIGINFO_SIZE <= size:
            taken = dequeue_for_task(task.signals.pending, p.signals.pending,
                                     ~self.mask & FULL)
            if taken is None:
                break
            out += signalfd_siginfo(taken[0])
        if not out:
            return -errno.EAGAIN
        return bytes(out)

    def readiness(self, p: GuestProcess, mask: int) -> int:
        pending = pending_for_task(p.current.signals.pending, p.signals.pending)
        return (READABLE if pending & self.mask else 0) & mask

    def generation(self, p: GuestProcess, mask: int) -> Any:
        return self.events

    def pending_bytes(self, p: GuestProcess) -> int | None:
        return None

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, id_of(self.path), S_IFREG | 0o600, 1, blksize=4096)

    def save(self, refs: Refs) -> Any:
        return [self.mask, self.events]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        d = cls(flags, path, data[0])
        d.events = data[1]
        return d
