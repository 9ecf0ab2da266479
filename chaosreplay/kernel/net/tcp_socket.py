"""TCP sockets (tcp(7)): the socket API over `tcp.Connection`, wired to the node's stack.

A listening socket answers SYNs with new connections (children) that wait in its SYN queue
until the handshake completes, then in its accept queue (at most the listen backlog; a SYN
beyond it is dropped, so the client retransmits). connect() starts the handshake and
returns EINPROGRESS on a non-blocking socket (the outcome is then SO_ERROR and POLLOUT or
POLLERR); a blocking connect waits for it: established, ECONNREFUSED (a RST: nobody
listens), or ETIMEDOUT (SYN retries exhausted). Closing a connection sends FIN and leaves
the connection in the stack without a descriptor until it ends (TIME_WAIT included);
closing with unread data, or with SO_LINGER set to 0, resets it instead, as Linux does.
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
    Address,
    InetAddress,
    is_any,
    is_loopback,
    is_v4,
)
from chaosreplay.kernel.net.sockets import (
    MSG_PEEK,
    RCV_SHUTDOWN,
    SEND_SHUTDOWN,
    SHUT_RD,
    SHUT_RDWR,
    SHUT_WR,
    SHUTDOWN_MASK,
    SOCK_STREAM,
    Received,
    Socket,
)
from chaosreplay.kernel.net.tcp import (
    CLOSED,
    SENDING_STATES,
    SYN_RECEIVED,
    SYN_SENT,
    Connection,
    KeepAlive,
    TcpConfig,
)
from chaosreplay.kernel.net.udp import ADDRESS
from chaosreplay.recording.schema import Bool, Check, Int, ListOf, Maybe, Row

if TYPE_CHECKING:
    from chaosreplay.kernel.net.stack import NetStack
    from chaosreplay.kernel.process import GuestProcess

SOMAXCONN = 4096
SID = Int(0, 1 << 32)
ALL_EVENTS = READABLE | WRITABLE | POLLHUP | POLLRDHUP | POLLERR
KEEPALIVE_OPTIONS = (options.TCP_KEEPIDLE, options.TCP_KEEPINTVL, options.TCP_KEEPCNT)
CONFIG = TcpConfig()  # until the stack's own is set (NetStack.configure after loading)


def _socket_state(connection: Check) -> Row:
    """The shape of a TCP socket's own saved part, with its connection's as given."""
    return Row(Bool(), Maybe(ADDRESS), Maybe(ADDRESS), Bool(), Int(0, SOMAXCONN),
               ListOf(SID, max_len=SOMAXCONN + 1), ListOf(SID, max_len=SOMAXCONN + 1),
               Maybe(SID), Maybe(connection), Bool())


class TcpSocket(Socket):
    """A SOCK_STREAM socket of AF_INET or AF_INET6."""

    kind = "tcp"
    type = SOCK_STREAM
    protocol = options.IPPROTO_TCP
    # [v6, local, remote, listening, backlog max, accept queue, SYN queue, parent,
    #  connection (tcp.Connection.STATE) | None, connect pending]
    STATE = _socket_state(Connection.STATE)
    STATE_V4 = _socket_state(Connection.STATE_V4)  # files version 4: before keepalive

    def __init__(self, sid: int, v6: bool = False) -> None:
        super().__init__(sid)
        self.v6 = v6
        self.local: InetAddress | None = None
        self.remote: InetAddress | None = None
        self.listening = False
        self.backlog_max = 0
        self.accept_queue: list[int] = []
        self.syn_queue: list[int] = []
        self.parent: int | None = None
        self.conn: Connection | None = None
        self.connect_pending = False  # a non-blocking connect whose outcome is not told yet

    @property
    def family(self) -> int:  # type: ignore[override]
        return AF_INET6 if self.v6 else AF_INET

    @property
    def v6only(self) -> bool:
        return bool(self.option(options.IPPROTO_IPV6, options.IPV6_V6ONLY))

    def takes_host(self, host: bytes) -> bool:
        assert self.local is not None
        bound = self.local.host
        if bound == host:
            return True
        if bound == ANY_V4:
            return is_v4(host)
        if bound == ANY_V6:
            return not (self.v6only and is_v4(host))
        return False

    # -- binding -------------------------------------------------------------------------------
    def bind(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        assert isinstance(address, InetAddress)
        host = address.host
        if self.v6 and self.v6only and is_v4(host):
            return -errno.EADDRNOTAVAIL
        if not (is_any(host) or is_loopback(host) or stack.is_own(host)):
            return -errno.EADDRNOTAVAIL
        if self.local is not None or self.conn is not None:
            return -errno.EINVAL
        port = address.port or stack.ephemeral_port(self, host)
        if port == 0 or stack.port_taken(self, host, port):
            return -errno.EADDRINUSE
        self.local = InetAddress(host, port)
        return 0

    def listen(self, stack: NetStack, p: GuestProcess, backlog: int) -> int:
        if self.conn is not None:
            return -errno.EINVAL
        if self.local is None:
            bound = self.bind(stack, p, InetAddress(ANY_V6 if self.v6 else ANY_V4, 0))
            if bound < 0:
                return bound
        self.listening = True
        self.backlog_max = min(max(backlog, 0), SOMAXCONN)
        return 0

    def accepting(self) -> bool:
        return self.listening

    # -- connecting ----------------------------------------------------------------------------
    def connect(self, stack: NetStack, p: GuestProcess, address: Address) -> int:
        assert isinstance(address, InetAddress)
        if self.listening:
            return -errno.EINVAL
        if self.conn is not None:
            if self.connect_pending:  # the first connect after a non-blocking one tells
                outcome = self.connect_outcome()  # its outcome (sock->state catches up)
                return -errno.EALREADY if outcome is None else outcome
            return -errno.EISCONN
        if address.port == 0:
            return -errno.ECONNREFUSED
        route = stack.route(p, address.host)
        if route is not None and route < 0:
            return route
        if self.local is None or is_any(self.local.host):
            source = stack.source_for(address.host, self.v6)
            port = self.local.port if self.local is not None else stack.ephemeral_port(
                self, source)
            if port == 0:
                return -errno.EADDRNOTAVAIL
            self.local = InetAddress(source, port)
        self.remote = address
        self.conn = Connection(stack.tcp_config, stack.next_iss(p.vtime_ns))
        self._apply_buffers()
        self.connect_pending = True
        stack.report(p, "connect", self, p.vtime_ns)
        stack.transmit_tcp(p, self, self.conn.connect(p.vtime_ns), p.vtime_ns)
        return -errno.EINPROGRESS

    def connect_outcome(self) -> int | None:
        """What a connect waiting for the handshake returns now (None: still waiting)."""
        conn = self.conn
        if conn is None:
            return -errno.ENOTCONN
        if conn.state == SYN_SENT:
            return None
        self.connect_pending = False
        if conn.error:
            return -self._take_conn_error()
        return 0

    def _apply_buffers(self) -> None:
        """A new connection takes the socket's buffer sizes and keepalive settings."""
        assert self.conn is not None
        self.conn.recv_size, self.conn.send_size = self.rcvbuf, self.sndbuf
        self.conn.keepalive = self.keepalive()

    def keepalive(self) -> KeepAlive | None:
        """The keepalive settings of the socket's options, the scenario's where it set none
        (None: SO_KEEPALIVE is off)."""
        if not self.option(options.SOL_SOCKET, options.SO_KEEPALIVE):
            return None
        config = self.conn.config if self.conn is not None else CONFIG
        return KeepAlive(self._keep(config, options.TCP_KEEPIDLE) * options.NS_PER_S,
                         self._keep(config, options.TCP_KEEPINTVL) * options.NS_PER_S,
                         self._keep(config, options.TCP_KEEPCNT))

    def _keep(self, config: TcpConfig, name: int) -> int:
        """A TCP_KEEP* option as set, else the stack's default (seconds, or probes)."""
        value = self.options.get((options.IPPROTO_TCP, name))
        if value is not None:
            return value
        return {options.TCP_KEEPIDLE: config.keepalive_time_ns // options.NS_PER_S,
                options.TCP_KEEPINTVL: config.keepalive_intvl_ns // options.NS_PER_S,
                options.TCP_KEEPCNT: config.keepalive_probes}[name]

    def option_read(self, stack: NetStack, level: int, name: int) -> int:
        """As the base, but unset TCP_KEEP* options read as the scenario's defaults (Linux
        reads the sysctls)."""
        if level == options.IPPROTO_TCP and name in KEEPALIVE_OPTIONS:
            return self._keep(stack.tcp_config, name)
        return self.option(level, name)

    def option_set(self, stack: NetStack, p: GuestProcess, level: int, name: int) -> None:
        """setsockopt stored an option: keepalive ones reach the connection at once."""
        if self.conn is None:
            return
        if (level, name) == (options.SOL_SOCKET, options.SO_KEEPALIVE) or (
                level == options.IPPROTO_TCP and name in KEEPALIVE_OPTIONS):
            self.conn.set_keepalive(self.keepalive(), p.vtime_ns,
                                    idle_set=(level, name) == (options.IPPROTO_TCP,
                                                               options.TCP_KEEPIDLE))

    # -- passive side (called by the stack) -------------------------------------------------
    def syn_arrived(self, stack: NetStack, syn: Any, source: InetAddress,
                    destination: InetAddress, at_ns: int) -> list[Any] | None:
        """A SYN for this listener: a child in the SYN queue and its SYN-ACK, or None when
        the backlog is full (the SYN is dropped, as Linux drops it)."""
        if len(self.accept_queue) + len(self.syn_queue) > self.backlog_max:
            return None
        child = stack.add(TcpSocket, v6=self.v6)
        assert isinstance(child, TcpSocket)
        child.options = dict(self.options)
        child.local, child.remote, child.parent = destination, source, self.sid
        child.conn, out = Connection.accept_syn(stack.tcp_config, stack.next_iss(at_ns), syn,
                                                at_ns)
        child._apply_buffers()
        self.syn_queue.append(child.sid)
        return out

    def child_changed(self, stack: NetStack, child: TcpSocket, at_ns: int) -> None:
        """A child's handshake ended: into the accept queue, or gone."""
        assert child.conn is not None
        if child.sid in self.syn_queue and child.conn.state != SYN_RECEIVED:
            self.syn_queue.remove(child.sid)
            if child.conn.state == CLOSED:
                stack.remove(child.sid)
            else:
                self.accept_queue.append(child.sid)
                self.changed(READABLE, at_ns)

    def accept(self, stack: NetStack, p: GuestProcess) -> Socket | int:
        if not self.listening:
            return -errno.EINVAL
        if not self.accept_queue:
            return -errno.EAGAIN
        child = stack.sockets[self.accept_queue.pop(0)]
        assert isinstance(child, TcpSocket)
        child.parent = None
        child.has_file = True
        stack.report(p, "accept", child, p.vtime_ns)
        return child

    # -- data ----------------------------------------------------------------------------------
    def send(self, stack: NetStack, p: GuestProcess, data: bytes, address: Address | None,
             flags: int) -> int:
        conn = self.conn
        if conn is None or self.listening:
            return -errno.ENOTCONN if not self.listening else -errno.EPIPE
        if conn.state == SYN_SENT:
            return -errno.EAGAIN  # a blocking send waits for the handshake
        if conn.error:
            return -self._take_conn_error()
        if self.shutdown & SEND_SHUTDOWN or conn.state not in SENDING_STATES:
            return -errno.EPIPE
        if not data:
            return 0
        taken, out = conn.send(data, p.vtime_ns)
        stack.transmit_tcp(p, self, out, p.vtime_ns)
        return taken if taken else -errno.EAGAIN

    def _take_conn_error(self) -> int:
        """A failed connection reports its error once, then EPIPE (as tcp_sendmsg does)."""
        assert self.conn is not None
        error = self.conn.error
        self.conn.error = errno.EPIPE
        return error

    def take_error(self) -> int:
        """SO_ERROR: the connection's failure (ECONNREFUSED, ECONNRESET, ETIMEDOUT), once."""
        if self.conn is not None and self.conn.error not in (0, errno.EPIPE):
            if self.conn.state != SYN_SENT:
                self.connect_pending = False
            return self._take_conn_error()
        return super().take_error()

    def recv(self, stack: NetStack, p: GuestProcess, size: int, flags: int) -> Received | int:
        conn = self.conn
        if self.listening or conn is None:
            return -errno.ENOTCONN
        if conn.state == SYN_SENT:
            return -errno.EAGAIN
        if conn.readable and size:
            data, out = conn.read(size, p.vtime_ns, peek=bool(flags & MSG_PEEK))
            stack.transmit_tcp(p, self, out, p.vtime_ns)
            return Received(data)
        if conn.error and conn.error != errno.EPIPE:
            return -self._take_conn_error()
        if conn.at_eof or self.shutdown & RCV_SHUTDOWN or conn.state == CLOSED or size == 0:
            return Received(b"")
        return -errno.EAGAIN

    def shut(self, stack: NetStack, p: GuestProcess, how: int) -> int:
        if how not in (SHUT_RD, SHUT_WR, SHUT_RDWR):
            return -errno.EINVAL
        if self.listening and how != SHUT_WR:
            self.shutdown |= RCV_SHUTDOWN
            self.changed(ALL_EVENTS, p.vtime_ns)
            return 0
        if self.conn is None or self.conn.state == SYN_SENT:
            return -errno.ENOTCONN
        if how in (SHUT_RD, SHUT_RDWR):
            self.shutdown |= RCV_SHUTDOWN
        if how in (SHUT_WR, SHUT_RDWR) and not self.shutdown & SEND_SHUTDOWN:
            self.shutdown |= SEND_SHUTDOWN
            stack.transmit_tcp(p, self, self.conn.close(p.vtime_ns), p.vtime_ns)
        self.changed(ALL_EVENTS, p.vtime_ns)
        return 0

    # -- readiness -----------------------------------------------------------------------------
    def readiness(self, stack: NetStack, mask: int) -> int:
        if self.listening:
            return (READABLE if self.accept_queue else 0) & mask
        conn = self.conn
        if conn is None:
            return (WRITABLE | POLLHUP) & (mask | POLLHUP)  # tcp_poll of a closed socket
        ready = POLLERR if conn.error and conn.error != errno.EPIPE else 0
        if conn.state == SYN_SENT:
            return ready & (mask | POLLERR)
        ended = conn.state == CLOSED  # tcp_done shuts both ways
        if ended or self.shutdown == SHUTDOWN_MASK:
            ready |= POLLHUP
        if conn.readable or conn.at_eof or self.shutdown & RCV_SHUTDOWN or ended:
            ready |= READABLE
        if conn.at_eof or self.shutdown & RCV_SHUTDOWN or ended:
            ready |= POLLRDHUP
        if (conn.state in SENDING_STATES and not self.shutdown & SEND_SHUTDOWN
                and conn.send_room >= min(conn.send_size // 3, 65536)):  # sk_stream_wspace
            ready |= WRITABLE
        return ready & (mask | POLLERR | POLLHUP)

    def pending_bytes(self) -> int | None:
        if self.listening:
            return None
        return self.conn.readable if self.conn is not None else 0

    def local_address(self) -> Address | None:
        return self.local or InetAddress(ANY_V6 if self.v6 else ANY_V4, 0)

    def peer_address(self, stack: NetStack) -> Address | int:
        if self.conn is None or self.remote is None or self.conn.state in (SYN_SENT,):
            return -errno.ENOTCONN
        if self.conn.state == CLOSED and not self.conn.readable:
            return -errno.ENOTCONN
        return self.remote

    def external(self) -> bool:
        return True

    def release(self, stack: NetStack, p: GuestProcess) -> None:
        self.has_file = False
        for sid in self.syn_queue + self.accept_queue:  # never accepted: reset
            child = stack.sockets.get(sid)
            if isinstance(child, TcpSocket) and child.conn is not None:
                stack.transmit_tcp(p, child, child.conn.abort(p.vtime_ns), p.vtime_ns)
            stack.remove(sid)
        self.syn_queue, self.accept_queue = [], []
        conn = self.conn
        if conn is None or conn.state == CLOSED:
            stack.remove(self.sid)
            return
        linger = self.option(options.SOL_SOCKET, options.SO_LINGER)
        if conn.readable or (linger >> 32 and linger & 0xFFFFFFFF == 0):
            stack.report(p, "abort", self, p.vtime_ns)
            stack.transmit_tcp(p, self, conn.abort(p.vtime_ns), p.vtime_ns)
            stack.remove(self.sid)
            return
        stack.report(p, "close", self, p.vtime_ns)
        if not self.shutdown & SEND_SHUTDOWN:
            self.shutdown |= SEND_SHUTDOWN
            stack.transmit_tcp(p, self, conn.close(p.vtime_ns), p.vtime_ns)
        if conn.state == CLOSED:
            stack.remove(self.sid)

    def orphaned_and_done(self) -> bool:
        """A closed socket whose connection has ended: the stack forgets it."""
        return (not self.has_file and self.parent is None and not self.listening
                and (self.conn is None or self.conn.state == CLOSED))

    # -- checkpoints ---------------------------------------------------------------------------
    def save_own(self) -> Any:
        def row(a: InetAddress | None) -> list[Any] | None:
            return None if a is None else [a.host, a.port]

        return [self.v6, row(self.local), row(self.remote), self.listening, self.backlog_max,
                list(self.accept_queue), list(self.syn_queue), self.parent,
                None if self.conn is None else self.conn.save(), self.connect_pending]

    def load_own(self, data: Any) -> None:
        def address(a: list[Any] | None) -> InetAddress | None:
            return None if a is None else InetAddress(bytes(a[0]), a[1])

        (self.v6, local, remote, self.listening, self.backlog_max, accept, syn, self.parent,
         conn, self.connect_pending) = data
        self.local, self.remote = address(local), address(remote)
        self.accept_queue, self.syn_queue = list(accept), list(syn)
        self.conn = None if conn is None else Connection.load(CONFIG, conn)
        if self.conn is not None:  # its settings are the options, loaded before this
            self.conn.keepalive = self.keepalive()

    @classmethod
    def referenced_in(cls, own: Any) -> list[int]:
        return list(own[5]) + list(own[6])
