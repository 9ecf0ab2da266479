"""C programs using sockets print the same natively and under chaosreplay (AF_UNIX, UDP and
TCP on the loopback), UDP and TCP cross the fabric between two nodes of a scenario under
its faults (TCP fails as Linux's does: ECONNREFUSED, ETIMEDOUT, ECONNRESET), runs are
deterministic, and a run resumed from a checkpoint taken mid-exchange goes on exactly as
the uninterrupted one did."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
from net_helpers import ECHO, free_port, native, tcp_scenario, wait_for_listener
from program_cache import built
from simulate import simulate

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.state_check import check_kernel_state
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

SAME_OUTPUT = [pytest.param(source, flavour, id=f"{source}-{flavour}")
               for source in ("unix_sockets.c", "udp_loopback.c", "tcp_loopback.c")
               for flavour in ("glibc", "musl")]


def assert_resumes_identically(sc: Scenario, images: list, loaded: Any, events: list,
                               index: int) -> None:
    """The run resumed from checkpoint `index` records what the whole run recorded after
    that checkpoint, byte for byte."""
    at = next(i for i, e in enumerate(events) if e[3] == "checkpoint" and e[4]["index"] == index)
    tail: list = []
    Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                      sink=lambda *e: tail.append(e)).run()
    assert packb(tail) == packb(events[at + 1:]), f"after checkpoint {index}"


def under_chaosreplay(path: Path) -> GuestProcess:
    process = GuestProcess(load_program(path), ProcessConfig(argv=[path.name.encode()]))
    process.run_to_completion(hang_seconds=20)
    assert (process.status, process.exit_code) == (Status.EXITED, 0), (
        process.crash, bytes(process.stderr))
    return process


@pytest.mark.kvm
@pytest.mark.parametrize(("source", "flavour"), SAME_OUTPUT)
def test_socket_program_prints_what_it_prints_natively(source: str, flavour: str,
                                                       tmp_path: Path) -> None:
    """Every check the program makes (results, errnos, poll and epoll bits, addresses as
    relations) comes out the same under the VMM as on this host's Linux."""
    path = built(source, flavour)
    expected = native(path, cwd=tmp_path)
    assert len(expected.splitlines()) > 30
    got = bytes(under_chaosreplay(path).stdout).decode()
    assert got == expected


def _echo_scenario(program: Path, seed: int = 0, duration: str = "3s",
                   checkpoint_interval: int = 0, **network: float) -> Scenario:
    return Scenario.from_dict({
        "seed": seed, "duration": duration, "checkpoint_interval": checkpoint_interval,
        "memory_per_node": "32MiB", "network": network,
        "nodes": [{"program": str(program), "name": "srv", "args": ["server", "7000"]},
                  {"program": str(program), "name": "cli",
                   "args": ["client", "10.0.0.1", "7000", "6"]}]})


@pytest.fixture(scope="module")
def echo() -> Path:
    return built("udp_echo.c", "musl")


@pytest.mark.kvm
def test_udp_between_two_nodes_prints_what_two_processes_print_natively(echo, tmp_path) -> None:
    """The client's output over the fabric (with loss forcing retries) is what it prints
    against a native server on 127.0.0.1; the server sees the client at node 1's address
    and the first ephemeral port."""
    port = str(free_port())
    server = subprocess.Popen([str(echo), "server", port], stdout=subprocess.PIPE, text=True)
    try:  # (the client retries until the server is up)
        expected = native(echo, "client", "127.0.0.1", port, "6", cwd=tmp_path)
    finally:
        server.wait(timeout=30)
    run = simulate(_echo_scenario(echo, loss=0.3))
    assert run.result.reason == "all nodes ended" and not run.result.failures
    client = b"".join(line + b"\n" for _, line in run.lines(1)).decode()
    assert client == expected
    served = [line for _, line in run.lines(0)]
    assert served[-1] == b"got quit from 10.0.0.2:32768", served
    assert len(served) > 7, "loss made no retry"  # some request or reply was lost
    assert any(e[4]["reason"] == "loss" for e in run.of("packet.dropped"))
    assert {e[4]["channel"] for e in run.of("packet.sent")} == {1}


