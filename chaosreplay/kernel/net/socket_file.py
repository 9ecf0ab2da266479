"""The descriptor side of a socket: a `FileDescription` over one endpoint of the stack.

read/write on a socket are recv/send without flags (blocking as the description's
O_NONBLOCK says, through the shared read/write paths); the socket system calls
(kernel/syscalls/socket.py) reach the endpoint through `sock`. A socket that the network
can change (UDP, TCP) reports `next_change_ns` = NEVER_NS when the process has a network
endpoint, so a call blocked on it sleeps until an arrival wakes it rather than counting
as a deadlock; without a network (a lone `chaosreplay run`) only the node itself could
change it, so blocking forever is the deadlock it is.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import (
    ANON_DEV,
    FIONREAD,
    FileDescription,
    Refs,
    StatInfo,
)
from chaosreplay.kernel.fs.waiters import Notifiable
from chaosreplay.kernel.net import options
from chaosreplay.kernel.net.sockets import Received, Socket
from chaosreplay.kernel.net.stack import NEVER_NS
from chaosreplay.recording.schema import Int

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

S_IFSOCK = 0o140000
SIOCOUTQ = 0x5411


class SocketFile(FileDescription):
    """An open socket."""

    kind = "socket"
    STATE = Int(0, 1 << 20)  # the socket's number in the node's stack
    blocking = True

    def __init__(self, flags: int, path: bytes, sock: Socket) -> None:
        super().__init__(flags, path)
        self.sock = sock
        sock.has_file = True

    def read(self, p: GuestProcess, size: int) -> bytes | int:
        got = self.sock.recv(p.net, p, size, 0)
        return got.data if isinstance(got, Received) else got

    def write(self, p: GuestProcess, data: bytes) -> int:
        return self.sock.send(p.net, p, data, None, 0)

    def io_timeout_ns(self, write: bool) -> int | None:
        name = options.SO_SNDTIMEO_OLD if write else options.SO_RCVTIMEO_OLD
        return self.sock.option(options.SOL_SOCKET, name) or None

    def readiness(self, p: GuestProcess, mask: int) -> int:
        return self.sock.readiness(p.net, mask)

    def next_change_ns(self, p: GuestProcess) -> int | None:
        if not self.sock.external():
            return None
        if p.network is not None:
            return NEVER_NS  # an arrival or the controller's firing of a timer wakes it
        return p.net.next_timer_ns()  # alone: only the stack's own timers change it

    def generation(self, p: GuestProcess, mask: int) -> Any:
        return self.sock.events

    def register(self, party: Notifiable, mask: int) -> None:
        self.sock.register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        self.sock.unregister(party)

    def pending_bytes(self, p: GuestProcess) -> int | None:
        return self.sock.pending_bytes()

    def ioctl(self, p: GuestProcess, request: int, arg: int) -> int:
        if request == FIONREAD:
            return -errno.EINVAL  # a listening socket has no bytes to count
        return -errno.ENOTTY

    def stat(self, p: GuestProcess) -> StatInfo | int:
        return StatInfo(ANON_DEV, 0x2000000 + self.sock.sid, S_IFSOCK | 0o777, 1,
                        blksize=4096)

    def release(self, p: GuestProcess) -> None:
        self.sock.release(p.net, p)

    def save(self, refs: Refs) -> Any:
        return self.sock.sid

    @classmethod
    def load(cls, flags: int, path: bytes, data: Any, refs: Refs) -> FileDescription:
        return cls(flags, path, refs.external.sockets[data])
