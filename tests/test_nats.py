"""Debian's nats-server (a dynamically linked Go program, unmodified) as a 3-node cluster:
the servers find each other through `--routes` by node name, and a subscriber on one node
(guest/src/nats_check.c, asserting through the SDK) gets what a publisher sends through
another, in order and once each, through a partition of the subscriber's server; the run
is deterministic."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from simulate import simulate_ok

from chaosreplay.sim.scenario import Scenario, loads_scenario

SERVER = shutil.which("nats-server") or (
    "/usr/sbin/nats-server" if Path("/usr/sbin/nats-server").is_file() else None)
pytestmark = pytest.mark.skipif(SERVER is None, reason="nats-server is not installed "
                                "(tests/install-tools.sh installs it)")
COUNT = 40


@pytest.fixture
def client(guest_bin) -> Path:
    """guest/src/nats_check.c: the publisher, and the subscriber that asserts the order."""
    return guest_bin("musl", "nats_check")


def _scenario(client: Path, faults: str = "") -> Scenario:
    routes = ",".join(f"nats://nats-{i}:6222" for i in range(3))
    return loads_scenario(f"""
duration = "10s"
checkpoint_interval = 0
memory_per_node = "256MiB"
[network]
latency_ns = "1ms"
[faults]
wait_for_setup = false
schedule = [{faults}]
[[nodes]]
program = "{SERVER}"
name = "nats"
count = 3
args = ["-p", "4222", "--cluster_name", "c", "--cluster", "nats://0.0.0.0:6222",
        "--routes", "{routes}"]
root = "host"
[[nodes]]
program = "{client}"
name = "sub"
args = ["sub", "nats-2", "orders", "{COUNT}"]
[[nodes]]
program = "{client}"
name = "pub"
args = ["pub", "nats-0", "orders", "{COUNT}"]
""", "nats.toml", base_dir=Path("/"))


def _run(sc: Scenario) -> list:
    return simulate_ok(sc).events


def _received(events: list) -> list[int]:
    out = b"".join(f["data"] for _, _, n, kind, f in events
                   if kind == "output" and n == 3 and f["fd"] == 1).decode()
    return [int(line[len("got m"):]) for line in out.splitlines() if line.startswith("got m")]


@pytest.mark.kvm
def test_a_message_published_on_one_server_reaches_a_subscriber_on_another(client) -> None:
    """Routes form between the three servers; the subscriber on nats-2 gets the messages
    published to nats-0 in order, none twice, up to the last (core NATS is at most once:
    the first may go before the routes carry the subscription)."""
    events = _run(_scenario(client))
    got = _received(events)
    checks = [e[4] for e in events if e[3] == "assert"]
    assert checks and all(c["condition"] for c in checks)  # the SDK checks held
    assert got == sorted(set(got)) and got[-1] == COUNT - 1 and len(got) >= COUNT - 2, got
    logs = b"".join(f["data"] for *_, kind, f in events if kind == "output").decode()
    assert logs.count("Route connection created") >= 6


@pytest.mark.kvm
def test_a_partitioned_server_rejoins_and_delivery_stays_in_order(client) -> None:
    """The subscriber's server is cut off for a second mid-stream: the route's TCP
    connection holds what was published meanwhile and delivers it in one burst after the
    heal, in order and never twice, up to the last message; two runs are identical."""
    sc = _scenario(client, '{ kind = "partition", at = 2000, duration = 1000, '
                           'sides = [[0, 1, 4], [2, 3]] }')
    events = _run(sc)
    got = _received(events)
    assert got == sorted(set(got)) and got[-1] == COUNT - 1, got
    arrivals = [e[1] for e in events if e[3] == "output" and e[2] == 3]
    assert not [t for t in arrivals if 2.002e9 < t < 3.0e9]  # nothing while cut off
    first = min(t for t in arrivals if t > 3.0e9)
    assert len([t for t in arrivals if first <= t < first + 1_000_000]) > 5  # held, then together
    assert _run(sc) == events


@pytest.mark.kvm
@pytest.mark.slow
def test_twenty_runs_of_a_nats_cluster_seed_are_identical(client) -> None:
    """Three servers, a publisher and a subscriber through a partition: 20 runs give
    byte-identical event streams."""
    sc = _scenario(client, '{ kind = "partition", at = 2000, duration = 1000, '
                           'sides = [[0, 1, 4], [2, 3]] }')
    first = simulate_ok(sc).stream()
    assert all(simulate_ok(sc).stream() == first for _ in range(19))
