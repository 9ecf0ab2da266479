"""A node's sockets and connections as the debugger shows them, read from its network stack.

The reconstructed simulation holds each node's `NetStack` (kernel/net/stack.py) as it was
at the cursor, the same state a checkpoint saves under "net", so the views come from it
directly. The columns are those `ss -tanpo` shows: kind, both ends, the TCP state, the
queues, retransmissions and the next timer. For a listener, as `ss` does, the receive
queue counts the connections waiting to be accepted and the send queue is the backlog.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.net.tcp import Connection
from chaosreplay.kernel.net.tcp_socket import TcpSocket
from chaosreplay.kernel.net.udp import Udp
from chaosreplay.kernel.net.unix import UnixDgram, UnixStream

if TYPE_CHECKING:
    from chaosreplay.kernel.net.stack import NetStack


@dataclass(frozen=True)
class SocketView:
    """One socket endpoint of a node (a connection, a listener, a datagram socket)."""

    sid: int  # its number in the node's stack
    kind: str  # tcp, udp, unix_stream, unix_dgram
    local: str  # address:port (AF_UNIX: the name, @ for abstract; "" unbound)
    remote: str  # the peer ("" none)
    state: str  # TCP: LISTEN or the connection's state; AF_UNIX: its own; UDP: "-"
    send_queue: int  # bytes not yet acknowledged by the peer (TCP; a listener: backlog)
    recv_queue: int  # bytes received, not yet read (a listener: connections to accept)
    retransmits: int  # segments the connection sent again
    timer: str  # the next TCP timer: retransmit, keepalive or time-wait ("" none)
    timer_ns: int | None  # when it fires (virtual ns)
    keepalive_probes: int  # probes sent without an answer since the peer was last heard
    has_descriptor: bool  # False: in a listen queue, or closed and finishing (TIME_WAIT)


def socket_views(stack: NetStack) -> list[SocketView]:
    """Every socket of the stack, by number."""
    return [_view(stack, sock) for sock in stack.ordered()]


def _view(stack: NetStack, sock: Any) -> SocketView:
    if isinstance(sock, TcpSocket):
        return _tcp_view(sock)
    local = sock.local_address()
    peer = sock.peer_address(stack) if not isinstance(sock, Udp) else sock.remote
    state, recv_queue = "-", 0
    if isinstance(sock, Udp):
        recv_queue = sock.queued
    elif isinstance(sock, UnixStream):
        state, recv_queue = sock.state, len(sock.received)
    elif isinstance(sock, UnixDgram):
        state = "connected" if sock.peer is not None else "unconnected"
        recv_queue = sum(len(data) for data, _ in sock.records)
    return SocketView(sock.sid, sock.kind, local.text() if local is not None else "",
                      peer.text() if peer is not None and not isinstance(peer, int) else "",
                      state, 0, recv_queue, 0, "", None, 0, sock.has_file)


def _tcp_view(sock: TcpSocket) -> SocketView:
    local = sock.local.text() if sock.local is not None else ""
    remote = sock.remote.text() if sock.remote is not None else ""
    conn = sock.conn
    if sock.listening or conn is None:
        return SocketView(sock.sid, sock.kind, local, remote,
                          "LISTEN" if sock.listening else "CLOSED",
                          sock.backlog_max if sock.listening else 0, len(sock.accept_queue),
                          0, "", None, 0, sock.has_file)
    timer, timer_ns = _next_timer(conn)
    return SocketView(sock.sid, sock.kind, local, remote, conn.state, conn.unacknowledged,
                      conn.readable, conn.retransmits, timer, timer_ns, conn.keepalive_probes,
                      sock.has_file)


def _next_timer(conn: Connection) -> tuple[str, int | None]:
    """Which of the connection's timers fires first, and when."""
    timers = [(at, name) for at, name in ((conn.rtx_deadline, "retransmit"),
                                          (conn.keepalive_deadline, "keepalive"),
                                          (conn.time_wait_deadline, "time-wait"))
              if at is not None]
    if not timers:
        return "", None
    at, name = min(timers)
    return name, at
