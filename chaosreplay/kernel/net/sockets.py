"""The socket endpoint every family builds on: options, errors, shutdown, readiness events.

An endpoint is the kernel's half of a socket; the guest reaches it through a `SocketFile`
description (kernel/net/socket_file.py). Endpoints belong to the node's `NetStack`, not to
descriptions, because some live without one: a connection waiting in a listen backlog
(and, with TCP, a connection in TIME_WAIT after its last close). Each endpoint kind saves
itself to plain data checked by its `STATE`, like the descriptions do.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, ClassVar

from chaosreplay.kernel.fs.waiters import Notifiable, WaitQueue
from chaosreplay.kernel.net import options
from chaosreplay.kernel.net.addresses import Address
from chaosreplay.recording.schema import U64_MAX, Check, Int, ListOf, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.net.stack import NetStack
    from chaosreplay.kernel.process import GuestProcess

SOCK_STREAM, SOCK_DGRAM, SOCK_SEQPACKET = 1, 2, 5
SOCK_NONBLOCK, SOCK_CLOEXEC = 0o4000, 0o2000000
SHUT_RD, SHUT_WR, SHUT_RDWR = 0, 1, 2
RCV_SHUTDOWN, SEND_SHUTDOWN = 1, 2
SHUTDOWN_MASK = RCV_SHUTDOWN | SEND_SHUTDOWN
MSG_OOB, MSG_PEEK, MSG_CTRUNC, MSG_TRUNC, MSG_DONTWAIT = 0x1, 0x2, 0x8, 0x20, 0x40
MSG_EOR, MSG_WAITALL, MSG_CONFIRM, MSG_NOSIGNAL, MSG_MORE = 0x80, 0x100, 0x800, 0x4000, 0x8000
MSG_CMSG_CLOEXEC = 0x40000000

# [level, name, value] rows of the options a program set
OPTIONS = ListOf(Row(Int(0, options.KEY_MAX), Int(0, options.KEY_MAX), Int(0, U64_MAX)),
                 max_len=256)
ERRNO = Int(0, 4095)


class Received:
    """What a receive hands back: the bytes, who sent them, and the datagram's full size."""

    __slots__ = ("data", "full_size", "source")

    def __init__(self, data: bytes, source: Address | None = None,
                 full_size: int | None = None) -> None:
        self.data = data
        self.source = source
        self.full_size = len(data) if full_size is None else full_size


class Socket:
    """A socket endpoint; families and types override what they support."""

    kind: ClassVar[str] = "?"
    registry: ClassVar[dict[str, type[Socket]]] = {}
    STATE: ClassVar[Check]  # the shape of save()'s own part
    family: ClassVar[int] = 0
    type: ClassVar[int] = 0
    protocol: ClassVar[int] = 0

    def __init__(self, sid: int) -> None:
        self.sid = sid
        self.options: dict[tuple[int, int], int] = {}
        self.error = 0  # a pending error (SO_ERROR), as a positive errno
        self.shutdown = 0  # RCV_SHUTDOWN | SEND_SHUTDOWN as sk_shutdown holds them
        self.events = 0  # bumps on every state change (edge-triggered epoll compares it)
        self.queue = WaitQueue()
        self.has_file = False  # a description refers to it (not a backlog entry)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.kind != "?":
            if "STATE" not in cls.__dict__:
                raise TypeError(f"socket kind {cls.kind!r} defines no STATE")
            Socket.registry[cls.kind] = cls

    # -- state changes ---------------------------------------------------------------------
    def changed(self, mask: int, at_ns: int) -> None:
        """Something in mask happened: bump the generation and wake the interested."""
        self.events += 1
        self.queue.notify(mask, at_ns)

    def register(self, party: Notifiable, mask: int) -> None:
        self.queue.register(party, mask)

    def unregister(self, party: Notifiable) -> None:
        self.queue.unregister(party)

    # -- options -----------------------------------------------------------------------------
    def option(self, level: int, name: int) -> int:
        value = self.options.get((level, name))
        if value is not None:
            return value
        fallback = options.default(level, name)
        return 0 if fallback is None else fallback

    def option_read(self, stack: NetStack, level: int, name: int) -> int:
        """What getsockopt reads for (level, name)."""
        return self.option(level, name)

    def option_set(self, stack: NetStack, p: GuestProcess, level: int, name: int) -> None:
        """setsockopt stored a new value of (level, name): act on it if it matters now."""

    @property
    def sndbuf(self) -> int:
        return self.option(options.SOL_SOCKET, options.SO_SNDBUF)

    @property
    def rcvbuf(self) -> int:
        return self.option(options.SOL_SOCKET, options.SO_RCVBUF)

    def take_error(self) -> int:
        """The pending error, cleared (what SO_ERROR and a failing call report)."""
        error, self.error = self.error, 0
        return error

    # -- operations (overridden per family and type) ----------------------------------------
    def bind(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        return -errno.EOPNOTSUPP

    def listen(self, stack: NetStack, p: GuestProcess, backlog: int) -> int:
        return -errno.EOPNOTSUPP

    def connect(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        """0 when connected, -EAGAIN while it would block, -EINPROGRESS when started."""
        return -errno.EOPNOTSUPP

    def accept(self, stack: NetStack, p: GuestProcess) -> Socket | int:
        return -errno.EOPNOTSUPP

    def send(self, stack: NetStack, p: GuestProcess, data: bytes, address: Address | None,
             flags: int) -> int:
        """Bytes taken, or -errno (-EAGAIN: would block)."""
        return -errno.EOPNOTSUPP

    def recv(self, stack: NetStack, p: GuestProcess, size: int, flags: int) -> Received | int:
        """What a receive of up to size bytes gets, or -errno (-EAGAIN: would block)."""
        return -errno.EOPNOTSUPP

    def shut(self, stack: NetStack, p: GuestProcess, how: int) -> int:
        return -errno.ENOTCONN

    def readiness(self, stack: NetStack, mask: int) -> int:
        return 0

    def pending_bytes(self) -> int | None:
        return None

    def local_address(self) -> Address | None:
        return None

    def peer_address(self, stack: NetStack) -> Address | int:
        return -errno.ENOTCONN

    def accepting(self) -> bool:
        return False

    def external(self) -> bool:
        """Whether the network (another node) may change this socket's state."""
        return False

    def release(self, stack: NetStack, p: GuestProcess) -> None:
        """The last descriptor referring to this socket was closed."""

    # -- checkpoints -----------------------------------------------------------------------
    def save(self) -> list[Any]:
        head = [self.sid, self.kind, sorted([lv, nm, v] for (lv, nm), v in self.options.items()),
                self.error, self.shutdown, self.events, self.has_file]
        return [*head, self.save_own()]

    def save_own(self) -> Any:
        return None

    def load_own(self, data: Any) -> None:
        """Adopt save_own() output."""

    @classmethod
    def load(cls, row: list[Any]) -> Socket:
        sid, kind, opts, error, shutdown, events, has_file, own = row
        sock = Socket.registry[kind](sid)
        sock.options = {(lv, nm): v for lv, nm, v in opts}
        sock.error, sock.shutdown, sock.events, sock.has_file = error, shutdown, events, has_file
        sock.load_own(own)
        return sock

    @classmethod
    def referenced_in(cls, own: Any) -> list[int]:
        """The socket ids save_own() output names (peers, backlog), checked to exist."""
        return []
