"""Extended attributes: set/get/list/remove, each by path, by path without following a
final link (l*), and by descriptor (f*).

The node's disk stores them as ext4 does (kernel.fs.disk): the user.* and security.*
namespaces on regular files and directories, all of one inode's names and values in one
4 KiB block (ENOSPC past it), durable with the inode's other metadata on fsync. trusted.*
needs CAP_SYS_ADMIN in the initial namespace (the guest sees none and may set none), and
system.* names (POSIX ACLs) are not supported, as on a file system mounted without ACLs.
The synthetic trees (/proc, /dev, /etc, the program) and anonymous files keep none: they
answer as a file system without extended attributes does (EOPNOTSUPP, and an empty list).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.disk import FsError
from chaosreplay.kernel.fs.files import O_PATH, S_IFDIR, S_IFMT, S_IFREG
from chaosreplay.kernel.fs.paths import AT_FDCWD, Place, place_of
from chaosreplay.kernel.fs.regular import now_ns
from chaosreplay.kernel.syscalls.args import int32
from chaosreplay.kernel.syscalls.paths import _place

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

XATTR_CREATE, XATTR_REPLACE = 1, 2
XATTR_NAME_MAX, XATTR_SIZE_MAX, XATTR_LIST_MAX = 255, 65536, 65536
USER, TRUSTED, SECURITY, SYSTEM = b"user.", b"trusted.", b"security.", b"system."


class _Target:
    """What an xattr call acts on: a disk inode, or a file without attributes, and its type."""

    def __init__(self, ino: int | None, file_type: int) -> None:
        self.ino, self.file_type = ino, file_type


def _by_place(p: GuestProcess, place: Place) -> _Target | int:
    from chaosreplay.kernel.syscalls.files import stat_place

    st = stat_place(p, place)
    if isinstance(st, int):
        return st
    return _Target(place.ino if place.on_disk else None, st.mode & S_IFMT)


def _by_path(p: GuestProcess, path_ptr: int, follow: bool) -> _Target | int:
    place = _place(p, AT_FDCWD, path_ptr, follow=follow)
    return place if isinstance(place, int) else _by_place(p, place)


def _by_fd(p: GuestProcess, fd: int) -> _Target | int:
    file = p.files.get(int32(fd))
    if file is None or file.flags & O_PATH:
        return -errno.EBADF
    place = place_of(file)
    if place is not None and place.on_disk:
        return _by_place(p, place)
    st = file.stat(p)
    return st if isinstance(st, int) else _Target(None, st.mode & S_IFMT)


def _name(p: GuestProcess, address: int) -> bytes | int:
    raw = p.space.read_cstring(address, XATTR_NAME_MAX + 2)
    if raw is None:
        return -errno.EFAULT
    return raw if 0 < len(raw) <= XATTR_NAME_MAX else -errno.ERANGE


def _permission(target: _Target, name: bytes, write: bool) -> int:
    """Linux's xattr_permission for the guest's identity: 0, or -errno."""
    if name.startswith((SECURITY, SYSTEM)):
        return 0
    if name.startswith(TRUSTED):
        return -errno.EPERM if write else -errno.ENODATA
    if name.startswith(USER) and target.file_type not in (S_IFREG, S_IFDIR):
        return -errno.EPERM if write else -errno.ENODATA
    return 0


def _supported(target: _Target, name: bytes) -> bool:
    return target.ino is not None and name.startswith((USER, SECURITY))


def _set(p: GuestProcess, target: _Target | int, name: bytes, value: bytes, flags: int) -> int:
    if isinstance(target, int):
        return target
    denied = _permission(target, name, write=True)
    if denied:
        return denied
    if not _supported(target, name):
        return -errno.EOPNOTSUPP
    assert target.ino is not None
    try:
        p.fs.set_xattr(target.ino, name, value, bool(flags & XATTR_CREATE),
                       bool(flags & XATTR_REPLACE), now_ns(p))
    except FsError as e:
        return -e.errno
    return 0


def _set_args(p: GuestProcess, r: Any) -> tuple[bytes, bytes, int] | int:
    """(name, value, flags) of a set call, copied before the file is looked up, as Linux
    copies them."""
    flags = r.r8 & 0xFFFFFFFF
    if flags & ~(XATTR_CREATE | XATTR_REPLACE):
        return -errno.EINVAL
    name = _name(p, r.rsi)
    if isinstance(name, int):
        return name
    size = r.r10
    if size > XATTR_SIZE_MAX:
        return -errno.E2BIG
    value = p.space.read(r.rdx, size) if size else b""
    if value is None:
        return -errno.EFAULT
    return name, value, flags


def sys_setxattr(p: GuestProcess, r: Any) -> int:
    args = _set_args(p, r)
    return args if isinstance(args, int) else _set(p, _by_path(p, r.rdi, True), *args)


def sys_lsetxattr(p: GuestProcess, r: Any) -> int:
    args = _set_args(p, r)
    return args if isinstance(args, int) else _set(p, _by_path(p, r.rdi, False), *args)


def sys_fsetxattr(p: GuestProcess, r: Any) -> int:
    target = _by_fd(p, r.rdi)
    args = _set_args(p, r)
    if isinstance(target, int):
        return target
    return args if isinstance(args, int) else _set(p, target, *args)


def _get(p: GuestProcess, target: _Target | int, name_ptr: int, buf: int, size: int) -> int:
    name = _name(p, name_ptr)
    if isinstance(name, int):
        return name
    if isinstance(target, int):
        return target
    denied = _permission(target, name, write=False)
    if denied:
        return denied
    if not _supported(target, name):
        return -errno.EOPNOTSUPP
    assert target.ino is not None
    try:
        value = p.fs.get_xattr(target.ino, name)
    except FsError as e:
        return -e.errno
    size = min(size, XATTR_SIZE_MAX)
    if size == 0:
        return len(value)
    if len(value) > size:
        return -errno.ERANGE
    return len(value) if not value or p.space.write(buf, value) else -errno.EFAULT


def sys_getxattr(p: GuestProcess, r: Any) -> int:
    return _get(p, _by_path(p, r.rdi, True), r.rsi, r.rdx, r.r10)


def sys_lgetxattr(p: GuestProcess, r: Any) -> int:
    return _get(p, _by_path(p, r.rdi, False), r.rsi, r.rdx, r.r10)


def sys_fgetxattr(p: GuestProcess, r: Any) -> int:
    return _get(p, _by_fd(p, r.rdi), r.rsi, r.rdx, r.r10)


def _list(p: GuestProcess, target: _Target | int, buf: int, size: int) -> int:
    if isinstance(target, int):
        return target
    names = p.fs.list_xattrs(target.ino) if target.ino is not None else []
    data = b"".join(n + b"\0" for n in names if not n.startswith(TRUSTED))
    size = min(size, XATTR_LIST_MAX)
    if size == 0:
        return len(data)
    if len(data) > size:
        return -errno.ERANGE
    return len(data) if not data or p.space.write(buf, data) else -errno.EFAULT


def sys_listxattr(p: GuestProcess, r: Any) -> int:
    return _list(p, _by_path(p, r.rdi, True), r.rsi, r.rdx)


def sys_llistxattr(p: GuestProcess, r: Any) -> int:
    return _list(p, _by_path(p, r.rdi, False), r.rsi, r.rdx)


def sys_flistxattr(p: GuestProcess, r: Any) -> int:
    return _list(p, _by_fd(p, r.rdi), r.rsi, r.rdx)


def _remove(p: GuestProcess, target: _Target | int, name_ptr: int) -> int:
    name = _name(p, name_ptr)
    if isinstance(name, int):
        return name
    if isinstance(target, int):
        return target
    denied = _permission(target, name, write=True)
    if denied:
        return denied
    if not _supported(target, name):
        return -errno.EOPNOTSUPP
    assert target.ino is not None
    try:
        p.fs.remove_xattr(target.ino, name, now_ns(p))
    except FsError as e:
        return -e.errno
    return 0


def sys_removexattr(p: GuestProcess, r: Any) -> int:
    return _remove(p, _by_path(p, r.rdi, True), r.rsi)


def sys_lremovexattr(p: GuestProcess, r: Any) -> int:
    return _remove(p, _by_path(p, r.rdi, False), r.rsi)


def sys_fremovexattr(p: GuestProcess, r: Any) -> int:
    return _remove(p, _by_fd(p, r.rdi), r.rsi)


HANDLERS = {
    188: sys_setxattr,
    189: sys_lsetxattr,
    190: sys_fsetxattr,
    191: sys_getxattr,
    192: sys_lgetxattr,
    193: sys_fgetxattr,
    194: sys_listxattr,
    195: sys_llistxattr,
    196: sys_flistxattr,
    197: sys_removexattr,
    198: sys_lremovexattr,
    199: sys_fremovexattr,
}
