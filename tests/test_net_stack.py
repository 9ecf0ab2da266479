"""The node's network stack without a VM: addresses, the wire checksum, options, AF_UNIX
and UDP endpoints, and the stack's saved state and its checks."""

from __future__ import annotations

import copy
import errno
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaosreplay.kernel.fs.files import POLLERR, POLLHUP, POLLRDHUP, READABLE, WRITABLE
from chaosreplay.kernel.fs.paths import ROOT
from chaosreplay.kernel.net import options, wire
from chaosreplay.kernel.net.addresses import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    ANY_V4,
    LOOPBACK_V4,
    InetAddress,
    UnixAddress,
    node_address,
    node_host,
    node_of,
    pack,
    parse,
)
from chaosreplay.kernel.net.sockets import Received
from chaosreplay.kernel.net.stack import STATE, NetStack
from chaosreplay.kernel.net.tcp_socket import TcpSocket
from chaosreplay.kernel.net.udp import Udp
from chaosreplay.kernel.net.unix import UnixDgram, UnixStream
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.schema import SchemaError, validate


class FakeNetwork:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, int, int]] = []

    def send_packet(self, p: Any, dst: int, payload: bytes, channel: int, at_ns: int) -> None:
        self.sent.append((dst, payload, channel, at_ns))


def process(node: int = 0, count: int = 3, network: Any = None) -> Any:
    return SimpleNamespace(vtime_ns=5, cwd=ROOT, network=network, node_id=node, waiting=None,
                           wake_at_ns=None, emit=lambda kind, **fields: None)


# -- addresses ----------------------------------------------------------------------------------
def test_node_addresses_round_trip_and_match_etc_hosts() -> None:
    from chaosreplay.kernel.fs import etcfs

    for index in (0, 1, 253, 254, 1000):
        assert node_of(node_host(index), 2000) == index
    assert node_address(0) == "10.0.0.1" and node_address(254) == "10.0.1.1"
    assert node_of(node_host(5), 5) is None  # no such node in a run of five
    assert etcfs.node_address is node_address  # one source of truth for /etc/hosts


@pytest.mark.parametrize("address, family", [
    (InetAddress(node_host(2), 7000), AF_INET),
    (InetAddress(b"\0" * 15 + b"\1", 53), AF_INET6),
    (InetAddress(node_host(1), 80), AF_INET6),  # v4-mapped
    (UnixAddress(b"/run/x.sock"), AF_UNIX),
    (UnixAddress(b"\0abstract"), AF_UNIX),
])
def test_a_sockaddr_parses_back_to_what_was_packed(address, family) -> None:
    assert parse(pack(address, family), family) == address


def test_family_mismatches_are_refused_as_linux_does() -> None:
    v4 = pack(InetAddress(LOOPBACK_V4, 1), AF_INET)
    assert parse(v4, AF_INET6) == -errno.EAFNOSUPPORT
    assert parse(v4[:8], AF_INET) == -errno.EINVAL
    assert parse(b"\1", AF_UNIX) == -errno.EINVAL


