"""Networked programs nobody wrote for chaosreplay, on different nodes over the simulated
network: busybox httpd (a process per connection) serving busybox wget, and Go's net/http
server and client. Each prints what it prints natively; under loss, duplication, reordering
and corruption nothing the programs see changes; a partition makes the Go client time out
and recover after the heal; runs are deterministic and replay from their recordings."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import program_cache
import pytest
from net_helpers import free_port, native, wait_for_listener
from simulate import Run, simulate

from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.scenario import Scenario, parse_scenario
from chaosreplay.vm.elf import load_program

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed "
                                   "(tests/install-tools.sh installs busybox-static)")
BAD_NETWORK = {"latency_ns": 1_000_000, "jitter_ns": 200_000, "loss": 0.05, "reorder": 0.1,
               "duplicate": 0.05, "corrupt": 0.02}
PAGE = "<h1>hello from busybox httpd</h1>\n"
WGET_SCRIPT = ("wget -q -O - http://{host}/index.html; wget -q -O - http://{host}/index.html; "
               "wget -q -O - http://{host}/missing; echo status $?")


def _stdout(run: Run, node: int) -> str:
    return b"".join(line + b"\n" for _, line in run.lines(node)).decode()


def _stderr(run: Run, node: int) -> str:
    return b"".join(f["data"] for *_, f in run.of("output", node) if f["fd"] == 2).decode()


# -- busybox httpd and wget -----------------------------------------------------------------
def _httpd_scenario(network: dict[str, Any]) -> Scenario:
    """httpd on node 0 (a child process per connection) and a shell running wget on node 1."""
    return parse_scenario({
        "duration": "5s", "checkpoint_interval": 0, "memory_per_node": "64MiB",
        "network": network,
        "nodes": [{"program": BUSYBOX, "name": "web",
                   "args": ["httpd", "-f", "-vv", "-p", "8080", "-h", "/www"],
                   "files": [{"path": "/www/index.html", "content": PAGE}]},
                  {"program": BUSYBOX, "name": "client",
                   "args": ["sh", "-c", WGET_SCRIPT.format(host="web:8080")],
                   "files": [{"path": "/bin", "busybox": BUSYBOX}]}]}, "test", Path("/"))


def _requests_logged(log: str) -> list[str]:
    """httpd's -vv log without the client's address and port (url and response lines)."""
    return [m.group(1) for line in log.splitlines()
            if (m := re.search(r": (url:\S+|response:\d+)$", line))]


@pytest.mark.kvm
@needs_busybox
@pytest.mark.parametrize("network", [{}, BAD_NETWORK], ids=["clean", "lossy"])
def test_busybox_httpd_serves_wget_on_another_node_as_it_does_natively(
        network: dict[str, Any], tmp_path: Path) -> None:
    """Two pages and a 404 through httpd's forked children, as natively, whatever the links
    lose, duplicate, reorder or corrupt."""
    assert BUSYBOX is not None
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "index.html").write_text(PAGE)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "wget").symlink_to(BUSYBOX)
    port = free_port()
    daemon = subprocess.Popen([BUSYBOX, "httpd", "-f", "-vv", "-p", f"127.0.0.1:{port}", "-h",
                               str(tmp_path / "www")], stderr=subprocess.PIPE, text=True)
    try:
        wait_for_listener(port)
        expected = subprocess.run(
            [BUSYBOX, "sh", "-c", WGET_SCRIPT.format(host=f"127.0.0.1:{port}")],
            capture_output=True, text=True, timeout=60, check=False,
            env={"PATH": str(tmp_path / "bin")}).stdout
    finally:
        daemon.terminate()
        log = daemon.communicate(timeout=30)[1]
    assert expected == PAGE + PAGE + "status 1\n"
    run = simulate(_httpd_scenario(network))
    assert not run.result.failures, run.result.failures
    assert _stdout(run, 1) == expected
    served = _requests_logged(_stderr(run, 0))
    assert served == _requests_logged(log)[-len(served):]  # native also logged the probe
    assert served == ["url:/index.html", "response:200"] * 2 + ["url:/missing", "response:404"]
    assert len(run.of("process.start", 0)) == 3  # one child per connection


# -- Go net/http --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def go_http() -> Path:
    return program_cache.built("go_http.go")


def _go_scenario(program: Path, *, keys: int = 8, timeout_ms: int = 2000, seed: int = 0,
                 duration: str = "10s", network: dict[str, Any] | None = None,
                 faults: list[dict[str, Any]] | None = None) -> Scenario:
    """The Go server on node 0 ("web"), its client on node 1 addressing it by name."""
    data: dict[str, Any] = {
        "seed": seed, "duration": duration, "checkpoint_interval": 0,
        "memory_per_node": "128MiB", "network": network or {},
        "nodes": [{"program": str(program), "name": "web", "args": ["server", "8080"]},
                  {"program": str(program), "name": "client",
                   "args": ["client", "http://web:8080", str(keys), str(timeout_ms)]}]}
    if faults is not None:
        data["faults"] = {"schedule": faults, "wait_for_setup": False}
    return Scenario.from_dict(data)


def _native_go(program: Path, keys: int, tmp_path: Path) -> str:
    """What the client prints against the server, both run natively on this host."""
    port = free_port()
    daemon = subprocess.Popen([str(program), "server", str(port)], stdout=subprocess.PIPE)
    try:
        wait_for_listener(port)
        return native(program, "client", f"http://127.0.0.1:{port}", str(keys), "2000",
                      cwd=tmp_path)
    finally:
        daemon.kill()
        daemon.wait(timeout=30)


@pytest.mark.kvm
@pytest.mark.parametrize("network", [{}, BAD_NETWORK], ids=["clean", "lossy"])
def test_go_http_server_and_client_on_two_nodes_print_what_they_print_natively(
        go_http: Path, network: dict[str, Any], tmp_path: Path) -> None:
    """Go's runtime (netpoller on epoll, goroutines on threads) and net/http, unmodified:
    eight PUT/GET pairs give what they give natively, over a clean or a bad network."""
    expected = _native_go(go_http, 8, tmp_path)
    assert expected.endswith("served 16 keys 8\n\ndone, failed requests: 0\n")
    run = simulate(_go_scenario(go_http, network=network))
    assert not run.result.failures, run.result.failures
    assert _stdout(run, 1) == expected
    assert _stdout(run, 0) == "listening on 8080\n"
    if network:
        dropped = {e[4]["reason"] for e in run.of("packet.dropped")}
        assert {"loss", "checksum"} <= dropped, dropped  # the stack absorbed both


PARTITION = [{"kind": "partition", "at": 500, "duration": 2000, "sides": [[0], [1]]}]


@pytest.mark.kvm
def test_a_partition_makes_the_go_client_time_out_then_recover(go_http: Path) -> None:
    """Cut off from 0.5 s to 2.5 s: requests time out (the client's 500 ms deadline) while
    the partition lasts, the client reconnects after the heal, and every value it reads
    back is the one it wrote."""
    run = simulate(_go_scenario(go_http, keys=20, timeout_ms=500, network=BAD_NETWORK,
                                faults=PARTITION))
    lines = run.lines(1)
    timeouts = [at for at, line in lines if line.endswith(b"failed: timeout")]
    assert timeouts and all(0.5e9 < at < 4e9 for at in timeouts), timeouts
    after = [line for at, line in lines if at > max(timeouts)]
    assert after[-1] == f"done, failed requests: {len(timeouts)}".encode()
    assert any(line.startswith(b"stats 200 served") and line.endswith(b"keys 20")
               for line in after)
    assert not any(b"wrong value" in line for _, line in lines)


@pytest.mark.kvm
def test_twenty_runs_of_a_go_http_scenario_are_identical_and_replay(go_http: Path,
                                                                    tmp_path: Path) -> None:
    """Twenty runs of one seed under a partition and a bad network give byte-identical event
    streams, and the recording of one replays identically."""
    sc = _go_scenario(go_http, keys=6, timeout_ms=500, seed=7, duration="4s",
                      network=BAD_NETWORK, faults=PARTITION)
    streams = {simulate(sc).stream() for _ in range(20)}
    assert len(streams) == 1
    path = tmp_path / "run.ccr"
    record_run(sc, [load_program(go_http)] * 2, path)
    report = replay_run(path)
    assert report.identical, report
