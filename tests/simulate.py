"""Test helper (not a test module): run a scenario of `probe` nodes and collect its events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chaosreplay.recording.format import packb
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import RunResult, Simulation
from chaosreplay.vm.elf import load_program

GOT = re.compile(rb"^got (.*) src=(\d+)$")


@dataclass
class Run:
    """A finished simulation with every event it produced."""

    sim: Simulation
    result: RunResult
    events: list[tuple[int, int, int, str, dict[str, Any]]]

    def of(self, kind: str, node: int | None = None) -> list[tuple[int, int, int, str, dict]]:
        """The events of one kind (and node)."""
        return [e for e in self.events if e[3] == kind and (node is None or e[2] == node)]

    def lines(self, node: int) -> list[tuple[int, bytes]]:
        """(vtime_ns, line) of everything a node printed on stdout, in order."""
        out = []
        for _, vtime, _, _, fields in self.of("output", node):
            if fields["fd"] == 1:
                out += [(vtime, line) for line in fields["data"].splitlines()]
        return out

    def stdout(self, node: int) -> str:
        """Everything a node's processes wrote to stdout, as text."""
        return b"".join(f["data"] for *_, f in self.of("output", node) if f["fd"] == 1).decode()

    def received(self, node: int) -> list[bytes]:
        """The payloads a probe node printed as received."""
        return [m.group(1) for _, line in self.lines(node) if (m := GOT.match(line))]

    def statuses(self, node: int) -> list[str]:
        """The node.status changes of a node, in order."""
        return [fields["status"] for *_, fields in self.of("node.status", node)]

    def stream(self) -> bytes:
        """The whole event stream as bytes (for byte-identical comparisons)."""
        return packb(self.events)


def scenario(program: Path, args: list[str], *, count: int = 3, duration: str = "1s",
             faults: list[dict[str, Any]] | None = None, network: dict[str, Any] | None = None,
             wait_for_setup: bool = True, **extra: Any) -> Scenario:
    """A scenario of `count` nodes running program with args (no checkpoints by default)."""
    data: dict[str, Any] = {
        "duration": duration, "checkpoint_interval": 0, "memory_per_node": "32MiB",
        "nodes": [{"program": str(program), "count": count, "args": args}],
        **extra,
    }
    if faults is not None:
        data["faults"] = {"schedule": faults, "wait_for_setup": wait_for_setup}
    if network is not None:
        data["network"] = network
    return Scenario.from_dict(data)


def simulate(sc: Scenario, program: Path | None = None, **kwargs: Any) -> Run:
    """Run a scenario to its end and collect the events."""
    images = [load_program(program or g.program) for g in sc.nodes]
    events: list[tuple[int, int, int, str, dict[str, Any]]] = []
    sim = Simulation(sc, images, sink=lambda *e: events.append(e), **kwargs)
    return Run(sim, sim.run(), events)


def simulate_ok(sc: Scenario, **kwargs: Any) -> Run:
    """simulate(), asserting the run had no failures (crashes, bad exits, hangs)."""
    run = simulate(sc, **kwargs)
    assert not run.result.failures, run.result.failures
    return run
