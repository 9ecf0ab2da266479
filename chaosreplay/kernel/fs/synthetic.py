"""Synthetic file trees (/proc, /dev, /etc): nodes computed from kernel state, not stored.

A mount answers `lookup(p, parts)` with a `SynthNode` — a directory (its names), a file
(its content, generated when it is opened, like a /proc file read in one go), a symbolic
link, or a device (opened as a device description from kernel.fs.devices). Nothing here
is written to the node's disk; every byte is a function of the process and its config.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from chaosreplay.kernel.fs.files import (
    S_IFCHR,
    S_IFDIR,
    S_IFLNK,
    S_IFREG,
    FileDescription,
    Refs,
    StatInfo,
    id_of,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

BOOT_REALTIME_NS = 1_704_067_200 * 1_000_000_000  # the realtime epoch (syscalls.clock)
PROC_DEV, DEV_DEV, ETC_DEV = 0x4, 0x5, 0x6  # st_dev of each mount (made-up, fixed numbers)
DT_CHR, DT_DIR, DT_REG, DT_LNK = 2, 4, 8, 10


@dataclass(frozen=True, slots=True)
class SynthNode:
    """One node of a synthetic tree."""

    kind: str  # "dir", "file", "link" or "device"
    names: tuple[bytes, ...] = ()  # a directory's entries
    content: bytes = b""  # a file's bytes
    target: bytes = b""  # a link's target
    device: str = ""  # a device's name in kernel.fs.devices
    mode: int = 0o444
    rdev: int = 0
    writable: bool = False  # a file or device open for writing is allowed

    @property
    def dtype(self) -> int:
        return {"dir": DT_DIR, "file": DT_REG, "link": DT_LNK, "device": DT_CHR}[self.kind]

    def stat(self, dev: int, path: bytes, p: GuestProcess) -> StatInfo:
        kind = {"dir": S_IFDIR, "file": S_IFREG, "link": S_IFLNK, "device": S_IFCHR}[self.kind]
        size = len(self.target) if self.kind == "link" else 0  # /proc files report size 0
        boot = BOOT_REALTIME_NS
        nlink = 2 if self.kind == "dir" else 1
        return StatInfo(dev, id_of(path), kind | self.mode, nlink, rdev=self.rdev, size=size,
                        blksize=1024 if dev == PROC_DEV else 4096, atime_ns=boot,
                        mtime_ns=boot, ctime_ns=boot)


def directory(*names: bytes, mode: int = 0o555) -> SynthNode:
    return SynthNode("dir", tuple(names), mode=mode)


def text(content: str | bytes, mode: int = 0o444) -> SynthNode:
    data = content.encode() if isinstance(content, str) else content
    return SynthNode("file", content=data, mode=mode)


def link(target: bytes) -> SynthNode:
    return SynthNode("link", target=target, mode=0o777)


class Mount(Protocol):
    """A synthetic tree mounted at /<name>."""

    name: bytes
    dev: int

    def lookup(self, p: GuestProcess, parts: tuple[bytes, ...]) -> SynthNode | None: ...


class SynthDirectory(FileDescription):
    """An open directory of a synthetic tree: getdents lists it as it is at the call."""

    kind = "synth-dir"

    def __init__(self, flags: int, path: bytes, mount: bytes = b"",
                 parts: tuple[bytes, ...] = ()) -> None:
        FileDescription.__init__(self, flags, path)
        self.mount, self.parts = mount, parts

    def getdents(self, p: GuestProcess) -> list[tuple[bytes, int, int]] | int:
        from chaosreplay.kernel.fs.paths import MOUNTS

        mount = MOUNTS[self.mount]
        node = mount.lookup(p, self.parts)
        if node is None:
            return -errno.ENOENT  # e.g. /proc/<pid>/fd of a process that is gone
        out = [(b".", id_of(self.path), DT_DIR), (b"..", id_of(self.path + b"/.."), DT_DIR)]
        for name in node.names:
            child = mount.lookup(p, (*self.parts, name))
            if child is not None:
                out.append((name, id_of(self.path + b"/" + name), child.dtype))
        return out

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        return -errno.EISDIR

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        if whence != 0 or offset < 0:
            return -errno.EINVAL
        self.offset = offset
        return offset

    def stat(self, p: GuestProcess) -> StatInfo | int:
        from chaosreplay.kernel.fs.paths import MOUNTS

        mount = MOUNTS[self.mount]
        node = mount.lookup(p, self.parts)
        return -errno.ENOENT if node is None else node.stat(mount.dev, self.path, p)

    def save(self, refs: Refs) -> Any:
        return [self.mount, list(self.parts)]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, bytes(data[0]), tuple(bytes(x) for x in data[1]))


class StaticFile(FileDescription):
    """An open synthetic file: the content it had when opened, read like a regular file."""

    kind = "synth-file"
    seekable = True

    def __init__(self, flags: int, path: bytes, content: bytes = b"", dev: int = PROC_DEV,
                 mode: int = 0o444) -> None:
        super().__init__(flags, path)
        self.content, self.dev, self.mode = content, dev, mode

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        data = self.content[self.offset : self.offset + size]
        self.offset += len(data)
        return data

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return self.content[offset : offset + size]

    def write(self, p: GuestProcess, data: bytes) -> int:
        return -errno.EACCES

    def pwrite(self, p: GuestProcess, data: bytes, offset: int) -> int:
        return -errno.EACCES

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        base = {0: 0, 1: self.offset, 2: len(self.content)}.get(whence)
        if base is None or base + offset < 0:
            return -errno.EINVAL
        self.offset = base + offset
        return self.offset

    def pending_bytes(self, p: GuestProcess) -> int | None:
        return max(0, len(self.content) - self.offset)

    def stat(self, p: GuestProcess) -> StatInfo | int:
        size = 0 if self.dev == PROC_DEV else len(self.content)
        boot = BOOT_REALTIME_NS
        return StatInfo(self.dev, id_of(self.path), S_IFREG | self.mode, size=size,
                        blocks=(size + 511) // 512, atime_ns=boot, mtime_ns=boot,
                        ctime_ns=boot)

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        return StaticFile(flags, self.path, self.content, self.dev, self.mode)

    def save(self, refs: Refs) -> Any:
        return [self.content, self.dev, self.mode]

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, bytes(data[0]), data[1], data[2])