@pytest.mark.kvm
def test_a_corrupted_datagram_is_dropped_never_delivered(echo) -> None:
    """Corruption flips a bit of the packet: the receiving stack's checksum drops it (a
    packet.dropped with reason checksum) and the client's retry gets the exchange through."""
    run = simulate(_echo_scenario(echo, seed=3, corrupt=0.4))
    assert not run.result.failures, run.result.failures
    assert [line for _, line in run.lines(1)][-1] == b"done"
    assert any(e[4]["reason"] == "checksum" for e in run.of("packet.dropped"))
    replies = [line for _, line in run.lines(1) if line.startswith(b"reply")]
    assert replies == [b"reply %d: MSG %d" % (i, i) for i in range(6)]
    assert not any("tcp" in e[4] for e in run.events)  # UDP packets name no TCP segment


@pytest.mark.kvm
def test_two_runs_of_a_udp_scenario_are_identical(echo) -> None:
    """Same seed and scenario, every fabric fault on: byte-identical event streams; another
    seed differs."""
    faults = {"loss": 0.2, "duplicate": 0.2, "reorder": 0.3, "corrupt": 0.1, "jitter_ns": 300_000}
    first, second = (simulate(_echo_scenario(echo, seed=7, **faults)) for _ in range(2))
    assert first.stream() == second.stream()
    assert simulate(_echo_scenario(echo, seed=8, **faults)).stream() != first.stream()


@pytest.mark.kvm
def test_a_run_resumed_mid_exchange_continues_identically(echo, tmp_path) -> None:
    """Checkpoints every 20 ms: resuming from one taken while the client waits for a reply
    (a datagram in flight or queued, a recv blocked) gives the same events as the
    uninterrupted run from there on, and its socket state passes the kernel's checks."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import RunOptions, record_run

    sc = _echo_scenario(echo, seed=5, checkpoint_interval=20, loss=0.3, latency_ns=5_000_000)
    images = [load_program(echo), load_program(echo)]
    events = simulate(sc).events
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        infos = reader.checkpoints
        assert len(infos) >= 5
        for info in infos[1:4]:
            loaded = reader.load_checkpoint(info.index)
            kernel = unpackb(loaded.blobs["node1.kernel"], "kernel")
            check_kernel_state(kernel, "node1.kernel")
            assert [row[1] for row in kernel["files"]["net"]["sockets"]] == ["udp"]
            assert_resumes_identically(sc, images, loaded, events, info.index)


# -- TCP between nodes ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tcp_echo() -> Path:
    return built("tcp_echo.c", "musl")


BAD_NETWORK = {"loss": 0.1, "reorder": 0.2, "duplicate": 0.1, "corrupt": 0.05,
               "jitter_ns": 200_000}


@pytest.mark.kvm
def test_tcp_between_two_nodes_prints_what_two_processes_print_natively(tcp_echo,
                                                                        tmp_path) -> None:
    """300 kB echoed over a network that loses, reorders, duplicates and corrupts segments:
    the client reads back every byte intact, as it does natively over 127.0.0.1; corrupted
    segments are dropped by their checksum and the losses repaired by retransmission."""
    port = free_port()
    server = subprocess.Popen([str(tcp_echo), "server", str(port)], stdout=subprocess.PIPE,
                              text=True)
    try:
        wait_for_listener(port)
        expected = native(tcp_echo, "client", "127.0.0.1", str(port), "300000", cwd=tmp_path)
    finally:
        server.kill()
        server.wait(timeout=30)
    assert expected == "connected\ngot back 300000 of 300000 bytes, 0 differ\n"
    run = simulate(tcp_scenario(tcp_echo, *ECHO, duration="20s", **BAD_NETWORK))
    assert not run.result.failures, run.result.failures
    assert b"".join(line + b"\n" for _, line in run.lines(1)).decode() == expected
    assert [line for _, line in run.lines(0)] == [
        b"accepted 10.0.0.2:32768", b"echoed 300000 bytes, then end of file"]
    reasons = {e[4]["reason"] for e in run.of("packet.dropped")}
    assert {"loss", "checksum"} <= reasons, reasons
    # Every packet event names its segment, but a corrupted copy's headers are not
    # trusted once it is corrupt: its packet.delivered (and checksum or node_down drop)
    # carries none.
    corrupted = {e[4]["packet_id"] for e in run.of("packet.corrupted")}
    for _, _, _, kind, fields in run.events:
        if not kind.startswith("packet."):
            continue
        if kind == "packet.delivered" and fields["flags"] & 1:
            assert "tcp" not in fields, fields
        elif not (kind in ("packet.delivered", "packet.dropped")
                  and fields["packet_id"] in corrupted):
            assert "tcp" in fields, (kind, fields)
    life = {node: [e[4]["what"] for e in run.of("connection", node)] for node in (0, 1)}
    assert life == {0: ["established", "accept", "close"],
                    1: ["connect", "established", "close"]}, life


@pytest.mark.kvm
def test_connecting_where_nobody_listens_is_refused(tcp_echo) -> None:
    run = simulate(tcp_scenario(tcp_echo, ["server", "7000"],
                                 ["client", "10.0.0.1", "7001", "10"]))
    assert [line for _, line in run.lines(1)] == [b"connect: ECONNREFUSED"]
    assert [e[4]["reason"] for e in run.of("packet.dropped")] == ["no_socket"]  # the SYN
    assert [(e[4]["what"], e[4]["local"], e[4]["remote"]) for e in run.of("connection")] == [
        ("connect", "10.0.0.2:32768", "10.0.0.1:7001"),
        ("refused", "10.0.0.2:32768", "10.0.0.1:7001")]


@pytest.mark.kvm
def test_connecting_to_a_node_that_is_down_times_out_after_the_syn_retries(tcp_echo) -> None:
    """The server's node has ended (down): six SYN retransmissions 1, 2, 4, ... 32 s apart,
    then ETIMEDOUT at 127 s of virtual time, as Linux's tcp_syn_retries = 6 gives."""
    run = simulate(tcp_scenario(tcp_echo, ["idle"], ["client", "10.0.0.1", "7000", "10"],
                                 duration="200s"))
    ((at, line),) = run.lines(1)
    assert line == b"connect: ETIMEDOUT" and 127e9 <= at < 127.001e9
    sent = [e[1] for e in run.of("packet.sent", 1)]
    assert [round(t / 1e9) for t in sent] == [0, 1, 3, 7, 15, 31, 63]
    assert [(e[4]["what"], round(e[4]["at_ns"] / 1e9)) for e in run.of("connection")] == [
        ("connect", 0), ("timeout", 127)]


