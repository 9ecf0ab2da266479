"""Calls that name files by path: open, stat, create and remove names, directories.

Every path goes through the one resolver (kernel.fs.paths: cwd, `..`, symlinks, and the
synthetic /proc, /dev, /etc over the node's disk); what a path leads to is opened as a
file description (kernel.fs.files). The disk outlives the process and is checkpointed by
the simulation (`FileSystem.snapshot`); the descriptor table, cwd and umask belong to
the process and are checkpointed with it (`files_state` / `load_files_state`).
"""

from __future__ import annotations

import errno
import struct
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs import paths
from chaosreplay.kernel.fs.devices import Device, Tty
from chaosreplay.kernel.fs.disk import FsError
from chaosreplay.kernel.fs.exefs import ExeFile
from chaosreplay.kernel.fs.files import (
    O_ACCMODE,
    O_CLOEXEC,
    O_CREAT,
    O_DIRECTORY,
    O_EXCL,
    O_NOFOLLOW,
    O_PATH,
    O_RDONLY,
    O_RDWR,
    O_TRUNC,
    O_WRONLY,
    OPEN_ONLY,
    VALID_OPEN_FLAGS,
    FdTable,
    FileDescription,
    StatInfo,
)
from chaosreplay.kernel.fs.paths import (
    AT_FDCWD,
    Place,
    Resolved,
    child_path,
    path_of,
    resolve,
    synth,
)
from chaosreplay.kernel.fs.pipes import Pipe
from chaosreplay.kernel.fs.regular import DiskFile, disk_stat, fail, now_ns
from chaosreplay.kernel.fs.synthetic import StaticFile, SynthDirectory
from chaosreplay.kernel.fs.waiters import load_wait, wait_state
from chaosreplay.kernel.syscalls.args import int32, int64, path_arg
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT = 0x1000, 0x200, 0x100, 0x800
AT_EACCESS, AT_STATX_SYNC_TYPE = 0x200, 0x6000
UMASK = 0o022
STATE_VERSION = 3  # 3: the blocked call of every task (2: of the one task)
TTY_PATH = b"/dev/pts/0"


def stdio_table() -> FdTable:
    """A new process's table: 0, 1 and 2 open on the virtual terminal."""
    table = FdTable()
    for fd in (0, 1, 2):
        table.install(Tty(O_RDWR, TTY_PATH, 2 if fd == 2 else 1), lowest=fd)
    return table


def _resolve(p: GuestProcess, dirfd: int, path_ptr: int, follow: bool = True
             ) -> Resolved | int:
    path = path_arg(p, path_ptr)
    if isinstance(path, int):
        return path
    return resolve(p, int32(dirfd), path, follow)


def stat_place(p: GuestProcess, place: Place) -> StatInfo | int:
    if place.mount == paths.FD_MOUNT:
        file = p.files.get(place.ino)
        return -errno.ENOENT if file is None else file.stat(p)
    try:
        if place.on_disk:
            return disk_stat(p.fs.stat(place.ino))
    except FsError as e:
        return -e.errno
    node = synth(p, place)
    if node is None:
        return -errno.ENOENT
    if node.device == "exe":
        return ExeFile(O_RDONLY, path_of(p, place)).stat(p)
    return node.stat(paths.MOUNTS[place.mount].dev, path_of(p, place), p)


# -- opening --------------------------------------------------------------------------------
def _open_synthetic(p: GuestProcess, place: Place, flags: int) -> FileDescription | int:
    node = synth(p, place)
    if node is None:
        return -errno.ENOENT
    access = flags & O_ACCMODE
    path = path_of(p, place)
    if node.kind == "link":
        return -errno.ELOOP
    if node.kind == "dir":
        if access != O_RDONLY:
            return -errno.EISDIR
        return SynthDirectory(flags, path, place.mount, place.parts)
    if flags & O_DIRECTORY:
        return -errno.ENOTDIR
    if access != O_RDONLY and not node.writable:
        return -errno.EACCES
    if node.kind == "device":
        if node.device == "tty":
            return Tty(flags, path, 1)
        if node.device == "exe":
            return ExeFile(flags, path)
        return Device(flags, path, node.device.encode())
    return StaticFile(flags, path, node.content, paths.MOUNTS[place.mount].dev, node.mode)


