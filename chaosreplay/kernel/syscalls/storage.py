"""Managing file data and the disk as a whole: statfs/fstatfs/ustat, sync/syncfs/sync_file_range,
fallocate, fadvise64, readahead, copy_file_range, preadv2/pwritev2.

The node's disk presents itself as ext4 (statfs f_type 0xEF53) of its configured capacity,
and fallocate supports what ext4 does: allocation with or without KEEP_SIZE, PUNCH_HOLE,
ZERO_RANGE, COLLAPSE_RANGE and INSERT_RANGE (block-aligned). The durability model is the
disk's (kernel.fs.disk): sync and syncfs make everything durable, as an fsync of every file
and directory would; sync_file_range makes nothing durable (it promises nothing about
metadata, so under the weakest model nothing it wrote survives a crash); fallocate and
copy_file_range change content the way writes do, durable on the next fsync. Advice
(fadvise64, readahead) is checked and has nothing to do: there is no page cache.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs import paths
from chaosreplay.kernel.fs.disk import FsError
from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    O_APPEND,
    S_IFDIR,
    S_IFIFO,
    S_IFMT,
    S_IFREG,
    FileDescription,
)
from chaosreplay.kernel.fs.memfd import MemFile
from chaosreplay.kernel.fs.pipes import PipeEnd
from chaosreplay.kernel.fs.regular import FS_DEV, DiskFile, fail, now_ns
from chaosreplay.kernel.fs.synthetic import DEV_DEV, PROC_DEV
from chaosreplay.kernel.syscalls.args import MAX_IO, int32, int64, iovecs, path_arg, scatter
from chaosreplay.kernel.syscalls.io import lookup, read_from, write_to

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

BLOCK = 4096
EXT4_SUPER_MAGIC, PROC_SUPER_MAGIC, TMPFS_MAGIC = 0xEF53, 0x9FA0, 0x01021994
PIPEFS_MAGIC, ANON_INODE_FS_MAGIC, DEVPTS_SUPER_MAGIC = 0x50495045, 0x09041934, 0x1CD1
ST_NOSUID, ST_NODEV, ST_NOEXEC, ST_VALID, ST_RELATIME = 0x2, 0x4, 0x8, 0x20, 0x1000
FS_FSID = (0x0801, 0x4352)  # the disk's f_fsid: any fixed pair (Linux hashes the uuid)
NAME_MAX = 255
MAX_FILE_SIZE = (1 << 44) - BLOCK  # ext4's s_maxbytes with 4 KiB blocks (16 TiB)
FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_COLLAPSE_RANGE = 0x01, 0x02, 0x08
FALLOC_FL_ZERO_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_UNSHARE_RANGE = 0x10, 0x20, 0x40
FALLOC_FL_WRITE_ZEROES = 0x80
FALLOC_KNOWN = 0xFF
SYNC_FILE_RANGE_FLAGS = 0x7  # WAIT_BEFORE | WRITE | WAIT_AFTER
POSIX_FADV_NOREUSE = 5
RWF_HIPRI, RWF_DSYNC, RWF_SYNC, RWF_NOWAIT, RWF_APPEND, RWF_NOAPPEND = (0x1, 0x2, 0x4, 0x8,
                                                                       0x10, 0x20)
RWF_KNOWN = 0x3F


# -- the file system as a whole ----------------------------------------------------------------
def _statfs_disk(p: GuestProcess) -> bytes:
    total, free, inodes, free_inodes = p.fs.statfs()
    return _pack_statfs(EXT4_SUPER_MAGIC, total // BLOCK, free // BLOCK, inodes, free_inodes,
                        FS_FSID, ST_VALID | ST_RELATIME)


def _pack_statfs(magic: int, blocks: int, free: int, files: int, free_files: int,
                 fsid: tuple[int, int], flags: int) -> bytes:
    """struct statfs (x86-64, 120 bytes)."""
    return struct.pack("<qqQQQQQiiqqq4q", magic, BLOCK, blocks, free, free, files, free_files,
                       *fsid, NAME_MAX, BLOCK, flags, 0, 0, 0, 0)


def _statfs_by_dev(p: GuestProcess, dev: int, kind: str) -> bytes:
    """The statfs of the file system a file with this st_dev (and description kind) is on."""
    if dev == PROC_DEV:
        return _pack_statfs(PROC_SUPER_MAGIC, 0, 0, 0, 0, (0, 0),
                            ST_VALID | ST_NOSUID | ST_NODEV | ST_NOEXEC | ST_RELATIME)
    if dev == DEV_DEV:
        return _pack_statfs(TMPFS_MAGIC, 0, 0, 0, 0, (0, 0), ST_VALID | ST_NOSUID | ST_RELATIME)
    if kind == "tty":
        return _pack_statfs(DEVPTS_SUPER_MAGIC, 0, 0, 0, 0, (0, 0),
                            ST_VALID | ST_NOSUID | ST_NOEXEC | ST_RELATIME)
    if dev == ANON_DEV:
        magic = PIPEFS_MAGIC if kind == "pipe" else ANON_INODE_FS_MAGIC
        return _pack_statfs(magic, 0, 0, 0, 0, (0, 0), ST_VALID)
    return _statfs_disk(p)  # the disk, and /etc and the program, which live over it


def _file_statfs(p: GuestProcess, file: FileDescription) -> bytes | int:
    st = file.stat(p)
    return st if isinstance(st, int) else _statfs_by_dev(p, st.dev, file.kind)


def sys_statfs(p: GuestProcess, r: Any) -> int:
    path = path_arg(p, r.rdi)
    if isinstance(path, int):
        return path
    res = paths.resolve(p, paths.AT_FDCWD, path)
    if isinstance(res, int):
        return res
    if res.place is None:
        return -errno.ENOENT
    from chaosreplay.kernel.syscalls.files import stat_place

    st = stat_place(p, res.place)
    if isinstance(st, int):
        return st
    file = p.files.get(res.place.ino) if res.place.mount == paths.FD_MOUNT else None
    data = _statfs_by_dev(p, st.dev, file.kind if file is not None else "")
    return 0 if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_fstatfs(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    data = _file_statfs(p, file)
    if isinstance(data, int):
        return data
    return 0 if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_ustat(p: GuestProcess, r: Any) -> int:
    """The free blocks and inodes of the file system on a device (the disk, /proc, /dev)."""
    dev = r.rdi & 0xFFFFFFFF
    if dev not in (FS_DEV, PROC_DEV, DEV_DEV):
        return -errno.EINVAL
    free_blocks, free_inodes = 0, 0
    if dev == FS_DEV:
        _, free, _, free_inodes = p.fs.statfs()
        free_blocks = free // BLOCK
    data = struct.pack("<i4xQ6s6s4x", free_blocks, free_inodes, b"", b"")
    return 0 if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_sync(p: GuestProcess, r: Any) -> int:
    try:
        p.fs.sync_all()
    except FsError as e:
        fail(p, "sync", b"/", e)  # sync(2) cannot fail; the event still says what was lost
    return 0


def sys_syncfs(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    try:
        p.fs.sync_all()
    except FsError as e:
        return fail(p, "syncfs", file.path, e)
    return 0


def _mode(p: GuestProcess, file: FileDescription) -> int | None:
    st = file.stat(p)
    return None if isinstance(st, int) else st.mode & S_IFMT


def sys_sync_file_range(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    offset, nbytes, flags = int64(r.rsi), int64(r.rdx), r.r10 & 0xFFFFFFFF
    if flags & ~SYNC_FILE_RANGE_FLAGS or offset < 0 or nbytes < 0 or offset + nbytes < 0:
        return -errno.EINVAL
    if _mode(p, file) not in (S_IFREG, S_IFDIR, 0o120000, 0o060000):
        return -errno.ESPIPE
    return 0


def sys_fadvise64(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    if isinstance(file, PipeEnd) or _mode(p, file) == S_IFIFO:
        return -errno.ESPIPE
    if int64(r.rdx) < 0 or not 0 <= int32(r.r10) <= POSIX_FADV_NOREUSE:
        return -errno.EINVAL
    return 0


def sys_readahead(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.readable:
        return -errno.EBADF
    return 0 if _mode(p, file) == S_IFREG else -errno.EINVAL


# -- allocation --------------------------------------------------------------------------------
def _check_fallocate(p: GuestProcess, file: FileDescription, mode: int, offset: int,
                     length: int) -> int:
    """Linux's vfs_fallocate checks, in its order; 0 when the call may go ahead."""
    if offset < 0 or length <= 0:
        return -errno.EINVAL
    if mode & ~FALLOC_KNOWN:
        return -errno.EOPNOTSUPP
    operation = mode & ~FALLOC_FL_KEEP_SIZE  # Linux 6.15+: one operation, maybe KEEP_SIZE
    if operation == FALLOC_FL_PUNCH_HOLE and not mode & FALLOC_FL_KEEP_SIZE:
        return -errno.EOPNOTSUPP
    if operation in (FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
                     FALLOC_FL_WRITE_ZEROES) and mode & FALLOC_FL_KEEP_SIZE:
        return -errno.EOPNOTSUPP
    if operation not in (0, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_ZERO_RANGE, FALLOC_FL_PUNCH_HOLE,
                         FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE,
                         FALLOC_FL_WRITE_ZEROES):
        return -errno.EOPNOTSUPP
    if not file.writable:
        return -errno.EBADF
    kind = _mode(p, file)
    if isinstance(file, PipeEnd) or kind == S_IFIFO:
        return -errno.ESPIPE
    if kind == S_IFDIR:
        return -errno.EISDIR
    if kind != S_IFREG:
        return -errno.ENODEV
    if offset + length > MAX_FILE_SIZE:
        return -errno.EFBIG
    if isinstance(file, MemFile):
        return 0  # tmpfs decides the rest (MemFile.fallocate)
    if not isinstance(file, DiskFile) or operation in (FALLOC_FL_UNSHARE_RANGE,
                                                       FALLOC_FL_WRITE_ZEROES):
        return -errno.EOPNOTSUPP  # ext4 shares no blocks, and the disk cannot write zeroes
    return 0


