"""Path resolution: one resolver for every path argument (cwd, `.`, `..`, symlinks, mounts).

A path leads to a `Place`: an inode of the node's disk, or a node of one of the
synthetic trees mounted over it at /proc, /dev, /etc and /chaosreplay (the program
itself); they shadow whatever the disk holds under those names. Symbolic links are
followed component by component, Linux's way: at most 40 links per lookup (ELOOP), a
trailing slash forces following the last one, and AT_SYMLINK_NOFOLLOW / O_NOFOLLOW /
lstat leave the last one alone.
"""

from __future__ import annotations

import errno
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chaosreplay.kernel.fs.devfs import DevFs
from chaosreplay.kernel.fs.disk import NAME_MAX, PATH_MAX, ROOT_INO, FsError
from chaosreplay.kernel.fs.etcfs import EtcFs
from chaosreplay.kernel.fs.exefs import ExeFs
from chaosreplay.kernel.fs.procfs import ProcFs
from chaosreplay.kernel.fs.synthetic import Mount, SynthNode

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

AT_FDCWD = -100
FD_MOUNT = b"fd"  # Place(FD_MOUNT, ino=N): the open file behind /proc/self/fd/N
MAX_SYMLINKS = 40
MOUNTS: dict[bytes, Mount] = {m.name: m for m in (ProcFs(), DevFs(), EtcFs(), ExeFs())}


@dataclass(frozen=True, slots=True)
class Place:
    """Where a path leads: a disk inode (mount b"") or a node under a synthetic mount."""

    mount: bytes = b""
    ino: int = ROOT_INO
    parts: tuple[bytes, ...] = ()

    @property
    def on_disk(self) -> bool:
        return not self.mount

    def to_list(self) -> list[object]:
        return [self.mount, self.ino, list(self.parts)]

    @classmethod
    def from_list(cls, data: list[object]) -> Place:
        mount, ino, parts = data
        return cls(bytes(mount), int(ino), tuple(bytes(x) for x in parts))  # type: ignore


ROOT = Place()


@dataclass(frozen=True, slots=True)
class Resolved:
    """A resolved path: the place (None: the last component does not exist), its parent
    directory and last name (for calls that create or remove), and the path as given."""

    place: Place | None
    parent: Place
    name: bytes
    trailing_slash: bool


def synth(p: GuestProcess, place: Place) -> SynthNode | None:
    if place.mount == FD_MOUNT:
        return None
    return MOUNTS[place.mount].lookup(p, place.parts)


def fd_behind(p: GuestProcess, place: Place) -> Place | None:
    """Where a /proc/<pid>/fd/N entry leads (Linux's magic link): the open file itself,
    not the path its link shows; a directory leads to the directory."""
    parts = place.parts
    if place.mount != b"proc" or len(parts) not in (3, 5) or parts[-2] != b"fd":
        return None
    if len(parts) == 5 and parts[1] != b"task":
        return None
    node = synth(p, place)
    if node is None or node.kind != "link":
        return None
    fd = int(parts[-1])
    file = p.files.get(fd)
    behind = place_of(file) if file is not None else None
    if behind is not None and is_dir(p, behind):
        return behind
    return Place(FD_MOUNT, ino=fd)


def is_dir(p: GuestProcess, place: Place) -> bool:
    if place.on_disk:
        return p.fs.has(place.ino) and p.fs.is_dir(place.ino)
    node = synth(p, place)
    return node is not None and node.kind == "dir"


def _child(p: GuestProcess, place: Place, name: bytes) -> Place | None:
    if place.on_disk:
        if place.ino == ROOT_INO and name in MOUNTS:
            return Place(name)
        ino = p.fs.child(place.ino, name)
        return None if ino is None else Place(ino=ino)
    node = synth(p, place)
    if node is None or node.kind != "dir":
        raise FsError(errno.ENOTDIR)
    child = Place(place.mount, parts=(*place.parts, name))
    return child if synth(p, child) is not None else None


def _up(p: GuestProcess, place: Place) -> Place:
    if place.on_disk:
        return Place(ino=p.fs.parent_of(place.ino))
    return Place(place.mount, parts=place.parts[:-1]) if place.parts else ROOT


def link_target(p: GuestProcess, place: Place) -> bytes | None:
    """A symbolic link's target, or None when place is not a link."""
    if place.on_disk:
        return p.fs.readlink(place.ino) if p.fs.is_link(place.ino) else None
    node = synth(p, place)
    return node.target if node is not None and node.kind == "link" else None


def path_of(p: GuestProcess, place: Place) -> bytes:
    """The absolute path of a place (what getcwd and /proc/self/fd show)."""
    if place.mount == FD_MOUNT:
        file = p.files.get(place.ino)
        return file.path if file is not None else b""
    if not place.on_disk:
        return b"/" + b"/".join((place.mount, *place.parts))
    names: list[bytes] = []
    ino = place.ino
    while ino != ROOT_INO and p.fs.has(ino) and p.fs.is_dir(ino):
        names.append(p.fs.name_of(ino))
        ino = p.fs.parent_of(ino)
    return b"/" + b"/".join(reversed(names))


