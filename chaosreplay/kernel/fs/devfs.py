"""/dev: the memory devices, the terminal and the standard-stream links."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosreplay.kernel.fs.devices import PTS_MAJOR, Device, mkdev
from chaosreplay.kernel.fs.synthetic import DEV_DEV, SynthNode, directory, link

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

MEMORY_DEVICES = tuple(sorted(Device.RDEV))
LINKS = {b"fd": b"/proc/self/fd", b"stdin": b"/proc/self/fd/0",
         b"stdout": b"/proc/self/fd/1", b"stderr": b"/proc/self/fd/2"}


class DevFs:
    """The /dev mount."""

    name = b"dev"
    dev = DEV_DEV

    def lookup(self, p: GuestProcess, parts: tuple[bytes, ...]) -> SynthNode | None:
        if not parts:
            return directory(*sorted((*MEMORY_DEVICES, *LINKS, b"pts", b"shm", b"tty")),
                             mode=0o755)
        head, rest = parts[0], parts[1:]
        if head == b"pts":
            if not rest:
                return directory(b"0", mode=0o755)
            return (SynthNode("device", device="tty", mode=0o620, writable=True,
                              rdev=mkdev(PTS_MAJOR, p.node_id & 0xFF))
                    if rest == (b"0",) else None)
        if rest:
            return None
        if head == b"shm":
            return directory(mode=0o1777)
        if head in MEMORY_DEVICES:
            return SynthNode("device", device=head.decode(), mode=0o666, writable=True,
                             rdev=Device.RDEV[head])
        if head == b"tty":
            return SynthNode("device", device="tty", mode=0o666, writable=True,
                             rdev=mkdev(5, 0))
        if head in LINKS:
            return link(LINKS[head])
        return None
