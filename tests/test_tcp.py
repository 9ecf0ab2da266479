"""The TCP state machine (kernel/net/tcp.py) against a fake link that loses, delays,
reorders and duplicates segments: handshake, reliable in-order delivery, flow control,
RFC 6298 timers with backoff, FIN/RST, TIME_WAIT, and saved state."""

from __future__ import annotations

import errno
import heapq
import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chaosreplay.kernel.net.tcp import (
    CLOSE_WAIT,
    CLOSED,
    ESTABLISHED,
    FIN_WAIT_2,
    MS,
    SYN_SENT,
    TIME_WAIT,
    Connection,
    KeepAlive,
    TcpConfig,
)
from chaosreplay.kernel.net.tcp_segment import ACK, RST, SYN, Segment, reset_for, seq_add
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.schema import validate


class Link:
    """Two ends and the segments between them, on one virtual clock."""

    def __init__(self, rng: random.Random, *, loss: float = 0.0, reorder: float = 0.0,
                 duplicate: float = 0.0, latency: int = 5 * MS, config: TcpConfig | None = None,
                 client_iss: int = 1000, server_iss: int = 5000) -> None:
        self.rng, self.loss, self.reorder, self.duplicate = rng, loss, reorder, duplicate
        self.latency = latency
        self.config = config or TcpConfig()
        self.server_iss = server_iss
        self.now = 0
        self.queue: list[tuple[int, int, str, Segment]] = []
        self.count = 0
        self.client = Connection(self.config, client_iss)
        self.server: Connection | None = None
        self.down = False  # a partition: everything is lost
        self.sent: list[tuple[int, str, Segment]] = []

    def transmit(self, src: str, segments: list[Segment]) -> None:
        for seg in segments:
            self.sent.append((self.now, src, seg))
            if self.down or self.rng.random() < self.loss:
                continue
            copies = 2 if self.rng.random() < self.duplicate else 1
            for _ in range(copies):
                delay = self.latency + (self.rng.randrange(1, 20 * MS)
                                        if self.rng.random() < self.reorder else 0)
                self.count += 1
                heapq.heappush(self.queue, (self.now + delay, self.count,
                                            "server" if src == "client" else "client", seg))

    def ends(self) -> list[tuple[str, Connection]]:
        return [("client", self.client)] + ([("server", self.server)] if self.server else [])

    def step(self) -> bool:
        """Do the next delivery or timer; False when nothing is left to happen."""
        times = [(t, 0, name) for name, c in self.ends() if (t := c.next_timer_ns()) is not None]
        if self.queue:
            times.append((self.queue[0][0], 1, ""))
        if not times:
            return False
        at, kind, name = min(times)
        self.now = max(self.now, at)
        if kind == 0:
            conn = self.client if name == "client" else self.server
            assert conn is not None
            self.transmit(name, conn.on_timer(self.now))
            return True
        _, _, dst, seg = heapq.heappop(self.queue)
        if dst == "server" and self.server is None:
            if seg.flags & SYN and not seg.flags & ACK:
                self.server, out = Connection.accept_syn(self.config, self.server_iss, seg,
                                                         self.now)
                self.transmit("server", out)
            return True
        conn = self.client if dst == "client" else self.server
        assert conn is not None
        if conn.state == CLOSED:  # what the stack does for a segment to no connection
            self.transmit(dst, [r for r in [reset_for(seg)] if r is not None])
            return True
        self.transmit(dst, conn.receive(seg, self.now))
        return True


