"""Putting a scenario's files on a node's disk before its program starts.

The entries arrive already checked and complete (content embedded, never a host path:
sim/disk_files.py reads the host once, when the scenario is loaded), so installing is a
pure function of the entries: the same list gives the same inodes, numbers and bytes.
Everything installed is durable (contents and directory entries fsynced), so it survives
a node's crash and restart as a disk that was written and synced would.
"""

from __future__ import annotations

import errno
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from chaosreplay.kernel.fs.disk import O_CREAT, O_EXCL, O_WRONLY, ROOT_INO, FileSystem, FsError

DIRECTORY_MODE = 0o755  # of the parent directories an entry's path creates


class EntryKind(StrEnum):
    """What a disk entry puts at its path."""

    FILE = "file"
    SYMLINK = "symlink"
    DIRECTORY = "directory"


@dataclass(frozen=True, slots=True)
class DiskEntry:
    """One file, symbolic link or directory at an absolute, normalised path."""

    path: str
    kind: EntryKind
    data: bytes = b""  # FILE: the content
    target: str = ""  # SYMLINK: what the link points to (relative or absolute)
    mode: int = 0o644  # FILE and DIRECTORY: permission bits

    def parts(self) -> list[bytes]:
        """The path's components (the path is absolute and has no empty, . or .. parts)."""
        return [p.encode() for p in self.path.split("/") if p]


def install(fs: FileSystem, entries: Iterable[DiskEntry]) -> None:
    """Create every entry on fs in order (parents as needed), then make it all durable."""
    touched: set[int] = {ROOT_INO}
    for entry in entries:
        parts = entry.parts()
        directory = ROOT_INO
        for name in parts[:-1]:
            found = fs.child(directory, name)
            directory = found if found is not None else fs.mkdir(
                name, DIRECTORY_MODE, at=directory)
            touched.add(directory)
        name = parts[-1]
        if entry.kind is EntryKind.DIRECTORY:
            found = fs.child(directory, name)
            ino = found if found is not None else fs.mkdir(name, entry.mode, at=directory)
            fs.chmod(ino, entry.mode)
            touched.add(ino)
        elif entry.kind is EntryKind.SYMLINK:
            fs.symlink(name, entry.target.encode(), at=directory)
        else:
            ino = fs.open(name, O_WRONLY | O_CREAT | O_EXCL, entry.mode, at=directory)
            try:
                if fs.write(ino, 0, entry.data) != len(entry.data):
                    raise FsError(errno.ENOSPC)  # the scenario's checks keep this from happening
                fs.chmod(ino, entry.mode)
                fs.fsync(ino)
            finally:
                fs.close(ino)
        touched.add(directory)
    for ino in sorted(touched):  # directory entries are durable once their directory is synced
        fs.fsync(ino)
