"""A node's network stack: its sockets, the AF_UNIX namespace, ports, and the network.

The stack owns every socket endpoint of the node by number (a description refers to one;
a connection in a listen backlog has none yet). Sockets are numbered, ephemeral ports are
handed out and autobound AF_UNIX names are made in the order programs ask for them, so
all three are functions of what the node did. The kernel never imports the simulation:
the simulation attaches a `NetworkEndpoint` as `process.network`, which carries packets
to other nodes through the fabric, and hands arriving packets to `arrive`.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Protocol

from chaosreplay.events import EventKind
from chaosreplay.kernel.fs.waiters import wake_if_woken
from chaosreplay.kernel.net import wire
from chaosreplay.kernel.net.addresses import (
    ANY_V4,
    LOOPBACK_V4,
    LOOPBACK_V6,
    InetAddress,
    is_any,
    is_loopback,
    is_v4,
    node_host,
    node_of,
)
from chaosreplay.kernel.net.sockets import Socket
from chaosreplay.kernel.net.tcp import TcpConfig
from chaosreplay.kernel.net.tcp_segment import ACK, SYN, Segment, reset_for
from chaosreplay.kernel.net.tcp_socket import ALL_EVENTS as TCP_EVENTS
from chaosreplay.kernel.net.tcp_socket import TcpSocket
from chaosreplay.kernel.net.udp import Udp
from chaosreplay.kernel.net.unix import UnixDgram, UnixStream
from chaosreplay.recording.schema import (
    U64_MAX,
    Anything,
    Bool,
    Check,
    Int,
    ListOf,
    Record,
    Row,
    Str,
    Where,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

EPHEMERAL_FIRST, EPHEMERAL_LAST = 32768, 60999  # net.ipv4.ip_local_port_range
MAX_SOCKETS = 1 << 20
DROP_CHECKSUM, DROP_NO_SOCKET, DROP_RCVBUF = "checksum", "no_socket", "rcvbuf_full"
DROP_BACKLOG = "backlog_full"
NEVER_NS = 1 << 62  # a wake-up time only the network can bring forward


class NetworkEndpoint(Protocol):
    """What the simulation attaches as `process.network` for socket traffic."""

    tcp_config: TcpConfig  # the scenario's TCP settings

    def send_packet(self, p: GuestProcess, dst: int, payload: bytes, channel: int,
                    at_ns: int) -> None: ...


class SavedSocket(Check):
    """One saved socket, [sid, kind, options, error, shutdown, events, has_file, own]; the
    own part is checked by its kind's STATE (its STATE_V4, if it has one, in the state of
    files version 4)."""

    HEAD = Row(Int(0, MAX_SOCKETS), Str(32), Anything(), Int(0, 4095), Int(0, 3),
               Int(0, U64_MAX), Bool(), Anything())

    def __init__(self, v4: bool = False) -> None:
        self.v4 = v4

    def describe(self) -> str:
        return self.HEAD.describe()

    def __call__(self, value: Any, path: str) -> None:
        from chaosreplay.kernel.net.sockets import OPTIONS

        self.HEAD(value, path)
        kind = Socket.registry.get(value[1])
        if kind is None:
            self._fail(path, problem=f"has an unknown socket kind {value[1]!r}")
        OPTIONS(value[2], f"{path}[2]")
        own = getattr(kind, "STATE_V4", kind.STATE) if self.v4 else kind.STATE
        own(value[7], f"{path}[7]")


def _sockets_consistent(state: dict[str, Any]) -> str | None:
    """Socket numbers unique and below next_sid, every named socket present, each AF_UNIX
    name held once: the stack indexes by them."""
    sids = [row[0] for row in state["sockets"]]
    if len(set(sids)) != len(sids):
        return "names a socket number twice"
    if any(sid >= state["next_sid"] for sid in sids):
        return f"has a socket numbered at or above next_sid {state['next_sid']}"
    present, keys = set(sids), set()
    for row in state["sockets"]:
        kind = Socket.registry[row[1]]
        for other in kind.referenced_in(row[7]):
            if other not in present:
                return f"has socket {row[0]} naming missing socket {other}"
        if kind in (UnixStream, UnixDgram) and row[7][1]:
            if row[7][1] in keys:
                return f"binds the AF_UNIX name {bytes(row[7][1])!r} twice"
            keys.add(row[7][1])
    return None


def _stack_state(v4: bool) -> Check:
    """The shape of save()'s output (as files version 4 held it, with `v4`)."""
    return Where(Record({
        "next_sid": Int(0, MAX_SOCKETS),
        "next_port": Int(EPHEMERAL_FIRST, EPHEMERAL_LAST),
        "next_autobind": Int(0, 1 << 20),
        "connections": Int(0, U64_MAX),
        "sockets": ListOf(SavedSocket(v4), max_len=MAX_SOCKETS),
    }), _sockets_consistent)