# -- the wire -----------------------------------------------------------------------------------
@given(st.binary(max_size=200), st.data())
def test_any_flipped_bit_fails_the_checksum(data: bytes, draw) -> None:
    raw = wire.pack(wire.PROTO_UDP, InetAddress(node_host(0), 40000),
                    InetAddress(node_host(1), 7), data)
    assert wire.unpack(raw) == wire.Packet(wire.PROTO_UDP, InetAddress(node_host(0), 40000),
                                           InetAddress(node_host(1), 7), data)
    bit = draw.draw(st.integers(0, len(raw) * 8 - 1))
    bent = bytearray(raw)
    bent[bit // 8] ^= 1 << (bit % 8)
    assert wire.unpack(bytes(bent)) is None


def test_tcp_fields_describe_a_segment_and_nothing_else() -> None:
    """What packet events say of a TCP segment (sender first, flags by name, data length
    without the header); UDP, ICMP and short packets have none."""
    from chaosreplay.kernel.net.tcp_segment import ACK, PSH, Segment

    a, b = InetAddress(node_host(0), 40000), InetAddress(node_host(1), 80)
    raw = wire.pack(wire.PROTO_TCP, a, b, Segment(7, 9, ACK | PSH, 500, b"hello").pack())
    assert wire.tcp_fields(raw) == {"src": "10.0.0.1:40000", "dst": "10.0.0.2:80",
                                    "flags": "ACK|PSH", "seq": 7, "ack": 9, "len": 5,
                                    "window": 500}
    assert wire.tcp_fields(wire.pack(wire.PROTO_UDP, a, b, b"x" * 20)) is None
    assert wire.tcp_fields(wire.pack(wire.PROTO_ICMP, a, b, wire.PORT_UNREACHABLE)) is None
    assert wire.tcp_fields(raw[:wire.HEADER_SIZE + 3]) is None and wire.tcp_fields(b"") is None


# -- options ------------------------------------------------------------------------------------
@pytest.mark.parametrize("level, name, value, stored", [
    (options.SOL_SOCKET, options.SO_SNDBUF, 4096, 8192),
    (options.SOL_SOCKET, options.SO_SNDBUF, 1, options.SNDBUF_MIN),
    (options.SOL_SOCKET, options.SO_RCVBUF, 1 << 30, 2 * options.BUFFER_MAX),
    (options.SOL_SOCKET, options.SO_REUSEADDR, 7, 1),
    (options.IPPROTO_TCP, options.TCP_NODELAY, 5, 1),
    (options.IPPROTO_TCP, options.TCP_KEEPIDLE, 30, 30),
    (options.IPPROTO_TCP, options.TCP_KEEPCNT, 0, -errno.EINVAL),
])
def test_option_values_are_stored_as_linux_reads_them_back(level, name, value, stored) -> None:
    assert options.decode(level, name, value.to_bytes(4, "little", signed=True)) == stored


def test_timeouts_and_linger_round_trip() -> None:
    raw = (3).to_bytes(8, "little") + (250_000).to_bytes(8, "little")
    ns = options.decode(options.SOL_SOCKET, options.SO_RCVTIMEO_OLD, raw)
    assert ns == 3_250_000_000
    assert options.encode(options.SOL_SOCKET, options.SO_RCVTIMEO_OLD, ns) == raw
    linger = options.decode(options.SOL_SOCKET, options.SO_LINGER, b"\1\0\0\0\5\0\0\0")
    assert options.encode(options.SOL_SOCKET, options.SO_LINGER, linger) == b"\1\0\0\0\5\0\0\0"


# -- AF_UNIX ------------------------------------------------------------------------------------
def connected_streams(stack: NetStack) -> tuple[UnixStream, UnixStream]:
    a, b = stack.add(UnixStream), stack.add(UnixStream)
    a.pair(b)  # type: ignore[attr-defined]
    a.has_file = b.has_file = True
    return a, b  # type: ignore[return-value]


def test_a_stream_sender_may_queue_at_most_its_sndbuf_at_the_peer() -> None:
    stack, p = NetStack(0, 1), process()
    a, b = connected_streams(stack)
    a.options[(options.SOL_SOCKET, options.SO_SNDBUF)] = 8192
    assert a.send(stack, p, b"x" * 10_000, None, 0) == 8192
    assert a.send(stack, p, b"y", None, 0) == -errno.EAGAIN
    assert not a.readiness(stack, WRITABLE)
    got = b.recv(stack, p, 7000, 0)
    assert isinstance(got, Received) and len(got.data) == 7000
    assert a.readiness(stack, WRITABLE) == WRITABLE  # 1192 queued: under a quarter


def test_closing_a_stream_end_hangs_up_and_resets_the_peer_when_data_was_unread() -> None:
    stack, p = NetStack(0, 1), process()
    a, b = connected_streams(stack)
    a.send(stack, p, b"unread", None, 0)
    b.release(stack, p)
    assert a.readiness(stack, READABLE | WRITABLE | POLLRDHUP) == (
        POLLHUP | POLLRDHUP | READABLE | WRITABLE | POLLERR)
    assert a.recv(stack, p, 10, 0) == -errno.ECONNRESET
    got = a.recv(stack, p, 10, 0)
    assert isinstance(got, Received) and got.data == b""
    assert a.send(stack, p, b"x", None, 0) == -errno.EPIPE


def test_a_full_backlog_makes_connect_wait_and_accept_frees_it() -> None:
    stack, p = NetStack(0, 1), process()
    server = stack.add(UnixStream)
    assert server.bind(stack, p, UnixAddress(b"srv")) == 0
    assert server.listen(stack, p, 0) == 0
    first, second = stack.add(UnixStream), stack.add(UnixStream)
    assert first.connect(stack, p, UnixAddress(b"/srv")) == 0  # relative and absolute agree
    assert second.connect(stack, p, UnixAddress(b"srv")) == -errno.EAGAIN
    accepted = server.accept(stack, p)
    assert isinstance(accepted, UnixStream) and accepted.peer == first.sid
    assert second.connect(stack, p, UnixAddress(b"srv")) == 0
    assert stack.add(UnixStream).bind(stack, p, UnixAddress(b"/srv")) == -errno.EADDRINUSE


def test_datagram_records_keep_their_boundaries_and_sender() -> None:
    stack, p = NetStack(0, 1), process()
    a, b = stack.add(UnixDgram), stack.add(UnixDgram)
    a.bind(stack, p, UnixAddress(b""))  # autobind: an abstract name
    b.bind(stack, p, UnixAddress(b"/b"))
    assert a.send(stack, p, b"one", UnixAddress(b"/b"), 0) == 3
    assert a.send(stack, p, b"two!", UnixAddress(b"/b"), 0) == 4
    got = b.recv(stack, p, 2, 0)
    assert isinstance(got, Received) and (got.data, got.full_size) == (b"on", 3)
    assert got.source == UnixAddress(b"\0" + b"00000")
    assert b.pending_bytes() == 4


# -- UDP ----------------------------------------------------------------------------------------
def test_ephemeral_ports_are_handed_out_in_order_skipping_taken_ones() -> None:
    stack, p = NetStack(0, 1), process()
    fixed = stack.add(Udp)
    assert fixed.bind(stack, p, InetAddress(ANY_V4, 32769)) == 0
    ports = []
    for _ in range(3):
        sock = stack.add(Udp)
        assert sock.bind(stack, p, InetAddress(ANY_V4, 0)) == 0
        ports.append(sock.local.port)  # type: ignore[union-attr]
    assert ports == [32768, 32770, 32771]


def test_a_datagram_goes_to_the_best_matching_socket_or_is_dropped() -> None:
    stack, p = NetStack(1, 3), process(1)
    wild, exact = stack.add(Udp), stack.add(Udp)
    for sock in (wild, exact):
        sock.options[(options.SOL_SOCKET, options.SO_REUSEADDR)] = 1
    assert wild.bind(stack, p, InetAddress(ANY_V4, 9)) == 0
    assert exact.bind(stack, p, InetAddress(node_host(1), 9)) == 0
    src = InetAddress(node_host(0), 40000)
    assert stack.deliver_udp(src, InetAddress(node_host(1), 9), b"hi", 7) is None
    assert exact.queue_data and not wild.queue_data
    assert stack.deliver_udp(src, InetAddress(node_host(1), 10), b"hi", 7) == "no_socket"
    exact.options[(options.SOL_SOCKET, options.SO_RCVBUF)] = 4608
    assert stack.deliver_udp(src, InetAddress(node_host(1), 9), b"x" * 5000, 7) == "rcvbuf_full"


def test_a_datagram_to_another_node_becomes_one_fabric_packet() -> None:
    network = FakeNetwork()
    stack, p = NetStack(0, 2), process(0, network=network)
    sock = stack.add(Udp)
    assert sock.send(stack, p, b"ping", InetAddress(node_host(1), 7000), 0) == 4
    ((dst, payload, channel, at_ns),) = network.sent
    packet = wire.unpack(payload)
    assert (dst, channel, at_ns) == (1, wire.SOCKET_CHANNEL, 5)
    assert packet is not None and packet.source == InetAddress(node_host(0), 32768)
    assert sock.send(stack, p, b"x", InetAddress(node_host(2), 1), 0) == -errno.ENETUNREACH


def test_an_arrival_for_no_socket_answers_port_unreachable_to_a_connected_sender() -> None:
    net0, net1 = FakeNetwork(), FakeNetwork()
    s0, s1 = NetStack(0, 2), NetStack(1, 2)
    p0, p1 = process(0, network=net0), process(1, network=net1)
    p0.waiting = p1.waiting = None
    p0.wake_at_ns = p1.wake_at_ns = None
    client = s0.add(Udp)
    assert client.connect(s0, p0, InetAddress(node_host(1), 53)) == 0
    client.send(s0, p0, b"q", None, 0)
    assert s1.arrive(p1, net0.sent[0][1], 9) == "no_socket"
    assert s0.arrive(p0, net1.sent[0][1], 11) is None
    assert client.readiness(s0, READABLE) & POLLERR
    assert client.recv(s0, p0, 10, 0) == -errno.ECONNREFUSED


# -- saved state --------------------------------------------------------------------------------
def busy_stack() -> NetStack:
    stack, p = NetStack(0, 2), process()
    server = stack.add(UnixStream)
    server.bind(stack, p, UnixAddress(b"/srv"))
    server.listen(stack, p, 4)
    client = stack.add(UnixStream)
    client.connect(stack, p, UnixAddress(b"/srv"))
    client.send(stack, p, b"queued", None, 0)
    dgram = stack.add(UnixDgram)
    dgram.bind(stack, p, UnixAddress(b"\0d"))
    udp = stack.add(Udp, v6=True)
    udp.bind(stack, p, InetAddress(b"\0" * 16, 5353))
    udp.arrive(b"dgram", InetAddress(node_host(1), 1), 3)
    listener = stack.add(TcpSocket)
    listener.bind(stack, p, InetAddress(LOOPBACK_V4, 80))
    listener.listen(stack, p, 8)
    client = stack.add(TcpSocket)
    assert client.connect(stack, p, InetAddress(LOOPBACK_V4, 80)) == -errno.EINPROGRESS
    assert client.connect_outcome() == 0  # the loopback handshake is done already
    client.send(stack, p, b"request", None, 0)
    return stack


def test_a_stack_saves_loads_and_saves_the_same() -> None:
    saved = unpackb(packb(busy_stack().save()), "net")
    validate(saved, STATE, "net")
    again = NetStack.load(0, 2, saved)
    assert again.save() == saved
    assert again.unix_names == {b"/srv": 1, b"\0d": 4}
    kinds = [row[1] for row in saved["sockets"]]
    assert kinds == ["unix_stream", "unix_stream", "unix_stream", "unix_dgram", "udp", "tcp",
                     "tcp", "tcp"]  # the listener's child waits in its accept queue
    listener, _, child = (again.sockets[sid] for sid in (6, 7, 8))
    assert listener.accept_queue == [8] and child.conn.readable == 7


@pytest.mark.parametrize("edit, message", [
    (lambda s: s["sockets"].append(copy.deepcopy(s["sockets"][0])), "names a socket number twice"),
    (lambda s: s.update(next_sid=2), "has a socket numbered at or above next_sid 2"),
    (lambda s: s["sockets"][0][7][6].append(99), "has socket 1 naming missing socket 99"),
    (lambda s: s["sockets"][3][7].__setitem__(1, b"/srv"), "binds the AF_UNIX name b'/srv' twice"),
    (lambda s: s["sockets"][0].__setitem__(1, "raw"), "unknown socket kind 'raw'"),
    (lambda s: s["sockets"][4][7].__setitem__(1, [b"short", 1]), "is 5 bytes, not 16"),
    (lambda s: s["sockets"][5][7][5].append(99), "has socket 6 naming missing socket 99"),
    (lambda s: s["sockets"][6][7][8].__setitem__(0, "LIMBO"), "sockets[6][7] is not [bool"),
    (lambda s: s["sockets"][0][7].__setitem__(2, "open"), "is not one of"),
])
def test_a_bad_saved_stack_is_refused(edit, message) -> None:
    saved = unpackb(packb(busy_stack().save()), "net")
    edit(saved)
    with pytest.raises(SchemaError) as caught:
        validate(saved, STATE, "net")
    assert message in str(caught.value)


def test_a_tcp_segment_to_no_connection_is_answered_with_a_reset() -> None:
    from chaosreplay.kernel.net.tcp_segment import RST, SYN, Segment

    network = FakeNetwork()
    stack, p = NetStack(1, 2), process(1, network=network)
    syn = wire.pack(wire.PROTO_TCP, InetAddress(node_host(0), 40000),
                    InetAddress(node_host(1), 80), Segment(7, 0, SYN, 1000).pack())
    assert stack.arrive(p, syn, 10) == "no_socket"
    ((dst, payload, _, at_ns),) = network.sent
    answer = wire.unpack(payload)
    assert answer is not None and (dst, at_ns) == (0, 10)
    reset = Segment.unpack(answer.data)
    assert reset is not None and reset.flags & RST and reset.ack == 8


def test_a_full_listen_backlog_drops_the_syn() -> None:
    from chaosreplay.kernel.net.tcp_segment import SYN, Segment

    network = FakeNetwork()
    stack, p = NetStack(1, 2), process(1, network=network)
    listener = stack.add(TcpSocket)
    listener.bind(stack, p, InetAddress(ANY_V4, 80))
    listener.listen(stack, p, 0)  # room for one connection in the making
    reasons = []
    for port in (40000, 40001):
        syn = wire.pack(wire.PROTO_TCP, InetAddress(node_host(0), port),
                        InetAddress(node_host(1), 80), Segment(7, 0, SYN, 1000).pack())
        reasons.append(stack.arrive(p, syn, 10))
    assert reasons == [None, "backlog_full"] and len(listener.syn_queue) == 1