def open_file(p: GuestProcess, dirfd: int, path: bytes, flags: int, mode: int
              ) -> FileDescription | int:
    """The description a path opens to (creating a disk file with O_CREAT), or -errno."""
    flags &= VALID_OPEN_FLAGS  # Linux drops the bits open(2) does not know before anything
    exclusive = flags & O_CREAT and flags & O_EXCL
    res = resolve(p, dirfd, path, follow=not (flags & O_NOFOLLOW or exclusive))
    if isinstance(res, int):
        return res
    kept = flags & ~OPEN_ONLY
    if res.place is None:
        if not flags & O_CREAT:
            return -errno.ENOENT
        if res.trailing_slash:
            return -errno.EISDIR
        if not res.parent.on_disk:
            return -errno.EACCES
        at, name = res.parent.ino, res.name
    else:
        place = res.place
        if exclusive:
            return -errno.EEXIST
        if paths.link_target(p, place) is not None and not flags & O_PATH:
            return -errno.ELOOP
        if place.mount == paths.FD_MOUNT:
            file = p.files.get(place.ino)
            return -errno.ENOENT if file is None else file.reopen(p, kept)
        if not place.on_disk:
            return _open_synthetic(p, place, kept)
        at, name = place.ino, b"."
        if not p.fs.is_dir(place.ino):
            at, name = res.parent.ino, res.name
    full = path_of(p, Place(ino=at)) if name == b"." else child_path(p, Place(ino=at), name)
    try:
        ino = p.fs.open(name, flags & ~O_PATH, (mode & 0o7777) & ~p.umask, now_ns(p), at)
    except FsError as e:
        return fail(p, "open", full, e)
    return DiskFile(kept, full, ino)


def _open(p: GuestProcess, dirfd: int, path_ptr: int, flags: int, mode: int) -> int:
    path = path_arg(p, path_ptr)
    if isinstance(path, int):
        return path
    file = open_file(p, int32(dirfd), path, flags & 0xFFFFFFFF, mode)
    if isinstance(file, int):
        return file
    fd = p.files.install(file, bool(flags & O_CLOEXEC))
    if fd < 0:
        file.release(p)
    return fd


def sys_open(p: GuestProcess, r: Any) -> int:
    return _open(p, AT_FDCWD, r.rdi, r.rsi, r.rdx)


def sys_openat(p: GuestProcess, r: Any) -> int:
    return _open(p, r.rdi, r.rsi, r.rdx, r.r10)


def sys_creat(p: GuestProcess, r: Any) -> int:
    return _open(p, AT_FDCWD, r.rdi, O_CREAT | O_WRONLY | O_TRUNC, r.rsi)


# -- metadata -------------------------------------------------------------------------------
def _stat_at(p: GuestProcess, dirfd: int, path_ptr: int, flags: int) -> StatInfo | int:
    """The StatInfo a (dirfd, path, AT_* flags) triple names, or -errno."""
    if flags & ~(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT):
        return -errno.EINVAL
    path = path_arg(p, path_ptr)
    if isinstance(path, int):
        return path
    if path == b"" and flags & AT_EMPTY_PATH:
        if int32(dirfd) == AT_FDCWD:
            return stat_place(p, p.cwd)
        file = p.files.get(int32(dirfd))
        return -errno.EBADF if file is None else file.stat(p)
    res = resolve(p, int32(dirfd), path, follow=not flags & AT_SYMLINK_NOFOLLOW)
    if isinstance(res, int):
        return res
    return -errno.ENOENT if res.place is None else stat_place(p, res.place)


def _put(p: GuestProcess, buf: int, st: StatInfo | int, statx: bool = False) -> int:
    if isinstance(st, int):
        return st
    return 0 if p.space.write(buf, st.pack_statx() if statx else st.pack()) else -errno.EFAULT


def sys_stat(p: GuestProcess, r: Any) -> int:
    return _put(p, r.rsi, _stat_at(p, AT_FDCWD, r.rdi, 0))


def sys_lstat(p: GuestProcess, r: Any) -> int:
    return _put(p, r.rsi, _stat_at(p, AT_FDCWD, r.rdi, AT_SYMLINK_NOFOLLOW))


def sys_fstat(p: GuestProcess, r: Any) -> int:
    file = p.files.get(int32(r.rdi))
    return -errno.EBADF if file is None else _put(p, r.rsi, file.stat(p))


def sys_newfstatat(p: GuestProcess, r: Any) -> int:
    return _put(p, r.rdx, _stat_at(p, r.rdi, r.rsi, r.r10))


def sys_statx(p: GuestProcess, r: Any) -> int:
    return _put(p, r.r8, _stat_at(p, r.rdi, r.rsi, r.rdx & ~AT_STATX_SYNC_TYPE), statx=True)