def child_path(p: GuestProcess, parent: Place, name: bytes) -> bytes:
    """The absolute path of `name` in directory `parent`."""
    base = path_of(p, parent)
    if name in (b"", b"."):
        return base
    return base.rstrip(b"/") + b"/" + name


def start_of(p: GuestProcess, dirfd: int, path: bytes) -> Place | int:
    """The directory a path is relative to: /, the cwd or dirfd's directory; or -errno."""
    if path.startswith(b"/"):
        return ROOT
    if dirfd == AT_FDCWD:
        return p.cwd
    file = p.files.get(dirfd)
    if file is None:
        return -errno.EBADF
    place = place_of(file)
    if place is None or not is_dir(p, place):
        return -errno.ENOTDIR
    return place


def place_of(file: object) -> Place | None:
    """Where an open description lives in the tree (directories and files), if anywhere."""
    from chaosreplay.kernel.fs.regular import DiskFile
    from chaosreplay.kernel.fs.synthetic import SynthDirectory

    if isinstance(file, DiskFile):
        return Place(ino=file.ino)
    if isinstance(file, SynthDirectory):
        return Place(file.mount, parts=file.parts)
    return None


@dataclass(frozen=True, slots=True)
class Scope:
    """openat2's RESOLVE_* restrictions on a lookup (Linux's LOOKUP_* flags)."""

    no_xdev: bool = False  # never leave the starting mount (EXDEV)
    no_magiclinks: bool = False  # no /proc/<pid>/fd links (ELOOP)
    no_symlinks: bool = False  # no symbolic links at all (ELOOP)
    beneath: bool = False  # never leave the starting directory (EXDEV)
    in_root: bool = False  # the starting directory is the root: `/` and `..` stop there


def resolve(p: GuestProcess, dirfd: int, path: bytes, follow: bool = True,
            scope: Scope | None = None) -> Resolved | int:
    """Resolve a path argument; -errno when a component is missing, not a directory,
    too long, or the links loop (or, with a scope, when the walk breaks its rules)."""
    if not path:
        return -errno.ENOENT
    if len(path) >= PATH_MAX:
        return -errno.ENAMETOOLONG
    if scope is not None and scope.beneath and path.startswith(b"/"):
        return -errno.EXDEV
    scoped_root = scope is not None and (scope.beneath or scope.in_root)
    start = start_of(p, dirfd, path.lstrip(b"/") or b"." if scoped_root else path)
    if isinstance(start, int):
        return start
    trailing = path.endswith(b"/")
    pending = deque(c for c in path.split(b"/") if c)
    current, parent, name = start, start, b"."
    links = 0
    depth = 0  # directories below start, for the scoped lookups
    try:
        while pending:
            component = pending.popleft()
            last = not pending
            if len(component) > NAME_MAX:
                return -errno.ENAMETOOLONG
            if not is_dir(p, current):
                return -errno.ENOTDIR
            if component == b".":
                parent, name = current, component
                continue
            if component == b"..":
                if scoped_root and depth == 0:
                    if scope is not None and scope.beneath:
                        return -errno.EXDEV
                    parent, name = current, b"."  # in_root: `..` of the root is the root
                    continue
                depth -= 1
                up = _up(p, current)
                if scope is not None and scope.no_xdev and up.mount != current.mount:
                    return -errno.EXDEV
                current = up
                parent, name = current, b"."
                continue
            child = _child(p, current, component)
            if child is None:
                if last:
                    return Resolved(None, current, component, trailing)
                return -errno.ENOENT
            if scope is not None and scope.no_xdev and child.mount != current.mount:
                return -errno.EXDEV
            following = not last or follow or trailing
            behind = fd_behind(p, child) if following else None
            if behind is not None:
                if scope is not None and (scope.no_magiclinks or scope.no_symlinks):
                    return -errno.ELOOP
                if scoped_root:
                    return -errno.EXDEV  # not safe for scoped lookups, says Linux
                links += 1
                if links > MAX_SYMLINKS:
                    return -errno.ELOOP
                parent, name, current = current, component, behind
                continue
            target = link_target(p, child)
            if target is not None and following:
                if scope is not None and scope.no_symlinks:
                    return -errno.ELOOP
                links += 1
                if links > MAX_SYMLINKS:
                    return -errno.ELOOP
                if target.startswith(b"/"):
                    if scope is not None and scope.beneath:
                        return -errno.EXDEV
                    current, depth = (start, 0) if scoped_root else (ROOT, depth)
                pending.extendleft(reversed([c for c in target.split(b"/") if c]))
                parent, name = current, b"."
                continue
            depth += 1
            parent, name, current = current, component, child
    except FsError as e:
        return -e.errno
    if trailing and not is_dir(p, current) and link_target(p, current) is None:
        return -errno.ENOTDIR
    return Resolved(current, parent, name, trailing)
