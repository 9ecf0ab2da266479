"""File system calls over the node's disk (`GuestProcess.fs`, a `kernel.fs.disk.FileSystem`).

Descriptors 0-2 stay the virtual tty of io.py; files and directories get the lowest free
descriptor from 3 up. The descriptor table (`GuestProcess.files`) belongs to the process
and is checkpointed with it (`files_state` / `load_files_state`); the disk outlives the
process and is checkpointed by the simulation (`FileSystem.snapshot`). The working
directory is always `/` (getcwd is task.py's; there is no chdir). File times come from the
node's virtual realtime clock, so stat answers the same in every run. A disk fault that
hits is reported as a `disk.fault` event.
"""

from __future__ import annotations

import errno
import struct
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.fs.disk import (
    O_ACCMODE,
    O_APPEND,
    O_CREAT,
    O_RDONLY,
    O_TRUNC,
    O_WRONLY,
    ROOT_INO,
    FsError,
    Stat,
)
from chaosreplay.kernel.syscalls.clock import CLOCK_REALTIME, NS, clock_value
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MAX_IO = 1 << 24  # one call moves at most 16 MiB, as a bound on host allocation
AT_FDCWD = -100
AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT = 0x1000, 0x200, 0x100, 0x800
SEEK_SET, SEEK_CUR, SEEK_END, SEEK_DATA, SEEK_HOLE = 0, 1, 2, 3, 4
F_DUPFD, F_GETFD, F_SETFD, F_GETFL, F_SETFL, F_DUPFD_CLOEXEC = 0, 1, 2, 3, 4, 1030
FD_CLOEXEC = 1
O_EXCL, O_NOCTTY, O_NONBLOCK, O_DSYNC, O_CLOEXEC = 0o200, 0o400, 0o4000, 0o10000, 0o2000000
O_SYNC = 0o4010000
SETFL_MASK = O_APPEND | O_NONBLOCK | 0o40000 | 0o1000000  # + O_DIRECT, O_NOATIME
OPEN_ONLY = O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC  # not kept in F_GETFL
UMASK = 0o022
FIRST_FD, FD_LIMIT = 3, 1024  # RLIMIT_NOFILE's soft limit (task.RLIMITS)
STDIO = (0, 1, 2)
FS_DEV = 0x801  # st_dev of every file: /dev/sda1
BLKSIZE = 4096
DT_DIR, DT_REG = 4, 8
STATX_BASIC_STATS = 0x7FF
STATE_VERSION = 1


@dataclass(slots=True)
class OpenFile:
    """An open file description: shared by the descriptors dup() makes of it."""

    ino: int
    flags: int
    path: bytes
    offset: int = 0
    refs: int = 0


@dataclass(slots=True)
class Descriptor:
    """One slot of the descriptor table."""

    file: OpenFile
    cloexec: bool = False


