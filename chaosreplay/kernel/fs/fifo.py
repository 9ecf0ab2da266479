"""Named pipes: opening a FIFO node of the disk (mknod S_IFIFO) gives one end of a pipe
that every open of the same node shares, as fifo(7) describes.

The pipe exists while some end is open (found among the process's descriptors; the data
goes when the last end closes). A read-only open with O_NONBLOCK always succeeds, a
write-only one fails with ENXIO while there is no reader, O_RDWR opens both ends at
once. A blocking open without the other side is not supported yet: it is treated as the
deadlock it is for a single-threaded process (the program ends with a deadlock report),
even when another thread could later open the other end.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.disk import FsError
from chaosreplay.kernel.fs.files import (
    O_ACCMODE,
    O_NONBLOCK,
    O_RDONLY,
    O_RDWR,
    O_WRONLY,
    READABLE,
    WRITABLE,
    Refs,
    StatInfo,
)
from chaosreplay.kernel.fs.pipes import PIPE_BUF, Pipe, PipeEnd
from chaosreplay.kernel.fs.waiters import Notifiable, block
from chaosreplay.recording.schema import U64_MAX, Int, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess


class FifoEnd(PipeEnd):
    """An open FIFO: a pipe end (both ends with O_RDWR) tied to a disk inode."""

    kind = "fifo"
    STATE = Row(Int(0, 1 << 20), Int(1, U64_MAX))  # [its Pipe among shared objects, inode]

    def __init__(self, flags: int, path: bytes, pipe: Pipe | None = None, ino: int = 1) -> None:
        super().__init__(flags, path, pipe)
        self.ino = ino

    @property
    def both_ends(self) -> bool:
        return self.flags & O_ACCMODE == O_RDWR

    def readiness(self, p: GuestProcess, mask: int) -> int:
        if not self.both_ends:
            return super().readiness(p, mask)
        pipe = self.pipe
        ready = (READABLE if pipe.buffer else 0) | (WRITABLE if pipe.free >= PIPE_BUF else 0)
        return ready & mask

    def register(self, party: Notifiable, mask: int) -> None:
        super().register(party, mask)
        if self.both_ends:
            self.pipe.write_side.register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        super().unregister(party)
        if self.both_ends:
            self.pipe.write_side.unregister(party)

    def stat(self, p: GuestProcess) -> StatInfo | int:
        from chaosreplay.kernel.fs.regular import disk_stat

        try:
            return disk_stat(p.fs.stat(self.ino))
        except FsError:
            return super().stat(p)

    def release(self, p: GuestProcess) -> None:
        if self.both_ends:
            self.pipe.writers -= 1
            if self.pipe.writers == 0:
                self.pipe.readable_changed(p)
        super().release(p)

    def reopen(self, p: GuestProcess, flags: int) -> Any:
        return open_fifo(p, self.ino, self.path, flags)

    def save(self, refs: Refs) -> Any:
        return [refs.share(self.pipe), self.ino]

    @classmethod
    def referenced(cls, data: Any) -> tuple[list[int], list[int]]:
        return [], [data[0]]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FifoEnd:
        return cls(flags, path, refs.shared[data[0]], data[1])


def _open_pipe(p: GuestProcess, ino: int) -> Pipe | None:
    """The pipe of a FIFO some descriptor of the process has open, if any."""
    for _, slot in p.files.items():
        if isinstance(slot.file, FifoEnd) and slot.file.ino == ino:
            return slot.file.pipe
    return None


def open_fifo(p: GuestProcess, ino: int, path: bytes, flags: int) -> FifoEnd | int:
    """One end of the FIFO at inode ino, or -errno (or the WAIT of a deadlocked open)."""
    access = flags & O_ACCMODE
    pipe = _open_pipe(p, ino)
    nonblock = bool(flags & O_NONBLOCK)
    if access == O_WRONLY and (pipe is None or pipe.readers == 0):
        if nonblock:
            return -errno.ENXIO
        return block(p, [], None, f"open of FIFO {path.decode(errors='replace')} for writing")
    if access == O_RDONLY and (pipe is None or pipe.writers == 0) and not nonblock:
        return block(p, [], None, f"open of FIFO {path.decode(errors='replace')} for reading")
    if pipe is None:
        pipe = Pipe(p.files.anon_ino())
    end = FifoEnd(flags, path, pipe, ino)
    if access in (O_RDONLY, O_RDWR):
        pipe.readers += 1
        pipe.writable_changed(p)
    if access in (O_WRONLY, O_RDWR):
        pipe.writers += 1
        pipe.readable_changed(p)
    return end
