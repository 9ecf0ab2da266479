"""Benchmark the simulated network's TCP against SDK datagrams, and a 3-node Go HTTP cluster.

    PYTHONPATH=. python benchmarks/bench_network.py [--quick]

Whole simulations (recording off, events counted and dropped), interleaved, median of N:
- `tcp`: tests/programs/tcp_echo.c (musl) on two nodes, the client sending BYTES through
  the server's echo and checking them: payload MB per wall second and per virtual second
  (from the first connect to the client's "got back" line), and wall µs per delivered
  fabric packet;
- `tcp pingpong` against `datagram pingpong`: the same exchange of N small messages, one
  at a time, over a TCP connection (tcp_echo.c `pingpong`, a write and a read per message
  on each side) and as SDK datagrams (guest/src/probe.c `pingpong`, a cr_send and a
  cr_recv): wall µs per delivered packet and per round trip, side by side;
- `http`: tests/programs/go_http.go, a server and two clients on three nodes, each client
  doing COUNT PUT+GET pairs back to back (requests per wall second), and again with the
  clients pausing 100 ms between pairs, a cluster under a steady light load (virtual
  seconds per wall second).
Nothing here asserts on time.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import program_cache  # noqa: E402 - the tests' build-once cache of real programs


@dataclass
class Counted:
    """What one simulation produced, by event kind, and its wall time."""

    wall: float = 0.0
    kinds: dict[str, int] = field(default_factory=dict)
    lines: list[tuple[int, int, bytes]] = field(default_factory=list)  # (node, vtime, line)
    end_ns: int = 0

    def sink(self, _tick: int, vtime: int, node: int, kind: str, fields: dict) -> None:
        """Count an event; keep stdout lines and the last virtual time."""
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        self.end_ns = vtime
        if kind == "output" and fields.get("fd") == 1:
            self.lines += [(node, vtime, line) for line in fields["data"].splitlines()]


def _run(data: dict[str, Any], fast_path: bool = True) -> Counted:
    """Run a scenario to its end with a counting sink."""
    sc = Scenario.from_dict(data)
    images = [load_program(g.program) for g in sc.nodes]
    counted = Counted()
    sim = Simulation(sc, images, sink=counted.sink, fast_path=fast_path)
    started = time.perf_counter()
    result = sim.run()
    counted.wall = time.perf_counter() - started
    if result.failures:
        raise SystemExit(f"unexpected failures: {result.failures}")
    return counted


def _two_nodes(program: Path, first: list[str], second: list[str], duration: str) -> dict:
    return {"duration": duration, "checkpoint_interval": 0, "memory_per_node": "32MiB",
            "network": {"latency_ns": 100_000},
            "nodes": [{"program": str(program), "name": "a", "args": first},
                      {"program": str(program), "name": "b", "args": second}]}


def tcp(program: Path, size: int) -> dict[str, float]:
    """Echo size bytes between two nodes; figures per wall and virtual second."""
    c = _run(_two_nodes(program, ["server", "7000"], ["client", "10.0.0.1", "7000", str(size)],
                        "60s"))
    ((done_ns, line),) = [(t, x) for n, t, x in c.lines if n == 1 and x.startswith(b"got back")]
    if not line.endswith(b" 0 differ"):
        raise SystemExit(f"tcp echo went wrong: {line!r}")
    packets = c.kinds.get("packet.delivered", 0)
    # the echo moves the payload twice (there and back): count both as payload moved
    return {"wall": c.wall, "packets": packets, "us_per_packet": c.wall / packets * 1e6,
            "mb_per_wall_s": 2 * size / c.wall / 1e6, "mb_per_virtual_s": 2 * size / done_ns * 1e3}


def _pingpong(c: Counted, rounds: int) -> dict[str, float]:
    if not any(x == b"pingpong %d of %d" % (rounds, rounds) for _, _, x in c.lines):
        raise SystemExit(f"a ping-pong did not finish: {c.lines}")
    packets = c.kinds.get("packet.delivered", 0)
    return {"wall": c.wall, "packets": packets, "us_per_packet": c.wall / packets * 1e6,
            "us_per_round": c.wall / rounds * 1e6,
            "syscalls_per_round": c.kinds.get("syscall", 0) / rounds}


def tcp_pingpong(program: Path, rounds: int) -> dict[str, float]:
    """rounds 64-byte messages echoed one at a time over one TCP connection."""
    return _pingpong(_run(_two_nodes(program, ["server", "7000"],
                                     ["pingpong", "10.0.0.1", "7000", str(rounds)], "60s")),
                     rounds)


def datagram_pingpong(probe: Path, rounds: int) -> dict[str, float]:
    """rounds SDK datagrams echoed one at a time."""
    data = _two_nodes(probe, [], [], "60s")
    data["nodes"] = [{"program": str(probe), "count": 2, "args": ["pingpong", str(rounds)]}]
    return _pingpong(_run(data), rounds)


def http(program: Path, count: int, pause_ms: int, fast_path: bool = True) -> dict[str, float]:
    """A Go HTTP server and two clients doing count PUT+GET pairs each."""
    client = ["client", "http://web:8080", str(count), "5000", str(pause_ms)]
    c = _run({"duration": "120s", "checkpoint_interval": 0, "memory_per_node": "128MiB",
              "network": {"latency_ns": 100_000},
              "nodes": [{"program": str(program), "name": "web", "args": ["server", "8080"]},
                        {"program": str(program), "name": "client", "count": 2,
                         "args": client}]}, fast_path)
    done = [t for n, t, x in c.lines if x.startswith(b"done, failed requests: 0")]
    if len(done) != 2:
        raise SystemExit("an HTTP client did not finish cleanly")
    requests = 2 * (2 * count + 1)
    return {"wall": c.wall, "requests_per_wall_s": requests / c.wall,
            "virtual_per_wall": max(done) / 1e9 / c.wall,
            "syscalls_per_request": c.kinds.get("syscall", 0) / requests}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer rounds and repetitions")
    args = parser.parse_args()
    reps = 3 if args.quick else 7
    size, count, pairs = (200_000, 500, 50) if args.quick else (2_000_000, 2000, 200)
    echo = program_cache.build_program("tcp_echo.c", "musl")
    go_http = program_cache.build_program("go_http.go")
    probe = REPO / "guest" / "build" / "musl" / "probe"
    samples: dict[str, list[dict[str, float]]] = {
        "tcp": [], "tcp_pingpong": [], "datagram_pingpong": [], "http": [], "http_paced": [],
        "http_paced_exits": []}
    for _ in range(reps):  # interleaved, so a noisy moment hits every mode alike
        samples["tcp"].append(tcp(echo, size))
        samples["tcp_pingpong"].append(tcp_pingpong(echo, count))
        samples["datagram_pingpong"].append(datagram_pingpong(probe, count))
        samples["http"].append(http(go_http, pairs, 0))
        samples["http_paced"].append(http(go_http, pairs // 2, 100))
        samples["http_paced_exits"].append(http(go_http, pairs // 2, 100, fast_path=False))

    def med(mode: str, key: str) -> float:
        return statistics.median(s[key] for s in samples[mode])

    print(f"{reps} interleaved repetitions, medians")
    print(f"tcp echo of {size} B: {med('tcp', 'wall'):.2f} s wall, "
          f"{med('tcp', 'packets'):.0f} packets delivered, "
          f"{med('tcp', 'us_per_packet'):.1f} µs wall per packet, "
          f"{med('tcp', 'mb_per_wall_s'):.2f} MB/s wall, "
          f"{med('tcp', 'mb_per_virtual_s'):.1f} MB/s virtual")
    for mode, label in (("tcp_pingpong", "tcp"), ("datagram_pingpong", "sdk datagram")):
        print(f"{label} ping-pong of {count} messages: {med(mode, 'wall'):.2f} s wall, "
              f"{med(mode, 'packets'):.0f} packets delivered, "
              f"{med(mode, 'us_per_packet'):.1f} µs per packet, "
              f"{med(mode, 'us_per_round'):.1f} µs per round trip, "
              f"{med(mode, 'syscalls_per_round'):.1f} system calls per round trip")
    for key, label in (("us_per_packet", "delivered packet"), ("us_per_round", "round trip")):
        print(f"tcp / sdk datagram cost per {label}: "
              f"{med('tcp_pingpong', key) / med('datagram_pingpong', key):.2f}x")
    for mode, label in (("http", "back to back"), ("http_paced", "100 ms apart"),
                        ("http_paced_exits", "100 ms apart, no fast path")):
        print(f"go http, 3 nodes, pairs {label}: {med(mode, 'wall'):.2f} s wall, "
              f"{med(mode, 'requests_per_wall_s'):.0f} requests per wall second, "
              f"{med(mode, 'syscalls_per_request'):.0f} system calls per request, "
              f"{med(mode, 'virtual_per_wall'):.2f}x real time")


if __name__ == "__main__":
    main()