def exchange(link: Link, up: bytes, down: bytes, limit_ns: int = 600_000 * MS,
             read: bool = True) -> tuple[bytes, bytes]:
    """Open, send `up` client→server and `down` back, close both; what each side read."""
    link.transmit("client", link.client.connect(link.now))
    got_up, got_down = bytearray(), bytearray()
    sent_up = sent_down = 0
    closed = set()
    while link.now < limit_ns:
        for name, conn in link.ends():
            data, pos = (up, sent_up) if name == "client" else (down, sent_down)
            if conn.state in (ESTABLISHED, CLOSE_WAIT) and pos < len(data):
                taken, out = conn.send(data[pos:pos + 7000], link.now)
                link.transmit(name, out)
                if name == "client":
                    sent_up += taken
                else:
                    sent_down += taken
            if read:
                chunk, out = conn.read(1 << 20, link.now)
                (got_up if name == "server" else got_down).extend(chunk)
                link.transmit(name, out)
            done = pos >= len(data) if name == "client" else sent_down >= len(down)
            if done and name not in closed and conn.state in (ESTABLISHED, CLOSE_WAIT):
                closed.add(name)
                link.transmit(name, conn.close(link.now))
        if not link.step():
            break
    return bytes(got_up), bytes(got_down)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32), size_up=st.integers(0, 60_000), size_down=st.integers(0, 9000),
       loss=st.sampled_from([0.0, 0.1, 0.3]), reorder=st.sampled_from([0.0, 0.3]),
       duplicate=st.sampled_from([0.0, 0.2]), iss=st.integers(0, 2**32 - 1))
@example(seed=1, size_up=50_000, size_down=5000, loss=0.3, reorder=0.3, duplicate=0.2,
         iss=2**32 - 20_000)  # both directions' sequence numbers wrap mid-transfer
@example(seed=13261401, size_up=3461, size_down=4129, loss=0.3, reorder=0.3, duplicate=0.2,
         iss=0)  # both ends retransmitting: ACKs sent at a rewound snd_nxt were dropped
def test_bytes_arrive_intact_and_in_order_over_a_bad_link(seed, size_up, size_down, loss,
                                                          reorder, duplicate, iss) -> None:
    """Whatever the link loses, reorders or duplicates (and wherever sequence numbers
    wrap), each side reads exactly the bytes the other sent, and both ends close."""
    rng = random.Random(seed)
    up, down = rng.randbytes(size_up), rng.randbytes(size_down)
    link = Link(rng, loss=loss, reorder=reorder, duplicate=duplicate, client_iss=iss,
                server_iss=(iss * 7 + 3) % 2**32)
    got_up, got_down = exchange(link, up, down)
    assert got_up == up and got_down == down
    assert link.server is not None
    assert {link.client.state, link.server.state} <= {CLOSED}, (link.client.state,
                                                               link.server.state)
    assert link.client.error == link.server.error == 0


def test_the_handshake_takes_one_round_trip_and_measures_it() -> None:
    link = Link(random.Random(1), latency=10 * MS)
    link.transmit("client", link.client.connect(0))
    while link.client.state == SYN_SENT:
        link.step()
    assert link.client.state == ESTABLISHED and link.now == 20 * MS
    # RFC 6298 §2.2: SRTT = R, RTTVAR = R/2, RTO = SRTT + 4 RTTVAR
    assert (link.client.srtt, link.client.rttvar) == (20 * MS, 10 * MS)
    assert link.client.rto == 200 * MS  # 20 + 4 * 10 = 60 ms, clamped up to rto_min


def test_rtt_samples_follow_rfc_6298() -> None:
    conn = Connection(TcpConfig(rto_min_ns=1), 0)
    samples = [100 * MS, 140 * MS, 60 * MS]
    srtt = rttvar = None
    for sample in samples:
        conn.timed = (10, 1000)
        conn._sample_rtt(10, 1000 + sample)
        if srtt is None:
            srtt, rttvar = sample, sample // 2
        else:
            rttvar = (3 * rttvar + abs(srtt - sample)) // 4
            srtt = (7 * srtt + sample) // 8
        assert (conn.srtt, conn.rttvar) == (srtt, rttvar)
    assert conn._computed_rto() == srtt + 4 * rttvar


