"""Benchmark the .ccr recording against JSON lines of the same events, side by side.

    python benchmarks/bench_recording.py [--events N] [--seek-events N] [--seeks N]

Measures, in one run: write throughput and file size of RecordingWriter vs one
`json.dumps` per line (bytes as base64, the way a JSON log has to carry them), and the
latency of seeking to a random tick in a 1,000,000-event recording.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chaosreplay.recording import RecordingReader, RecordingWriter

Row = tuple[int, int, int, str, dict[str, Any]]

_SYSCALLS = [  # (nr, name, relative frequency) of a replicated key-value node's loop
    (232, "epoll_wait", 30), (45, "recvfrom", 20), (44, "sendto", 20), (228, "clock_gettime", 15),
    (1, "write", 8), (0, "read", 4), (318, "getrandom", 1), (9, "mmap", 1), (74, "fsync", 1),
]
_EXIT_COST_NS = 22_000  # the simulated cost of one VM exit, as configured by a scenario


def realistic_events(count: int, nodes: int = 3, seed: int = 7) -> Iterator[Row]:
    """A deterministic stream shaped like a 3-node replicated store under test."""
    rng = random.Random(seed)
    names = [s[1] for s in _SYSCALLS]
    numbers = {s[1]: s[0] for s in _SYSCALLS}
    weights = [s[2] for s in _SYSCALLS]
    clocks = [0] * nodes
    stacks = [0x7FFD_0000_0000 + rng.randrange(1 << 24) * 16 for _ in range(nodes)]
    term, commit = 1, 0
    for _ in range(count):
        node = min(range(nodes), key=clocks.__getitem__)  # smallest virtual time runs next
        clocks[node] += _EXIT_COST_NS
        vtime = clocks[node]
        tick = vtime // 1_000_000
        roll = rng.random()
        if roll < 0.06:
            commit += rng.randrange(1, 4)
            if rng.random() < 0.01:
                term += 1
            line = (f"[n{node}] term={term} commit={commit} applied={commit - rng.randrange(3)} "
                    f"lag_ms={rng.randrange(40)}\n")
            yield tick, vtime, node, "output", {"fd": 1, "data": line.encode()}
        elif roll < 0.10:
            dst = rng.choice([n for n in range(nodes) if n != node])
            yield tick, vtime, -1, "packet.sent", {"src": node, "dst": dst,
                                                  "len": rng.randrange(60, 400),
                                                  "id": rng.randrange(1 << 20)}
        else:
            name = rng.choices(names, weights)[0]
            size = rng.choice((4096, 64, 128, 512)) if name != "clock_gettime" else 0
            args = [rng.randrange(3, 12), stacks[node] + rng.randrange(16) * 64, size, 0, 0, 0]
            ret = rng.randrange(size + 1) if size else 0
            if name == "epoll_wait":
                clocks[node] += rng.randrange(0, 2_000_000)  # blocked until a packet arrived
                ret = rng.randrange(0, 3)
            yield tick, vtime, node, "syscall", {"nr": numbers[name], "name": name,
                                                 "args": args, "ret": ret}


def _json_default(value: Any) -> str:
    """JSON has no bytes: carry them as base64 text."""
    return base64.b64encode(value).decode("ascii")


def write_jsonl(path: Path, rows: list[Row]) -> float:
    """Seconds to write rows as JSON lines, one json.dumps per event."""
    start = time.perf_counter()
    with open(path, "w", encoding="utf-8") as out:
        for seq, (tick, vtime, node, kind, fields) in enumerate(rows):
            out.write(json.dumps({"seq": seq, "tick": tick, "vtime_ns": vtime, "node": node,
                                  "kind": kind, "fields": fields}, default=_json_default))
            out.write("\n")
    return time.perf_counter() - start


def write_ccr(path: Path, rows: list[Row]) -> float:
    """Seconds to write rows with RecordingWriter (close included)."""
    start = time.perf_counter()
    writer = RecordingWriter(path, {"benchmark": "bench_recording", "seed": 7})
    append = writer.append
    for tick, vtime, node, kind, fields in rows:
        append(tick, vtime, node, kind, fields)
    writer.close()
    return time.perf_counter() - start


def bench_write(count: int, directory: Path) -> dict[str, float]:
    """Write the same events both ways, interleaving repetitions; report the best of 3."""
    rows = list(realistic_events(count))
    ccr_path, json_path = directory / "bench.ccr", directory / "bench.jsonl"
    ccr_times, json_times = [], []
    for _ in range(3):
        json_times.append(write_jsonl(json_path, rows))
        ccr_times.append(write_ccr(ccr_path, rows))
    with RecordingReader(ccr_path) as reader:  # the benchmark's own sanity check
        assert reader.complete and reader.event_count == count, reader.damage
    ccr_size, json_size = ccr_path.stat().st_size, json_path.stat().st_size
    return {
        "events": count,
        "ccr_bytes": ccr_size,
        "json_bytes": json_size,
        "size_ratio": json_size / ccr_size,
        "ccr_events_per_s": count / min(ccr_times),
        "json_events_per_s": count / min(json_times),
        "throughput_ratio": min(json_times) / min(ccr_times),
    }


def bench_seek(count: int, seeks: int, directory: Path) -> dict[str, float]:
    """Latency of seeking to a random tick in a `count`-event recording."""
    path = directory / "seek.ccr"
    write_ccr(path, list(realistic_events(count, seed=11)))
    rng = random.Random(3)
    warm, cold = [], []
    with RecordingReader(path) as reader:
        first, last = reader.first_tick, reader.last_tick
        assert first is not None and last is not None
        for _ in range(seeks):
            tick = rng.randint(first, last)
            start = time.perf_counter()
            event = next(reader.events(from_tick=tick))
            warm.append(time.perf_counter() - start)
            assert event.tick >= tick
    for _ in range(seeks // 4):
        tick = rng.randint(first, last)
        start = time.perf_counter()
        with RecordingReader(path) as fresh:  # open (footer read) + seek, nothing cached
            event = next(fresh.events(from_tick=tick))
        cold.append(time.perf_counter() - start)
    return {
        "events": count,
        "file_bytes": path.stat().st_size,
        "seek_median_ms": statistics.median(warm) * 1e3,
        "seek_p95_ms": statistics.quantiles(warm, n=20)[18] * 1e3,
        "open_seek_median_ms": statistics.median(cold) * 1e3,
        "open_seek_p95_ms": statistics.quantiles(cold, n=20)[18] * 1e3,
    }


def main() -> None:
    """Run both benchmarks and print a summary against the targets."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seek-events", type=int, default=1_000_000)
    parser.add_argument("--seeks", type=int, default=200)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write = bench_write(options.events, Path(tmp))
        seek = bench_seek(options.seek_events, options.seeks, Path(tmp))
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    print(f"write, {write['events']} events:")
    for label, size, rate in ((".ccr", write["ccr_bytes"], write["ccr_events_per_s"]),
                              ("JSON lines", write["json_bytes"], write["json_events_per_s"])):
        print(f"  {label:<10}  {size:>12,} bytes  {rate:>12,.0f} ev/s")
    print(f"  .ccr is {write['size_ratio']:.1f}x smaller (target >= 10x) and writes "
          f"{write['throughput_ratio']:.1f}x faster (target >= 3x)")
    print(f"seek to a random tick, {seek['events']:,} events ({seek['file_bytes']:,} bytes):")
    print(f"  open reader: median {seek['seek_median_ms']:.2f} ms, "
          f"p95 {seek['seek_p95_ms']:.2f} ms (target median <= 20 ms)")
    print(f"  open + seek: median {seek['open_seek_median_ms']:.2f} ms, "
          f"p95 {seek['open_seek_p95_ms']:.2f} ms")

if __name__ == "__main__":
    main()
