"""Each fabric fault on its own, seen from inside the guests of a TCP echo (tcp_echo.c):
loss is repaired by retransmission, corruption is dropped at the checksum and never
delivered, duplication and reordering are invisible to the programs, and a peer that is
killed and comes back resets the connection. (Partitions, bandwidth limits, refusals and
timeouts: tests/test_socket_programs.py.)"""

from __future__ import annotations

from typing import Any

import pytest
from net_helpers import ECHO, tcp_scenario
from program_cache import built
from simulate import Run, simulate

INTACT = [b"connected", b"got back 300000 of 300000 bytes, 0 differ"]
SERVED = [b"accepted 10.0.0.2:32768", b"echoed 300000 bytes, then end of file"]


@pytest.fixture(scope="module")
def tcp_echo():
    return built("tcp_echo.c", "musl")


@pytest.fixture(scope="module")
def clean(tcp_echo) -> Run:
    """The echo over a network with only latency."""
    return _echo(tcp_echo, latency_ns=1_000_000)


def _echo(program, **network: Any) -> Run:
    run = simulate(tcp_scenario(program, *ECHO, duration="30s", seed=3, **network))
    assert not run.result.failures, run.result.failures
    return run


def _lines(run: Run, node: int) -> list[bytes]:
    return [line for _, line in run.lines(node)]


@pytest.mark.kvm
def test_loss_is_repaired_by_retransmission(tcp_echo, clean) -> None:
    """A fifth of the segments lost: the same bytes come back, through more segments."""
    run = _echo(tcp_echo, latency_ns=1_000_000, loss=0.2)
    assert (_lines(run, 1), _lines(run, 0)) == (INTACT, SERVED)
    lost = [e for e in run.of("packet.dropped") if e[4]["reason"] == "loss"]
    assert lost
    assert len(run.of("packet.sent")) > len(clean.of("packet.sent")) + len(lost) // 2
    assert run.lines(1)[-1][0] > clean.lines(1)[-1][0]  # the repairs took time


@pytest.mark.kvm
def test_a_corrupted_segment_is_dropped_never_delivered(tcp_echo) -> None:
    """Every segment the fabric corrupted fails its checksum on arrival; the data the
    programs exchange is intact."""
    run = _echo(tcp_echo, latency_ns=1_000_000, corrupt=0.1)
    assert (_lines(run, 1), _lines(run, 0)) == (INTACT, SERVED)
    corrupted = run.of("packet.corrupted")
    rejected = [e for e in run.of("packet.dropped") if e[4]["reason"] == "checksum"]
    assert corrupted and len(rejected) == len(corrupted)


@pytest.mark.kvm
@pytest.mark.parametrize("network", [{"duplicate": 0.3},
                                     {"reorder": 0.3, "jitter_ns": 2_000_000}],
                         ids=["duplicate", "reorder"])
def test_duplicates_and_reordering_are_invisible_to_the_programs(tcp_echo, clean,
                                                                 network) -> None:
    """What both programs print is what they print over a clean network."""
    run = _echo(tcp_echo, latency_ns=1_000_000, **network)
    assert (_lines(run, 1), _lines(run, 0)) == (_lines(clean, 1), _lines(clean, 0))
    kind = "packet.duplicated" if "duplicate" in network else "packet.delayed"
    assert run.of(kind)


@pytest.mark.kvm
def test_a_killed_peer_that_comes_back_resets_the_connection(tcp_echo) -> None:
    """The server's node is killed mid-transfer for 2 s: the client's retransmissions go
    unanswered while it is down, and once it is back (with no memory of the connection)
    its RST ends the transfer with ECONNRESET."""
    faults = [{"kind": "kill", "node": 0, "at": 3, "duration": 2000}]
    run = simulate(tcp_scenario(tcp_echo, ["server", "7000"],
                                 ["client", "10.0.0.1", "7000", "20000000"],
                                 duration="20s", faults=faults))
    client = run.lines(1)
    assert client[0][1] == b"connected" and client[-1][1] == b"recv: ECONNRESET", client
    assert client[-1][0] > 2.003e9  # not before the node came back
    assert [e[4]["what"] for e in run.of("connection", 1)] == ["connect", "established",
                                                               "reset"]
    assert run.statuses(0) == ["killed", "restarting", "running"]
