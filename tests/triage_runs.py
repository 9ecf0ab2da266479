"""Test helper (not a test module): small run recordings, written without KVM, for triage.

`FakeRun` collects events the way a Simulation records them (bug, crash, fault, ...) and
keeps the matching `RunResult.summary()` entries, so a test can write a recording that
looks like a real run's — manifest, events, summary footer — and damage it as it likes.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

from chaosreplay.kernel.process import Crash
from chaosreplay.recording import RecordingWriter
from chaosreplay.recording.format import TRAILER, unpack_trailer
from chaosreplay.runs.record_replay import RunOptions, build_manifest
from chaosreplay.sim.oracle import assertion_id
from chaosreplay.sim.scenario import Scenario

NS = 1_000_000  # per tick


class FakeRun:
    """Events and summary of one made-up run of `nodes` nodes (events may be added out of
    tick order, e.g. a fault's end with its start; they are written sorted by tick)."""

    def __init__(self, seed: int = 1, nodes: int = 3, **group: Any) -> None:
        self.seed = seed
        self.nodes = nodes
        self.group = group  # keys added to the manifest's node group (expect_exit, ...)
        self.rows: list[tuple[int, int, int, str, dict[str, Any]]] = []
        self.bugs: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.unsatisfied: list[dict[str, Any]] = []
        self.event(0, -1, "run.start", seed=seed, nodes=[f"n{i}" for i in range(nodes)],
                   duration=10_000)

    @property
    def last_tick(self) -> int:
        """Tick of the last event so far."""
        return max(row[0] for row in self.rows)

    def event(self, tick: int, node: int, kind: str, /, **fields: Any) -> FakeRun:
        """Append one event (ticks must not decrease)."""
        self.rows.append((tick, tick * NS, node, kind, fields))
        return self

    def syscalls(self, tick: int, node: int, count: int) -> FakeRun:
        """`count` clock_gettime calls of a node at tick."""
        for _ in range(count):
            self.event(tick, node, "syscall", nr=228, name="clock_gettime", args=[1, 0], ret=0)
        return self

    def fault(self, tick: int, kind: str, duration: int = 0, node: int | None = None,
              end: int | None = None, **params: Any) -> FakeRun:
        """A fault.start (and its fault.end at `end`, when given)."""
        fault = {"kind": kind, "at": tick, "duration": duration,
                 **({} if node is None else {"node": node}), **params}
        fault_id = f"{kind}-{tick:08x}"
        self.event(tick, -1 if node is None else node, "fault.start", tick=tick,
                   fault_id=fault_id, fault=fault, applied=True)
        if end is not None:
            self.event(end, -1 if node is None else node, "fault.end", tick=end,
                       fault_id=fault_id, fault=fault, applied=True, reason="duration")
        return self

    def bug(self, tick: int, node: int, message: str, kind: str = "always", line: int = 10,
            file: str = "src/app.c", first: bool = True) -> FakeRun:
        """A violated always/unreachable: the assert evaluation and its bug event."""
        aid = assertion_id(message)
        self.event(tick, node, "assert", assert_kind=0 if kind == "always" else 3,
                   condition=False, id=aid, message=message, file=file, line=line)
        record = {"tick": tick, "node": node, "assert_kind": kind, "message": message,
                  "file": file, "line": line, "assert_id": aid, "first": first}
        self.event(tick, node, "bug", **record)
        if first:
            self.bugs.append(record)
        return self

    def crash(self, tick: int, node: int, signo: int = signal.SIGSEGV,
              symbol: str = "apply_entry+0x1c", vector: int = 14,
              reason: str = "#PF page fault, write of unmapped memory") -> FakeRun:
        """A guest crash, as the process and the controller record it."""
        crash = Crash(int(signo), vector, 0x401234, symbol, 0x10, reason)
        self.event(tick, node, "crash", signal=int(signo), vector=vector, rip=0x401234,
                   symbol=symbol, fault_address=0x10, reason=reason)
        self.event(tick, node, "node.status", status="crashed", reason=crash.describe())
        self.failures.append({"kind": "crash", "node": node, "tick": tick,
                              "detail": crash.describe()})
        return self

    def hang(self, tick: int, node: int) -> FakeRun:
        """A node the watchdog ended."""
        self.event(tick, node, "crash", signal=0, reason="hang")
        self.failures.append({"kind": "hang", "node": node, "tick": tick,
                              "detail": "no VM exit for 10s of wall time"})
        return self

    def exit(self, tick: int, node: int, code: int) -> FakeRun:
        """A node's program exiting with a status (the simulation does not call it a failure)."""
        self.event(tick, node, "exit", code=code)
        return self.event(tick, node, "node.status", status="exited", reason=f"exit {code}")

    def stderr(self, tick: int, node: int, text: str) -> FakeRun:
        """A node writing to stderr."""
        return self.event(tick, node, "output", fd=2, data=text.encode())

    def never(self, tick: int, message: str, kind: str = "sometimes", line: int = 20) -> FakeRun:
        """A sometimes/reachable never satisfied by the run's end."""
        record = {"tick": tick, "assert_kind": kind, "message": message, "file": "src/app.c",
                  "line": line, "assert_id": assertion_id(message), "hits": 0}
        self.event(tick, -1, "unsatisfied", **record)
        self.unsatisfied.append(record)
        return self

    def summary(self, reason: str = "duration") -> dict[str, Any]:
        """What `RunResult.summary()` would say of this run."""
        failed = bool(self.bugs or self.failures)
        return {"reason": reason if not failed else ("bug" if self.bugs else "crash"),
                "end_tick": self.last_tick, "events": len(self.rows), "failed": failed,
                "bugs": self.bugs, "failures": self.failures, "unsatisfied": self.unsatisfied,
                "network": {}}

    def write(self, path: Path, footer: bool = True) -> Path:
        """Write the recording; footer=False cuts the index and summary off, as a writer
        killed before close() would leave it."""
        scenario = Scenario.from_dict({"seed": self.seed, "duration": 10_000,
                                       "nodes": [{"program": "builtin:demo",
                                                  "count": self.nodes}]})
        path.parent.mkdir(parents=True, exist_ok=True)
        manifest = build_manifest(scenario, [], RunOptions())
        manifest["scenario"]["nodes"][0].update(self.group)
        writer = RecordingWriter(path, manifest, flush_every_events=16)
        for row in sorted(self.rows, key=lambda r: r[0]):  # stable: same-tick order kept
            writer.append(*row)
        writer.close(self.summary())
        if not footer:
            cut_footer(path)
        return path


def cut_footer(path: Path) -> None:
    """Truncate a complete recording just before its INDEX frame."""
    data = path.read_bytes()
    trailer = unpack_trailer(data[-TRAILER.size:])
    assert trailer is not None, f"{path} has no trailer"
    with path.open("r+b") as f:
        f.truncate(trailer[0])