def test_connecting_to_a_node_that_is_down_backs_off_then_times_out() -> None:
    """SYN at 0, then after 1, 2, 4, 8, 16, 32 s; ETIMEDOUT 64 s after the last (127 s)."""
    link = Link(random.Random(0))
    link.down = True
    link.transmit("client", link.client.connect(0))
    while link.step():
        pass
    syns = [at for at, who, seg in link.sent if who == "client" and seg.flags & SYN]
    assert syns == [s * 1000 * MS for s in (0, 1, 3, 7, 15, 31, 63)]
    assert (link.client.state, link.client.error, link.now) == (CLOSED, errno.ETIMEDOUT,
                                                                127_000 * MS)


def test_a_reset_answering_the_syn_is_connection_refused() -> None:
    client = Connection(TcpConfig(), 77)
    (syn,) = client.connect(0)
    rst = reset_for(syn)
    assert rst is not None and rst.flags == RST | ACK and rst.ack == seq_add(77, 1)
    assert client.receive(rst, 5 * MS) == []
    assert (client.state, client.error) == (CLOSED, errno.ECONNREFUSED)
    assert reset_for(rst) is None  # a reset is never answered


def test_a_partition_during_transfer_ends_in_etimedout_after_retries2() -> None:
    config = TcpConfig(retries2=4)
    link = Link(random.Random(2), config=config)
    link.transmit("client", link.client.connect(0))
    while link.client.state != ESTABLISHED or link.server is None:
        link.step()
    link.down = True
    _, out = link.client.send(b"lost" * 100, link.now)
    link.transmit("client", out)
    start = link.now
    while link.step():
        pass
    assert (link.client.state, link.client.error) == (CLOSED, errno.ETIMEDOUT)
    assert link.client.retransmits == 4
    rto = 200 * MS  # the measured RTO (10 ms RTT) is clamped up to rto_min
    assert link.now - start == sum(rto << k for k in range(5))


def test_a_receiver_that_does_not_read_closes_the_window_and_reopens_it() -> None:
    config = TcpConfig(buffer=8000)
    link = Link(random.Random(3), config=config)
    link.transmit("client", link.client.connect(0))
    while link.server is None or link.client.state != ESTABLISHED:
        link.step()
    data = bytes(range(256)) * 60  # 15360 bytes: more than the window
    link.client.send_size = 1 << 20  # the sender could queue it all
    taken, out = link.client.send(data, link.now)
    assert taken == len(data)
    link.transmit("client", out)
    for _ in range(200):
        link.step()
    server = link.server
    assert server.readable == 8000 and link.client.snd_wnd == 0
    probes = [seg for _, who, seg in link.sent if who == "client" and len(seg.data) == 1]
    assert probes, "no zero-window probe"
    got = bytearray()
    while len(got) < taken:
        chunk, out = server.read(1 << 20, link.now)
        got += chunk
        link.transmit("server", out)
        if not link.step():
            break
    assert bytes(got) == data[:taken]


def test_time_wait_holds_then_closes() -> None:
    config = TcpConfig(time_wait_ns=500 * MS)
    link = Link(random.Random(4), config=config)
    link.transmit("client", link.client.connect(0))
    while link.server is None or link.client.state != ESTABLISHED:
        link.step()
    link.transmit("client", link.client.close(link.now))
    while link.client.state != FIN_WAIT_2:
        link.step()
    link.transmit("server", link.server.close(link.now))
    while link.client.state != TIME_WAIT:
        link.step()
    entered = link.now
    while link.step():
        pass
    assert link.client.state == CLOSED and link.now == entered + 500 * MS


def test_a_reset_in_an_established_connection_is_connection_reset() -> None:
    link = Link(random.Random(5))
    link.transmit("client", link.client.connect(0))
    while link.server is None or link.client.state != ESTABLISHED:
        link.step()
    link.transmit("server", link.server.abort(link.now))
    while link.step():
        pass
    assert (link.client.state, link.client.error) == (CLOSED, errno.ECONNRESET)


def test_an_out_of_window_reset_is_ignored() -> None:
    link = Link(random.Random(6))
    link.transmit("client", link.client.connect(0))
    while link.server is None or link.client.state != ESTABLISHED:
        link.step()
    bogus = Segment(seq_add(link.client.rcv_nxt, 1 << 30), 0, RST, 0)
    assert link.client.receive(bogus, link.now) == [] and link.client.state == ESTABLISHED
    near = Segment(seq_add(link.client.rcv_nxt, 10), 0, RST, 0)
    (challenge,) = link.client.receive(near, link.now)  # RFC 5961: in window, not exact
    assert challenge.flags == ACK and link.client.state == ESTABLISHED


