"""TCP as a pure state machine (RFC 9293), driven by segments and the virtual clock.

A `Connection` is one end of a connection. It never touches a socket, the fabric or the
guest: each input — `connect`, `receive(segment)`, `send(bytes)`, `read(n)`, `close`,
`abort`, `on_timer` — takes the virtual time and returns the segments to transmit, so
the same code runs under a fake lossy link in tests and under the fabric in a run.
Cut by concept as gVisor's transport/tcp is: handshake (`connect`, `accept_syn`, the
SYN_SENT and SYN_RECEIVED branches of `receive`), sender (`_output`, `_on_ack`, the
retransmission timer), receiver (`_on_data`: in-order delivery and reassembly of
out-of-order segments), teardown (FIN, RST, TIME_WAIT).

- Sequence numbers wrap at 2^32; every comparison is modular (tcp_segment.seq_*).
- Acknowledgments are cumulative and sent for every segment that carries data, a FIN, or
  is unacceptable (no delayed ACKs: each ACK is a deterministic function of the input).
- Retransmission (RFC 6298): RTO starts at `rto_initial_ns`; the first RTT sample R sets
  SRTT = R, RTTVAR = R/2, later ones RTTVAR = 3/4 RTTVAR + 1/4 |SRTT - R|, SRTT = 7/8 SRTT
  + 1/8 R; RTO = SRTT + max(G, 4 RTTVAR) clamped to [rto_min, rto_max]. One segment is
  timed at a time and never a retransmitted one (Karn). On expiry the sender goes back to
  the first unacknowledged byte, doubles the RTO (up to rto_max) and counts a retry; after
  `syn_retries` (handshake) or `retries2` (data) the connection fails with ETIMEDOUT.
- Flow control: the advertised window is the receive buffer's free space; the sender never
  has more than the peer's window in flight, and probes a zero window on the timer.
- Keepalive (when the socket enables it, `set_keepalive`): after `idle_ns` without a segment
  from the peer, and nothing of ours unacknowledged, a probe (seq = snd_nxt - 1, no data) every
  `interval_ns`; the peer answers it with an ACK (it is out of its window), which counts as
  hearing from it. The probe after `probes` unanswered ones is not sent: the connection is
  reset and fails with ETIMEDOUT (Linux's tcp_keepalive_timer).
- No congestion control (no cwnd, no fast retransmit).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any, NamedTuple

from chaosreplay.kernel.net.tcp_segment import (
    ACK,
    FIN,
    PSH,
    RST,
    SYN,
    Segment,
    seq_add,
    seq_diff,
    seq_le,
    seq_lt,
)
from chaosreplay.recording.schema import U64_MAX, Bool, Bytes, Int, ListOf, Maybe, OneOf, Row

CLOSED, SYN_SENT, SYN_RECEIVED, ESTABLISHED = "CLOSED", "SYN_SENT", "SYN_RECEIVED", "ESTABLISHED"
FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT, CLOSING = "FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING"
LAST_ACK, TIME_WAIT = "LAST_ACK", "TIME_WAIT"
STATES = (CLOSED, SYN_SENT, SYN_RECEIVED, ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2, CLOSE_WAIT,
          CLOSING, LAST_ACK, TIME_WAIT)
SENDING_STATES = (ESTABLISHED, CLOSE_WAIT)  # the application may still queue data
RECEIVING_STATES = (ESTABLISHED, FIN_WAIT_1, FIN_WAIT_2)  # the peer may still send data
# Where the keepalive timer runs: after the handshake, before TIME_WAIT (Linux: all but CLOSE
# and SYN_SENT; its TIME_WAIT sockets are other objects without the timer).
KEEPALIVE_STATES = (ESTABLISHED, CLOSE_WAIT, FIN_WAIT_1, FIN_WAIT_2, CLOSING, LAST_ACK)
MS = 1_000_000


@dataclass(frozen=True)
class TcpConfig:
    """Tunables, Linux's defaults unless noted (all times in virtual ns)."""

    mss: int = 1460
    rto_initial_ns: int = 1000 * MS  # RFC 6298 §2.1
    rto_min_ns: int = 200 * MS  # Linux's TCP_RTO_MIN (RFC 6298 says 1 s)
    rto_max_ns: int = 120_000 * MS  # TCP_RTO_MAX
    clock_granularity_ns: int = 1 * MS  # G of RFC 6298
    syn_retries: int = 6  # net.ipv4.tcp_syn_retries
    synack_retries: int = 5  # net.ipv4.tcp_synack_retries
    retries2: int = 15  # net.ipv4.tcp_retries2
    time_wait_ns: int = 2000 * MS  # short (Linux: 60 s), so runs see ports come back
    # What a socket with SO_KEEPALIVE uses unless it sets TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT
    # (net.ipv4.tcp_keepalive_time, _intvl, _probes; whole seconds, as the options are).
    keepalive_time_ns: int = 7200 * 1000 * MS
    keepalive_intvl_ns: int = 75 * 1000 * MS
    keepalive_probes: int = 9
    buffer: int = 212992  # receive and send buffer bytes