@pytest.mark.kvm
def test_a_restarted_server_resets_the_old_connection(tcp_echo) -> None:
    """The server's node is killed mid-transfer and restarted: the client's next segments
    reach a node that has no such connection and are answered with RST, so the client
    reports ECONNRESET."""
    faults = [{"kind": "restart", "node": 0, "at": 3}]
    run = simulate(tcp_scenario(tcp_echo, ["server", "7000"],
                                 ["client", "10.0.0.1", "7000", "20000000"],
                                 duration="10s", faults=faults))
    client = [line for _, line in run.lines(1)]
    assert client[0] == b"connected" and client[-1] == b"recv: ECONNRESET", client
    assert [e[4]["what"] for e in run.of("connection", 1)] == ["connect", "established",
                                                               "reset"]


@pytest.mark.kvm
def test_two_runs_of_a_tcp_scenario_are_identical(tcp_echo) -> None:
    first, second = (simulate(tcp_scenario(tcp_echo, *ECHO, seed=4, duration="20s",
                                            **BAD_NETWORK)) for _ in range(2))
    assert first.stream() == second.stream()
    assert simulate(tcp_scenario(tcp_echo, *ECHO, seed=5, duration="20s",
                                  **BAD_NETWORK)).stream() != first.stream()


@pytest.mark.kvm
def test_a_tcp_run_resumed_mid_connection_continues_identically(tcp_echo, tmp_path) -> None:
    """Checkpoints every 100 ms of a lossy transfer: from each of three taken mid-connection
    (segments in flight, data queued, timers armed) the resumed run's events are the
    uninterrupted run's."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import RunOptions, record_run

    sc = tcp_scenario(tcp_echo, *ECHO, seed=2, duration="3s", checkpoint_interval=100,
                       **BAD_NETWORK)
    images = [load_program(tcp_echo), load_program(tcp_echo)]
    events = simulate(sc).events
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        for info in reader.checkpoints[2:5]:
            loaded = reader.load_checkpoint(info.index)
            kernel = unpackb(loaded.blobs["node1.kernel"], "kernel")
            check_kernel_state(kernel, "node1.kernel")
            (sock,) = kernel["files"]["net"]["sockets"]
            assert sock[1] == "tcp" and sock[7][8] is not None  # a connection mid-transfer
            assert_resumes_identically(sc, images, loaded, events, info.index)


@pytest.mark.kvm
def test_a_partition_stalls_a_transfer_that_finishes_after_the_heal(tcp_echo) -> None:
    """Cut off for 3 s mid-transfer: retransmissions back off, nothing is delivered, and
    once the partition heals the transfer completes with every byte intact."""
    faults = [{"kind": "partition", "at": 3, "duration": 3000, "sides": [[0], [1]]}]
    run = simulate(tcp_scenario(tcp_echo, *ECHO, duration="30s", faults=faults))
    ((at, line),) = [(t, x) for t, x in run.lines(1) if x.startswith(b"got back")]
    assert line == b"got back 300000 of 300000 bytes, 0 differ"
    assert at > 3.003e9  # not before the heal
    assert any(e[4]["reason"] == "partition" for e in run.of("packet.dropped"))


@pytest.mark.kvm
def test_a_partition_that_never_heals_ends_in_etimedout(tcp_echo) -> None:
    """Unacknowledged data through 15 retransmissions (tcp_retries2), the RTO doubling to
    its 120 s cap: ETIMEDOUT after about 15 minutes of virtual time."""
    faults = [{"kind": "partition", "at": 3, "duration": 2_000_000, "sides": [[0], [1]]}]
    run = simulate(tcp_scenario(tcp_echo, *ECHO, duration="2000s", faults=faults))
    ((at, line),) = [(t, x) for t, x in run.lines(1) if x.startswith(b"recv")]
    assert line == b"recv: ETIMEDOUT"
    assert 800e9 < at < 1000e9, at


@pytest.mark.kvm
def test_scenario_tcp_settings_shorten_the_timeouts(tcp_echo) -> None:
    """network.tcp.retries2 = 5: the RTO (clamped to 200 ms) doubles five times, so the
    partitioned connection fails 0.2 + 0.4 + ... + 6.4 = 12.6 s after its data was sent;
    syn_retries = 1 ends a connect to a down node after 1 + 2 = 3 s."""
    faults = [{"kind": "partition", "at": 3, "duration": 100_000, "sides": [[0], [1]]}]
    run = simulate(tcp_scenario(tcp_echo, *ECHO, duration="60s", faults=faults,
                                 tcp={"retries2": 5}))
    ((at, line),) = [(t, x) for t, x in run.lines(1) if x.startswith(b"recv")]
    assert line == b"recv: ETIMEDOUT" and 12.6e9 < at < 12.7e9, at
    run = simulate(tcp_scenario(tcp_echo, ["idle"], ["client", "10.0.0.1", "7000", "10"],
                                 duration="10s", tcp={"syn_retries": 1}))
    ((at, line),) = run.lines(1)
    assert line == b"connect: ETIMEDOUT" and 3e9 <= at < 3.001e9


@pytest.mark.kvm
def test_a_bandwidth_limit_caps_the_throughput(tcp_echo) -> None:
    """At 8 Mbit/s, 300 kB (plus headers and the echo's acknowledgments) cannot be back
    before 300 ms; unlimited, the same exchange takes a few ms."""
    def finished(**network: float) -> float:
        run = simulate(tcp_scenario(tcp_echo, *ECHO, duration="10s", **network))
        ((at, line),) = [(t, x) for t, x in run.lines(1) if x.startswith(b"got back")]
        assert line == b"got back 300000 of 300000 bytes, 0 differ"
        return at

    assert finished() < 0.05e9
    assert finished(bandwidth_bps=8_000_000) > 0.3e9


@pytest.mark.kvm
def test_busybox_wget_fetches_a_page_from_another_node(tmp_path) -> None:
    """busybox (static glibc, not written for chaosreplay) fetches over TCP from a server on
    another node through a lossy network, and prints what it prints natively."""
    import shutil

    busybox = shutil.which("busybox")
    if busybox is None:
        pytest.skip("busybox is not installed")
    server = built("http_hello.c", "musl")
    port = free_port()
    daemon = subprocess.Popen([str(server), str(port)], stdout=subprocess.PIPE, text=True)
    try:
        wait_for_listener(port)
        expected = native(Path(busybox), "wget", "-q", "-O", "-",
                          f"http://127.0.0.1:{port}/hello", cwd=tmp_path)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)
    assert expected == "hello from /hello\n"
    sc = Scenario.from_dict({
        "duration": "5s", "checkpoint_interval": 0, "memory_per_node": "32MiB",
        "network": {"loss": 0.1, "duplicate": 0.1},
        "nodes": [{"program": str(server), "name": "web", "args": ["8080"]},
                  {"program": busybox, "name": "client",
                   "args": ["wget", "-q", "-O", "-", "http://10.0.0.1:8080/hello"]}]})
    run = simulate(sc)
    assert not run.result.failures, run.result.failures
    assert b"".join(line + b"\n" for _, line in run.lines(1)).decode() == expected
    assert [line for _, line in run.lines(0)] == [b"served /hello"]


# -- packet events name their segments; keepalive --------------------------------------------
@pytest.mark.kvm
def test_packet_events_of_tcp_segments_name_the_connection_and_flags(tcp_echo) -> None:
    """A refused connect from a guest: the SYN's packet.sent and packet.delivered (and the
    no_socket drop) name both ends and its flags, and the answering RST|ACK acknowledges
    the SYN's sequence number."""
    run = simulate(tcp_scenario(tcp_echo, ["server", "7000"],
                                 ["client", "10.0.0.1", "7001", "10"]))
    segments = [(e[3], e[2], e[4]["tcp"]) for e in run.events if e[3].startswith("packet.")]
    syn, rst = segments[0][2], segments[-1][2]
    assert (syn["src"], syn["dst"], syn["flags"], syn["len"]) == (
        "10.0.0.2:32768", "10.0.0.1:7001", "SYN", 0), segments
    assert [(kind, node, tcp["flags"]) for kind, node, tcp in segments] == [
        ("packet.sent", 1, "SYN"), ("packet.delivered", 0, "SYN"),
        ("packet.sent", 0, "ACK|RST"),  # answered while arriving, then counted as dropped
        ("packet.dropped", 0, "SYN"), ("packet.delivered", 1, "ACK|RST")], segments
    assert (rst["src"], rst["dst"], rst["ack"]) == ("10.0.0.1:7001", "10.0.0.2:32768",
                                                    (syn["seq"] + 1) % 2**32)
    assert segments[1][2] == segments[3][2] == syn


