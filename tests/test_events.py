"""Event kinds: one definition each, a meaning each, and the producers use only these."""

from __future__ import annotations

import re

from chaosreplay.events import MEANINGS, EventKind, make_record
from chaosreplay.sim.faults.engine import FaultEngine
from chaosreplay.sim.faults.model import Fault, FaultKind
from chaosreplay.sim.network.fabric import LinkParams, NetworkFabric
from chaosreplay.sim.oracle import PropertyOracle

REQUIRED = {
    "run.start", "run.end", "syscall", "output", "exit", "crash", "assert", "bug", "sdk.event",
    "setup_complete", "packet.sent", "packet.delivered", "packet.dropped", "packet.corrupted",
    "packet.duplicated", "fault.start", "fault.end", "node.status", "checkpoint",
}


def test_every_required_kind_is_defined_once_with_a_meaning() -> None:
    """The kinds the design names exist; each has a non-empty one-line meaning."""
    values = [kind.value for kind in EventKind]
    assert set(values) >= REQUIRED, REQUIRED - set(values)
    assert len(values) == len(set(values))
    assert set(MEANINGS) == set(EventKind)
    assert all(m and "\n" not in m for m in MEANINGS.values())
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)?", v) for v in values), values


def test_records_carry_the_kind_as_a_plain_string() -> None:
    """make_record stores the kind as str (not the enum), so msgpack writes plain text."""
    record = make_record(EventKind.CHECKPOINT, tick=5)
    assert record == {"kind": "checkpoint", "tick": 5} and type(record["kind"]) is str


def test_producers_only_emit_defined_kinds() -> None:
    """Fabric, oracle and fault engine records all use kinds defined here."""
    fabric = NetworkFabric(1, 2, LinkParams(loss=0.3, corrupt=0.5, duplicate=0.5, reorder=0.5))
    records = []
    for i in range(50):
        records += [e.to_record() for e in fabric.send(i, 0, 1, b"abc")]
    records += [d.to_record() for d in fabric.pop_due(10**12)]
    records += [e.to_record() for e in fabric.set_node_down(0, 1, True)]
    oracle = PropertyOracle()
    bug = oracle.observe(1, 0, 0, False, 7, "m", "f.c", 1)
    assert bug is not None
    oracle.observe(1, 0, 0, False, 7, "other", "f.c", 2)
    oracle.observe(1, 0, 1, False, 8, "s", "f.c", 3)
    records += [bug.to_record(), *(c.to_record() for c in oracle.conflicts())]
    records += oracle.unsatisfied_records(99)
    engine = FaultEngine([Fault(FaultKind.KILL, 0, 2, 0)], 2, fabric, wait_for_setup=False)
    records += [a.to_record() for a in engine.due(10)]
    defined = {kind.value for kind in EventKind}
    produced = {r["kind"] for r in records}
    assert produced <= defined, produced - defined
    assert {"packet.sent", "packet.dropped", "packet.delivered", "bug", "fault.end",
            "oracle.conflict", "unsatisfied"} <= produced
