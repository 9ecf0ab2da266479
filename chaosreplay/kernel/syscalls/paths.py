"""The working directory, the umask, links and file attributes: chdir, fchdir, getcwd,
umask, readlink(at), link/linkat, chmod/fchmod/fchmodat, chown/fchown/lchown/fchownat,
utimensat, utime, utimes, futimesat.

Modes, owners and times of disk files are stored on the disk and shown by stat. The
synthetic trees (/proc, /dev, /etc) cannot be changed (EPERM); descriptions without an
inode of their own (pipes, eventfd, ...) accept fchmod/fchown and keep nothing.
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.disk import FsError
from chaosreplay.kernel.fs.paths import (
    AT_FDCWD,
    Place,
    is_dir,
    link_target,
    path_of,
    place_of,
    resolve,
)
from chaosreplay.kernel.fs.regular import fail, now_ns
from chaosreplay.kernel.syscalls.args import NS, int32, path_arg
from chaosreplay.kernel.syscalls.files import AT_EMPTY_PATH, AT_SYMLINK_NOFOLLOW
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

UTIME_NOW, UTIME_OMIT = (1 << 30) - 1, (1 << 30) - 2
AT_SYMLINK_FOLLOW = 0x400


def _place(p: GuestProcess, dirfd: int, path_ptr: int, follow: bool = True,
           empty_ok: bool = False) -> Place | int:
    """The existing place a (dirfd, path) names, or -errno."""
    path = path_arg(p, path_ptr) if path_ptr or not empty_ok else b""
    if isinstance(path, int):
        return path
    if path == b"" and empty_ok:
        if int32(dirfd) == AT_FDCWD:
            return p.cwd
        file = p.files.get(int32(dirfd))
        if file is None:
            return -errno.EBADF
        place = place_of(file)
        return place if place is not None else Place(b"anon")
    res = resolve(p, int32(dirfd), path, follow)
    if isinstance(res, int):
        return res
    return -errno.ENOENT if res.place is None else res.place


def sys_chdir(p: GuestProcess, r: Any) -> int:
    place = _place(p, AT_FDCWD, r.rdi)
    if isinstance(place, int):
        return place
    if not is_dir(p, place):
        return -errno.ENOTDIR
    p.cwd = place
    return 0


def sys_fchdir(p: GuestProcess, r: Any) -> int:
    file = p.files.get(int32(r.rdi))
    if file is None:
        return -errno.EBADF
    place = place_of(file)
    if place is None or not is_dir(p, place):
        return -errno.ENOTDIR
    p.cwd = place
    return 0


def sys_getcwd(p: GuestProcess, r: Any) -> int:
    cwd = path_of(p, p.cwd) + b"\0"
    if r.rsi < len(cwd):
        return -errno.ERANGE
    return len(cwd) if p.space.write(r.rdi, cwd) else -errno.EFAULT


def sys_umask(p: GuestProcess, r: Any) -> int:
    old, p.umask = p.umask, r.rdi & 0o777
    return old


def _readlink(p: GuestProcess, dirfd: int, path_ptr: int, buf: int, size: int) -> int:
    if int32(size) <= 0:
        return -errno.EINVAL
    place = _place(p, dirfd, path_ptr, follow=False)
    if isinstance(place, int):
        return place
    try:
        target = link_target(p, place)
    except FsError as e:
        return -e.errno
    if target is None:
        return -errno.EINVAL
    target = target[:size]
    return len(target) if p.space.write(buf, target) else -errno.EFAULT


def sys_readlink(p: GuestProcess, r: Any) -> int:
    return _readlink(p, AT_FDCWD, r.rdi, r.rsi, r.rdx)


def sys_readlinkat(p: GuestProcess, r: Any) -> int:
    return _readlink(p, r.rdi, r.rsi, r.rdx, r.r10)


def _change(p: GuestProcess, place: Place | int, change: Any, times: bool = False) -> int:
    """Apply change(ino) to a disk inode; EPERM on synthetic files, 0 on anonymous ones.
    New times of a /proc file are accepted and forgotten: Linux keeps them only until it
    rebuilds the inode from the task."""
    if isinstance(place, int):
        return place
    if place.mount == b"anon" or (times and place.mount == b"proc"):
        return 0
    if not place.on_disk:
        return -errno.EPERM
    try:
        change(place.ino)
    except FsError as e:
        return -e.errno
    return 0


def _chmod(p: GuestProcess, place: Place | int, mode: int) -> int:
    return _change(p, place, lambda ino: p.fs.chmod(ino, mode & 0o7777, now_ns(p)))


def _chown(p: GuestProcess, place: Place | int, uid: int, gid: int) -> int:
    return _change(p, place, lambda ino: p.fs.chown(ino, uid & 0xFFFFFFFF, gid & 0xFFFFFFFF,
                                                    now_ns(p)))


def sys_chmod(p: GuestProcess, r: Any) -> int:
    return _chmod(p, _place(p, AT_FDCWD, r.rdi), r.rsi)


def sys_fchmod(p: GuestProcess, r: Any) -> int:
    return _chmod(p, _place(p, r.rdi, 0, empty_ok=True), r.rsi)


def sys_fchmodat(p: GuestProcess, r: Any) -> int:
    return _chmod(p, _place(p, r.rdi, r.rsi), r.rdx)


def sys_chown(p: GuestProcess, r: Any) -> int:
    return _chown(p, _place(p, AT_FDCWD, r.rdi), r.rsi, r.rdx)


def sys_lchown(p: GuestProcess, r: Any) -> int:
    return _chown(p, _place(p, AT_FDCWD, r.rdi, follow=False), r.rsi, r.rdx)


def sys_fchown(p: GuestProcess, r: Any) -> int:
    return _chown(p, _place(p, r.rdi, 0, empty_ok=True), r.rsi, r.rdx)


def sys_fchownat(p: GuestProcess, r: Any) -> int:
    flags = r.r8
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW):
        return -errno.EINVAL
    place = _place(p, r.rdi, r.rsi, follow=not flags & AT_SYMLINK_NOFOLLOW,
                   empty_ok=bool(flags & AT_EMPTY_PATH))
    return _chown(p, place, r.rdx, r.r10)


def sys_utimensat(p: GuestProcess, r: Any) -> int:
    dirfd, path_ptr, times_ptr, flags = r.rdi, r.rsi, r.rdx, r.r10
    if flags & ~(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    now = now_ns(p)
    atime: int | None = now
    mtime: int | None = now
    if times_ptr:
        raw = p.space.read(times_ptr, 32)
        if raw is None:
            return -errno.EFAULT
        stamps = []
        for seconds, nanos in struct.iter_unpack("<qq", raw):
            if nanos == UTIME_OMIT:
                stamps.append(None)
            elif nanos == UTIME_NOW:
                stamps.append(now)
            elif not 0 <= nanos < NS:
                return -errno.EINVAL
            else:
                stamps.append(seconds * NS + nanos)
        atime, mtime = stamps
    place = _place(p, dirfd, path_ptr, follow=not flags & AT_SYMLINK_NOFOLLOW,
                   empty_ok=not path_ptr or bool(flags & AT_EMPTY_PATH))
    return _change(p, place, lambda ino: p.fs.set_times(ino, atime, mtime, now))


def _link(p: GuestProcess, olddirfd: int, old_ptr: int, newdirfd: int, new_ptr: int,
          flags: int) -> int:
    """A new name for an existing file, in Linux's order of checks: flags, the old name,
    the new one (EEXIST), the same file system (EXDEV), then what the disk refuses."""
    if flags & ~(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    empty = bool(flags & AT_EMPTY_PATH)
    if empty:
        raw = path_arg(p, old_ptr)
        empty = raw == b""
    old = _place(p, olddirfd, old_ptr, follow=bool(flags & AT_SYMLINK_FOLLOW), empty_ok=empty)
    if isinstance(old, int):
        return old
    path = path_arg(p, new_ptr)
    if isinstance(path, int):
        return path
    new = resolve(p, int32(newdirfd), path, follow=False)
    if isinstance(new, int):
        return new
    if new.place is not None:
        return -errno.EEXIST
    if new.trailing_slash:
        return -errno.ENOENT
    if new.parent.mount == b"proc":
        return -errno.ENOENT  # /proc has no name it could create
    if not old.on_disk or not new.parent.on_disk:
        return -errno.EXDEV  # /proc, /dev, /etc and the program are other file systems
    try:
        p.fs.link(old.ino, new.name, now_ns(p), new.parent.ino)
    except FsError as e:
        return fail(p, "link", path, e)
    return 0


def sys_link(p: GuestProcess, r: Any) -> int:
    return _link(p, AT_FDCWD, r.rdi, AT_FDCWD, r.rsi, 0)


def sys_linkat(p: GuestProcess, r: Any) -> int:
    return _link(p, r.rdi, r.rsi, r.rdx, r.r10, r.r8 & 0xFFFFFFFF)


def _set_times(p: GuestProcess, dirfd: int, path_ptr: int, stamps: tuple[int, int] | None
               ) -> int:
    now = now_ns(p)
    atime, mtime = stamps if stamps is not None else (now, now)
    place = _place(p, dirfd, path_ptr, empty_ok=not path_ptr)
    return _change(p, place, lambda ino: p.fs.set_times(ino, atime, mtime, now), times=True)


def sys_utime(p: GuestProcess, r: Any) -> int:
    stamps = None
    if r.rsi:
        raw = p.space.read(r.rsi, 16)
        if raw is None:
            return -errno.EFAULT
        actime, modtime = struct.unpack("<qq", raw)
        stamps = (actime * NS, modtime * NS)
    return _set_times(p, AT_FDCWD, r.rdi, stamps)


def _timevals(p: GuestProcess, address: int) -> tuple[int, int] | int | None:
    """Two struct timeval in ns, None for "now", or -errno."""
    if not address:
        return None
    raw = p.space.read(address, 32)
    if raw is None:
        return -errno.EFAULT
    (a_sec, a_usec), (m_sec, m_usec) = struct.iter_unpack("<qq", raw)
    if not (0 <= a_usec < 1_000_000 and 0 <= m_usec < 1_000_000):
        return -errno.EINVAL
    return a_sec * NS + a_usec * 1000, m_sec * NS + m_usec * 1000


def sys_utimes(p: GuestProcess, r: Any) -> int:
    stamps = _timevals(p, r.rsi)
    return stamps if isinstance(stamps, int) else _set_times(p, AT_FDCWD, r.rdi, stamps)


def sys_futimesat(p: GuestProcess, r: Any) -> int:
    stamps = _timevals(p, r.rdx)
    return stamps if isinstance(stamps, int) else _set_times(p, r.rdi, r.rsi, stamps)


HANDLERS = {
    86: sys_link,
    265: sys_linkat,
    132: sys_utime,
    235: sys_utimes,
    261: sys_futimesat,
    NUMBERS["chdir"]: sys_chdir,
    NUMBERS["fchdir"]: sys_fchdir,
    NUMBERS["getcwd"]: sys_getcwd,
    NUMBERS["umask"]: sys_umask,
    NUMBERS["readlink"]: sys_readlink,
    NUMBERS["readlinkat"]: sys_readlinkat,
    NUMBERS["chmod"]: sys_chmod,
    NUMBERS["fchmod"]: sys_fchmod,
    268: sys_fchmodat,
    NUMBERS["chown"]: sys_chown,
    93: sys_fchown,
    94: sys_lchown,
    260: sys_fchownat,
    280: sys_utimensat,
}
