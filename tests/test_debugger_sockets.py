"""What the debugger shows of a node's sockets (debugger/socket_views.py): the view of each
kind of endpoint from a stack, and, for a recorded run, `chaosreplay state` (text and
--json) and the network pane at a moment of a keepalive exchange."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import program_cache
import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from tui_helpers import debugger, drive, pane_text, press

from chaosreplay.cli import main
from chaosreplay.debugger.socket_views import SocketView, socket_views
from chaosreplay.kernel.net.addresses import InetAddress, node_host
from chaosreplay.kernel.net.stack import NetStack
from chaosreplay.kernel.net.tcp import ESTABLISHED, MS, Connection, KeepAlive, TcpConfig
from chaosreplay.kernel.net.tcp_socket import TcpSocket
from chaosreplay.kernel.net.udp import Udp
from chaosreplay.kernel.net.unix import UnixStream
from chaosreplay.recording.model import Event
from chaosreplay.sim.scenario import Scenario
from chaosreplay.tui import make_app
from chaosreplay.tui.event_format import summary

CLIENT, SERVER = InetAddress(node_host(1), 32768), InetAddress(node_host(0), 7000)


def test_each_kind_of_socket_is_listed_with_its_state_queues_and_timer() -> None:
    """A listener (accept queue and backlog, as ss shows them), a connection with unacked
    and unread bytes, retransmissions and a keepalive timer, a UDP socket with a queued
    datagram and an AF_UNIX stream: one view each, by socket number."""
    stack = NetStack(0, 2)
    listener = stack.add(TcpSocket)
    assert isinstance(listener, TcpSocket)
    listener.local, listener.listening, listener.backlog_max = SERVER, True, 4
    listener.accept_queue = [9]
    conn_sock = stack.add(TcpSocket)
    assert isinstance(conn_sock, TcpSocket)
    conn = Connection(TcpConfig(), 100)
    conn.state, conn.send_buffer, conn.received = ESTABLISHED, bytearray(30), bytearray(7)
    conn.retransmits, conn.keepalive_probes = 2, 1
    conn.keepalive = KeepAlive(2000 * MS, 1000 * MS, 3)
    conn.keepalive_deadline, conn.rtx_deadline = 5000 * MS, 9000 * MS
    conn_sock.local, conn_sock.remote, conn_sock.conn = SERVER, CLIENT, conn
    conn_sock.has_file = True
    udp = stack.add(Udp)
    assert isinstance(udp, Udp)
    udp.local = InetAddress(node_host(0), 53)
    assert udp.arrive(b"query", CLIENT, 0)
    stack.add(UnixStream)
    assert socket_views(stack) == [
        SocketView(1, "tcp", "10.0.0.1:7000", "", "LISTEN", 4, 1, 0, "", None, 0, False),
        SocketView(2, "tcp", "10.0.0.1:7000", "10.0.0.2:32768", "ESTABLISHED", 30, 7, 2,
                   "keepalive", 5000 * MS, 1, True),
        SocketView(3, "udp", "10.0.0.1:53", "", "-", 0, 5, 0, "", None, 0, False),
        SocketView(4, "unix_stream", "", "", "unconnected", 0, 0, 0, "", None, 0, False)]


def test_the_timeline_names_a_packets_tcp_segment_and_filters_find_it() -> None:
    """A packet event with a tcp field reads as tcpdump would put the segment; without one
    (a datagram) the row is as before."""
    from chaosreplay.debugger.filters import EventFilter

    tcp = {"src": "10.0.0.2:32768", "dst": "10.0.0.1:7000", "flags": "SYN", "seq": 64003,
           "ack": 0, "len": 0, "window": 212992}
    fields = {"packet_id": 0, "src": 1, "dst": 0, "size": 62, "channel": 1}
    event = Event(5, 0, 12000, 1, "packet.sent", {**fields, "tcp": tcp})
    assert summary(event) == ("#0 1→0 62 B tcp 10.0.0.2:32768→10.0.0.1:7000 [SYN] seq 64003 "
                              "ack 0 len 0")
    assert summary(Event(5, 0, 12000, 1, "packet.sent", fields)) == "#0 1→0 62 B"
    assert EventFilter.parse("sent SYN 10.0.0.1:7000").matches(event)


# -- a recorded run ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def keepalive_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A recording of a quiet connection with keepalive (idle 2 s, interval 1 s, 3 probes)
    whose server is cut off for good at 100 ms: probes at 2, 3, 4 s, ETIMEDOUT at 5 s."""
    program = program_cache.built("tcp_keepalive.c", "musl")
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.vm.elf import load_program

    sc = Scenario.from_dict({
        "duration": "8s", "checkpoint_interval": 1000, "memory_per_node": "32MiB",
        "nodes": [{"program": str(program), "name": "srv", "args": ["server", "7000"]},
                  {"program": str(program), "name": "cli",
                   "args": ["client", "10.0.0.1", "7000", "2", "1", "3"]}],
        "faults": {"schedule": [{"kind": "partition", "at": 100, "duration": 0,
                                 "sides": [[0], [1]]}], "wait_for_setup": False}})
    path = tmp_path_factory.mktemp("sockets") / "keepalive.ccr"
    record_run(sc, [load_program(program), load_program(program)], path, RunOptions())
    return path


