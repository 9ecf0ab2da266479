"""AF_UNIX stream and datagram sockets within a node (unix(7)).

Names live in the node's namespace (`NetStack.unix_names`): a path (made absolute against
the cwd) or an abstract name (a leading NUL). Unlike Linux, binding a path makes no file on
the node's disk, and the name is freed when its socket is closed (Linux leaves the socket
file behind until it is unlinked, so `unlink` before `bind` — what servers do — behaves
the same). Binding with only the family autobinds an abstract name of five hex digits,
numbered in bind order.

Streams: connect() to a listening name queues a new connected endpoint in the listener's
backlog at once (it completes before accept, as on Linux) or waits while the backlog is
full. Bytes queue at the receiver; a sender may have at most its SO_SNDBUF unread there.
Closing an end shuts the other down both ways (POLLHUP, end of file, EPIPE on writes) and
resets it (ECONNRESET) if the closed end still had unread data or was never accepted —
Linux's unix_release_sock. Readiness follows unix_poll: an unconnected stream socket
reports POLLOUT|POLLHUP.

Datagrams: each send is one record; at most MAX_DGRAM_QLEN wait at a receiver (the sender
then blocks, or gets EAGAIN), a record larger than SO_SNDBUF - 32 is EMSGSIZE, a socket
connected to another refuses records from third parties (EPERM), and sending to a closed
peer is ECONNREFUSED.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import POLLERR, POLLHUP, POLLRDHUP, READABLE, WRITABLE
from chaosreplay.kernel.net.addresses import AF_UNIX, Address, UnixAddress, unix_key
from chaosreplay.kernel.net.sockets import (
    MSG_PEEK,
    MSG_TRUNC,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SHUTDOWN_MASK,
    SOCK_DGRAM,
    SOCK_STREAM,
    Received,
    Socket,
)
from chaosreplay.recording.schema import Bool, Bytes, Int, ListOf, Maybe, OneOf, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.net.stack import NetStack
    from chaosreplay.kernel.process import GuestProcess

SOMAXCONN = 4096  # net.core.somaxconn
MAX_DGRAM_QLEN = 10  # net.unix.max_dgram_qlen
NAME = Bytes(108)
KEY = Bytes(4096 + 108)
SID = Int(0, 1 << 32)
ALL_EVENTS = READABLE | WRITABLE | POLLHUP | POLLRDHUP | POLLERR
UNCONNECTED, LISTENING, CONNECTED = "unconnected", "listening", "connected"


class UnixSocket(Socket):
    """What both AF_UNIX types share: a name in the node's namespace."""

    family = AF_UNIX

    def __init__(self, sid: int) -> None:
        super().__init__(sid)
        self.name = b""  # as bound (what getsockname reports)
        self.key = b""  # where it lives in the namespace (b"": not bound)

    def bind(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        assert isinstance(address, UnixAddress)
        if self.key:
            return -errno.EINVAL
        name = address.name or stack.autobind_name()
        key = unix_key(name, stack.cwd_of(p))
        if key in stack.unix_names:
            return -errno.EADDRINUSE
        self.name, self.key = name, key
        stack.unix_names[key] = self.sid
        return 0

    def local_address(self) -> Address | None:
        return UnixAddress(self.name)

    def unname(self, stack: NetStack) -> None:
        if self.key and stack.unix_names.get(self.key) == self.sid:
            del stack.unix_names[self.key]

    def find(self, stack: NetStack, p: GuestProcess, address: Address) -> Socket | int:
        """The socket bound to an address, or ENOENT / ECONNREFUSED / EPROTOTYPE."""
        assert isinstance(address, UnixAddress)
        if not address.name:
            return -errno.EINVAL
        sid = stack.unix_names.get(unix_key(address.name, stack.cwd_of(p)))
        if sid is None:
            return -errno.ECONNREFUSED if address.name[:1] == b"\0" else -errno.ENOENT
        other = stack.sockets[sid]
        return other if other.type == self.type else -errno.EPROTOTYPE


class UnixStream(UnixSocket):
    """A SOCK_STREAM AF_UNIX socket: unconnected, listening, or one end of a connection."""

    kind = "unix_stream"
    type = SOCK_STREAM
    # [name, key, state, peer, peer name, received bytes, backlog, backlog max, peer gone]
    STATE = Row(NAME, KEY, OneOf(UNCONNECTED, LISTENING, CONNECTED), Maybe(SID), NAME,
                Bytes(1 << 24), ListOf(SID, max_len=SOMAXCONN + 1), Int(0, SOMAXCONN), Bool())

    def __init__(self, sid: int) -> None:
        super().__init__(sid)
        self.state = UNCONNECTED
        self.peer: int | None = None
        self.peer_name = b""
        self.received = bytearray()
        self.backlog: list[int] = []
        self.backlog_max = 0
        self.peer_gone = False

    def _peer(self, stack: NetStack) -> UnixStream | None:
        other = stack.sockets.get(self.peer) if self.peer is not None else None
        return other if isinstance(other, UnixStream) else None

    def pair(self, other: UnixStream) -> None:
        """Connect two fresh endpoints to each other (socketpair, or connect + backlog)."""
        self.state = other.state = CONNECTED
        self.peer, other.peer = other.sid, self.sid
        self.peer_name, other.peer_name = other.name, self.name

    def listen(self, stack: NetStack, p: GuestProcess, backlog: int) -> int:
        if not self.key or self.state == CONNECTED:
            return -errno.EINVAL
        self.state = LISTENING
        self.backlog_max = min(max(backlog, 0), SOMAXCONN)
        return 0

    def accepting(self) -> bool:
        return self.state == LISTENING

    def connect(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        if self.state == CONNECTED:
            return -errno.EISCONN
        if self.state == LISTENING:
            return -errno.EINVAL
        other = self.find(stack, p, address)
        if isinstance(other, int):
            return other
        assert isinstance(other, UnixStream)
        if other.state != LISTENING:
            return -errno.ECONNREFUSED
        if len(other.backlog) > other.backlog_max:
            return -errno.EAGAIN
        embryo = stack.add(UnixStream)
        embryo.name, embryo.options = other.name, dict(other.options)
        self.pair(embryo)
        other.backlog.append(embryo.sid)
        other.changed(READABLE, p.vtime_ns)
        self.changed(WRITABLE, p.vtime_ns)
        return 0

    def accept(self, stack: NetStack, p: GuestProcess) -> Socket | int:
        if self.state != LISTENING:
            return -errno.EINVAL
        if not self.backlog:
            return -errno.EAGAIN
        accepted = stack.sockets[self.backlog.pop(0)]
        accepted.has_file = True
        stack.backlog_freed(p)
        return accepted

    def send(self, stack: NetStack, p: GuestProcess, data: bytes, address: Address | None,
             flags: int) -> int:
        if address is not None:
            return -errno.EISCONN if self.state == CONNECTED else -errno.EOPNOTSUPP
        if self.state != CONNECTED:
            return -errno.ENOTCONN
        if self.shutdown & SEND_SHUTDOWN:
            return -errno.EPIPE
        other = self._peer(stack)
        if other is None or other.shutdown & RCV_SHUTDOWN:
            return -errno.EPIPE
        room = self.sndbuf - len(other.received)
        if room <= 0:
            return -errno.EAGAIN
        chunk = data[:room]
        other.received += chunk
        other.changed(READABLE, p.vtime_ns)
        return len(chunk)

    def recv(self, stack: NetStack, p: GuestProcess, size: int, flags: int) -> Received | int:
        if self.state == LISTENING:
            return -errno.EINVAL
        if not self.received or size == 0:
            if self.error:
                return -self.take_error()
            if self.shutdown & RCV_SHUTDOWN or size == 0:
                return Received(b"")
            return -errno.EAGAIN
        data = bytes(self.received[:size])
        if not flags & MSG_PEEK:
            del self.received[: len(data)]
            other = self._peer(stack)
            if other is not None:
                other.changed(WRITABLE, p.vtime_ns)  # a blocked writer may go on
        # recvfrom names the peer when it is bound (unix_copy_addr), else nothing
        return Received(data, UnixAddress(self.peer_name) if self.peer_name else None)

    def shut(self, stack: NetStack, p: GuestProcess, how: int) -> int:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            return -errno.EINVAL
        if self.state != CONNECTED:
            return -errno.ENOTCONN
        mode = {SHUT_RD: RCV_SHUTDOWN, SHUT_WR: SEND_SHUTDOWN, SHUT_RDWR: SHUTDOWN_MASK}[how]
        self.shutdown |= mode
        self.changed(ALL_EVENTS, p.vtime_ns)
        other = self._peer(stack)
        if other is not None:
            other.shutdown |= ((mode & RCV_SHUTDOWN and SEND_SHUTDOWN)
                               | (mode & SEND_SHUTDOWN and RCV_SHUTDOWN))
            other.changed(ALL_EVENTS, p.vtime_ns)
        return 0

    def readiness(self, stack: NetStack, mask: int) -> int:
        ready = POLLERR if self.error else 0
        if self.shutdown == SHUTDOWN_MASK or self.state == UNCONNECTED:
            ready |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            ready |= POLLRDHUP | READABLE
        if self.received or (self.state == LISTENING and self.backlog):
            ready |= READABLE
        if self.state != LISTENING:
            other = self._peer(stack)
            if other is None or len(other.received) << 2 <= self.sndbuf:  # unix_writable
                ready |= WRITABLE
        return ready & (mask | POLLERR | POLLHUP)

    def pending_bytes(self) -> int | None:
        return None if self.state == LISTENING else len(self.received)

    def peer_address(self, stack: NetStack) -> Address | int:
        return UnixAddress(self.peer_name) if self.state == CONNECTED else -errno.ENOTCONN

    def release(self, stack: NetStack, p: GuestProcess) -> None:
        self.unname(stack)
        for sid in self.backlog:  # connections never accepted are reset
            embryo = stack.sockets[sid]
            assert isinstance(embryo, UnixStream)
            embryo.release(stack, p)
        self.backlog = []
        other = self._peer(stack)
        if other is not None:
            other.shutdown = SHUTDOWN_MASK
            other.peer, other.peer_gone = None, True
            if self.received or not self.has_file:
                other.error = errno.ECONNRESET
            other.changed(ALL_EVENTS, p.vtime_ns)
        stack.remove(self.sid)

    def save_own(self) -> Any:
        return [self.name, self.key, self.state, self.peer, self.peer_name,
                bytes(self.received), list(self.backlog), self.backlog_max, self.peer_gone]

    def load_own(self, data: Any) -> None:
        (self.name, self.key, self.state, self.peer, self.peer_name, received, backlog,
         self.backlog_max, self.peer_gone) = data
        self.name, self.key, self.peer_name = bytes(self.name), bytes(self.key), \
            bytes(self.peer_name)
        self.received, self.backlog = bytearray(received), list(backlog)

    @classmethod
    def referenced_in(cls, own: Any) -> list[int]:
        return ([] if own[3] is None else [own[3]]) + list(own[6])


class UnixDgram(UnixSocket):
    """A SOCK_DGRAM AF_UNIX socket: records, each with its sender's name."""

    kind = "unix_dgram"
    type = SOCK_DGRAM
    # [name, key, peer, peer name, [[record, sender's name]...]]
    STATE = Row(NAME, KEY, Maybe(SID), NAME,
                ListOf(Row(Bytes(1 << 24), NAME), max_len=MAX_DGRAM_QLEN + 1))

    def __init__(self, sid: int) -> None:
        super().__init__(sid)
        self.peer: int | None = None
        self.peer_name = b""
        self.records: list[tuple[bytes, bytes]] = []

    def pair(self, other: UnixDgram) -> None:
        self.peer, other.peer = other.sid, self.sid

    def connect(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        other = self.find(stack, p, address)
        if isinstance(other, int):
            return other
        self.peer = other.sid
        self.peer_name = other.name if isinstance(other, UnixDgram) else b""
        return 0

    def disconnect(self) -> None:
        self.peer, self.peer_name = None, b""

    def send(self, stack: NetStack, p: GuestProcess, data: bytes, address: Address | None,
             flags: int) -> int:
        if self.shutdown & SEND_SHUTDOWN:
            return -errno.EPIPE
        if address is not None:
            found = self.find(stack, p, address)
            if isinstance(found, int):
                return found
            other: Socket | None = found
        elif self.peer is None:
            return -errno.ENOTCONN
        else:
            other = stack.sockets.get(self.peer)
            if other is None:
                self.disconnect()
                return -errno.ECONNREFUSED
        assert isinstance(other, UnixDgram)
        if other.peer is not None and other.peer != self.sid:
            return -errno.EPERM
        if len(data) > self.sndbuf - 32:
            return -errno.EMSGSIZE
        if other.shutdown & RCV_SHUTDOWN:
            return -errno.EPIPE
        if len(other.records) > MAX_DGRAM_QLEN:
            return -errno.EAGAIN
        other.records.append((bytes(data), self.name))
        other.changed(READABLE, p.vtime_ns)
        return len(data)

    def recv(self, stack: NetStack, p: GuestProcess, size: int, flags: int) -> Received | int:
        if not self.records:
            if self.error:
                return -self.take_error()
            return Received(b"") if self.shutdown & RCV_SHUTDOWN else -errno.EAGAIN
        record, sender = self.records[0]
        if not flags & MSG_PEEK:
            self.records.pop(0)
            stack.dgram_room(p)
        data = record if flags & MSG_TRUNC and size >= len(record) else record[:size]
        return Received(data, UnixAddress(sender), len(record))

    def shut(self, stack: NetStack, p: GuestProcess, how: int) -> int:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            return -errno.EINVAL
        if self.peer is None:
            return -errno.ENOTCONN
        self.shutdown |= {SHUT_RD: RCV_SHUTDOWN, SHUT_WR: SEND_SHUTDOWN,
                          SHUT_RDWR: SHUTDOWN_MASK}[how]
        self.changed(ALL_EVENTS, p.vtime_ns)
        return 0

    def readiness(self, stack: NetStack, mask: int) -> int:
        ready = POLLERR if self.error else 0
        if self.shutdown == SHUTDOWN_MASK:
            ready |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            ready |= POLLRDHUP | READABLE
        if self.records:
            ready |= READABLE
        other = stack.sockets.get(self.peer) if self.peer is not None else None
        if not (isinstance(other, UnixDgram) and other.peer not in (None, self.sid)
                and len(other.records) > MAX_DGRAM_QLEN):
            ready |= WRITABLE
        return ready & (mask | POLLERR | POLLHUP)

    def pending_bytes(self) -> int | None:
        return len(self.records[0][0]) if self.records else 0

    def peer_address(self, stack: NetStack) -> Address | int:
        return -errno.ENOTCONN if self.peer is None else UnixAddress(self.peer_name)

    def release(self, stack: NetStack, p: GuestProcess) -> None:
        self.unname(stack)
        stack.remove(self.sid)
        stack.dgram_room(p)  # senders blocked on this receiver now get ECONNREFUSED

    def save_own(self) -> Any:
        return [self.name, self.key, self.peer, self.peer_name,
                [[data, sender] for data, sender in self.records]]

    def load_own(self, data: Any) -> None:
        name, key, self.peer, peer_name, records = data
        self.name, self.key, self.peer_name = bytes(name), bytes(key), bytes(peer_name)
        self.records = [(bytes(d), bytes(s)) for d, s in records]

    @classmethod
    def referenced_in(cls, own: Any) -> list[int]:
        return []  # a peer may be gone (sends then fail): nothing must exist
