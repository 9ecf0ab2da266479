"""A node group's root from a directory or a tar archive, and root trees written as tar.

`read_dir_root` and `read_tar_root` turn a tree into disk entries (files with their bytes,
directories, symbolic links, permission bits kept), sorted by path so the same tree gives
the same scenario however the host lists it or the archive orders it. Nothing is ever
followed: a link is stored as a link, with its target as written (the guest resolves it
against its own disk), and a tar member is refused when its name is absolute or climbs
out with "..". Hard links become copies (a disk entry has no link count). Device nodes,
FIFOs and sockets, and whatever lies under the trees the kernel provides itself (/dev,
/proc, /etc, /chaosreplay: a disk entry there would be hidden), are left out and counted
in `RootTree.skipped`, so `chaosreplay lint --root` can say what a root lost.

`write_tar` is the other direction (`chaosreplay rootfs`): a deterministic archive, members
sorted, every parent directory listed, mtime 0, owner 0:0 without names.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from chaosreplay.kernel.fs.disk import NAME_MAX, PATH_MAX
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.kernel.fs.paths import MOUNTS
from chaosreplay.kernel.fs.root_layer import with_directories
from chaosreplay.sim.disk_files import EXISTING_DIRECTORIES, read_host_file
from chaosreplay.sim.validation import KeyPath

MEMBERS_PER_PATH = 4
"""How many tar members (left-out ones included) a root may have per disk path it may
create: bounds the work a hostile archive can ask for."""


@dataclass
class RootTree:
    """A tree's disk entries, sorted by path, and what was left out (reason: count)."""

    entries: list[DiskEntry] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def content_bytes(self) -> int:
        """Bytes of the files' contents."""
        return sum(len(e.data) for e in self.entries)


def _kernel_tree(parts: list[str]) -> str | None:
    """The reason a path is left out when it lies in a tree the kernel provides."""
    if parts and parts[0].encode() in MOUNTS:
        return f"under /{parts[0]} (the kernel's own)"
    return None


def _check_path(parts: list[str], kind: EntryKind, where: str, at: KeyPath) -> str:
    """The absolute disk path of a tree member, or a one-line refusal."""
    path = "/" + "/".join(parts)
    if len(path.encode()) >= PATH_MAX or any(len(p.encode()) > NAME_MAX for p in parts):
        at.fail(f"{where}: path too long ({PATH_MAX - 1} bytes at most, {NAME_MAX} per "
                "component)")
    if "\0" in path:
        at.fail(f"{where}: a path with NUL")
    if path in EXISTING_DIRECTORIES and kind is not EntryKind.DIRECTORY:
        at.fail(f"{where}: {path} is a directory on every node's disk")
    return path


class _Budget:
    """Content bytes and entries a tree may still take; refuses past either."""

    def __init__(self, at: KeyPath, source: Path, max_bytes: int, max_paths: int) -> None:
        self.at, self.source = at, source
        self.bytes_left, self.max_bytes, self.max_paths = max_bytes, max_bytes, max_paths
        self.paths = 0

    def take(self, size: int, where: str) -> None:
        self.paths += 1
        if self.paths > self.max_paths:
            self.at.fail(f"{self.source}: more than {self.max_paths:,} paths; a node's disk "
                         "holds no more for a group (keep only what the programs need, "
                         "e.g. with `chaosreplay rootfs`)")
        if size > self.bytes_left:
            self.at.fail(f"{where}: {size:,} bytes would take the root past the "
                         f"{self.max_bytes:,} bytes a scenario's files may still hold")
        self.bytes_left -= size


def _link_target(target: str, where: str, at: KeyPath) -> str:
    if not target or "\0" in target or len(target.encode()) >= PATH_MAX:
        at.fail(f"{where}: a symbolic link target must be 1 to {PATH_MAX - 1} bytes without NUL")
    return target


def _sorted(entries: dict[str, DiskEntry]) -> list[DiskEntry]:
    return [entries[p] for p in sorted(entries)]