def _access(p: GuestProcess, dirfd: int, path_ptr: int, mode: int, flags: int = 0) -> int:
    if mode & ~7 or flags & ~(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH):
        return -errno.EINVAL
    st = _stat_at(p, dirfd, path_ptr, flags & ~AT_EACCESS)
    if isinstance(st, int):
        return st
    if mode & 1 and st.mode & 0o170000 != 0o040000 and not st.mode & 0o111:
        return -errno.EACCES  # root may read and write anything, but runs only executables
    return 0


def sys_access(p: GuestProcess, r: Any) -> int:
    return _access(p, AT_FDCWD, r.rdi, r.rsi)


def sys_faccessat(p: GuestProcess, r: Any) -> int:
    return _access(p, r.rdi, r.rsi, r.rdx)


def sys_faccessat2(p: GuestProcess, r: Any) -> int:
    return _access(p, r.rdi, r.rsi, r.rdx, r.r10)


def sys_getdents64(p: GuestProcess, r: Any) -> int:
    file = p.files.get(int32(r.rdi))
    if file is None:
        return -errno.EBADF
    entries = file.getdents(p)
    if isinstance(entries, int):
        return entries
    out = bytearray()
    position = file.offset  # the index of the next entry; d_off names the one after it
    while position < len(entries):
        name, ino, dtype = entries[position]
        reclen = (19 + len(name) + 1 + 7) & ~7
        if len(out) + reclen > r.rdx:
            break
        out += (struct.pack("<QqHB", ino, position + 1, reclen, dtype) + name).ljust(reclen,
                                                                                  b"\0")
        position += 1
    if position < len(entries) and not out:
        return -errno.EINVAL
    if out and not p.space.write(r.rsi, bytes(out)):
        return -errno.EFAULT
    file.offset = position
    return len(out)


# -- names ----------------------------------------------------------------------------------
def _on_disk_parent(res: Resolved | int) -> Resolved | int:
    if isinstance(res, int):
        return res
    return res if res.parent.on_disk else -errno.EACCES


def _name_call(p: GuestProcess, dirfd: int, path_ptr: int, call: Any, *args: Any,
               must_exist: bool = True) -> int:
    """fs.<call>(last name, ..., now_ns, at=parent) for a path argument; 0 or -errno."""
    res = _on_disk_parent(_resolve(p, dirfd, path_ptr, follow=False))
    if isinstance(res, int):
        return res
    if must_exist and res.place is None:
        return -errno.ENOENT
    if not must_exist and res.place is not None:
        return -errno.EEXIST
    try:
        call(res.name, *args, now_ns=now_ns(p), at=res.parent.ino)
    except FsError as e:
        return -e.errno
    return 0


def sys_unlink(p: GuestProcess, r: Any) -> int:
    return _name_call(p, AT_FDCWD, r.rdi, p.fs.unlink)


def sys_unlinkat(p: GuestProcess, r: Any) -> int:
    if r.rdx & ~AT_REMOVEDIR:
        return -errno.EINVAL
    return _name_call(p, r.rdi, r.rsi, p.fs.rmdir if r.rdx & AT_REMOVEDIR else p.fs.unlink)


def sys_rmdir(p: GuestProcess, r: Any) -> int:
    return _name_call(p, AT_FDCWD, r.rdi, p.fs.rmdir)


def sys_mkdir(p: GuestProcess, r: Any) -> int:
    return _name_call(p, AT_FDCWD, r.rdi, p.fs.mkdir, (r.rsi & 0o7777) & ~p.umask,
                      must_exist=False)


def sys_mkdirat(p: GuestProcess, r: Any) -> int:
    return _name_call(p, r.rdi, r.rsi, p.fs.mkdir, (r.rdx & 0o7777) & ~p.umask,
                      must_exist=False)


def _symlink(p: GuestProcess, target_ptr: int, dirfd: int, path_ptr: int) -> int:
    target = path_arg(p, target_ptr)
    if isinstance(target, int):
        return target
    return _name_call(p, dirfd, path_ptr, p.fs.symlink, target, must_exist=False)


def sys_symlink(p: GuestProcess, r: Any) -> int:
    return _symlink(p, r.rdi, AT_FDCWD, r.rsi)


def sys_symlinkat(p: GuestProcess, r: Any) -> int:
    return _symlink(p, r.rdi, r.rsi, r.rdx)


def _rename(p: GuestProcess, olddirfd: int, old_ptr: int, newdirfd: int, new_ptr: int) -> int:
    old = _on_disk_parent(_resolve(p, olddirfd, old_ptr, follow=False))
    new = _on_disk_parent(_resolve(p, newdirfd, new_ptr, follow=False))
    if isinstance(old, int) or isinstance(new, int):
        return old if isinstance(old, int) else new  # type: ignore[return-value]
    if old.place is None:
        return -errno.ENOENT
    try:
        p.fs.rename(old.name + (b"/" if old.trailing_slash else b""),
                    new.name + (b"/" if new.trailing_slash else b""), now_ns(p),
                    old.parent.ino, new.parent.ino)
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


