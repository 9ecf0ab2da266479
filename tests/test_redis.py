"""Debian's redis-server and redis-cli, unmodified and dynamically linked (jemalloc,
OpenSSL, libsystemd...): the server's libraries come from the host through `root =
"host"`. On two nodes, a dash script runs redis-cli against the server by name and prints
what it prints against a native redis-server, over a clean or a lossy, duplicating
network; runs are deterministic and the recording replays. On three, a master and a
replica (`--replicaof`, the full sync forked and streamed) serve guest/src/redis_check.c,
whose SDK assertions hold through partitions and a replica's restart, and catch the
acknowledged writes a master without persistence loses when it restarts."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
from net_helpers import free_port, wait_for_listener
from simulate import simulate, simulate_ok

from chaosreplay.cli.embedded_files import roots
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.vm.elf import load_program

SERVER, CLI, DASH = (shutil.which(p) for p in ("redis-server", "redis-cli", "dash"))
pytestmark = pytest.mark.skipif(
    None in (SERVER, CLI, DASH),
    reason="redis-server, redis-cli or dash is missing (tests/install-tools.sh installs "
           "redis-server and redis-tools)")
COMMANDS = ["set k v", "get k", "incr n", "incr n", "lpush l a b c", "lrange l 0 -1",
            "get missing", "dbsize"]
SERVER_ARGS = ["--save", "", "--appendonly", "no", "--protected-mode", "no"]


def _script(host: str, port: int) -> str:
    """One redis-cli per command (--no-raw: the same quoting whether stdout is a tty)."""
    return "; ".join(f"redis-cli --no-raw -h {host} -p {port} {c}" for c in COMMANDS)


def _native() -> str:
    """What the script prints against a redis-server on this host."""
    port = free_port()
    server = subprocess.Popen([str(SERVER), "--port", str(port), "--bind", "127.0.0.1",
                               *SERVER_ARGS], stdout=subprocess.DEVNULL)
    try:
        wait_for_listener(port)
        return subprocess.run([str(DASH), "-c", _script("127.0.0.1", port)],
                              capture_output=True, text=True, timeout=60, check=True).stdout
    finally:
        server.terminate()
        server.wait(timeout=30)


def _scenario(network: str = "") -> Scenario:
    args = ", ".join(f'"{a}"' for a in ["--port", "6379", *SERVER_ARGS])
    return loads_scenario(f"""
duration = "5s"
checkpoint_interval = 500
memory_per_node = "256MiB"
[network]
latency_ns = "1ms"
{network}
[[nodes]]
program = "{SERVER}"
name = "redis"
args = [{args}]
root = "host"
[[nodes]]
program = "{DASH}"
name = "client"
args = ["-c", "{_script('redis', 6379)}"]
env = {{ PATH = "/usr/bin:/bin" }}
root = {{ host = ["{CLI}"] }}
""", "redis.toml", base_dir=Path("/"))


def _run(sc: Scenario) -> list:
    return simulate_ok(sc).events


def _run_to_a_bug(sc: Scenario) -> list:
    run = simulate(sc)
    assert run.result.reason == "bug" and run.result.bugs, run.result
    return run.events


def _stdout(events: list, node: int) -> str:
    return b"".join(f["data"] for _, _, n, kind, f in events
                    if kind == "output" and n == node and f["fd"] == 1).decode()


@pytest.mark.kvm
@pytest.mark.parametrize("network", ["", "loss = 0.1\nduplicate = 0.1\nreorder = 0.1"],
                         ids=["clean", "lossy"])
def test_redis_cli_gets_from_redis_server_on_another_node_what_it_gets_natively(
        network: str) -> None:
    expected = _native()
    assert expected.startswith('OK\n"v"\n(integer) 1\n(integer) 2\n(integer) 3\n')
    events = _run(_scenario(network))
    assert _stdout(events, 1) == expected
    assert "Ready to accept connections" in _stdout(events, 0)
    assert [e[4]["what"] for e in events if e[3] == "connection" and e[2] == 1].count(
        "connect") == len(COMMANDS)


@pytest.mark.kvm
def test_a_redis_run_is_deterministic_and_replays_from_its_recording(tmp_path: Path) -> None:
    """Two runs under loss give byte-identical event streams; the recording, which holds
    both nodes' libraries, replays identically with checkpoints every 500 ms."""
    sc = _scenario("loss = 0.1")
    assert _run(sc) == _run(sc)
    path = tmp_path / "redis.ccr"
    record_run(sc, [load_program(g.program) for g in sc.nodes], path)
    report = replay_run(path)
    assert report.identical and report.checkpoints_checked >= 9, report


def _replicated(checker: Path, faults: str, persistence: bool = True,
                durability: str = "posix") -> Scenario:
    """A master, a replica of it and redis_check (INCR on the master, GET from both)."""
    keep = (["--appendonly", "yes", "--appendfsync", "always"] if persistence
            else ["--appendonly", "no"])
    server = ", ".join(f'"{a}"' for a in ["--port", "6379", *SERVER_ARGS[:2], *keep,
                                          "--protected-mode", "no", "--dir", "/data",
                                          "--repl-diskless-sync-delay", "0"])
    return loads_scenario(f"""
duration = "8s"
checkpoint_interval = 0
memory_per_node = "256MiB"
disk = {{ durability = "{durability}" }}
[network]
latency_ns = "1ms"
[faults]
wait_for_setup = false
schedule = [{faults}]
[[nodes]]
program = "{SERVER}"
name = "master"
args = [{server}]
root = "host"
[[nodes]]
program = "{SERVER}"
name = "replica"
args = [{server}, "--replicaof", "master", "6379"]
root = "host"
[[nodes]]
program = "{checker}"
name = "client"
args = ["master", "replica", "60"]
""", "replicas.toml", base_dir=Path("/"))