def _expect(path: Path, is_kind: Callable[[int], bool], what: str, at: KeyPath) -> None:
    """Refuse a host path that is missing, unreadable or not of the kind a root needs."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        at.fail(f"cannot read {path}: {exc.strerror}")
    if not is_kind(mode):
        at.fail(f"{path} is not {what}")


def read_dir_root(root: Path, at: KeyPath, max_bytes: int, max_paths: int) -> RootTree:
    """The tree under a host directory (which stands for the node's /)."""
    _expect(root, stat.S_ISDIR, "a directory", at)
    budget = _Budget(at, root, max_bytes, max_paths)
    tree = RootTree()
    found: dict[str, DiskEntry] = {}
    pending: list[list[str]] = [[]]
    while pending:
        parts = pending.pop()
        host_dir = root.joinpath(*parts)
        try:
            names = sorted(os.listdir(host_dir))
        except OSError as exc:
            at.fail(f"cannot list {host_dir}: {exc.strerror}")
        for name in names:
            child = [*parts, name]
            host = host_dir / name
            reason = _kernel_tree(child)
            if reason is not None:
                tree.skipped[reason] += 1
                continue
            try:
                info = os.lstat(host)
            except OSError as exc:
                at.fail(f"cannot read {host}: {exc.strerror}")
            mode = info.st_mode
            kind = (EntryKind.DIRECTORY if stat.S_ISDIR(mode) else EntryKind.SYMLINK
                    if stat.S_ISLNK(mode) else EntryKind.FILE if stat.S_ISREG(mode) else None)
            if kind is None:
                tree.skipped[_special_name(mode)] += 1
                continue
            path = _check_path(child, kind, str(host), at)
            budget.take(info.st_size if kind is EntryKind.FILE else 0, str(host))
            if kind is EntryKind.DIRECTORY:
                found[path] = DiskEntry(path, kind, mode=mode & 0o7777)
                pending.append(child)
            elif kind is EntryKind.SYMLINK:
                found[path] = DiskEntry(path, kind, target=_link_target(
                    os.readlink(host), str(host), at))
            else:
                data = read_host_file(host, at, budget.bytes_left + info.st_size)
                budget.bytes_left -= len(data) - info.st_size  # it changed since lstat
                found[path] = DiskEntry(path, kind, data, mode=mode & 0o7777)
    tree.entries = _sorted(found)
    return tree


def _special_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFOs"
    if stat.S_ISSOCK(mode):
        return "sockets"
    return "device nodes"


def _member_parts(name: str, where: str, at: KeyPath) -> list[str]:
    """A member name's components, "./" and trailing slashes dropped; absolute names and
    ".." refused (safe extraction: nothing lands outside the root)."""
    if name.startswith("/"):
        at.fail(f"{where}: an absolute member name; a root's members are relative to it")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        at.fail(f"{where}: a member name with \"..\" would land outside the root")
    return parts


def read_tar_root(archive: Path, at: KeyPath, max_bytes: int, max_paths: int) -> RootTree:
    """The tree a tar archive holds (plain, gzip, bzip2 or xz; a later member of the same
    name replaces an earlier one, as extraction would)."""
    _expect(archive, stat.S_ISREG, "a regular file", at)  # a FIFO would block the open
    budget = _Budget(at, archive, max_bytes, max_paths)
    tree = RootTree()
    found: dict[str, DiskEntry] = {}
    try:
        with tarfile.open(archive, mode="r:*") as tar:
            for number, member in enumerate(tar):
                if number >= MEMBERS_PER_PATH * max_paths:
                    at.fail(f"{archive}: more than {number:,} members; a root may have "
                            f"{max_paths:,} paths")
                _add_member(tar, member, archive, at, budget, tree, found)
    except (tarfile.TarError, EOFError) as exc:
        at.fail(f"{archive}: not a readable tar archive ({exc})")
    except OSError as exc:
        at.fail(f"cannot read {archive}: {exc.strerror or exc}")
    tree.entries = _sorted(found)
    return tree


def _add_member(tar: tarfile.TarFile, member: tarfile.TarInfo, archive: Path, at: KeyPath,
                budget: _Budget, tree: RootTree, found: dict[str, DiskEntry]) -> None:
    """One member into `found` (or into tree.skipped)."""
    where = f"{archive}: member {member.name!r}"
    parts = _member_parts(member.name, where, at)
    if not parts:
        return  # "." itself: the node's / exists already
    reason = _kernel_tree(parts)
    if reason is not None:
        tree.skipped[reason] += 1
        return
    if member.ischr() or member.isblk():
        tree.skipped["device nodes"] += 1
        return
    if member.isfifo():
        tree.skipped["FIFOs"] += 1
        return
    mode = member.mode & 0o7777
    if member.isdir():
        path = _check_path(parts, EntryKind.DIRECTORY, where, at)
        budget.take(0, where)
        found[path] = DiskEntry(path, EntryKind.DIRECTORY, mode=mode)
    elif member.issym():
        path = _check_path(parts, EntryKind.SYMLINK, where, at)
        budget.take(0, where)
        found[path] = DiskEntry(path, EntryKind.SYMLINK,
                                target=_link_target(member.linkname, where, at))
    elif member.islnk():
        path = _check_path(parts, EntryKind.FILE, where, at)
        source = "/" + "/".join(_member_parts(member.linkname, where, at))
        earlier = found.get(source)
        if earlier is None or earlier.kind is not EntryKind.FILE:
            at.fail(f"{where}: a hard link to {member.linkname!r}, which is not a regular file "
                    "earlier in the archive")
        budget.take(len(earlier.data), where)
        found[path] = DiskEntry(path, EntryKind.FILE, earlier.data, mode=earlier.mode)
    elif member.isreg():
        path = _check_path(parts, EntryKind.FILE, where, at)
        budget.take(member.size, where)
        handle = tar.extractfile(member)
        data = handle.read() if handle is not None else b""
        if len(data) != member.size:
            at.fail(f"{where}: truncated ({len(data):,} of {member.size:,} bytes)")
        found[path] = DiskEntry(path, EntryKind.FILE, data, mode=mode)
    else:
        tree.skipped[f"members of tar type {member.type!r}"] += 1


def tar_bytes(entries: Iterable[DiskEntry]) -> bytes:
    """A deterministic tar of the entries: sorted, parents listed, mtime 0, owner 0:0."""
    out = io.BytesIO()
    # GNU format: long names without PAX headers (which would carry host-dependent fields)
    with tarfile.open(fileobj=out, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for entry in with_directories(entries):
            info = tarfile.TarInfo(entry.path.lstrip("/"))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if entry.kind is EntryKind.DIRECTORY:
                info.type, info.mode = tarfile.DIRTYPE, entry.mode
                tar.addfile(info)
            elif entry.kind is EntryKind.SYMLINK:
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, entry.target, 0o777
                tar.addfile(info)
            else:
                info.size, info.mode = len(entry.data), entry.mode
                tar.addfile(info, io.BytesIO(entry.data))
    return out.getvalue()


def write_tar(entries: Iterable[DiskEntry], out: Path) -> int:
    """Write tar_bytes(entries) to out atomically (a temporary file renamed over it);
    returns the archive's size."""
    data = tar_bytes(entries)
    temporary = out.with_name(f".{out.name}.partial")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, out)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return len(data)
