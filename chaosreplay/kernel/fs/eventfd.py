"""eventfd(2): a 64-bit counter that write adds to and read takes (or takes one of)."""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    READABLE,
    S_IFREG,
    WRITABLE,
    FileDescription,
    Refs,
    StatInfo,
    id_of,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

EFD_SEMAPHORE = 1
COUNTER_MAX = (1 << 64) - 2


class EventFd(FileDescription):
    """An eventfd counter; with EFD_SEMAPHORE a read takes 1 instead of everything."""

    kind = "eventfd"
    blocking = True

    def __init__(self, flags: int, path: bytes = b"anon_inode:[eventfd]", count: int = 0,
                 semaphore: bool = False) -> None:
        super().__init__(flags, path)
        self.count = count
        self.semaphore = semaphore
        self.events = 0

    def _changed(self, p: GuestProcess, mask: int) -> None:
        self.events += 1
        self.queue.notify(mask, p.vtime_ns)

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        if size < 8:
            return -errno.EINVAL
        if self.count == 0:
            return -errno.EAGAIN
        value = 1 if self.semaphore else self.count
        self.count -= value
        self._changed(p, WRITABLE)
        return struct.pack("<Q", value)

    def write(self, p: GuestProcess, data: bytes) -> int:
        if len(data) < 8:
            return -errno.EINVAL
        (value,) = struct.unpack_from("<Q", data)
        if value == (1 << 64) - 1:
            return -errno.EINVAL
        if self.count + value > COUNTER_MAX:
            return -errno.EAGAIN
        if value:
            self.count += value
            self._changed(p, READABLE)
        return 8

    def readiness(self, p: GuestProcess, mask: int) -> int:
        ready = (READABLE if self.count else 0) | (WRITABLE if self.count < COUNTER_MAX else 0)
        return ready & mask

    def generation(self, p: GuestProcess, mask: int) -> Any:
        return self.events

    def pending_bytes(self, p: GuestProcess) -> int | None:
        return None

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, id_of(self.path), S_IFREG | 0o600, 1, blksize=4096)

    def save(self, refs: Refs) -> Any:
        return [self.count, self.semaphore, self.events]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        d = cls(flags, path, data[0], data[1])
        d.events = data[2]
        return d