class KeepAlive(NamedTuple):
    """A connection's keepalive settings (SO_KEEPALIVE on; TCP_KEEPIDLE, _KEEPINTVL, _KEEPCNT)."""

    idle_ns: int
    interval_ns: int
    probes: int


class Connection:
    """One end of a TCP connection (see the module docstring)."""

    # [state, iss, irs, snd_una, snd_nxt, snd_wnd, snd_wl1, snd_wl2, rcv_nxt, send buffer,
    #  received bytes, out-of-order [[seq, data]...], fin queued, fin sent, peer fin seq,
    #  srtt, rttvar, rto, timed [seq, sent_at] | None, retransmit deadline, retries,
    #  time-wait deadline, error, last advertised window, recv buffer size, send buffer size,
    #  snd_max, retransmits, last heard from the peer, keepalive deadline, keepalive probes
    #  unanswered]; rows saved before keepalive (files version 4) end at retransmits
    SEQ = Int(0, (1 << 32) - 1)
    NS = Int(0, (1 << 63) - 1)
    STATE = Row(OneOf(*STATES), SEQ, SEQ, SEQ, SEQ, Int(0, (1 << 32) - 1), SEQ, SEQ, SEQ,
                Bytes(1 << 26), Bytes(1 << 26), ListOf(Row(SEQ, Bytes(1 << 26)), max_len=1 << 16),
                Bool(), Bool(), Maybe(SEQ), Maybe(NS), Maybe(NS), NS, Maybe(Row(SEQ, NS)),
                Maybe(NS), Int(0, 255), Maybe(NS), Int(0, 4095), Int(0, U64_MAX),
                Int(1, 1 << 26), Int(1, 1 << 26), SEQ, Int(0, U64_MAX), NS, Maybe(NS),
                Int(0, 255))
    V4_FIELDS = 28  # the row before keepalive (its last three fields)
    STATE_V4 = Row(*STATE.items[:V4_FIELDS])  # in files version 4

    def __init__(self, config: TcpConfig, iss: int) -> None:
        self.config = config
        self.state = CLOSED
        self.iss = iss
        self.irs = 0
        self.snd_una = self.snd_nxt = self.snd_max = iss  # snd_max: the highest sent
        self.snd_wnd = 0
        self.snd_wl1 = self.snd_wl2 = 0
        self.rcv_nxt = 0
        self.send_buffer = bytearray()  # from the first unacknowledged data byte on
        self.received = bytearray()  # in order, not yet read by the application
        self.out_of_order: dict[int, bytes] = {}  # seq -> data beyond rcv_nxt
        self.fin_queued = False  # the application closed its sending side
        self.fin_sent = False
        self.peer_fin: int | None = None  # the sequence number of the peer's FIN, once seen
        self.srtt: int | None = None
        self.rttvar: int | None = None
        self.rto = config.rto_initial_ns
        self.timed: tuple[int, int] | None = None  # (seq that acks the sample, sent at)
        self.rtx_deadline: int | None = None
        self.retries = 0
        self.time_wait_deadline: int | None = None
        self.error = 0  # ECONNREFUSED, ECONNRESET or ETIMEDOUT once failed
        self.advertised = 0
        self.recv_size = config.buffer
        self.send_size = config.buffer
        self.retransmits = 0  # segments sent again (for observability)
        self.keepalive: KeepAlive | None = None  # from the socket's options (not state)
        self.last_heard_ns = 0  # when the peer's last acceptable ACK arrived
        self.keepalive_deadline: int | None = None
        self.keepalive_probes = 0  # sent since the peer was last heard
        self.news: list[str] = []  # what the socket layer reports next ("established", ...)

    # -- the application's side ---------------------------------------------------------------
    def connect(self, now: int) -> list[Segment]:
        """Active open: send SYN."""
        self.state = SYN_SENT
        self.snd_nxt = self.snd_max = seq_add(self.iss, 1)
        self._arm(now)
        return [self._syn(now, ack=False)]

    @classmethod
    def accept_syn(cls, config: TcpConfig, iss: int, syn: Segment, now: int
                   ) -> tuple[Connection, list[Segment]]:
        """Passive open: a listener got a SYN; the new end answers SYN-ACK."""
        conn = cls(config, iss)
        conn.state = SYN_RECEIVED
        conn.irs, conn.rcv_nxt = syn.seq, seq_add(syn.seq, 1)
        conn.snd_wnd, conn.snd_wl1, conn.snd_wl2 = syn.window, syn.seq, iss
        conn.snd_nxt = conn.snd_max = seq_add(iss, 1)
        conn._arm(now)
        return conn, [conn._syn(now, ack=True)]

    def send(self, data: bytes, now: int) -> tuple[int, list[Segment]]:
        """Queue application bytes: (bytes taken, segments to send now)."""
        if self.state not in SENDING_STATES or self.fin_queued:
            return 0, []
        room = self.send_size - len(self.send_buffer)
        taken = data[:max(room, 0)]
        self.send_buffer += taken
        return len(taken), self._output(now)

    def read(self, size: int, now: int, peek: bool = False) -> tuple[bytes, list[Segment]]:
        """Take received bytes; a window update is sent when the window reopens."""
        data = bytes(self.received[:size])
        if peek or not data:
            return data, []
        del self.received[:len(data)]
        window = self._window()
        if self.state in RECEIVING_STATES and (
                self.advertised < self.config.mss <= window
                or window - self.advertised >= self.recv_size // 2):
            return data, [self._ack()]
        return data, []

    def close(self, now: int) -> list[Segment]:
        """The application is done sending: queue a FIN after the data."""
        if self.state in (SYN_SENT, CLOSED):
            self.state = CLOSED
            self.rtx_deadline = None
            return []
        if self.fin_queued:
            return []
        self.fin_queued = True
        if self.state in (ESTABLISHED, SYN_RECEIVED):
            self.state = FIN_WAIT_1
        elif self.state == CLOSE_WAIT:
            self.state = LAST_ACK
        return self._output(now)

    def set_keepalive(self, keepalive: KeepAlive | None, now: int, idle_set: bool = False
                      ) -> None:
        """SO_KEEPALIVE or a TCP_KEEP* option changed (`idle_set`: TCP_KEEPIDLE was set)."""
        before, self.keepalive = self.keepalive, keepalive
        if keepalive is None:
            self.keepalive_deadline = None
        elif self.state in KEEPALIVE_STATES:
            if before is None:  # turned on: a whole idle time from now (tcp_set_keepalive)
                self.keepalive_deadline = now + keepalive.idle_ns
            elif idle_set:  # what is left of the new idle time (tcp_sock_set_keepidle_locked)
                self.keepalive_deadline = max(self.last_heard_ns + keepalive.idle_ns, now)

    def abort(self, now: int) -> list[Segment]:
        """Reset the connection (close with unread data, SO_LINGER 0)."""
        out = [] if self.state in (CLOSED, SYN_SENT, TIME_WAIT) else [
            Segment(self.snd_nxt, self.rcv_nxt, RST | ACK, 0)]
        self._fail(0)
        return out

    # -- what the application sees ------------------------------------------------------------
    @property
    def readable(self) -> int:
        return len(self.received)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has been reached: reads return end of file after the data."""
        return self.peer_fin is not None and self.rcv_nxt == seq_add(self.peer_fin, 1)

    @property
    def send_room(self) -> int:
        return max(0, self.send_size - len(self.send_buffer))

    @property
    def unacknowledged(self) -> int:
        return len(self.send_buffer)

    def next_timer_ns(self) -> int | None:
        times = [t for t in (self.rtx_deadline, self.time_wait_deadline,
                             self.keepalive_deadline) if t is not None]
        return min(times, default=None)

    # -- segments from the peer ----------------------------------------------------------------
    def receive(self, seg: Segment, now: int) -> list[Segment]:
        """Process one arriving segment (RFC 9293 §3.10.7)."""
        if self.state == CLOSED:
            return []
        if self.state == SYN_SENT:
            return self._receive_in_syn_sent(seg, now)
        if not self._acceptable(seg):
            return [] if seg.flags & RST else [self._ack()]
        if seg.flags & RST:
            if seg.seq != self.rcv_nxt:
                return [self._ack()]  # RFC 5961 §3.2: a challenge ACK, not a reset
            # After our close nobody is left to tell (RFC 9293 §3.10.7.4: CLOSING, LAST_ACK,
            # TIME_WAIT just close); a SYN_RECEIVED end is dropped by its listener.
            self._fail(0 if self.state in (CLOSING, LAST_ACK, TIME_WAIT) else errno.ECONNRESET)
            return []
        if seg.flags & SYN:
            if self.state == SYN_RECEIVED and seg.seq == self.irs:
                return [self._syn(now, ack=True)]  # our SYN-ACK was lost: say it again
            return [self._ack()]  # RFC 5961 §4.2
        if not seg.flags & ACK:
            return []
        out: list[Segment] = []
        if self.state == SYN_RECEIVED:
            if not (seq_lt(self.snd_una, seg.ack) and seq_le(seg.ack, self.snd_max)):
                return [Segment(seg.ack, 0, RST, 0)]
            self.state = ESTABLISHED
            self.news.append("established")
        if seq_lt(self.snd_max, seg.ack):
            return [self._ack()]  # acknowledges something never sent
        self._heard(now)
        self._on_ack(seg, now)
        if self.state == CLOSED:
            return out
        if self.state == TIME_WAIT:
            if seg.flags & FIN:
                self.time_wait_deadline = now + self.config.time_wait_ns
                return [self._ack()]
            return out
        needs_ack = self._on_data(seg, now)
        out += self._output(now)
        if needs_ack and not out:
            out.append(self._ack())
        return out

    def _receive_in_syn_sent(self, seg: Segment, now: int) -> list[Segment]:
        acceptable = bool(seg.flags & ACK) and seg.ack == self.snd_nxt
        if seg.flags & ACK and not acceptable:
            return [] if seg.flags & RST else [Segment(seg.ack, 0, RST, 0)]
        if seg.flags & RST:
            if acceptable:
                self._fail(errno.ECONNREFUSED)  # nobody listens there
            return []
        if not seg.flags & SYN or not acceptable:
            return []  # simultaneous open is not supported
        self.irs, self.rcv_nxt = seg.seq, seq_add(seg.seq, 1)
        self.snd_wnd, self.snd_wl1, self.snd_wl2 = seg.window, seg.seq, seg.ack
        self._sample_rtt(seg.ack, now)
        self.snd_una = seg.ack
        self.state = ESTABLISHED
        self.news.append("established")
        self._heard(now)
        self.retries, self.rtx_deadline = 0, None
        self.rto = self._computed_rto()
        return [self._ack(), *self._output(now)]

    def _acceptable(self, seg: Segment) -> bool:
        """RFC 9293 §3.10.7.4's four cases: does the segment overlap the receive window?"""
        window = max(self._window(), 0)
        start = seq_diff(seg.seq, self.rcv_nxt)
        if seg.length == 0:
            return start == 0 if window == 0 else 0 <= start < window
        end = start + seg.length - 1
        if window == 0:
            return False
        return 0 <= start < window or 0 <= end < window or (start < 0 <= end)

    # -- the sender ----------------------------------------------------------------------------
    def _on_ack(self, seg: Segment, now: int) -> None:
        if seq_lt(self.snd_una, seg.ack):
            base, fin_seq = self._data_seq(0), self._data_seq(len(self.send_buffer))
            drop = min(max(seq_diff(seg.ack, base), 0), len(self.send_buffer))
            del self.send_buffer[:drop]
            fin_acked = self.fin_queued and seq_diff(seg.ack, fin_seq) >= 1
            self._sample_rtt(seg.ack, now)
            self.snd_una = seg.ack
            if seq_lt(self.snd_nxt, self.snd_una):
                self.snd_nxt = self.snd_una  # acknowledged past where we went back to
            self.retries = 0
            self.rto = self._computed_rto()
            self.rtx_deadline = now + self.rto if self.snd_una != self.snd_max else None
            if fin_acked:
                if self.state == FIN_WAIT_1:
                    self.state = FIN_WAIT_2
                elif self.state == CLOSING:
                    self._enter_time_wait(now)
                elif self.state == LAST_ACK:
                    self.state = CLOSED
                    self.rtx_deadline = self.keepalive_deadline = None
        elif self.snd_wnd == 0 and seg.ack == self.snd_una:
            self.retries = 0  # a live receiver answered a window probe (Linux's probes_out)
        if (seq_lt(self.snd_wl1, seg.seq) or (self.snd_wl1 == seg.seq
                                               and seq_le(self.snd_wl2, seg.ack))):
            self.snd_wnd, self.snd_wl1, self.snd_wl2 = seg.window, seg.seq, seg.ack

    def _data_seq(self, offset: int) -> int:
        """The sequence number of send_buffer[offset] (after our SYN, when it is unacked)."""
        base = seq_add(self.iss, 1) if self.snd_una == self.iss else self.snd_una
        return seq_add(base, offset)

    def _output(self, now: int) -> list[Segment]:
        """Send what the peer's window allows, and the FIN once the data is out."""
        if self.state in (CLOSED, SYN_SENT, SYN_RECEIVED, TIME_WAIT):
            return []
        out: list[Segment] = []
        while True:
            offset = seq_diff(self.snd_nxt, self._data_seq(0))
            in_flight = seq_diff(self.snd_nxt, self.snd_una)
            room = self.snd_wnd - in_flight
            unsent = len(self.send_buffer) - offset
            if unsent > 0 and room > 0:
                size = min(unsent, room, self.config.mss)
                data = bytes(self.send_buffer[offset:offset + size])
                fin = self.fin_queued and size == unsent and room > size
                out.append(self._segment(self.snd_nxt, data, fin, now))
                self._advance(size + fin)
                self.fin_sent |= fin
                continue
            if unsent <= 0 and self.fin_queued and not self.fin_sent:
                out.append(self._segment(self.snd_nxt, b"", True, now))
                self._advance(1)
                self.fin_sent = True
            elif unsent > 0 and self.snd_wnd == 0 and self.rtx_deadline is None:
                self.rtx_deadline = now + self.rto  # probe the zero window when it fires
            break
        return out

    def _advance(self, n: int) -> None:
        self.snd_nxt = seq_add(self.snd_nxt, n)
        if seq_lt(self.snd_max, self.snd_nxt):
            self.snd_max = self.snd_nxt

    def _segment(self, seq: int, data: bytes, fin: bool, now: int) -> Segment:
        if self.timed is None and seq == self.snd_max:  # never time a retransmission
            self.timed = (seq_add(seq, len(data) + fin), now)
        if self.rtx_deadline is None:
            self.rtx_deadline = now + self.rto
        flags = ACK | (PSH if data else 0) | (FIN if fin else 0)
        return Segment(seq, self.rcv_nxt, flags, self._advertise(), data)

    def on_timer(self, now: int) -> list[Segment]:
        """The virtual clock reached next_timer_ns(): retransmit, probe, or leave TIME_WAIT."""
        if self.time_wait_deadline is not None and now >= self.time_wait_deadline:
            self.state, self.time_wait_deadline = CLOSED, None
            return []
        out: list[Segment] = []
        if self.keepalive_deadline is not None and now >= self.keepalive_deadline:
            out = self._keepalive_timer(now)
        if self.rtx_deadline is None or now < self.rtx_deadline:
            return out
        return out + self._retransmit_timer(now)

    def _keepalive_timer(self, now: int) -> list[Segment]:
        """Probe an idle connection, or give up on it (Linux's tcp_keepalive_timer)."""
        keepalive = self.keepalive
        if keepalive is None or self.state not in KEEPALIVE_STATES:
            self.keepalive_deadline = None
            return []
        if self.send_buffer or self.snd_una != self.snd_max:
            # Something of ours is unacknowledged: the retransmission timer watches the peer.
            self.keepalive_deadline = now + keepalive.idle_ns
            return []
        if self.keepalive_probes >= keepalive.probes:
            reset = Segment(self.snd_nxt, self.rcv_nxt, RST | ACK, 0)  # tcp_send_active_reset
            self._fail(errno.ETIMEDOUT)
            return [reset]
        self.keepalive_probes += 1
        self.keepalive_deadline = now + keepalive.interval_ns
        # One byte before what the peer expects: out of its window, so it must answer with
        # an ACK, and it carries nothing the peer could take as data.
        return [Segment(seq_add(self.snd_nxt, -1), self.rcv_nxt, ACK, self._advertise())]

    def _retransmit_timer(self, now: int) -> list[Segment]:
        """The retransmission timer expired: send again from snd_una, or give up."""
        handshake = self.state in (SYN_SENT, SYN_RECEIVED)
        limit = (self.config.syn_retries if self.state == SYN_SENT else
                 self.config.synack_retries if handshake else self.config.retries2)
        if self.retries >= limit:
            self._fail(errno.ETIMEDOUT)
            return []
        self.retries += 1
        self.retransmits += 1
        self.rto = min(self.rto * 2, self.config.rto_max_ns)
        self.timed = None  # Karn: no sample from what is sent again
        self.rtx_deadline = now + self.rto
        if handshake:
            return [self._syn(now, ack=self.state == SYN_RECEIVED)]
        # Go back to the first unacknowledged byte; a zero window gets a one-byte probe.
        self.snd_nxt, self.fin_sent = self._data_seq(0), False
        out: list[Segment] = []
        if self.snd_wnd == 0 and self.send_buffer:
            out = [Segment(self.snd_nxt, self.rcv_nxt, ACK | PSH, self._advertise(),
                           bytes(self.send_buffer[:1]))]
        else:
            out = self._output(now)[:1]  # one segment now; the rest as ACKs come back
        if out:
            self.snd_nxt = seq_add(out[0].seq, out[0].length)
            self.fin_sent = bool(out[0].flags & FIN)
        self.timed = None  # Karn: no sample from what is sent again
        self.rtx_deadline = now + self.rto
        return out

    # -- the receiver --------------------------------------------------------------------------
    def _on_data(self, seg: Segment, now: int) -> bool:
        """Take the segment's data and FIN; whether an ACK is owed."""
        if self.state not in RECEIVING_STATES:
            return bool(seg.data) or bool(seg.flags & FIN)
        if seg.flags & FIN:
            self.peer_fin = seq_add(seg.seq, len(seg.data))
        if seg.data:
            offset = seq_diff(self.rcv_nxt, seg.seq)  # bytes of it already received
            data = seg.data[max(offset, 0):]
            start = seq_add(seg.seq, max(offset, 0))
            room = self._window()
            if seq_diff(start, self.rcv_nxt) == 0:
                taken = data[:room]
                self.received += taken
                self.rcv_nxt = seq_add(self.rcv_nxt, len(taken))
                self._drain_out_of_order()
            elif 0 < seq_diff(start, self.rcv_nxt) < room:
                self.out_of_order[start] = data[:room - seq_diff(start, self.rcv_nxt)]
        if self.peer_fin is not None and self.rcv_nxt == self.peer_fin:
            self.rcv_nxt = seq_add(self.rcv_nxt, 1)
            if self.state == ESTABLISHED:
                self.state = CLOSE_WAIT
            elif self.state == FIN_WAIT_1:
                self.state = CLOSING
            elif self.state == FIN_WAIT_2:
                self._enter_time_wait(now)
        return bool(seg.data) or bool(seg.flags & FIN)

    def _drain_out_of_order(self) -> None:
        progressed = True
        while progressed and self.out_of_order:
            progressed = False
            for start in sorted(self.out_of_order, key=lambda s: seq_diff(s, self.rcv_nxt)):
                gap = seq_diff(self.rcv_nxt, start)
                if gap < 0:
                    break
                data = self.out_of_order.pop(start)[gap:]
                taken = data[:self._window()]
                self.received += taken
                self.rcv_nxt = seq_add(self.rcv_nxt, len(taken))
                progressed = True
                break

    def _window(self) -> int:
        held = len(self.received) + sum(len(d) for d in self.out_of_order.values())
        return max(0, self.recv_size - held)

    def _advertise(self) -> int:
        self.advertised = self._window()
        return self.advertised

    def _ack(self) -> Segment:
        # At snd_max, the highest sequence sent (Linux's snd_nxt), not at snd_nxt, which a
        # timeout rewinds: the peer may hold everything up to snd_max already, and would
        # find an ACK at the rewound number outside its window and drop it, ack included
        # (RFC 9293 §3.10.7.4); two ends both retransmitting then never hear each other.
        return Segment(self.snd_max, self.rcv_nxt, ACK, self._advertise())

    def _syn(self, now: int, ack: bool) -> Segment:
        if self.timed is None and self.retries == 0:
            self.timed = (seq_add(self.iss, 1), now)
        flags = SYN | (ACK if ack else 0)
        return Segment(self.iss, self.rcv_nxt if ack else 0, flags, self._advertise())

    # -- timers and failure --------------------------------------------------------------------
    def _arm(self, now: int) -> None:
        self.rtx_deadline = now + self.rto

    def _sample_rtt(self, ack: int, now: int) -> None:
        if self.timed is None or seq_lt(ack, self.timed[0]):
            return
        sample = max(now - self.timed[1], 0)
        self.timed = None
        if self.srtt is None or self.rttvar is None:
            self.srtt, self.rttvar = sample, sample // 2
        else:
            self.rttvar = (3 * self.rttvar + abs(self.srtt - sample)) // 4
            self.srtt = (7 * self.srtt + sample) // 8

    def _computed_rto(self) -> int:
        if self.srtt is None or self.rttvar is None:
            return self.config.rto_initial_ns
        rto = self.srtt + max(self.config.clock_granularity_ns, 4 * self.rttvar)
        return min(max(rto, self.config.rto_min_ns), self.config.rto_max_ns)

    def _heard(self, now: int) -> None:
        """An acceptable ACK from the peer: it is alive, so keepalive starts its idle time
        again (Linux: rcv_tstamp and icsk_probes_out, in tcp_ack)."""
        self.last_heard_ns = now
        self.keepalive_probes = 0
        if self.keepalive is not None and self.state in KEEPALIVE_STATES:
            self.keepalive_deadline = now + self.keepalive.idle_ns

    def _enter_time_wait(self, now: int) -> None:
        self.state = TIME_WAIT
        self.rtx_deadline = self.keepalive_deadline = None
        self.time_wait_deadline = now + self.config.time_wait_ns

    def _fail(self, error: int) -> None:
        if error:
            self.news.append({errno.ECONNREFUSED: "refused", errno.ECONNRESET: "reset",
                              errno.ETIMEDOUT: "timeout"}.get(error, "failed"))
        self.state = CLOSED
        self.error = error
        self.rtx_deadline = self.time_wait_deadline = self.keepalive_deadline = None

    # -- checkpoints ---------------------------------------------------------------------------
    def save(self) -> list[Any]:
        """The connection as plain data (checked by STATE)."""
        return [self.state, self.iss, self.irs, self.snd_una, self.snd_nxt, self.snd_wnd,
                self.snd_wl1, self.snd_wl2, self.rcv_nxt, bytes(self.send_buffer),
                bytes(self.received), [[s, d] for s, d in sorted(self.out_of_order.items())],
                self.fin_queued, self.fin_sent, self.peer_fin, self.srtt, self.rttvar, self.rto,
                None if self.timed is None else list(self.timed), self.rtx_deadline,
                self.retries, self.time_wait_deadline, self.error, self.advertised,
                self.recv_size, self.send_size, self.snd_max, self.retransmits,
                self.last_heard_ns, self.keepalive_deadline, self.keepalive_probes]

    @classmethod
    def load(cls, config: TcpConfig, data: list[Any]) -> Connection:
        """A connection from save() output (or a row saved before keepalive)."""
        if len(data) == cls.V4_FIELDS:  # saved before keepalive: never heard, no timer
            data = [*data, 0, None, 0]
        conn = cls(config, data[1])
        (conn.state, conn.iss, conn.irs, conn.snd_una, conn.snd_nxt, conn.snd_wnd, conn.snd_wl1,
         conn.snd_wl2, conn.rcv_nxt, send, received, ooo, conn.fin_queued, conn.fin_sent,
         conn.peer_fin, conn.srtt, conn.rttvar, conn.rto, timed, conn.rtx_deadline,
         conn.retries, conn.time_wait_deadline, conn.error, conn.advertised, conn.recv_size,
         conn.send_size, conn.snd_max, conn.retransmits, conn.last_heard_ns,
         conn.keepalive_deadline, conn.keepalive_probes) = data
        conn.send_buffer, conn.received = bytearray(send), bytearray(received)
        conn.out_of_order = {s: bytes(d) for s, d in ooo}
        conn.timed = None if timed is None else (timed[0], timed[1])
        return conn