def _truncate(p: GuestProcess, ino: int, length: int, path: bytes) -> int:
    if length < 0:
        return -errno.EINVAL
    try:
        p.fs.truncate(ino, length, now_ns(p))
    except FsError as e:
        return fail(p, "truncate", path, e)
    return 0


def sys_ftruncate(p: GuestProcess, r: Any) -> int:
    file = p.files.get(int32(r.rdi))
    if file is None:
        return -errno.EBADF
    if not isinstance(file, DiskFile) or not file.writable:
        return -errno.EINVAL
    return _truncate(p, file.ino, int64(r.rsi), file.path)


def sys_truncate(p: GuestProcess, r: Any) -> int:
    res = _resolve(p, AT_FDCWD, r.rdi)
    if isinstance(res, int):
        return res
    if res.place is None:
        return -errno.ENOENT
    if not res.place.on_disk:
        return -errno.EACCES
    if p.fs.is_dir(res.place.ino):
        return -errno.EISDIR
    return _truncate(p, res.place.ino, int64(r.rsi), child_path(p, res.parent, res.name))


# -- checkpoints ----------------------------------------------------------------------------
def files_state(p: GuestProcess) -> dict[str, Any]:
    """The descriptor table, cwd, umask and the tasks' blocked calls, as plain data."""
    refs, table = p.files.save()
    waits = [[t.tid, wait_state(t.waiting, refs.index)] for t in p.tasks.values()
             if t.waiting is not None]
    return {"version": STATE_VERSION, "table": table, "cwd": p.cwd.to_list(),
            "umask": p.umask, "waiting": waits}


def load_files_state(p: GuestProcess, data: dict[str, Any]) -> None:
    """Adopt files_state() output. The disk's own holds come back with FileSystem.restore."""
    if data.get("version") == 1:
        data = _upgrade_v1(data)
    if data.get("version") == 2:  # one task: its blocked call, if any
        data = {**data, "version": STATE_VERSION,
                "waiting": [] if data["waiting"] is None else [[p.current.tid, data["waiting"]]]}
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported descriptor table version {data.get('version')!r}")
    p.files, refs = FdTable.load(data["table"], Pipe.from_state)
    p.cwd = Place.from_list(data["cwd"])
    p.umask = data["umask"]
    for task in p.tasks.values():
        task.waiting = None
    for tid, wait in data["waiting"]:
        p.tasks[tid].waiting = load_wait(wait, lambda i: refs.descriptions[i])


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (disk files on fds >= 3, stdio fixed) in today's form, for old checkpoints."""
    _, table = stdio_table().save()
    stdio = len(table["descriptions"])
    table["descriptions"] += [["disk", flags, bytes(path), offset, ino]
                              for ino, flags, path, offset in data["open"]]
    table["fds"] += [[fd, stdio + i, cloexec] for fd, i, cloexec in data["fds"]]
    return {"version": STATE_VERSION, "table": table, "cwd": paths.ROOT.to_list(),
            "umask": UMASK, "waiting": []}


HANDLERS = {
    NUMBERS["open"]: sys_open,
    NUMBERS["openat"]: sys_openat,
    NUMBERS["creat"]: sys_creat,
    NUMBERS["unlink"]: sys_unlink,
    NUMBERS["unlinkat"]: sys_unlinkat,
    NUMBERS["rename"]: sys_rename,
    NUMBERS["renameat"]: sys_renameat,
    NUMBERS["renameat2"]: sys_renameat2,
    NUMBERS["mkdir"]: sys_mkdir,
    NUMBERS["mkdirat"]: sys_mkdirat,
    NUMBERS["rmdir"]: sys_rmdir,
    NUMBERS["symlink"]: sys_symlink,
    266: sys_symlinkat,
    NUMBERS["stat"]: sys_stat,
    NUMBERS["lstat"]: sys_lstat,
    NUMBERS["fstat"]: sys_fstat,
    NUMBERS["newfstatat"]: sys_newfstatat,
    NUMBERS["statx"]: sys_statx,
    NUMBERS["getdents64"]: sys_getdents64,
    NUMBERS["ftruncate"]: sys_ftruncate,
    NUMBERS["truncate"]: sys_truncate,
    NUMBERS["access"]: sys_access,
    NUMBERS["faccessat"]: sys_faccessat,
    NUMBERS["faccessat2"]: sys_faccessat2,
}