def test_saved_connections_continue_exactly_as_the_originals() -> None:
    """Save both ends mid-transfer (through msgpack, checked by STATE), load them, and the
    rest of the run is segment for segment what the unsaved run does."""
    def run(save_at: int | None) -> list:
        rng = random.Random(9)
        link = Link(rng, loss=0.2, reorder=0.2)
        data = rng.randbytes(30_000)
        link.transmit("client", link.client.connect(0))
        pos = steps = 0
        while link.step() and steps < 3000:
            steps += 1
            if link.client.state == ESTABLISHED and pos < len(data):
                taken, out = link.client.send(data[pos:], link.now)
                pos += taken
                link.transmit("client", out)
            if link.server is not None:
                _, out = link.server.read(1 << 20, link.now)
                link.transmit("server", out)
            if steps == save_at:
                for attr in ("client", "server"):
                    conn = getattr(link, attr)
                    saved = unpackb(packb(conn.save()), "tcp")
                    validate(saved, Connection.STATE, "tcp")
                    setattr(link, attr, Connection.load(link.config, saved))
        return [(at, who, seg) for at, who, seg in link.sent]

    assert run(None) == run(40) == run(200)


def test_loss_is_repaired_by_retransmission() -> None:
    rng = random.Random(11)
    data = rng.randbytes(40_000)
    link = Link(rng, loss=0.25)
    got, _ = exchange(link, data, b"")
    assert got == data and link.client.retransmits > 0


# -- keepalive -------------------------------------------------------------------------------
KEEPALIVE = KeepAlive(idle_ns=2000 * MS, interval_ns=1000 * MS, probes=3)


def _established(link: Link, keepalive: KeepAlive | None = KEEPALIVE) -> int:
    """Open the link's connection with keepalive set on the client beforehand; when the
    client became established."""
    link.client.keepalive = keepalive
    link.transmit("client", link.client.connect(link.now))
    while link.client.state != ESTABLISHED:
        link.step()
    at = link.now
    while link.server is None or link.server.state != ESTABLISHED:
        link.step()
    return at


def _probes(link: Link, who: str = "client") -> list[tuple[int, Segment]]:
    """The keepalive probes one end sent: no data, one before what the other end expects."""
    other = link.server if who == "client" else link.client
    assert other is not None
    return [(at, seg) for at, src, seg in link.sent if src == who and seg.flags == ACK
            and not seg.data and seg.seq == seq_add(other.rcv_nxt, -1)]


def test_keepalive_gives_up_on_a_silent_peer_with_etimedout() -> None:
    """Idle 2 s, then a probe (seq one before snd_nxt, no data) every 1 s; the fourth would
    be past TCP_KEEPCNT = 3, so 2 + 3 * 1 s after the last segment heard the connection is
    reset and fails with ETIMEDOUT."""
    link = Link(random.Random(20))
    established = _established(link)
    link.down = True  # a partition that never heals: nothing reaches the peer any more
    while link.step():
        pass
    probes = _probes(link)
    assert [at - established for at, _ in probes] == [2000 * MS, 3000 * MS, 4000 * MS], probes
    assert all(seg.seq == seq_add(link.client.snd_nxt, -1) for _, seg in probes)
    assert (link.client.state, link.client.error) == (CLOSED, errno.ETIMEDOUT)
    assert link.now - established == 5000 * MS
    at, src, last = link.sent[-1]
    assert (at, src, last.flags) == (link.now, "client", RST | ACK)  # tcp_send_active_reset
    assert link.client.news[-1] == "timeout"