KEEPALIVE = (["server", "7000"], ["client", "10.0.0.1", "7000", "2", "1", "3"])


@pytest.fixture(scope="module")
def tcp_keepalive() -> Path:
    return built("tcp_keepalive.c", "musl")


def _keepalive_probes(run: Any, established_ns: int) -> list[tuple[int, dict]]:
    """(time, tcp fields) of the client's segments after the handshake: keepalive's."""
    return [(e[1], e[4]["tcp"]) for e in run.of("packet.sent", 1) if e[1] > established_ns]


@pytest.mark.kvm
def test_keepalive_ends_a_quiet_connection_to_a_partitioned_peer_with_etimedout(
        tcp_keepalive) -> None:
    """TCP_KEEPIDLE 2 s, TCP_KEEPINTVL 1 s, TCP_KEEPCNT 3 and a partition that never heals:
    probes (ACK, no data, seq one before snd_nxt) 2, 3 and 4 s after the handshake, then
    the client resets the connection and its recv fails with ETIMEDOUT at 5 s."""
    faults = [{"kind": "partition", "at": 100, "duration": 0, "sides": [[0], [1]]}]
    run = simulate(tcp_scenario(tcp_keepalive, *KEEPALIVE, duration="10s", faults=faults))
    assert not run.result.failures, run.result.failures
    client = [line for _, line in run.lines(1)]
    assert client == [b"keepalive 1 idle 2 intvl 1 cnt 3", b"connected", b"recv: ETIMEDOUT"]
    life = [(e[4]["what"], e[4]["at_ns"]) for e in run.of("connection", 1)]
    assert [what for what, _ in life] == ["connect", "established", "timeout"], life
    established, timeout = life[1][1], life[2][1]
    assert timeout - established == 5_000_000_000
    assert run.lines(1)[-1][0] >= timeout
    probes = _keepalive_probes(run, established)
    assert [(at - established, tcp["flags"], tcp["len"]) for at, tcp in probes] == [
        (2_000_000_000, "ACK", 0), (3_000_000_000, "ACK", 0), (4_000_000_000, "ACK", 0),
        (5_000_000_000, "ACK|RST", 0)], probes
    handshake_ack = run.of("packet.sent", 1)[1][4]["tcp"]
    assert all(tcp["seq"] == handshake_ack["seq"] - 1 for _, tcp in probes[:3])
    drops = [e[4]["reason"] for e in run.of("packet.dropped", 1)]
    assert drops == ["partition"] * 4
    assert [line for _, line in run.lines(0)] == [b"accepted 10.0.0.2:32768"]


