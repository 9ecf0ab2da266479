"""C programs using sockets print the same natively and under chaosreplay (AF_UNIX, UDP on
the loopback), UDP crosses the fabric between two nodes of a scenario under its faults,
runs are deterministic, and a run resumed from a checkpoint taken mid-exchange goes on
exactly as the uninterrupted one did."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import program_cache
import pytest
from simulate import simulate

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.state_check import check_kernel_state
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

SAME_OUTPUT = [pytest.param(source, flavour, id=f"{source}-{flavour}")
               for source in ("unix_sockets.c", "udp_loopback.c") for flavour in ("glibc", "musl")]


def built(source: str, flavour: str | None = None) -> Path:
    reason = program_cache.missing_toolchain(source, flavour)
    if reason is not None:
        pytest.skip(reason)
    return program_cache.build_program(source, flavour)


def native(path: Path, *args: str, cwd: Path) -> str:
    result = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60,
                            cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


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
    server = subprocess.Popen([str(echo), "server", "7391"], stdout=subprocess.PIPE, text=True)
    try:
        time.sleep(0.2)
        expected = native(echo, "client", "127.0.0.1", "7391", "6", cwd=tmp_path)
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
            at = next(i for i, e in enumerate(events)
                      if e[3] == "checkpoint" and e[4]["index"] == info.index)
            tail: list = []
            Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                              sink=lambda *e, out=tail: out.append(e)).run()
            assert packb(tail) == packb(events[at + 1:]), f"after checkpoint {info.index}"
