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
from chaosreplay.kernel.fs.disk import S_IFIFO, S_IFSOCK, FsError
from chaosreplay.kernel.fs.exefs import ExeFile
from chaosreplay.kernel.fs.fifo import open_fifo
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
    O_TMPFILE,
    O_TRUNC,
    O_WRONLY,
    OPEN_ONLY,
    VALID_OPEN_FLAGS,
    FdTable,
    FileDescription,
    Refs,
    StatInfo,
)
from chaosreplay.kernel.fs.memfd import MemFile
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
from chaosreplay.kernel.net.stack import NetStack
from chaosreplay.kernel.syscalls.args import int32, int64, path_arg
from chaosreplay.kernel.syscalls.numbers import NUMBERS
from chaosreplay.kernel.task_attributes import TaskAttributes, attributes_of

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

AT_EMPTY_PATH, AT_REMOVEDIR, AT_SYMLINK_NOFOLLOW, AT_NO_AUTOMOUNT = 0x1000, 0x200, 0x100, 0x800
AT_EACCESS, AT_STATX_SYNC_TYPE = 0x200, 0x6000
UMASK = 0o022
CHILD_EVENTS = 1 << 20  # a blocked call's target that is the caller's children (wait4)
# 5: TCP connections keep their keepalive timer; 4: + the node's socket stack ("net");
# 3: every task's blocked call
STATE_VERSION = 5
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


def open_file(p: GuestProcess, dirfd: int, path: bytes, flags: int, mode: int,
              scope: paths.Scope | None = None) -> FileDescription | int:
    """The description a path opens to (creating a disk file with O_CREAT), or -errno."""
    flags &= VALID_OPEN_FLAGS  # Linux drops the bits open(2) does not know before anything
    exclusive = flags & O_CREAT and flags & O_EXCL
    res = resolve(p, dirfd, path, follow=not (flags & O_NOFOLLOW or exclusive), scope=scope)
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
            special = p.fs.special(place.ino)
            if special and flags & O_DIRECTORY:
                return -errno.ENOTDIR
            if special == S_IFSOCK and not flags & O_PATH:
                return -errno.ENXIO  # a socket node is connected to, never opened
            if special == S_IFIFO and not flags & O_PATH:
                access = flags & O_ACCMODE
                if access == O_ACCMODE:
                    return -errno.EINVAL
                return open_fifo(p, place.ino, child_path(p, res.parent, res.name), kept)
            if (flags & O_ACCMODE or flags & O_TRUNC) and not flags & O_PATH \
                    and being_executed(p, place.ino):
                return -errno.ETXTBSY
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


OPEN_HOW_SIZE_VER0, PAGE_SIZE = 24, 4096
RESOLVE_NO_XDEV, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS = 0x01, 0x02, 0x04
RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_CACHED = 0x08, 0x10, 0x20
O_PATH_FLAGS = O_DIRECTORY | O_NOFOLLOW | O_PATH | O_CLOEXEC


def sys_openat2(p: GuestProcess, r: Any) -> int:
    """openat with a struct open_how: strict about unknown flags, and RESOLVE_* scoping."""
    dirfd, how_ptr, size = int32(r.rdi), r.rdx, r.r10
    if size < OPEN_HOW_SIZE_VER0:
        return -errno.EINVAL
    if size > PAGE_SIZE:
        return -errno.E2BIG
    raw = p.space.read(how_ptr, size)
    if raw is None:
        return -errno.EFAULT
    if any(raw[OPEN_HOW_SIZE_VER0:]):
        return -errno.E2BIG
    flags, mode, how = struct.unpack_from("<QQQ", raw)
    if flags & ~VALID_OPEN_FLAGS or how & ~0x3F:
        return -errno.EINVAL
    creating = flags & O_CREAT or flags & O_TMPFILE == O_TMPFILE
    if (mode and not creating) or mode & ~0o7777:
        return -errno.EINVAL
    if how & RESOLVE_BENEATH and how & RESOLVE_IN_ROOT:
        return -errno.EINVAL
    if flags & O_PATH and flags & ~O_PATH_FLAGS:
        return -errno.EINVAL
    if how & RESOLVE_CACHED and (creating or flags & O_TRUNC):
        return -errno.EAGAIN  # a cached lookup cannot create or truncate
    path = path_arg(p, r.rsi)
    if isinstance(path, int):
        return path
    scope = paths.Scope(no_xdev=bool(how & RESOLVE_NO_XDEV),
                        no_magiclinks=bool(how & RESOLVE_NO_MAGICLINKS),
                        no_symlinks=bool(how & RESOLVE_NO_SYMLINKS),
                        beneath=bool(how & RESOLVE_BENEATH), in_root=bool(how & RESOLVE_IN_ROOT))
    file = open_file(p, dirfd, path, flags, mode, scope if how & ~RESOLVE_CACHED else None)
    if isinstance(file, int):
        return file
    fd = p.files.install(file, bool(flags & O_CLOEXEC))
    if fd < 0:
        file.release(p)
    return fd


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