@pytest.mark.kvm
def test_keepalive_probes_a_healthy_peer_that_answers_and_the_connection_stays(
        tcp_keepalive) -> None:
    """The same client with a reachable server: every probe is answered by an ACK from the
    server's kernel (its program never wakes), so the next probe comes a whole idle time
    after that answer (2 s + the 2 ms round trip) and the connection never times out."""
    run = simulate(tcp_scenario(tcp_keepalive, *KEEPALIVE, duration="10s"))
    assert not run.result.failures, run.result.failures
    assert [line for _, line in run.lines(1)] == [b"keepalive 1 idle 2 intvl 1 cnt 3",
                                                  b"connected"]
    assert [e[4]["what"] for e in run.of("connection", 1)] == ["connect", "established"]
    established = run.of("connection", 1)[1][4]["at_ns"]
    probes = _keepalive_probes(run, established)
    assert [at - established for at, _ in probes] == [
        2_000_000_000 + k * 2_002_000_000 for k in range(4)], probes
    answers = [(e[1], e[4]["tcp"]) for e in run.of("packet.sent", 0) if e[1] > established]
    assert len(answers) == len(probes)
    for (sent, probe), (answered, answer) in zip(probes, answers, strict=True):
        assert answered - sent == 1_000_000  # on arrival, one link latency later
        assert (answer["flags"], answer["len"], answer["ack"]) == ("ACK", 0, probe["seq"] + 1)
    assert [line for _, line in run.lines(0)] == [b"accepted 10.0.0.2:32768"]


