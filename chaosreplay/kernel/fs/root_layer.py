"""A node group's root: the read-only lower layer under every node's disk.

The root is a tree of directories, regular files and symbolic links built once from a
scenario's root entries and shared by every node of the group (and by every group whose
root has the same digest): nothing ever writes to it. A node's disk (kernel/fs/disk.py) is
the writable upper layer and merges the two as overlayfs does: a lookup that the upper
directory does not answer falls through to the root's directory at the same inode;
changing a root entry copies it up first; removing one leaves a whiteout.

Its inodes are `Inode` objects that the disk hands out as read-only views: a file's data
is `bytes` (a write to it would raise, never change another node's view), and the disk
never counts opens or links on them. Their numbers are LOWER_BASE + the entry's index in
path order, above anything the upper layer hands out, so a copy-up keeps the number a
program saw (an open descriptor or a mapping keeps naming the same file).

`digest` names the tree by content: SHA-256 over every entry's kind, path, mode and link
target or content SHA-256, in path order. The recording stores each root once under its
digest; a checkpoint's disk names only the digest.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from chaosreplay.kernel.fs.durability import Inode
from chaosreplay.kernel.fs.install import DIRECTORY_MODE, DiskEntry, EntryKind

ROOT_INO = 1  # the upper layer's root directory, which the root's "/" lies under
LOWER_BASE = 1 << 40
"""The first root inode number: the upper layer counts up from 1 and never gets here."""


def with_directories(entries: Iterable[DiskEntry]) -> list[DiskEntry]:
    """The entries plus a directory (DIRECTORY_MODE) for every parent they lack, by path."""
    found = {e.path: e for e in entries}
    for path in list(found):
        parts = path.split("/")
        for depth in range(2, len(parts)):
            above = "/".join(parts[:depth])
            found.setdefault(above, DiskEntry(above, EntryKind.DIRECTORY, mode=DIRECTORY_MODE))
    return [found[p] for p in sorted(found)]


def tree_digest(entries: Iterable[DiskEntry]) -> str:
    """The SHA-256 (hex) naming a root by its content (parents it lacks included)."""
    digest = hashlib.sha256()
    for e in with_directories(entries):
        what = (e.target if e.kind is EntryKind.SYMLINK
                else hashlib.sha256(e.data).hexdigest() if e.kind is EntryKind.FILE else "")
        # NUL cannot occur in a path or a link target (checked when the root is read)
        digest.update(f"{e.kind.value}\0{e.path}\0{e.mode:o}\0{what}\n".encode())
    return digest.hexdigest()


class RootLayer:
    """An immutable tree of root inodes (see the module docstring), shared by nodes."""

    def __init__(self, entries: Iterable[DiskEntry]) -> None:
        listed = with_directories(entries)
        self.digest = tree_digest(listed)
        self.content_bytes = sum(len(e.data) for e in listed)
        top = Inode(ROOT_INO, True, DIRECTORY_MODE, 0)
        self.nodes: dict[int, Inode] = {ROOT_INO: top}
        self.names: dict[int, bytes] = {}  # the name each inode has in its directory
        by_path: dict[str, Inode] = {"": top}
        for index, entry in enumerate(listed):
            parent_path, _, name = entry.path.rpartition("/")
            parent = by_path[parent_path]  # sorted: a directory comes before what it holds
            node = Inode(LOWER_BASE + index, entry.kind is EntryKind.DIRECTORY,
                         0o777 if entry.kind is EntryKind.SYMLINK else entry.mode, 0)
            if entry.kind is EntryKind.SYMLINK:
                node.target = entry.target.encode()
                node.data = node.target  # type: ignore[assignment]  # bytes: read-only
            elif entry.kind is EntryKind.FILE:
                node.data = entry.data  # type: ignore[assignment]  # bytes: read-only
            node.durable = bytes(node.data)
            node.parent = parent.ino
            node.links = node.durable_links = 1
            parent.entries[name.encode()] = node.ino
            self.nodes[node.ino] = node
            self.names[node.ino] = name.encode()
            by_path[entry.path] = node
        for node in self.nodes.values():
            node.durable_entries = node.entries

    def directory(self, ino: int) -> Inode | None:
        """The root's directory with this inode number (the one merged under it), or None."""
        node = self.nodes.get(ino)
        return node if node is not None and node.is_dir else None