def _linux_dirent64(ino: int, next_offset: int, name: bytes, dtype: int) -> bytes:
    reclen = (19 + len(name) + 1 + 7) & ~7
    return (struct.pack("<QqHB", ino, next_offset, reclen, dtype) + name).ljust(reclen, b"\0")


def _linux_dirent(ino: int, next_offset: int, name: bytes, dtype: int) -> bytes:
    """The old getdents record: the type sits in the record's last byte, after the name."""
    reclen = (18 + len(name) + 2 + 7) & ~7
    head = struct.pack("<QqH", ino, next_offset, reclen) + name
    return head.ljust(reclen - 1, b"\0") + bytes([dtype])


def _getdents(p: GuestProcess, r: Any, record: Any) -> int:
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
        packed = record(ino, position + 1, name, dtype)
        if len(out) + len(packed) > r.rdx:
            break
        out += packed
        position += 1
    if position < len(entries) and not out:
        return -errno.EINVAL
    if out and not p.space.write(r.rsi, bytes(out)):
        return -errno.EFAULT
    file.offset = position
    return len(out)


def sys_getdents64(p: GuestProcess, r: Any) -> int:
    return _getdents(p, r, _linux_dirent64)


def sys_getdents(p: GuestProcess, r: Any) -> int:
    return _getdents(p, r, _linux_dirent)


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


S_IFMT, S_IFCHR, S_IFBLK, S_IFDIR, S_IFREG = 0o170000, 0o020000, 0o060000, 0o040000, 0o100000


def _mknod(p: GuestProcess, dirfd: int, path_ptr: int, mode: int) -> int:
    """Create a regular file, a FIFO or a socket node; devices need CAP_MKNOD in the initial
    namespace (EPERM), directories come from mkdir (EPERM)."""
    kind = mode & S_IFMT
    if kind == S_IFDIR:
        return -errno.EPERM
    if kind not in (0, S_IFREG, S_IFCHR, S_IFBLK, S_IFIFO, S_IFSOCK):
        return -errno.EINVAL
    res = _resolve(p, dirfd, path_ptr, follow=False)
    if isinstance(res, int):
        return res
    if res.place is not None:
        return -errno.EEXIST
    if not res.parent.on_disk:
        return -errno.ENOENT if res.parent.mount == b"proc" else -errno.EACCES
    if kind in (S_IFCHR, S_IFBLK):
        return -errno.EPERM
    permissions = (mode & 0o7777) & ~p.umask
    try:
        if kind in (0, S_IFREG):
            ino = p.fs.open(res.name, O_CREAT | O_EXCL | O_WRONLY, permissions, now_ns(p),
                            res.parent.ino)
            p.fs.close(ino)
        else:
            p.fs.mknod(res.name, kind, permissions, now_ns(p), res.parent.ino)
    except FsError as e:
        return -e.errno
    return 0


def sys_mknod(p: GuestProcess, r: Any) -> int:
    return _mknod(p, AT_FDCWD, r.rdi, r.rsi & 0xFFFFFFFF)


def sys_mknodat(p: GuestProcess, r: Any) -> int:
    return _mknod(p, r.rdi, r.rsi, r.rdx & 0xFFFFFFFF)


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
    if isinstance(file, MemFile) and file.writable:
        return file.truncate(p, int64(r.rsi))
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
    if p.fs.special(res.place.ino):
        return -errno.EINVAL  # only regular files have a length to set
    if being_executed(p, res.place.ino):
        return -errno.ETXTBSY
    return _truncate(p, res.place.ino, int64(r.rsi), child_path(p, res.parent, res.name))


def being_executed(p: GuestProcess, ino: int) -> bool:
    """Whether a live process of the node runs the program in disk inode ino (then the
    file cannot be opened for writing: ETXTBSY, as Linux's deny_write_access)."""
    table = getattr(p, "table", None)
    procs = table.live() if table is not None else [p]
    return any(getattr(q, "exe_ino", None) == ino for q in procs)