def _fallocate(p: GuestProcess, file: DiskFile, mode: int, offset: int, length: int) -> None:
    """ext4_fallocate on the disk, with FsError for what the disk refuses."""
    fs, ino, now = p.fs, file.ino, now_ns(p)
    size = fs.size(ino)
    end = offset + length
    if mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE):
        if offset % BLOCK or length % BLOCK:
            raise FsError(errno.EINVAL)
        if file.flags & O_APPEND:
            raise FsError(errno.EPERM)
        content = fs.read_file_inode(ino)
        if mode & FALLOC_FL_COLLAPSE_RANGE:
            if end >= size:
                raise FsError(errno.EINVAL)
            fs.write(ino, offset, content[end:], now)
            fs.truncate(ino, size - length, now)
        else:
            if offset >= size:
                raise FsError(errno.EINVAL)
            if size + length > MAX_FILE_SIZE:
                raise FsError(errno.EFBIG)
            if length > fs.statfs()[1]:
                raise FsError(errno.ENOSPC)  # before anything moves (or is allocated here)
            fs.write(ino, end, content[offset:], now)
            fs.write(ino, offset, bytes(length), now)
        return
    if mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE):
        for at in range(offset, min(end, size), MAX_IO):  # what exists reads back as zeros
            fs.write(ino, at, bytes(min(end, size, at + MAX_IO) - at), now)
        if not mode & FALLOC_FL_KEEP_SIZE and end > size:
            fs.truncate(ino, end, now)  # and what it adds, as a grown file does
        return
    if end > size and not mode & FALLOC_FL_KEEP_SIZE:
        fs.truncate(ino, end, now)  # the new blocks read as zeros, as allocated blocks do
    elif end > size and end - size > fs.statfs()[1]:
        raise FsError(errno.ENOSPC)  # KEEP_SIZE still needs the blocks


