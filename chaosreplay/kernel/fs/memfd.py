"""memfd_create(2) files: anonymous in-memory regular files, with seals.

The content lives in the description (no name in any directory; /proc/self/fd shows
"/memfd:NAME (deleted)" as Linux does), is lost with the last descriptor, and is not on the
node's disk (no disk faults, no durability: tmpfs has nothing to make durable). A file may
be sparse (ftruncate grows it without storing zeros); the bytes stored by every memfd of
the process together stay within half the guest memory, tmpfs's default size, beyond
which writes fail with ENOSPC. Seals (fcntl F_ADD_SEALS / F_GET_SEALS) forbid what Linux's
forbid. A memfd maps privately like any file (a copy) or shared (kernel/mm/page_cache.py);
F_SEAL_WRITE forbids a writable shared mapping (EPERM) but is not refused while one exists
(Linux's EBUSY).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import S_IFREG, FileDescription, Refs, StatInfo
from chaosreplay.recording.schema import I64_MAX, Bytes, Int, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

SHM_DEV = 0x1A  # st_dev of the internal shm mount (made-up, fixed)
F_SEAL_SEAL, F_SEAL_SHRINK, F_SEAL_GROW, F_SEAL_WRITE, F_SEAL_FUTURE_WRITE, F_SEAL_EXEC = (
    0x1, 0x2, 0x4, 0x8, 0x10, 0x20)
SEALS = 0x3F
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
MAX_FILE_SIZE = I64_MAX


def stored_bytes(p: GuestProcess) -> int:
    """Bytes held by every memfd open in the process (each description counted once)."""
    seen: dict[int, MemFile] = {}
    for _, slot in p.files.items():
        if isinstance(slot.file, MemFile):
            seen[id(slot.file)] = slot.file
    return sum(len(f.data) for f in seen.values())


class MemFile(FileDescription):
    """One memfd: its bytes (the stored prefix of a possibly longer sparse file) and seals."""

    kind = "memfd"
    STATE = Row(Bytes(), Int(0, I64_MAX), Int(0, SEALS), Int(1, I64_MAX), Int(0, 0o7777))
    seekable = True
    pollable = False

    def __init__(self, flags: int, path: bytes, ino: int = 1, seals: int = 0,
                 mode: int = 0o777) -> None:
        super().__init__(flags, path)
        self.data = bytearray()
        self.size = 0
        self.seals = seals
        self.ino = ino
        self.mode = mode
        self.changes = 0  # bumped by every content change (compared across one call only)

    # -- data ------------------------------------------------------------------------------
    def _read_at(self, offset: int, size: int) -> bytes:
        end = min(offset + size, self.size)  # pages allocated past the size stay unread
        if end <= offset:
            return b""
        stored = bytes(self.data[offset:end])
        return stored + bytes(end - offset - len(stored))

    def _write_at(self, p: GuestProcess, offset: int, data: bytes) -> int:
        if self.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
            return -errno.EPERM
        end = offset + len(data)
        if end > self.size and self.seals & F_SEAL_GROW:
            return -errno.EPERM
        if end > MAX_FILE_SIZE:
            return -errno.EFBIG
        growth = max(0, end - len(self.data))
        if growth and stored_bytes(p) + growth > p.config.mem_size // 2:
            return -errno.ENOSPC
        if offset > len(self.data):
            self.data.extend(bytes(offset - len(self.data)))
        self.data[offset:end] = data
        self.size = max(self.size, end)
        self.changes += 1
        return len(data)

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        data = self._read_at(self.offset, size)
        self.offset += len(data)
        return data

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return self._read_at(offset, size)

    def map_contents(self, p: GuestProcess, offset: int, length: int) -> bytes | int:
        # Only the stored bytes: the sparse rest is zero pages, which a mapping has anyway.
        return self._read_at(offset, min(length, max(0, len(self.data) - offset)))

    def write(self, p: GuestProcess, data: bytes) -> int:
        written = self._write_at(p, self.offset, data)
        if written > 0:
            self.offset += written
        return written

    def pwrite(self, p: GuestProcess, data: bytes, offset: int) -> int:
        return self._write_at(p, offset, data)

    def truncate(self, p: GuestProcess, length: int) -> int:
        """ftruncate: 0 or -errno (a seal, or a negative length)."""
        if length < 0:
            return -errno.EINVAL
        if length < self.size and self.seals & F_SEAL_SHRINK:
            return -errno.EPERM
        if length > self.size and self.seals & F_SEAL_GROW:
            return -errno.EPERM
        del self.data[length:]
        self.size = length
        self.changes += 1
        return 0

    def fallocate(self, p: GuestProcess, mode: int, offset: int, length: int) -> int:
        """shmem_fallocate: allocate (KEEP_SIZE or not) or punch a hole; 0 or -errno."""
        keep_size, punch_hole = 0x1, 0x2
        end = offset + length
        if mode & ~(keep_size | punch_hole):
            return -errno.EOPNOTSUPP
        if mode & punch_hole:
            if self.seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE):
                return -errno.EPERM
            stop = min(end, len(self.data))
            if stop > offset:
                self.data[offset:stop] = bytes(stop - offset)
                self.changes += 1
            return 0
        if end > self.size and self.seals & F_SEAL_GROW:
            return -errno.EPERM
        growth = max(0, end - len(self.data))
        if growth and stored_bytes(p) + growth > p.config.mem_size // 2:
            return -errno.ENOSPC
        self.data.extend(bytes(growth))  # allocated pages are stored pages (of zeros)
        if not mode & keep_size:
            self.size = max(self.size, end)
        self.changes += 1
        return 0

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        if whence == SEEK_SET:
            target = offset
        elif whence == SEEK_CUR:
            target = self.offset + offset
        elif whence == SEEK_END:
            target = self.size + offset
        elif whence in (SEEK_DATA, SEEK_HOLE):
            if not 0 <= offset < self.size:
                return -errno.ENXIO
            target = offset if whence == SEEK_DATA else self.size
        else:
            return -errno.EINVAL
        if not 0 <= target <= MAX_FILE_SIZE:
            return -errno.EINVAL
        self.offset = target
        return target

    # -- the page cache a shared mapping uses (kernel/mm/page_cache.py) --------------------
    def cache_size(self, p: GuestProcess) -> int:
        return self.size

    def cache_read(self, p: GuestProcess, offset: int, size: int) -> bytes:
        return self._read_at(offset, size)

    def cache_write(self, p: GuestProcess, offset: int, data: bytes) -> None:
        """Stores through a shared mapping: within the size, whatever the seals (the
        mapping was allowed when it was made)."""
        data = data[: max(0, self.size - offset)]
        if not data:
            return
        growth = offset + len(data) - len(self.data)
        if growth > 0:
            if stored_bytes(p) + growth > p.config.mem_size // 2:
                return  # past tmpfs's size: the store stays in the mapping (Linux: SIGBUS)
            self.data.extend(bytes(growth))
        self.data[offset : offset + len(data)] = data
        self.changes += 1

    def cache_extents(self, p: GuestProcess) -> list[tuple[int, int]]:
        """The ranges that may hold bytes other than zeros: the stored prefix."""
        return [(0, min(len(self.data), self.size))]

    def cache_stamp(self, p: GuestProcess) -> int:
        return self.changes

    def cache_sync(self, p: GuestProcess) -> int:
        return 0  # tmpfs: nothing to make durable

    # -- seals -----------------------------------------------------------------------------
    def add_seals(self, seals: int) -> int:
        """F_ADD_SEALS: 0 or -errno, as memfd_add_seals checks."""
        if seals & ~SEALS:
            return -errno.EINVAL
        if not self.writable:
            return -errno.EPERM
        if self.seals & F_SEAL_SEAL:
            return -errno.EPERM
        self.seals |= seals
        if seals & F_SEAL_EXEC:
            self.mode &= ~0o111
        return 0

    # -- metadata --------------------------------------------------------------------------
    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(SHM_DEV, self.ino, S_IFREG | self.mode, 1, size=self.size,
                        blocks=(len(self.data) + 511) // 512)

    def save(self, refs: Refs) -> Any:
        return [bytes(self.data), self.size, self.seals, self.ino, self.mode]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        content, size, seals, ino, mode = data
        file = cls(flags, path, ino, seals, mode)
        file.data, file.size = bytearray(content), size
        return file