def _state(path: Path, tick: int) -> dict[str, Any]:
    result = CliRunner().invoke(main, ["state", str(path), "--tick", str(tick), "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


@pytest.mark.kvm
def test_state_json_has_each_nodes_sockets_as_the_connection_goes(keepalive_run) -> None:
    """At 4.5 s the client's connection has three probes unanswered and its keepalive timer
    at 5 s (2 ms established + 2 + 3 s); the server holds its listener and the accepted
    connection; at 6 s the client's connection is CLOSED (ETIMEDOUT) and the server's
    still ESTABLISHED (the reset never reached it)."""
    state = _state(keepalive_run, 4500)
    server, client = (node["sockets"] for node in state["nodes"])
    (conn,) = client
    assert (conn["kind"], conn["local"], conn["remote"], conn["state"]) == (
        "tcp", "10.0.0.2:32768", "10.0.0.1:7000", "ESTABLISHED"), conn
    assert (conn["timer"], conn["keepalive_probes"], conn["send_queue"]) == (
        "keepalive", 3, 0), conn
    assert 5.002e9 <= conn["timer_ns"] < 5.003e9, conn
    assert [(s["state"], s["local"], s["remote"]) for s in server] == [
        ("LISTEN", "0.0.0.0:7000", ""), ("ESTABLISHED", "10.0.0.1:7000", "10.0.0.2:32768")]
    later = _state(keepalive_run, 6000)
    assert [s["state"] for s in later["nodes"][1]["sockets"]] == ["CLOSED"]
    assert [s["state"] for s in later["nodes"][0]["sockets"]] == ["LISTEN", "ESTABLISHED"]
    text = CliRunner().invoke(main, ["state", str(keepalive_run), "--tick", "4500",
                                     "--node", "1"]).output
    assert ("socket 1 tcp 10.0.0.2:32768 → 10.0.0.1:7000 ESTABLISHED · send-q 0 recv-q 0 · "
            "0 retransmits · keepalive at 5.002") in text, text


@pytest.mark.kvm
def test_the_network_pane_lists_every_nodes_sockets(keepalive_run) -> None:
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "2", "p")  # the last node's pane, then the next: network
        network = pane_text(screen, "network")
        assert "3 sockets" in network, network
        rows = [line.split() for line in network.splitlines() if line.lstrip()[:2] in ("n0",
                                                                                     "n1")]
        assert [row[:5] for row in rows] == [
            ["n0", "tcp", "0.0.0.0:7000", "-", "LISTEN"],
            ["n0", "tcp", "10.0.0.1:7000", "10.0.0.2:32768", "ESTABLISHED"],
            ["n1", "tcp", "10.0.0.2:32768", "10.0.0.1:7000", "ESTABLISHED"]], network
        assert "keepalive" in rows[2] and "(3 probes)" in " ".join(rows[2]), rows[2]

    drive(make_app(keepalive_run, seek="4500"), script)