@pytest.mark.kvm
def test_a_replica_follows_its_master_through_a_partition_and_a_restart(guest_bin) -> None:
    """The replica is cut off for a second and later restarted: it resyncs each time, the
    client's assertions all hold, and the replica catches up with every acknowledged
    write (the sometimes-assertion is met)."""
    faults = ('{ kind = "partition", at = 1000, duration = 1000, sides = [[0, 2], [1]] }, '
              '{ kind = "restart", node = 1, at = 4000 }')
    events = _run(_replicated(guest_bin("musl", "redis_check"), faults))
    rounds = [line.split() for line in _stdout(events, 2).splitlines()]
    acked = int(rounds[-1][3])
    assert len(rounds) == 60 and acked >= 55, rounds[-1]
    assert int(rounds[-1][5]) == acked  # the master has every acknowledged write
    assert any(r[7] == "-1" or int(r[7]) < int(r[3]) for r in rounds[10:20])  # cut off
    assert rounds[-1][7] == str(acked)  # caught up again after its restart
    checks = [e[4] for e in events if e[3] == "assert"]
    always = [c["condition"] for c in checks if c["assert_kind"] == 0]
    assert len(always) == 120 and all(always) and not [e for e in events if e[3] == "bug"]
    assert any(c["condition"] for c in checks if c["assert_kind"] == 1)  # caught up
    log = _stdout(events, 1)
    assert log.count("MASTER <-> REPLICA sync: Finished with success") >= 2, log


@pytest.mark.kvm
def test_a_master_without_persistence_loses_acknowledged_writes_on_restart(
        guest_bin) -> None:
    """`--appendonly no --save ""`: the master restarts empty, its replica resyncs from it,
    and the client's always-assertion reports the acknowledged writes lost (Redis's own
    documentation warns about exactly this setup)."""
    events = _run_to_a_bug(_replicated(guest_bin("musl", "redis_check"),
                                      '{ kind = "restart", node = 0, at = 3000 }',
                                      persistence=False))
    bugs = [e[4] for e in events if e[3] == "bug"]
    assert bugs and bugs[0]["message"] == "redis: the master keeps every write it acknowledged"
    assert 3.0e9 < next(e[1] for e in events if e[3] == "bug") < 3.5e9


@pytest.mark.kvm
@pytest.mark.parametrize("durability", ["journal", "posix"])
def test_a_persistent_master_restarted_keeps_what_it_acknowledged_only_on_a_journal(
        guest_bin, durability: str) -> None:
    """`--appendonly yes --appendfsync always`: with ext4-like durability the restarted
    master reloads its AOF and no acknowledged write is lost. Under the POSIX rule it
    loses them all: redis creates `appendonlydir` and never fsyncs `/data`, so the
    directory's name does not survive the crash (a real portability bug the strict disk
    finds; ext4's journal hides it)."""
    run = simulate(_replicated(guest_bin("musl", "redis_check"),
                               '{ kind = "restart", node = 0, at = 3000 }',
                               durability=durability))
    bugs = run.of("bug")
    if durability == "journal":
        assert not run.result.failures and not bugs, (run.result.failures, bugs)
        rounds = [line.split() for line in run.stdout(2).splitlines()]
        assert int(rounds[-1][5]) == int(rounds[-1][3]) >= 55  # master has every write
        assert "DB loaded from append only file" in run.stdout(0)
    else:
        assert bugs[0][4]["message"] == "redis: the master keeps every write it acknowledged"


@pytest.mark.kvm
def test_the_root_of_a_three_node_redis_recording_is_stored_once_in_under_5_mb(
        guest_bin, tmp_path: Path) -> None:
    """Master and replica share one root (redis-server's 17 libraries, 15 MB): the
    recording stores it once, in under 5 MB (xz per content), and no checkpoint carries
    any of it again (their blobs stay far below one library)."""
    faults = '{ kind = "restart", node = 1, at = 2000 }'
    sc = replace(_replicated(guest_bin("musl", "redis_check"), faults),
                 checkpoint_interval=500, duration=4000)
    path = tmp_path / "redis.ccr"
    record_run(sc, [load_program(g.program) for g in sc.nodes], path)
    with RecordingReader(path) as reader:
        (root,) = roots(reader)
        assert root["groups"] == [0, 1] and root["raw_bytes"] > 10 << 20, root
        assert root["stored_bytes"] < 5_000_000, root
        assert len(reader.checkpoints) >= 7
        assert all(c.blob_bytes < 1 << 20 for c in reader.checkpoints), reader.checkpoints


@pytest.mark.kvm
@pytest.mark.slow
def test_twenty_runs_of_a_replicated_redis_seed_are_identical(guest_bin) -> None:
    """The master, its replica and redis_check through a partition and the replica's
    restart: 20 runs give byte-identical event streams."""
    faults = ('{ kind = "partition", at = 1000, duration = 1000, sides = [[0, 2], [1]] }, '
              '{ kind = "restart", node = 1, at = 4000 }')
    sc = _replicated(guest_bin("musl", "redis_check"), faults)
    first = simulate_ok(sc).stream()
    assert all(simulate_ok(sc).stream() == first for _ in range(19))
