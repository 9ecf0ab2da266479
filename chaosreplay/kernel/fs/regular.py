"""Regular files and directories of the node's disk (`GuestProcess.fs`) as descriptions.

File times come from the node's virtual realtime clock, so stat answers the same in
every run. A disk fault that hits is reported as a `disk.fault` event before the call
fails (or, for a corrupting read, succeeds with the flipped bit).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.fs.disk import FsError, Stat
from chaosreplay.kernel.fs.files import (
    O_APPEND,
    O_DSYNC,
    O_SYNC,
    FileDescription,
    Refs,
    StatInfo,
)
from chaosreplay.recording.schema import I64_MAX, U64_MAX, Int

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

FS_DEV = 0x801  # st_dev of every disk file: /dev/sda1
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
DT_FIFO, DT_DIR, DT_REG, DT_LNK, DT_SOCK = 1, 4, 8, 10, 12


def now_ns(p: GuestProcess) -> int:
    """The guest's CLOCK_REALTIME in ns since the epoch: what file times record."""
    from chaosreplay.kernel.syscalls.clock import CLOCK_REALTIME, clock_value

    return clock_value(p, CLOCK_REALTIME) or 0


def fail(p: GuestProcess, op: str, path: bytes, error: FsError) -> int:
    """-errno for a failed disk call, reporting it first when a disk fault caused it."""
    if error.fault is not None:
        p.emit(EventKind.DISK_FAULT, op=op, path=path.decode(errors="replace"),
               fault=error.fault, errno=error.errno)
    return -error.errno


def disk_stat(st: Stat) -> StatInfo:
    return StatInfo(FS_DEV, st.ino, st.mode, st.nlink, st.uid, st.gid, 0, st.size, 4096,
                    st.blocks, st.atime_ns, st.mtime_ns, st.ctime_ns)