# -- helpers --------------------------------------------------------------------------------
def _int32(value: int) -> int:
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def _int64(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _now(p: GuestProcess) -> int:
    return clock_value(p, CLOCK_REALTIME) or 0


def _file(p: GuestProcess, fd: int) -> OpenFile | None:
    slot = p.files.get(_int32(fd))
    return slot.file if slot is not None else None


def _path(p: GuestProcess, addr: int) -> bytes | None:
    return p.space.read_cstring(addr, 4097)


def _at(p: GuestProcess, dirfd: int, path: bytes) -> int:
    """The directory a path is relative to: its inode, or -errno."""
    dirfd = _int32(dirfd)
    if path.startswith(b"/") or dirfd == AT_FDCWD:
        return ROOT_INO
    f = _file(p, dirfd)
    if f is None:
        return -errno.EBADF
    return f.ino if p.fs.inodes.get(f.ino) and p.fs.is_dir(f.ino) else -errno.ENOTDIR


def _resolve(p: GuestProcess, dirfd: int, path_ptr: int) -> tuple[bytes, int] | int:
    """A path argument and the inode it is relative to, or -errno."""
    name = _path(p, path_ptr)
    if name is None:
        return -errno.EFAULT
    at = _at(p, dirfd, name)
    return at if at < 0 else (name, at)


def _full_path(base: bytes, path: bytes) -> bytes:
    if path.startswith(b"/"):
        return path
    return base.rstrip(b"/") + b"/" + path


def _fail(p: GuestProcess, op: str, path: bytes, error: FsError) -> int:
    """-errno for a failed call, reporting it first when a disk fault caused it."""
    if error.fault is not None:
        p.emit(EventKind.DISK_FAULT, op=op, path=path.decode(errors="replace"),
               fault=error.fault, errno=error.errno)
    return -error.errno


def _install(p: GuestProcess, file: OpenFile, cloexec: bool, lowest: int = FIRST_FD) -> int:
    fd = max(lowest, FIRST_FD)
    while fd in p.files:
        fd += 1
    if fd >= FD_LIMIT:
        return -errno.EMFILE
    file.refs += 1
    p.files[fd] = Descriptor(file, cloexec)
    return fd


def _release(p: GuestProcess, fd: int) -> None:
    file = p.files.pop(fd).file
    file.refs -= 1
    if file.refs == 0 and file.ino in p.fs.inodes:
        p.fs.close(file.ino)


def _stat_bytes(st: Stat) -> bytes:
    """struct stat (x86-64); atime reads as mtime."""
    m, c = divmod(st.mtime_ns, NS), divmod(st.ctime_ns, NS)
    return struct.pack("<QQQIIIIQqqq6q3q", FS_DEV, st.ino, st.nlink, st.mode, 0, 0, 0, 0,
                       st.size, BLKSIZE, st.blocks, *m, *m, *c, 0, 0, 0)


def _statx_bytes(st: Stat) -> bytes:
    """struct statx (256 bytes) with the basic stats; no birth time."""
    head = struct.pack("<IIQIIIHHQQQQ", STATX_BASIC_STATS, BLKSIZE, 0, st.nlink, 0, 0,
                       st.mode, 0, st.ino, st.size, st.blocks, 0)
    m, c = divmod(st.mtime_ns, NS), divmod(st.ctime_ns, NS)
    times = struct.pack("<qIi qIi qIi qIi", *m, 0, 0, 0, 0, *c, 0, *m, 0)
    devs = struct.pack("<IIII", 0, 0, FS_DEV >> 8, FS_DEV & 0xFF)
    return (head + times + devs).ljust(256, b"\0")


# -- opening and closing --------------------------------------------------------------------
def _open(p: GuestProcess, dirfd: int, path_ptr: int, flags: int, mode: int) -> int:
    resolved = _resolve(p, dirfd, path_ptr)
    if isinstance(resolved, int):
        return resolved
    name, at = resolved
    base = b"/" if at == ROOT_INO else _file(p, dirfd).path  # type: ignore[union-attr]
    try:
        ino = p.fs.open(name, flags, (mode & 0o7777) & ~UMASK, _now(p), at)
    except FsError as e:
        return _fail(p, "open", _full_path(base, name), e)
    fd = _install(p, OpenFile(ino, flags & ~OPEN_ONLY, _full_path(base, name)),
                  bool(flags & O_CLOEXEC))
    if fd < 0:
        p.fs.close(ino)
    return fd


def sys_open(p: GuestProcess, r: Any) -> int:
    return _open(p, AT_FDCWD, r.rdi, r.rsi, r.rdx)


def sys_openat(p: GuestProcess, r: Any) -> int:
    return _open(p, r.rdi, r.rsi, r.rdx, r.r10)


def sys_creat(p: GuestProcess, r: Any) -> int:
    return _open(p, AT_FDCWD, r.rdi, O_CREAT | O_WRONLY | O_TRUNC, r.rsi)


def sys_close(p: GuestProcess, r: Any) -> int:
    fd = _int32(r.rdi)
    if fd not in p.files:
        return -errno.EBADF
    _release(p, fd)
    return 0


# -- reading and writing --------------------------------------------------------------------
def _read(p: GuestProcess, fd: int, offset: int | None, size: int) -> bytes | int:
    """Read from a file at offset (None: its position, advanced); the bytes or -errno."""
    f = _file(p, fd)
    if f is None or f.flags & O_ACCMODE == O_WRONLY:
        return -errno.EBADF
    at = f.offset if offset is None else offset
    try:
        data, fault = p.fs.read(f.ino, at, min(size, MAX_IO))
    except FsError as e:
        return _fail(p, "read", f.path, e)
    if fault is not None:
        p.emit(EventKind.DISK_FAULT, op="read", path=f.path.decode(errors="replace"),
               fault=fault, errno=0)
    if offset is None:
        f.offset += len(data)
    return data


def _write(p: GuestProcess, fd: int, offset: int | None, data: bytes) -> int:
    """Write to a file at offset (None: its position, or its end with O_APPEND)."""
    f = _file(p, fd)
    if f is None or f.flags & O_ACCMODE == O_RDONLY:
        return -errno.EBADF
    try:
        at = offset if offset is not None else (
            p.fs.size(f.ino) if f.flags & O_APPEND else f.offset)
        written = p.fs.write(f.ino, at, data, _now(p))
        if f.flags & O_DSYNC:
            p.fs.fsync(f.ino, data_only=f.flags & O_SYNC != O_SYNC)
    except FsError as e:
        return _fail(p, "write", f.path, e)
    if offset is None:
        f.offset = at + written
    return written


def sys_read(p: GuestProcess, r: Any) -> int:
    data = _read(p, r.rdi, None, r.rdx)
    if isinstance(data, int):
        return data
    return len(data) if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_pread64(p: GuestProcess, r: Any) -> int:
    if _int32(r.rdi) in STDIO:
        return -errno.ESPIPE
    offset = _int64(r.r10)
    if offset < 0:
        return -errno.EINVAL
    data = _read(p, r.rdi, offset, r.rdx)
    if isinstance(data, int):
        return data
    return len(data) if p.space.write(r.rsi, data) else -errno.EFAULT


def sys_write(p: GuestProcess, r: Any) -> int:
    count = min(r.rdx, MAX_IO)
    data = p.space.read(r.rsi, count) if count else b""
    if data is None:
        return -errno.EFAULT
    return _write(p, r.rdi, None, data)


def sys_pwrite64(p: GuestProcess, r: Any) -> int:
    if _int32(r.rdi) in STDIO:
        return -errno.ESPIPE
    offset = _int64(r.r10)
    if offset < 0:
        return -errno.EINVAL
    count = min(r.rdx, MAX_IO)
    data = p.space.read(r.rsi, count) if count else b""
    if data is None:
        return -errno.EFAULT
    return _write(p, r.rdi, offset, data)


def _iovecs(p: GuestProcess, iov: int, count: int) -> list[tuple[int, int]] | int:
    if count > 1024:
        return -errno.EINVAL
    raw = p.space.read(iov, 16 * count) if count else b""
    if raw is None:
        return -errno.EFAULT
    return list(struct.iter_unpack("<QQ", raw))


def gather(p: GuestProcess, iov: int, count: int) -> bytes | int:
    """The bytes an iovec array points at (at most MAX_IO in all), or -errno."""
    vecs = _iovecs(p, iov, count)
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


def sys_readv(p: GuestProcess, r: Any) -> int:
    fd = _int32(r.rdi)
    if fd in STDIO:
        return 0 if fd == 0 else -errno.EINVAL  # stdin is at end of file
    vecs = _iovecs(p, r.rsi, r.rdx)
    if isinstance(vecs, int):
        return vecs
    data = _read(p, fd, None, sum(length for _, length in vecs))
    if isinstance(data, int):
        return data
    done = 0
    for base, length in vecs:
        chunk = data[done : done + length]
        if chunk and not p.space.write(base, chunk):
            return -errno.EFAULT
        done += len(chunk)
    return done


def sys_writev(p: GuestProcess, r: Any) -> int:
    data = gather(p, r.rsi, r.rdx)
    return data if isinstance(data, int) else _write(p, r.rdi, None, data)


def _fsync(p: GuestProcess, r: Any, data_only: bool) -> int:
    f = _file(p, r.rdi)
    if f is None:
        return -errno.EBADF
    try:
        p.fs.fsync(f.ino, data_only)
    except FsError as e:
        return _fail(p, "fdatasync" if data_only else "fsync", f.path, e)
    return 0


def sys_fsync(p: GuestProcess, r: Any) -> int:
    return _fsync(p, r, False)


def sys_fdatasync(p: GuestProcess, r: Any) -> int:
    return _fsync(p, r, True)


def sys_lseek(p: GuestProcess, r: Any) -> int:
    f = _file(p, r.rdi)
    if f is None:
        return -errno.EBADF
    offset, whence = _int64(r.rsi), r.rdx
    try:
        size = p.fs.size(f.ino)
        is_dir = p.fs.is_dir(f.ino)
    except FsError as e:
        return -e.errno
    if whence == SEEK_SET:
        target = offset
    elif whence == SEEK_CUR:
        target = f.offset + offset
    elif whence == SEEK_END and not is_dir:
        target = size + offset
    elif whence in (SEEK_DATA, SEEK_HOLE) and not is_dir:
        if not 0 <= offset < size:
            return -errno.ENXIO
        target = offset if whence == SEEK_DATA else size  # no holes: all of it is data
    else:
        return -errno.EINVAL
    if target < 0:
        return -errno.EINVAL
    f.offset = target
    return target


def _truncate(p: GuestProcess, ino: int, length: int, path: bytes) -> int:
    if length < 0:
        return -errno.EINVAL
    try:
        p.fs.truncate(ino, length, _now(p))
    except FsError as e:
        return _fail(p, "truncate", path, e)
    return 0


def sys_ftruncate(p: GuestProcess, r: Any) -> int:
    f = _file(p, r.rdi)
    if f is None:
        return -errno.EBADF
    if f.flags & O_ACCMODE == O_RDONLY:
        return -errno.EINVAL
    return _truncate(p, f.ino, _int64(r.rsi), f.path)


def sys_truncate(p: GuestProcess, r: Any) -> int:
    name = _path(p, r.rdi)
    if name is None:
        return -errno.EFAULT
    try:
        ino = p.fs.lookup(name)
        if p.fs.is_dir(ino):
            return -errno.EISDIR
    except FsError as e:
        return -e.errno
    return _truncate(p, ino, _int64(r.rsi), _full_path(b"/", name))


# -- names ----------------------------------------------------------------------------------
def _path_call(p: GuestProcess, dirfd: int, path_ptr: int, call: Any, *args: Any) -> int:
    """Run fs.<call>(path, ..., now_ns, at) for a path argument; 0 or -errno."""
    resolved = _resolve(p, dirfd, path_ptr)
    if isinstance(resolved, int):
        return resolved
    name, at = resolved
    try:
        call(name, *args, now_ns=_now(p), at=at)
    except FsError as e:
        return -e.errno
    return 0


def sys_unlink(p: GuestProcess, r: Any) -> int:
    return _path_call(p, AT_FDCWD, r.rdi, p.fs.unlink)


def sys_unlinkat(p: GuestProcess, r: Any) -> int:
    flags = r.rdx
    if flags & ~AT_REMOVEDIR:
        return -errno.EINVAL
    call = p.fs.rmdir if flags & AT_REMOVEDIR else p.fs.unlink
    return _path_call(p, r.rdi, r.rsi, call)


def sys_rmdir(p: GuestProcess, r: Any) -> int:
    return _path_call(p, AT_FDCWD, r.rdi, p.fs.rmdir)


def sys_mkdir(p: GuestProcess, r: Any) -> int:
    return _path_call(p, AT_FDCWD, r.rdi, p.fs.mkdir, (r.rsi & 0o7777) & ~UMASK)


def sys_mkdirat(p: GuestProcess, r: Any) -> int:
    return _path_call(p, r.rdi, r.rsi, p.fs.mkdir, (r.rdx & 0o7777) & ~UMASK)


def _rename(p: GuestProcess, olddirfd: int, old_ptr: int, newdirfd: int, new_ptr: int) -> int:
    old, new = _path(p, old_ptr), _path(p, new_ptr)
    if old is None or new is None:
        return -errno.EFAULT
    old_at, new_at = _at(p, olddirfd, old), _at(p, newdirfd, new)
    if old_at < 0 or new_at < 0:
        return min(old_at, new_at)
    try:
        p.fs.rename(old, new, _now(p), old_at, new_at)
    except FsError as e:
        return -e.errno
    return 0


def sys_rename(p: GuestProcess, r: Any) -> int:
    return _rename(p, AT_FDCWD, r.rdi, AT_FDCWD, r.rsi)


def sys_renameat(p: GuestProcess, r: Any) -> int:
    return _rename(p, r.rdi, r.rsi, r.rdx, r.r10)


def sys_renameat2(p: GuestProcess, r: Any) -> int:
    if r.r8 & 0xFFFFFFFF:
        return -errno.EINVAL  # RENAME_NOREPLACE / EXCHANGE / WHITEOUT are not supported
    return _rename(p, r.rdi, r.rsi, r.rdx, r.r10)


# -- metadata -------------------------------------------------------------------------------
def _stat_at(p: GuestProcess, dirfd: int, path_ptr: int, flags: int) -> Stat | int:
    """The Stat a (dirfd, path, AT_* flags) triple names, or -errno."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT):
        return -errno.EINVAL
    name = _path(p, path_ptr)
    if name is None:
        return -errno.EFAULT
    try:
        if name == b"" and flags & AT_EMPTY_PATH:
            if _int32(dirfd) == AT_FDCWD:
                return p.fs.stat(ROOT_INO)
            f = _file(p, dirfd)
            return -errno.EBADF if f is None else p.fs.stat(f.ino)
        at = _at(p, dirfd, name)
        return at if at < 0 else p.fs.stat_path(name, at)
    except FsError as e:
        return -e.errno


def _put(p: GuestProcess, buf: int, st: Stat | int, statx: bool = False) -> int:
    if isinstance(st, int):
        return st
    data = _statx_bytes(st) if statx else _stat_bytes(st)
    return 0 if p.space.write(buf, data) else -errno.EFAULT


def sys_stat(p: GuestProcess, r: Any) -> int:
    return _put(p, r.rsi, _stat_at(p, AT_FDCWD, r.rdi, 0))


def sys_fstat(p: GuestProcess, r: Any) -> int:
    f = _file(p, r.rdi)
    if f is None:
        return -errno.EBADF
    try:
        return _put(p, r.rsi, p.fs.stat(f.ino))
    except FsError as e:
        return -e.errno


def sys_newfstatat(p: GuestProcess, r: Any) -> int:
    return _put(p, r.rdx, _stat_at(p, r.rdi, r.rsi, r.r10))


def sys_statx(p: GuestProcess, r: Any) -> int:
    flags = r.rdx & ~0x6000  # AT_STATX_SYNC_TYPE bits are accepted
    return _put(p, r.r8, _stat_at(p, r.rdi, r.rsi, flags), statx=True)


def _access(p: GuestProcess, dirfd: int, path_ptr: int, mode: int, flags: int = 0) -> int:
    if mode & ~7 or flags & ~(0x200 | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):  # 0x200 AT_EACCESS
        return -errno.EINVAL
    st = _stat_at(p, dirfd, path_ptr, flags & ~0x200)
    if isinstance(st, int):
        return st
    if mode & 1 and not st.is_dir and not st.mode & 0o111:
        return -errno.EACCES  # root may read and write anything, but runs only executables
    return 0


def sys_access(p: GuestProcess, r: Any) -> int:
    return _access(p, AT_FDCWD, r.rdi, r.rsi)


def sys_faccessat(p: GuestProcess, r: Any) -> int:
    return _access(p, r.rdi, r.rsi, r.rdx)


def sys_faccessat2(p: GuestProcess, r: Any) -> int:
    return _access(p, r.rdi, r.rsi, r.rdx, r.r10)


def sys_getdents64(p: GuestProcess, r: Any) -> int:
    f = _file(p, r.rdi)
    if f is None:
        return -errno.EBADF
    try:
        entries = p.fs.listdir(f.ino)
    except FsError as e:
        return -e.errno
    out = bytearray()
    position = f.offset  # the index of the next entry; d_off names the one after it
    while position < len(entries):
        name, ino, is_dir = entries[position]
        reclen = (19 + len(name) + 1 + 7) & ~7
        if len(out) + reclen > r.rdx:
            break
        record = struct.pack("<QqHB", ino, position + 1, reclen, DT_DIR if is_dir else DT_REG)
        out += (record + name).ljust(reclen, b"\0")
        position += 1
    if position < len(entries) and not out:
        return -errno.EINVAL
    if out and not p.space.write(r.rsi, bytes(out)):
        return -errno.EFAULT
    f.offset = position
    return len(out)


# -- descriptors ----------------------------------------------------------------------------
def sys_fcntl(p: GuestProcess, r: Any) -> int:
    fd, cmd, arg = _int32(r.rdi), r.rsi & 0xFFFFFFFF, r.rdx
    if fd in STDIO:
        return {F_GETFD: 0, F_SETFD: 0, F_GETFL: 2, F_SETFL: 0}.get(cmd, -errno.EINVAL)
    slot = p.files.get(fd)
    if slot is None:
        return -errno.EBADF
    if cmd in (F_DUPFD, F_DUPFD_CLOEXEC):
        return _install(p, slot.file, cmd == F_DUPFD_CLOEXEC, _int32(arg))
    if cmd == F_GETFD:
        return FD_CLOEXEC if slot.cloexec else 0
    if cmd == F_SETFD:
        slot.cloexec = bool(arg & FD_CLOEXEC)
        return 0
    if cmd == F_GETFL:
        return slot.file.flags
    if cmd == F_SETFL:
        slot.file.flags = (slot.file.flags & ~SETFL_MASK) | (arg & SETFL_MASK)
        return 0
    return -errno.EINVAL


def _dup_to(p: GuestProcess, old: int, new: int, cloexec: bool) -> int:
    slot = p.files.get(old)
    if slot is None:
        return -errno.EBADF
    if new in STDIO:
        return -errno.EINVAL  # stdio stays the virtual tty
    if not 0 <= new < FD_LIMIT:
        return -errno.EBADF
    if new in p.files:
        _release(p, new)
    return _install(p, slot.file, cloexec, new)


def sys_dup(p: GuestProcess, r: Any) -> int:
    slot = p.files.get(_int32(r.rdi))
    return -errno.EBADF if slot is None else _install(p, slot.file, False)


def sys_dup2(p: GuestProcess, r: Any) -> int:
    old, new = _int32(r.rdi), _int32(r.rsi)
    if old == new:
        return new if old in p.files else -errno.EBADF
    return _dup_to(p, old, new, False)


def sys_dup3(p: GuestProcess, r: Any) -> int:
    old, new, flags = _int32(r.rdi), _int32(r.rsi), r.rdx
    if old == new or flags & ~O_CLOEXEC:
        return -errno.EINVAL
    return _dup_to(p, old, new, bool(flags & O_CLOEXEC))


def sys_ioctl(p: GuestProcess, r: Any) -> int:
    return -errno.ENOTTY if _int32(r.rdi) in p.files else -errno.EBADF


# -- checkpoints ----------------------------------------------------------------------------
def files_state(p: GuestProcess) -> dict[str, Any]:
    """The descriptor table as plain data; dup'd descriptors share one description."""
    descriptions: list[list[Any]] = []
    index: dict[int, int] = {}
    fds: list[list[Any]] = []
    for fd in sorted(p.files):
        slot = p.files[fd]
        key = id(slot.file)
        if key not in index:
            index[key] = len(descriptions)
            f = slot.file
            descriptions.append([f.ino, f.flags, f.path, f.offset])
        fds.append([fd, index[key], slot.cloexec])
    return {"version": STATE_VERSION, "open": descriptions, "fds": fds}


def load_files_state(p: GuestProcess, data: dict[str, Any]) -> None:
    """Adopt files_state() output. The disk's own holds come back with FileSystem.restore."""
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported descriptor table version {data.get('version')!r}")
    files = [OpenFile(ino, flags, bytes(path), offset) for ino, flags, path, offset in
             data["open"]]
    p.files = {}
    for fd, i, cloexec in data["fds"]:
        files[i].refs += 1
        p.files[fd] = Descriptor(files[i], cloexec)


HANDLERS = {
    NUMBERS["open"]: sys_open,
    NUMBERS["openat"]: sys_openat,
    NUMBERS["creat"]: sys_creat,
    NUMBERS["pread64"]: sys_pread64,
    NUMBERS["pwrite64"]: sys_pwrite64,
    NUMBERS["readv"]: sys_readv,
    NUMBERS["fsync"]: sys_fsync,
    NUMBERS["fdatasync"]: sys_fdatasync,
    NUMBERS["unlink"]: sys_unlink,
    NUMBERS["unlinkat"]: sys_unlinkat,
    NUMBERS["rename"]: sys_rename,
    NUMBERS["renameat"]: sys_renameat,
    NUMBERS["renameat2"]: sys_renameat2,
    NUMBERS["mkdir"]: sys_mkdir,
    NUMBERS["mkdirat"]: sys_mkdirat,
    NUMBERS["rmdir"]: sys_rmdir,
    NUMBERS["stat"]: sys_stat,
    NUMBERS["lstat"]: sys_stat,
    NUMBERS["statx"]: sys_statx,
    NUMBERS["getdents64"]: sys_getdents64,
    NUMBERS["ftruncate"]: sys_ftruncate,
    NUMBERS["truncate"]: sys_truncate,
    NUMBERS["access"]: sys_access,
    NUMBERS["faccessat"]: sys_faccessat,
    NUMBERS["faccessat2"]: sys_faccessat2,
    NUMBERS["fcntl"]: sys_fcntl,
    NUMBERS["dup"]: sys_dup,
    NUMBERS["dup2"]: sys_dup2,
    NUMBERS["dup3"]: sys_dup3,
}
"""Calls only this module answers; io.py hands it read, write, writev, close, lseek, fstat,
newfstatat and ioctl for descriptors other than the tty's."""
