"""/chaosreplay: where the running program's own executable appears (/proc/self/exe).

The loader names the program /chaosreplay/<file name> (AT_EXECFN, /proc/self/exe); this
mount makes that name openable, read-only, with the image's bytes, so a program that
reads its own ELF (for symbols, embedded data, a self-check) finds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import S_IFREG, FileDescription, Refs, StatInfo, id_of
from chaosreplay.kernel.fs.synthetic import BOOT_REALTIME_NS, SynthNode, directory
from chaosreplay.recording.schema import OneOf

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

EXE_DEV = 0x7


class ExeFs:
    """The /chaosreplay mount: one file, the program."""

    name = b"chaosreplay"
    dev = EXE_DEV

    def lookup(self, p: GuestProcess, parts: tuple[bytes, ...]) -> SynthNode | None:
        own = p.exe_name.rsplit(b"/", 1)[-1]
        if not parts:
            return directory(own)
        if parts == (own,):
            return SynthNode("device", device="exe", mode=0o755)
        return None


class ExeFile(FileDescription):
    """The program's executable, open for reading."""

    kind = "exe"
    STATE = OneOf(None)  # nothing of its own: the image is the process's
    seekable = True
    pollable = False

    def _raw(self, p: GuestProcess) -> bytes:
        return p.image.raw

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        data = self._raw(p)[self.offset : self.offset + size]
        self.offset += len(data)
        return data

    def pread(self, p: GuestProcess, size: int, offset: int) -> bytes | int:
        return self._raw(p)[offset : offset + size]

    def map_contents(self, p: GuestProcess, offset: int, length: int) -> bytes | int:
        return self._raw(p)[offset : offset + length]

    def seek(self, p: GuestProcess, offset: int, whence: int) -> int:
        base = {0: 0, 1: self.offset, 2: len(self._raw(p))}.get(whence)
        if base is None or not 0 <= base + offset < 1 << 63:
            return -22
        self.offset = base + offset
        return self.offset

    def stat(self, p: GuestProcess) -> StatInfo | int:
        size = len(self._raw(p))
        return StatInfo(EXE_DEV, id_of(self.path), S_IFREG | 0o755, size=size,
                        blocks=(size + 511) // 512, atime_ns=BOOT_REALTIME_NS,
                        mtime_ns=BOOT_REALTIME_NS, ctime_ns=BOOT_REALTIME_NS)

    def reopen(self, p: GuestProcess, flags: int) -> FileDescription | int:
        return ExeFile(flags, self.path)

    def save(self, refs: Refs) -> Any:
        return None
