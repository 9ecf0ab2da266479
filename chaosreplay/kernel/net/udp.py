"""UDP sockets (udp(7)), over the fabric between nodes and straight through within one.

A datagram to another node's address becomes one fabric packet (kernel/net/wire.py), so
every fabric fault hits it; one to the loopback or the node's own address is queued at
the receiving socket at once. An unbound socket is bound to the next ephemeral port by
its first send or connect. Arrivals go to the socket bound to their port whose address
matches best (a specific address before a wildcard; a connected socket only takes its
peer's datagrams), the lowest socket number among equals; an arrival no socket takes, or
one past the receiver's SO_RCVBUF, is dropped; for the first the sender gets an ICMP port
unreachable, which a connected socket reports as ECONNREFUSED (udp(7)).
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import POLLERR, POLLHUP, POLLRDHUP, READABLE, WRITABLE
from chaosreplay.kernel.net import options
from chaosreplay.kernel.net.addresses import (
    AF_INET,
    AF_INET6,
    ANY_V4,
    ANY_V6,
    LOOPBACK_V4,
    Address,
    InetAddress,
    is_any,
    is_loopback,
    is_v4,
)
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
    Received,
    Socket,
)
from chaosreplay.recording.schema import Bool, Bytes, Int, ListOf, Maybe, Row, Where

if TYPE_CHECKING:
    from chaosreplay.kernel.net.stack import NetStack
    from chaosreplay.kernel.process import GuestProcess

MAX_PAYLOAD = {AF_INET: 65507, AF_INET6: 65527}  # 65535 less the IP and UDP headers
QUEUE_MAX = 1 << 16  # datagrams a socket may hold (SO_RCVBUF bounds it first)
ALL_EVENTS = READABLE | WRITABLE | POLLHUP | POLLRDHUP | POLLERR


def _sixteen(raw: bytes) -> str | None:
    return None if len(raw) == 16 else f"is {len(raw)} bytes, not 16"


HOST = Where(Bytes(16), _sixteen)
ADDRESS = Row(HOST, Int(0, 65535))


class Udp(Socket):
    """A SOCK_DGRAM socket of AF_INET or AF_INET6."""

    kind = "udp"
    type = SOCK_DGRAM
    protocol = options.IPPROTO_UDP
    # [v6, local, remote, [[data, source]...], queued bytes]
    STATE = Row(Bool(), Maybe(ADDRESS), Maybe(ADDRESS),
                ListOf(Row(Bytes(65535), ADDRESS), max_len=QUEUE_MAX), Int(0, 1 << 40))

    def __init__(self, sid: int, v6: bool = False) -> None:
        super().__init__(sid)
        self.v6 = v6
        self.local: InetAddress | None = None
        self.remote: InetAddress | None = None
        self.queue_data: list[tuple[bytes, InetAddress]] = []
        self.queued = 0

    @property
    def family(self) -> int:  # type: ignore[override]
        return AF_INET6 if self.v6 else AF_INET

    @property
    def v6only(self) -> bool:
        return bool(self.option(options.IPPROTO_IPV6, options.IPV6_V6ONLY))

    def takes_host(self, host: bytes) -> bool:
        """Whether a datagram to `host` may reach this socket's bound address."""
        assert self.local is not None
        bound = self.local.host
        if bound == host:
            return True
        if bound == ANY_V4:
            return is_v4(host)
        if bound == ANY_V6:
            return not (self.v6only and is_v4(host))
        return False

    def bind(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        assert isinstance(address, InetAddress)
        host = address.host  # the address is checked first, as inet_bind does
        if self.v6 and self.v6only and is_v4(host):
            return -errno.EADDRNOTAVAIL
        if not (is_any(host) or is_loopback(host) or stack.is_own(host)):
            return -errno.EADDRNOTAVAIL
        if self.local is not None:
            return -errno.EINVAL
        port = address.port or stack.ephemeral_port(self, host)
        if port == 0 or stack.port_taken(self, host, port):
            return -errno.EADDRINUSE
        self.local = InetAddress(host, port)
        return 0

    def autobind(self, stack: NetStack, p: GuestProcess) -> int:
        if self.local is not None:
            return 0
        return self.bind(stack, p, InetAddress(ANY_V6 if self.v6 else ANY_V4, 0))

    def connect(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        assert isinstance(address, InetAddress)
        if address.port == 0:
            return -errno.ECONNREFUSED
        bound = self.autobind(stack, p)
        if bound < 0:
            return bound
        route = stack.route(p, address.host)
        if route is not None and route < 0:
            return route
        assert self.local is not None
        if is_any(self.local.host):  # connect picks the source address getsockname shows
            self.local = InetAddress(stack.source_for(address.host, self.v6), self.local.port)
        self.remote = address
        return 0

    def disconnect(self) -> None:
        self.remote = None

    def send(self, stack: NetStack, p: GuestProcess, data: bytes, address: Address | None,
             flags: int) -> int:
        if self.shutdown & SEND_SHUTDOWN:
            return -errno.EPIPE
        target = address if address is not None else self.remote
        if target is None:
            return -errno.EDESTADDRREQ
        assert isinstance(target, InetAddress)
        if target.port == 0:
            return -errno.EINVAL
        if len(data) > MAX_PAYLOAD[self.family]:
            return -errno.EMSGSIZE
        bound = self.autobind(stack, p)
        if bound < 0:
            return bound
        assert self.local is not None
        host = self.local.host
        if is_any(host):
            host = stack.source_for(target.host, self.v6)
        sent = stack.send_udp(p, InetAddress(host, self.local.port), target, data)
        return sent if sent < 0 else len(data)

    def arrive(self, data: bytes, source: InetAddress, at_ns: int) -> bool:
        """Queue an arriving datagram; False when the receive buffer has no room."""
        if self.queued + len(data) > self.rcvbuf or len(self.queue_data) >= QUEUE_MAX:
            return False
        self.queue_data.append((data, source))
        self.queued += len(data)
        self.changed(READABLE, at_ns)
        return True

    def recv(self, stack: NetStack, p: GuestProcess, size: int, flags: int) -> Received | int:
        if not self.queue_data:
            if self.error:
                return -self.take_error()
            return Received(b"") if self.shutdown & RCV_SHUTDOWN else -errno.EAGAIN
        data, source = self.queue_data[0]
        if not flags & MSG_PEEK:
            self.queue_data.pop(0)
            self.queued -= len(data)
        if not self.v6 and not is_v4(source.host):
            source = InetAddress(LOOPBACK_V4, source.port)  # cannot happen: v4 takes v4 only
        chunk = data if flags & MSG_TRUNC and size >= len(data) else data[:size]
        return Received(chunk, source, len(data))

    def shut(self, stack: NetStack, p: GuestProcess, how: int) -> int:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            return -errno.EINVAL
        # Linux sets the bits even on an unconnected socket, so pollers see POLLHUP.
        self.shutdown |= {SHUT_RD: RCV_SHUTDOWN, SHUT_WR: SEND_SHUTDOWN,
                          SHUT_RDWR: SHUTDOWN_MASK}[how]
        self.changed(ALL_EVENTS, p.vtime_ns)
        return 0 if self.remote is not None else -errno.ENOTCONN

    def readiness(self, stack: NetStack, mask: int) -> int:
        ready = WRITABLE | (POLLERR if self.error else 0)
        if self.shutdown == SHUTDOWN_MASK:
            ready |= POLLHUP
        if self.shutdown & RCV_SHUTDOWN:
            ready |= POLLRDHUP | READABLE
        if self.queue_data:
            ready |= READABLE
        return ready & (mask | POLLERR | POLLHUP)

    def pending_bytes(self) -> int | None:
        return len(self.queue_data[0][0]) if self.queue_data else 0

    def local_address(self) -> Address | None:
        return self.local or InetAddress(ANY_V6 if self.v6 else ANY_V4, 0)

    def peer_address(self, stack: NetStack) -> Address | int:
        return self.remote if self.remote is not None else -errno.ENOTCONN

    def external(self) -> bool:
        return True

    def release(self, stack: NetStack, p: GuestProcess) -> None:
        stack.remove(self.sid)

    def save_own(self) -> Any:
        def row(a: InetAddress | None) -> list[Any] | None:
            return None if a is None else [a.host, a.port]

        return [self.v6, row(self.local), row(self.remote),
                [[d, [s.host, s.port]] for d, s in self.queue_data], self.queued]

    def load_own(self, data: Any) -> None:
        def address(a: list[Any] | None) -> InetAddress | None:
            return None if a is None else InetAddress(bytes(a[0]), a[1])

        self.v6, local, remote, queued, self.queued = data
        self.local, self.remote = address(local), address(remote)
        self.queue_data = [(bytes(d), InetAddress(bytes(s[0]), s[1])) for d, s in queued]


