"""Pipes: a 64 KiB buffer between a read end and a write end, as pipe(7) describes.

Writes of at most PIPE_BUF bytes are atomic (all or nothing); larger ones may be split.
A read of an empty pipe with writers waits (EAGAIN with O_NONBLOCK); with no writers it
is end of file. A write with no readers fails with EPIPE; the syscall layer turns that
into SIGPIPE as today's signal model allows (kernel.syscalls.io). Each end has its own
wait queue and event generation: writes are events for the read end, reads and closes of
readers are events for the write end (Linux's rd_wait and wr_wait).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    POLLERR,
    POLLHUP,
    READABLE,
    S_IFIFO,
    WRITABLE,
    FileDescription,
    Refs,
    StatInfo,
)
from chaosreplay.kernel.fs.waiters import Notifiable, WaitQueue

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

PIPE_CAPACITY = 1 << 16
PIPE_BUF = 4096


class Pipe:
    """The shared buffer of a pipe and who holds its ends."""

    def __init__(self, ino: int, capacity: int = PIPE_CAPACITY) -> None:
        self.ino = ino
        self.capacity = capacity
        self.buffer = bytearray()
        self.readers = 0
        self.writers = 0
        self.read_side = WaitQueue()   # readers wait here for data or the last writer's close
        self.write_side = WaitQueue()  # writers wait here for room or the last reader's close
        self.read_events = 0   # bumps on every event of the read end
        self.write_events = 0  # bumps on every event of the write end

    @property
    def free(self) -> int:
        return max(0, self.capacity - len(self.buffer))

    def readable_changed(self, p: GuestProcess) -> None:
        self.read_events += 1
        self.read_side.notify(READABLE | POLLHUP, p.vtime_ns)

    def writable_changed(self, p: GuestProcess) -> None:
        self.write_events += 1
        self.write_side.notify(WRITABLE | POLLERR, p.vtime_ns)

    def save(self) -> list[Any]:
        return [self.ino, self.capacity, bytes(self.buffer), self.readers, self.writers,
                self.read_events, self.write_events]

    @classmethod
    def from_state(cls, data: list[Any]) -> Pipe:
        pipe = cls(data[0], data[1])
        pipe.buffer = bytearray(data[2])
        pipe.readers, pipe.writers, pipe.read_events, pipe.write_events = data[3:7]
        return pipe


class PipeEnd(FileDescription):
    """One end of a pipe (which end follows from the access mode)."""

    kind = "pipe"
    blocking = True

    def __init__(self, flags: int, path: bytes, pipe: Pipe | None = None) -> None:
        super().__init__(flags, path)
        self.pipe = pipe if pipe is not None else Pipe(0)

    @property
    def is_read_end(self) -> bool:
        return self.readable

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        pipe = self.pipe
        if not pipe.buffer:
            return b"" if pipe.writers == 0 else -errno.EAGAIN
        data = bytes(pipe.buffer[:size])
        del pipe.buffer[: len(data)]
        pipe.writable_changed(p)
        return data

    def write(self, p: GuestProcess, data: bytes) -> int:
        """Write what fits now (all of it, for an atomic write); -EAGAIN when none does."""
        pipe = self.pipe
        if not data:
            return 0
        if pipe.readers == 0:
            return -errno.EPIPE
        room = pipe.free
        if room < len(data) and (len(data) <= PIPE_BUF or room == 0):
            return -errno.EAGAIN
        chunk = data[:room]
        pipe.buffer += chunk
        pipe.readable_changed(p)
        return len(chunk)

    def readiness(self, p: GuestProcess, mask: int) -> int:
        pipe = self.pipe
        ready = 0
        if self.is_read_end:
            if pipe.buffer:
                ready |= READABLE
            if pipe.writers == 0:
                ready |= POLLHUP
        else:
            if pipe.readers == 0:
                ready |= POLLERR
            elif pipe.free >= PIPE_BUF:
                ready |= WRITABLE
        return ready & (mask | POLLERR | POLLHUP)

    def generation(self, p: GuestProcess, mask: int) -> Any:
        return self.pipe.read_events if self.is_read_end else self.pipe.write_events

    def register(self, party: Notifiable, mask: int) -> None:
        (self.pipe.read_side if self.is_read_end else self.pipe.write_side).register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        (self.pipe.read_side if self.is_read_end else self.pipe.write_side).unregister(party)

    def pending_bytes(self, p: GuestProcess) -> int | None:
        return len(self.pipe.buffer)

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, self.pipe.ino, S_IFIFO | 0o600, 1, blksize=4096)

    def release(self, p: GuestProcess) -> None:
        pipe = self.pipe
        if self.is_read_end:
            pipe.readers -= 1
            if pipe.readers == 0:
                pipe.writable_changed(p)  # writers now see POLLERR / EPIPE
        else:
            pipe.writers -= 1
            if pipe.writers == 0:
                pipe.readable_changed(p)  # readers now see POLLHUP / end of file

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        from chaosreplay.kernel.fs.files import O_ACCMODE, O_RDWR, O_WRONLY

        access = flags & O_ACCMODE
        if access == O_RDWR:
            return -errno.EINVAL  # one end per description here
        end = PipeEnd(flags, self.path, self.pipe)
        if access == O_WRONLY:
            self.pipe.writers += 1
        else:
            self.pipe.readers += 1
        return end

    def save(self, refs: Refs) -> Any:
        return refs.share(self.pipe)

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, refs.shared[data])


def make_pipe(ino: int, flags: int) -> tuple[PipeEnd, PipeEnd]:
    """A new pipe's (read end, write end), with status flags (O_NONBLOCK) on both."""
    from chaosreplay.kernel.fs.files import O_RDONLY, O_WRONLY

    pipe = Pipe(ino)
    path = b"pipe:[%d]" % ino
    read_end = PipeEnd(O_RDONLY | flags, path, pipe)
    write_end = PipeEnd(O_WRONLY | flags, path, pipe)
    pipe.readers = pipe.writers = 1
    return read_end, write_end