def test_a_live_peer_answers_keepalive_probes_and_the_connection_stays() -> None:
    """Each probe is answered with an ACK (the probe is just left of the peer's window), so
    the next one comes a whole idle time after that answer, and none ever counts as lost."""
    link = Link(random.Random(21), latency=5 * MS)
    established = _established(link)
    while link.now < established + 20_000 * MS and link.step():
        pass
    probes = [(at, seg) for at, seg in _probes(link) if at < link.now - 10 * MS]
    assert [at - established for at, _ in probes][:3] == [2000 * MS, 4010 * MS, 6020 * MS]
    answers = [(at, seg) for at, src, seg in link.sent
               if src == "server" and at > established + 10 * MS]
    assert len(answers) == len(probes) >= 9
    assert all(seg.ack == link.client.snd_nxt for _, seg in answers)
    assert link.client.state == link.server.state == ESTABLISHED
    assert link.client.error == 0 and link.client.keepalive_probes in (0, 1)
    assert link.server.readable == 0  # a probe is never data


def test_keepalive_waits_while_data_is_unacknowledged() -> None:
    """With bytes in flight the retransmission timer watches the peer: no probe is sent,
    and the connection ends the way unacknowledged data ends (retries2), not by keepalive."""
    link = Link(random.Random(22), config=TcpConfig(retries2=3))
    _established(link)
    link.down = True
    start = link.now
    _, out = link.client.send(b"unanswered", link.now)
    link.transmit("client", out)
    while link.step():
        pass
    assert _probes(link) == []
    assert (link.client.state, link.client.error) == (CLOSED, errno.ETIMEDOUT)
    assert link.client.retransmits == 3
    assert link.now - start == sum(200 * MS << k for k in range(4))  # past the 2 s idle time


def test_without_so_keepalive_an_idle_connection_has_no_timer() -> None:
    link = Link(random.Random(23))
    _established(link, keepalive=None)
    link.down = True
    assert link.client.next_timer_ns() is None and not link.step()
    assert link.client.state == ESTABLISHED


def test_turning_keepalive_on_and_changing_its_idle_time_reschedule_the_probe() -> None:
    """As Linux: SO_KEEPALIVE on counts a whole idle time from then; a new TCP_KEEPIDLE
    counts from the last segment heard; SO_KEEPALIVE off stops the timer."""
    link = Link(random.Random(24))
    established = _established(link, keepalive=None)
    link.client.set_keepalive(KEEPALIVE, established + 500 * MS)
    assert link.client.next_timer_ns() == established + 2500 * MS
    link.client.set_keepalive(KEEPALIVE._replace(idle_ns=1000 * MS), established + 700 * MS,
                              idle_set=True)
    assert link.client.next_timer_ns() == established + 1000 * MS
    link.client.set_keepalive(KEEPALIVE._replace(idle_ns=100 * MS), established + 700 * MS,
                              idle_set=True)  # already past it: probe now
    assert link.client.next_timer_ns() == established + 700 * MS
    link.client.set_keepalive(None, established + 800 * MS)
    assert link.client.next_timer_ns() is None


def test_a_connection_saved_while_probing_probes_on_identically() -> None:
    """Save the client between two unanswered probes; loaded (with its socket's settings
    set again, as the socket's load does) it sends the same probes and fails at the same
    time; a row saved before keepalive (files version 4) still loads."""
    def run(save: bool) -> list:
        link = Link(random.Random(25))
        _established(link)
        link.down = True
        while not _probes(link):
            link.step()
        if save:
            saved = unpackb(packb(link.client.save()), "tcp")
            validate(saved, Connection.STATE, "tcp")
            link.client = Connection.load(link.config, saved)
            link.client.keepalive = KEEPALIVE
        while link.step():
            pass
        return [(at, who, seg) for at, who, seg in link.sent] + [link.now]

    assert run(False) == run(True)
    old = Connection(TcpConfig(), 9).save()[:Connection.V4_FIELDS]
    validate(old, Connection.STATE_V4, "tcp")
    loaded = Connection.load(TcpConfig(), old)
    assert (loaded.keepalive_deadline, loaded.keepalive_probes, loaded.iss) == (None, 0, 9)