@pytest.mark.kvm
def test_the_scenarios_keepalive_defaults_serve_a_program_that_sets_only_so_keepalive(
        tcp_keepalive) -> None:
    """network.tcp.keepalive_* = 3 s, 1 s, 2: a client that turns on SO_KEEPALIVE alone
    reads them back as its TCP_KEEP* options and, its server cut off, times out 3 + 2 × 1 s
    after the handshake; the same client in a default scenario reads Linux's 7200/75/9."""
    faults = [{"kind": "partition", "at": 100, "duration": 0, "sides": [[0], [1]]}]
    args = (["server", "7000"], ["client", "10.0.0.1", "7000", "0", "0", "0"])
    run = simulate(tcp_scenario(tcp_keepalive, *args, duration="10s", faults=faults,
                                 tcp={"keepalive_time_ns": "3s", "keepalive_intvl_ns": "1s",
                                      "keepalive_probes": 2}))
    assert [line for _, line in run.lines(1)] == [
        b"keepalive 1 idle 3 intvl 1 cnt 2", b"connected", b"recv: ETIMEDOUT"]
    life = {e[4]["what"]: e[4]["at_ns"] for e in run.of("connection", 1)}
    assert life["timeout"] - life["established"] == 5_000_000_000, life
    default = simulate(tcp_scenario(tcp_keepalive, *args, duration="1s"))
    assert [line for _, line in default.lines(1)] == [
        b"keepalive 1 idle 7200 intvl 75 cnt 9", b"connected"]


@pytest.mark.kvm
def test_a_run_resumed_while_keepalive_probes_continues_identically(tcp_keepalive,
                                                                    tmp_path) -> None:
    """Checkpoints each second of the partitioned keepalive run: resumed from those taken
    between the probes (probes counted, the keepalive timer armed, in files version 5),
    the run's events are the uninterrupted run's, the timeout included."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.runs.record_replay import RunOptions, record_run

    faults = [{"kind": "partition", "at": 100, "duration": 0, "sides": [[0], [1]]}]
    sc = tcp_scenario(tcp_keepalive, *KEEPALIVE, duration="7s", checkpoint_interval=1000,
                       faults=faults)
    images = [load_program(tcp_keepalive), load_program(tcp_keepalive)]
    events = simulate(sc).events
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        probed = 0
        for info in reader.checkpoints[1:5]:
            loaded = reader.load_checkpoint(info.index)
            kernel = unpackb(loaded.blobs["node1.kernel"], "kernel")
            check_kernel_state(kernel, "node1.kernel")
            assert kernel["files"]["version"] == 5
            (sock,) = kernel["files"]["net"]["sockets"]
            conn = sock[7][8]
            assert conn[-2] is not None  # the keepalive deadline
            probed += conn[-1] > 0
            assert_resumes_identically(sc, images, loaded, events, info.index)
        assert probed >= 2, "no checkpoint between unanswered probes"