# -- checkpoints ----------------------------------------------------------------------------
def files_state(p: GuestProcess, saved: tuple[Refs, dict[str, Any]] | None = None
                ) -> dict[str, Any]:
    """The descriptor table (or `saved`, the node's tables saved together), cwd, umask, the
    tasks' blocked calls, the task attributes (kernel.task_attributes: nice, policy,
    capabilities, ...) and the node's socket stack, as plain data."""
    refs, table = saved if saved is not None else p.files.save()
    return {"version": STATE_VERSION, "table": table, **process_files_state(p, refs),
            "net": p.net.save()}


def process_files_state(p: GuestProcess, refs: Refs) -> dict[str, Any]:
    """What is the process's own beside its descriptors: cwd, umask, blocked calls (the
    descriptions they wait on by index in refs) and task attributes."""

    def index(target: Any) -> int:
        return CHILD_EVENTS if target is getattr(p, "child_events", None) else refs.index(target)

    waits = [[t.tid, wait_state(t.waiting, index)] for t in p.tasks.values()
             if t.waiting is not None]
    return {"cwd": p.cwd.to_list(), "umask": p.umask, "waiting": waits,
            "attributes": attributes_of(p).to_state()}


def load_process_files_state(p: GuestProcess, data: dict[str, Any], refs: Refs) -> None:
    """Adopt process_files_state() output over descriptions loaded into refs."""
    p.cwd = Place.from_list(data["cwd"])
    p.umask = data["umask"]
    for task in p.tasks.values():
        task.waiting = None

    def target(i: int) -> Any:
        return getattr(p, "child_events", None) if i == CHILD_EVENTS else refs.descriptions[i]

    for tid, wait in data["waiting"]:
        p.tasks[tid].waiting = load_wait(wait, target)
    saved = data.get("attributes")  # absent in checkpoints from before the attributes
    p.task_attributes = TaskAttributes() if saved is None \
        else TaskAttributes.from_state(saved)  # type: ignore[attr-defined]


def load_files_state(p: GuestProcess, data: dict[str, Any]) -> Refs:
    """Adopt files_state() output (the descriptions loaded, for the node's other processes'
    tables). The disk's own holds come back with FileSystem.restore."""
    if data.get("version") == 1:
        data = _upgrade_v1(data)
    if data.get("version") == 2:  # one task: its blocked call, if any
        data = {**data, "version": 3,
                "waiting": [] if data["waiting"] is None else [[p.current.tid, data["waiting"]]]}
    if data.get("version") == 3:  # before sockets: an empty stack
        data = {**data, "version": STATE_VERSION, "net": NetStack(0, 1).save()}
    if data.get("version") == 4:  # before keepalive: Connection.load reads the shorter rows
        data = {**data, "version": STATE_VERSION}
    if data.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported descriptor table version {data.get('version')!r}")
    p.net = NetStack.load(p.node_id, p.config.node_count, data["net"])
    network = getattr(p, "network", None)  # (test holders have none)
    if network is not None:
        p.net.configure(network.tcp_config)
    p.files, refs = FdTable.load(data["table"], Pipe.from_state, p.net)
    load_process_files_state(p, data, refs)
    return refs


def _upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 (disk files on fds >= 3, stdio fixed) in today's form, for old checkpoints."""
    _, table = stdio_table().save()
    stdio = len(table["descriptions"])
    table["descriptions"] += [["disk", flags, bytes(path), offset, ino]
                              for ino, flags, path, offset in data["open"]]
    table["fds"] += [[fd, stdio + i, cloexec] for fd, i, cloexec in data["fds"]]
    return {"version": 2, "table": table, "cwd": paths.ROOT.to_list(),
            "umask": UMASK, "waiting": None}


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
    133: sys_mknod,
    259: sys_mknodat,
    NUMBERS["rmdir"]: sys_rmdir,
    NUMBERS["symlink"]: sys_symlink,
    266: sys_symlinkat,
    NUMBERS["stat"]: sys_stat,
    NUMBERS["lstat"]: sys_lstat,
    NUMBERS["fstat"]: sys_fstat,
    NUMBERS["newfstatat"]: sys_newfstatat,
    NUMBERS["statx"]: sys_statx,
    NUMBERS["getdents64"]: sys_getdents64,
    NUMBERS["getdents"]: sys_getdents,
    437: sys_openat2,
    NUMBERS["ftruncate"]: sys_ftruncate,
    NUMBERS["truncate"]: sys_truncate,
    NUMBERS["access"]: sys_access,
    NUMBERS["faccessat"]: sys_faccessat,
    NUMBERS["faccessat2"]: sys_faccessat2,
}