class DiskFile(FileDescription):
    """An open file or directory of the node's disk."""

    kind = "disk"
    STATE = Int(1, U64_MAX)  # the inode
    seekable = True
    pollable = False

    def __init__(self, flags: int, path: bytes, ino: int = 0) -> None:
        super().__init__(flags, path)
        self.ino = ino

    def _read_at(self, p: GuestProcess, offset: int, size: int) -> bytes | int:
        try:
            data, fault = p.fs.read(self.ino, offset, size)
        except FsError as e:
            return fail(p, "read", self.path, e)
        if fault is not None:
            p.emit(EventKind.DISK_FAULT, op="read", path=self.path.decode(errors="replace"),
                   fault=fault, errno=0)
        return data

    def _write_at(self, p: GuestProcess, offset: int | None, data: bytes) -> int:
        try:
            at = offset if offset is not None else (
                p.fs.size(self.ino) if self.flags & O_APPEND else self.offset)
            written = p.fs.write(self.ino, at, data, now_ns(p))
            if self.flags & O_DSYNC:
                p.fs.fsync(self.ino, data_only=self.flags & O_SYNC != O_SYNC)
        except FsError as e:
            return fail(p, "write", self.path, e)
        if offset is None:
            self.offset = at + written
        return written

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        data = self._read_at(p, self.offset, size)
        if not isinstance(data, int):
            self.offset += len(data)
        return data

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return self._read_at(p, offset, size)

    def write(self, p: GuestProcess, data: bytes) -> int:
        return self._write_at(p, None, data)

    def pwrite(self, p: GuestProcess, data: bytes, offset: int) -> int:
        # Linux quirk kept: pwrite on an O_APPEND file appends.
        if self.flags & O_APPEND:
            try:
                offset = p.fs.size(self.ino)
            except FsError as e:
                return -e.errno
        return self._write_at(p, offset, data)

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        try:
            size = p.fs.size(self.ino)
            is_dir = p.fs.is_dir(self.ino)
        except FsError as e:
            return -e.errno
        if whence == SEEK_SET:
            target = offset
        elif whence == SEEK_CUR:
            target = self.offset + offset
        elif whence == SEEK_END and not is_dir:
            target = size + offset
        elif whence in (SEEK_DATA, SEEK_HOLE) and not is_dir:
            if not 0 <= offset < size:
                return -errno.ENXIO
            target = offset if whence == SEEK_DATA else size  # no holes: all of it is data
        else:
            return -errno.EINVAL
        if not 0 <= target <= I64_MAX:  # Linux: past MAX_LFS_FILESIZE is EINVAL too
            return -errno.EINVAL
        self.offset = target
        return target

    def getdents(self, p: GuestProcess) -> list[tuple[bytes, int, int]] | int:
        from chaosreplay.kernel.fs.disk import ROOT_INO
        from chaosreplay.kernel.fs.paths import MOUNTS

        try:
            entries = p.fs.listdir(self.ino)
        except FsError as e:
            return -e.errno
        special = {0: DT_REG, 0o010000: DT_FIFO, 0o140000: DT_SOCK}
        out = [(name, ino, DT_DIR if is_dir else (DT_LNK if p.fs.is_link(ino)
                                                   else special[p.fs.special(ino)]))
               for name, ino, is_dir in entries]
        if self.ino == ROOT_INO:  # the synthetic mounts show in the root, as mount points do
            from chaosreplay.kernel.fs.files import id_of

            taken = {name for name, _, _ in out}
            out += [(name, id_of(b"/" + name), DT_DIR) for name in sorted(MOUNTS)
                    if name not in taken]
        return out

    def fsync(self, p: GuestProcess, data_only: bool) -> int:
        try:
            p.fs.fsync(self.ino, data_only)
        except FsError as e:
            return fail(p, "fdatasync" if data_only else "fsync", self.path, e)
        return 0

    def map_contents(self, p: GuestProcess, offset: int, length: int) -> bytes | int:
        try:
            if p.fs.is_dir(self.ino):
                return -errno.ENODEV
        except FsError as e:
            return -e.errno
        return self._read_at(p, offset, length)

    # -- the page cache a shared mapping uses (kernel/mm/page_cache.py) --------------------
    def cache_size(self, p: GuestProcess) -> int:
        return p.fs.size(self.ino) if p.fs.has(self.ino) else 0

    def cache_read(self, p: GuestProcess, offset: int, size: int) -> bytes:
        return p.fs.peek(self.ino, offset, size) if p.fs.has(self.ino) else b""

    def cache_write(self, p: GuestProcess, offset: int, data: bytes) -> None:
        if p.fs.has(self.ino):
            p.fs.write_back(self.ino, offset, data, now_ns(p))

    def cache_extents(self, p: GuestProcess) -> list[tuple[int, int]]:
        """The ranges that may hold bytes other than zeros: the whole file."""
        return [(0, self.cache_size(p))]

    def cache_stamp(self, p: GuestProcess) -> int:
        return p.fs.changes

    def cache_sync(self, p: GuestProcess) -> int:
        """msync(MS_SYNC) of a mapping of this file: its data made durable (0 or -errno)."""
        return self.fsync(p, data_only=True)

    def stat(self, p: GuestProcess) -> StatInfo | int:
        try:
            return disk_stat(p.fs.stat(self.ino))
        except FsError as e:
            return -e.errno

    def pending_bytes(self, p: GuestProcess) -> int | None:
        try:
            return None if p.fs.is_dir(self.ino) else max(0, p.fs.size(self.ino) - self.offset)
        except FsError:
            return None

    def release(self, p: GuestProcess) -> None:
        if p.fs.has(self.ino):
            p.fs.close(self.ino)

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        try:
            p.fs.reopen(self.ino, flags, now_ns(p))
        except FsError as e:
            return fail(p, "open", self.path, e)
        return DiskFile(flags, self.path, self.ino)

    def save(self, refs: Refs) -> Any:
        return self.ino

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, data)