STATE = _stack_state(v4=False)
STATE_V4 = _stack_state(v4=True)  # TCP connections saved before keepalive


class NetStack:
    """The sockets and addresses of one node (see the module docstring)."""

    def __init__(self, node_id: int, node_count: int) -> None:
        self.node_id = node_id
        self.node_count = max(node_count, node_id + 1)
        self.sockets: dict[int, Socket] = {}
        self.unix_names: dict[bytes, int] = {}  # namespace key -> socket number
        self.next_sid = 1
        self.next_port = EPHEMERAL_FIRST
        self.next_autobind = 0
        self.connections = 0  # TCP connections begun (their ISS step)
        self.tcp_config = TcpConfig()  # from the scenario (not state: the same every life)
        self.loopback: list[tuple[int, bytes]] = []  # TCP packets to this node, in order
        self._draining = False

    # -- sockets -----------------------------------------------------------------------------
    def add(self, cls: type[Socket], **kwargs: Any) -> Socket:
        sock = cls(self.next_sid, **kwargs)
        self.next_sid += 1
        self.sockets[sock.sid] = sock
        return sock

    def remove(self, sid: int) -> None:
        self.sockets.pop(sid, None)

    def ordered(self) -> list[Socket]:
        return [self.sockets[sid] for sid in sorted(self.sockets)]

    @staticmethod
    def cwd_of(p: GuestProcess) -> bytes:
        from chaosreplay.kernel.fs.paths import path_of

        return path_of(p, p.cwd)

    def autobind_name(self) -> bytes:
        name = b"\0%05x" % (self.next_autobind & 0xFFFFF)
        self.next_autobind += 1
        return name

    def backlog_freed(self, p: GuestProcess) -> None:
        """A listener took a connection: connectors waiting for backlog room may go on."""
        for sock in self.ordered():
            if isinstance(sock, UnixStream) and sock.state == "unconnected":
                sock.changed(0x4, p.vtime_ns)

    def dgram_room(self, p: GuestProcess) -> None:
        """A datagram receiver's queue shrank or went away: its senders may go on."""
        for sock in self.ordered():
            if isinstance(sock, UnixDgram):
                sock.changed(0x4, p.vtime_ns)

    # -- addresses and ports ----------------------------------------------------------------
    @property
    def host(self) -> bytes:
        """This node's IPv4 address (16-byte form)."""
        return node_host(self.node_id)

    def is_own(self, host: bytes) -> bool:
        return host == self.host

    def source_for(self, destination: bytes, v6: bool) -> bytes:
        """The source address of a packet to `destination` from an unbound address."""
        if is_loopback(destination):
            return LOOPBACK_V6 if destination == LOOPBACK_V6 else LOOPBACK_V4
        if is_any(destination):
            return LOOPBACK_V6 if destination == LOOPBACK_V6 or not is_v4(destination) \
                else LOOPBACK_V4
        return self.host

    def route(self, p: GuestProcess, destination: bytes) -> int | None:
        """None for this node, a node index for another one, or -ENETUNREACH."""
        if is_loopback(destination) or is_any(destination) or self.is_own(destination):
            return None
        node = node_of(destination, self.node_count)
        if node is None or p.network is None:
            return -errno.ENETUNREACH
        return node

    def _udp_bound(self) -> list[Udp]:
        return [s for s in self.ordered() if isinstance(s, Udp) and s.local is not None]

    def _bound(self, kind: type[Socket]) -> list[Any]:
        """The bound sockets of one protocol (UDP and TCP have port spaces of their own)."""
        return [s for s in self.ordered() if type(s) is kind and s.local is not None]

    def port_taken(self, sock: Any, host: bytes, port: int) -> bool:
        """Whether binding sock to (host, port) conflicts with another socket of its protocol:
        both setting SO_REUSEPORT may share; both setting SO_REUSEADDR may too, for TCP
        only while the other is not listening (Linux's inet_csk_bind_conflict)."""
        from chaosreplay.kernel.net import options

        def shares(other: Socket, name: int) -> bool:
            return bool(sock.option(options.SOL_SOCKET, name)
                        and other.option(options.SOL_SOCKET, name))

        for other in self._bound(type(sock)):
            if other is sock or other.local.port != port:
                continue
            theirs = other.local.host
            overlap = (host == theirs or (is_any(host) and _covers(sock, host, theirs))
                       or (is_any(theirs) and _covers(other, theirs, host)))
            reuse = shares(other, options.SO_REUSEADDR) and not getattr(other, "listening",
                                                                         False)
            if overlap and not (reuse or shares(other, options.SO_REUSEPORT)):
                return True
        return False

    def ephemeral_port(self, sock: Any, host: bytes) -> int:
        """The next free port of the ephemeral range, in order (0 when all are taken)."""
        span = EPHEMERAL_LAST - EPHEMERAL_FIRST + 1
        bound = {s.local.port for s in self._bound(type(sock))}
        for _ in range(span):
            port = self.next_port
            self.next_port = EPHEMERAL_FIRST + (port - EPHEMERAL_FIRST + 1) % span
            if port not in bound:
                return port
        return 0

    def next_iss(self, now_ns: int) -> int:
        """An initial sequence number: RFC 6528's 4 µs clock plus a per-connection step, so
        a restarted node's new connections do not take up its old ones' numbers."""
        self.connections += 1
        return (now_ns // 4000 + self.connections * 64000) % (1 << 32)

    # -- traffic -----------------------------------------------------------------------------
    def send_udp(self, p: GuestProcess, source: InetAddress, destination: InetAddress,
                 data: bytes) -> int:
        """Carry one datagram: straight to a local socket, or over the fabric."""
        route = self.route(p, destination.host)
        if isinstance(route, int) and route < 0:
            return route
        if route is None:
            if self.deliver_udp(source, destination, data, p.vtime_ns) == DROP_NO_SOCKET:
                self.port_unreachable(destination, source, p.vtime_ns)
            return 0
        p.network.send_packet(p, route, wire.pack(wire.PROTO_UDP, source, destination, data),
                              wire.SOCKET_CHANNEL, p.vtime_ns)
        return 0

    def port_unreachable(self, source: InetAddress, destination: InetAddress,
                         at_ns: int) -> None:
        """An ICMP port unreachable for a datagram destination.port never took reached the
        sender: its socket, if connected to that port, reports ECONNREFUSED (udp(7))."""
        for sock in self._udp_bound():
            assert sock.local is not None
            if sock.remote == source and sock.local.port == destination.port:
                sock.error = errno.ECONNREFUSED
                sock.changed(0x8, at_ns)  # POLLERR
                return

    def deliver_udp(self, source: InetAddress, destination: InetAddress, data: bytes,
                    at_ns: int) -> str | None:
        """Hand a datagram to the socket that takes it; the drop reason when none does."""
        best: tuple[int, Udp] | None = None
        for sock in self._udp_bound():
            assert sock.local is not None
            if sock.local.port != destination.port or not sock.takes_host(destination.host):
                continue
            if sock.remote is not None and sock.remote != source:
                continue
            score = (sock.local.host == destination.host) * 2 + (sock.remote is not None)
            if best is None or score > best[0]:
                best = (score, sock)
        if best is None:
            return DROP_NO_SOCKET
        return None if best[1].arrive(data, source, at_ns) else DROP_RCVBUF

    def arrive(self, p: GuestProcess, payload: bytes, at_ns: int) -> str | None:
        """A packet from the fabric reached this node at `at_ns`: the drop reason, if any."""
        packet = wire.unpack(payload)
        if packet is None or not self.is_own(packet.destination.host):
            return DROP_CHECKSUM
        reason: str | None = DROP_NO_SOCKET
        if packet.protocol == wire.PROTO_UDP:
            reason = self.deliver_udp(packet.source, packet.destination, packet.data, at_ns)
            source_node = node_of(packet.source.host, self.node_count)
            if reason == DROP_NO_SOCKET and source_node is not None:
                p.network.send_packet(p, source_node, wire.pack(
                    wire.PROTO_ICMP, packet.destination, packet.source, wire.PORT_UNREACHABLE),
                    wire.SOCKET_CHANNEL, at_ns)
        elif packet.protocol == wire.PROTO_TCP:
            reason = self.tcp_in(p, packet, at_ns)
            self.drain(p)
        elif packet.protocol == wire.PROTO_ICMP and packet.data == wire.PORT_UNREACHABLE:
            self.port_unreachable(packet.source, packet.destination, at_ns)
            reason = None
        wake_if_woken(p)
        return reason

    # -- TCP ---------------------------------------------------------------------------------
    def transmit_tcp(self, p: GuestProcess, sock: Any, segments: list[Any], at_ns: int) -> None:
        """Send a connection's segments: to this node's loopback queue or over the fabric."""
        for seg in segments:
            if sock.local is None or sock.remote is None:
                continue
            payload = wire.pack(wire.PROTO_TCP, sock.local, sock.remote, seg.pack())
            route = self.route(p, sock.remote.host)
            if route is None:
                self.loopback.append((at_ns, payload))
            elif route >= 0:
                p.network.send_packet(p, route, payload, wire.SOCKET_CHANNEL, at_ns)
        self.tcp_changed(p, sock, at_ns)
        self.drain(p)

    def drain(self, p: GuestProcess) -> None:
        """Deliver the loopback queue (what its deliveries send joins its end)."""
        if self._draining:
            return
        self._draining = True
        try:
            while self.loopback:
                at_ns, payload = self.loopback.pop(0)
                packet = wire.unpack(payload)
                assert packet is not None
                self.tcp_in(p, packet, at_ns)
        finally:
            self._draining = False

    def tcp_in(self, p: GuestProcess, packet: wire.Packet, at_ns: int) -> str | None:
        """Hand a TCP segment to its connection or listener; anything else is answered
        with RST (RFC 9293 §3.10.7.1). The drop reason, if it is dropped."""
        seg = Segment.unpack(packet.data)
        if seg is None:
            return DROP_CHECKSUM
        listener = None
        for sock in self.ordered():
            if not isinstance(sock, TcpSocket) or sock.local is None:
                continue
            if (sock.conn is not None and sock.remote == packet.source
                    and sock.local == packet.destination):
                self.transmit_tcp(p, sock, sock.conn.receive(seg, at_ns), at_ns)
                return None
            if (sock.listening and listener is None and sock.local.port == packet.destination.port
                    and sock.takes_host(packet.destination.host)):
                listener = sock
        if listener is not None and seg.flags & SYN and not seg.flags & ACK:
            out = listener.syn_arrived(self, seg, packet.source, packet.destination, at_ns)
            if out is None:
                return DROP_BACKLOG
            child = self.sockets[listener.syn_queue[-1]]
            self.transmit_tcp(p, child, out, at_ns)
            return None
        reset = reset_for(seg)
        if reset is not None:
            answer = wire.pack(wire.PROTO_TCP, packet.destination, packet.source, reset.pack())
            route = self.route(p, packet.source.host)
            if route is None:
                self.loopback.append((at_ns, answer))
            elif route >= 0:
                p.network.send_packet(p, route, answer, wire.SOCKET_CHANNEL, at_ns)
        return DROP_NO_SOCKET

    def tcp_changed(self, p: GuestProcess, sock: Any, at_ns: int) -> None:
        """A connection took input: report what became of it, wake its waiters, move a
        finished handshake into its listener's accept queue, forget a closed socket nobody
        holds."""
        if sock.conn is not None:
            for what in sock.conn.news:
                self.report(p, what, sock, at_ns)
            sock.conn.news.clear()
        sock.changed(TCP_EVENTS, at_ns)
        if sock.parent is not None:
            parent = self.sockets.get(sock.parent)
            if isinstance(parent, TcpSocket):
                parent.child_changed(self, sock, at_ns)
        if sock.orphaned_and_done():
            self.remove(sock.sid)

    @staticmethod
    def report(p: GuestProcess, what: str, sock: Any, at_ns: int) -> None:
        """A `connection` event: what happened to which connection, at which virtual time
        (`at_ns`: an arrival or a timer may find the node's own clock behind)."""
        local = sock.local.text() if sock.local is not None else ""
        remote = sock.remote.text() if sock.remote is not None else ""
        p.emit(EventKind.CONNECTION, what=what, proto="tcp", local=local, remote=remote,
               at_ns=at_ns)

    def configure(self, tcp_config: TcpConfig) -> None:
        """Use these TCP settings, for new connections and those already open."""
        self.tcp_config = tcp_config
        for sock in self.sockets.values():
            if isinstance(sock, TcpSocket) and sock.conn is not None:
                sock.conn.config = tcp_config
                sock.conn.keepalive = sock.keepalive()  # its defaults are the config's

    def next_timer_ns(self) -> int | None:
        """The earliest TCP timer of the node (retransmission, probe, TIME_WAIT)."""
        times = [t for s in self.sockets.values() if isinstance(s, TcpSocket)
                 and s.conn is not None and (t := s.conn.next_timer_ns()) is not None]
        return min(times, default=None)

    def on_timers(self, p: GuestProcess, now_ns: int) -> None:
        """Fire every TCP timer due at now_ns (the controller calls this at their times)."""
        for sock in self.ordered():
            if not isinstance(sock, TcpSocket) or sock.conn is None:
                continue
            due = sock.conn.next_timer_ns()
            if due is not None and due <= now_ns:
                self.transmit_tcp(p, sock, sock.conn.on_timer(now_ns), now_ns)
        wake_if_woken(p)

    # -- checkpoints -------------------------------------------------------------------------
    def save(self) -> dict[str, Any]:
        return {"next_sid": self.next_sid, "next_port": self.next_port,
                "next_autobind": self.next_autobind, "connections": self.connections,
                "sockets": [s.save() for s in self.ordered()]}

    @classmethod
    def load(cls, node_id: int, node_count: int, data: dict[str, Any]) -> NetStack:
        stack = cls(node_id, node_count)
        stack.next_sid, stack.next_port = data["next_sid"], data["next_port"]
        stack.next_autobind = data["next_autobind"]
        stack.connections = data.get("connections", 0)
        for row in data["sockets"]:
            sock = Socket.load(row)
            stack.sockets[sock.sid] = sock
            key = getattr(sock, "key", b"")
            if key:
                stack.unix_names[key] = sock.sid
        return stack


def _covers(sock: Udp, wildcard: bytes, host: bytes) -> bool:
    """Whether a socket bound to a wildcard address also holds `host` (dual stack)."""
    if wildcard == ANY_V4:
        return is_v4(host)
    return not (sock.v6only and is_v4(host))