def sys_fallocate(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None:
        return -errno.EBADF
    mode, offset, length = int32(r.rsi), int64(r.rdx), int64(r.r10)
    checked = _check_fallocate(p, file, mode & 0xFFFFFFFF, offset, length)
    if not checked and isinstance(file, MemFile):
        return file.fallocate(p, mode & 0xFFFFFFFF, offset, length)
    if checked or not isinstance(file, DiskFile):
        return checked
    try:
        _fallocate(p, file, mode, offset, length)
    except FsError as e:
        return fail(p, "fallocate", file.path, e)
    return 0


# -- copying -----------------------------------------------------------------------------------
def _offset_arg(p: GuestProcess, address: int) -> int | None:
    raw = p.space.read(address, 8)
    return None if raw is None else struct.unpack("<q", raw)[0]


def sys_copy_file_range(p: GuestProcess, r: Any) -> int:
    src, dst = lookup(p, r.rdi), lookup(p, r.rdx)
    in_ptr, out_ptr, count, flags = r.rsi, r.r10, r.r8, r.r9 & 0xFFFFFFFF
    if src is None or dst is None:
        return -errno.EBADF
    if flags:
        return -errno.EINVAL
    pos_in = _offset_arg(p, in_ptr) if in_ptr else src.offset
    pos_out = _offset_arg(p, out_ptr) if out_ptr else dst.offset
    if pos_in is None or pos_out is None:
        return -errno.EFAULT
    kinds = (_mode(p, src), _mode(p, dst))
    if S_IFDIR in kinds:
        return -errno.EISDIR
    if kinds != (S_IFREG, S_IFREG):
        return -errno.EINVAL
    if not src.readable or not dst.writable or dst.flags & O_APPEND:
        return -errno.EBADF
    if not isinstance(src, DiskFile) or not isinstance(dst, DiskFile):
        return -errno.EXDEV  # a /proc or /etc file and the disk: different file systems
    if pos_in < 0 or pos_out < 0:
        return -errno.EINVAL
    size_in = p.fs.size(src.ino)
    count = 0 if pos_in >= size_in else min(count, size_in - pos_in, MAX_IO)
    if src.ino == dst.ino and pos_out + count > pos_in and pos_out < pos_in + count:
        return -errno.EINVAL  # overlapping ranges of one file
    if count == 0:
        return 0
    data = src.pread(p, count, pos_in)
    if isinstance(data, int):
        return data
    written = dst.pwrite(p, data, pos_out)
    if written < 0:
        return written
    for pointer, position, file in ((in_ptr, pos_in, src), (out_ptr, pos_out, dst)):
        if pointer:
            p.space.write(pointer, struct.pack("<q", position + written))
        else:
            file.offset = position + written
    return written


# -- vector I/O with flags ---------------------------------------------------------------------
def _rw_flags(file: FileDescription, flags: int) -> int:
    if flags & ~RWF_KNOWN:
        return -errno.EOPNOTSUPP
    if flags & RWF_NOWAIT and not file.seekable and not file.blocking:
        return -errno.EOPNOTSUPP
    return 0


def sys_preadv2(p: GuestProcess, r: Any) -> int:
    file = lookup(p, r.rdi)
    if file is None or not file.readable:
        return -errno.EBADF
    vecs = iovecs(p, r.rsi, r.rdx)
    if isinstance(vecs, int):
        return vecs
    offset, flags = int64(r.r10), r.r9 & 0xFFFFFFFF
    checked = _rw_flags(file, flags)
    if checked:
        return checked
    want = min(sum(n for _, n in vecs), MAX_IO)
    if offset == -1:
        if flags & RWF_NOWAIT and file.blocking and not file.readiness(p, 1):
            return -errno.EAGAIN
        data = read_from(p, file, want)
    elif offset < 0:
        return -errno.EINVAL
    elif not file.seekable:
        return -errno.ESPIPE
    else:
        data = file.pread(p, want, offset)
    return data if isinstance(data, int) else scatter(p, vecs, data)


def sys_pwritev2(p: GuestProcess, r: Any) -> int:
    from chaosreplay.kernel.syscalls.args import gather

    file = lookup(p, r.rdi)
    if file is None or not file.writable:
        return -errno.EBADF
    data = gather(p, r.rsi, r.rdx)
    if isinstance(data, int):
        return data
    offset, flags = int64(r.r10), r.r9 & 0xFFFFFFFF
    checked = _rw_flags(file, flags)
    if checked:
        return checked
    if offset < -1:
        return -errno.EINVAL
    if offset != -1 and not file.seekable:
        return -errno.ESPIPE
    appending = flags & RWF_APPEND or (file.flags & O_APPEND and not flags & RWF_NOAPPEND)
    if isinstance(file, DiskFile) and (appending or flags & RWF_NOAPPEND):
        at = p.fs.size(file.ino) if appending else (file.offset if offset == -1 else offset)
        saved = file.flags
        file.flags &= ~O_APPEND
        try:
            written = file.pwrite(p, data, at)
        finally:
            file.flags = saved
        if written >= 0 and offset == -1:
            file.offset = at + written
    elif offset == -1:
        written = write_to(p, file, data)
    else:
        written = file.pwrite(p, data, offset)
    if written > 0 and flags & (RWF_DSYNC | RWF_SYNC):
        synced = file.fsync(p, data_only=not flags & RWF_SYNC)
        if synced < 0:
            return synced
    return written


HANDLERS = {
    137: sys_statfs,
    138: sys_fstatfs,
    136: sys_ustat,
    162: sys_sync,
    306: sys_syncfs,
    277: sys_sync_file_range,
    285: sys_fallocate,
    221: sys_fadvise64,
    187: sys_readahead,
    326: sys_copy_file_range,
    327: sys_preadv2,
    328: sys_pwritev2,
}
