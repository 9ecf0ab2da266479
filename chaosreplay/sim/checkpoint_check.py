"""The shape of every simulation-level checkpoint part (controller, engine, fabric, oracle,
inboxes), as tables of field -> check for a run of `node_count` nodes.

Node numbers are checked against the scenario's node count here, so a loader never indexes
a node that does not exist; the faults inside the engine part go through the scenario's own
fault parser (the rules a scenario file obeys). The per-node parts (kernel, disk) are the
kernel's: chaosreplay.kernel.state_check. The controller's table is open (keys it does not
name are ignored, as the loader ignores them); test_hostile_checkpoints compares every table
with a real checkpoint, so a field added to a part without its line here fails there.
"""

from __future__ import annotations

from typing import Any

from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording.schema import (
    I64_MAX,
    U64_MAX,
    Bool,
    Bytes,
    Check,
    Float,
    Int,
    ListOf,
    MapOf,
    Maybe,
    OneOf,
    Parsed,
    Record,
    Row,
    Str,
    Where,
    unique,
)
from chaosreplay.sim.faults.engine import SNAPSHOT_VERSION as ENGINE_VERSION
from chaosreplay.sim.faults.model import Fault
from chaosreplay.sim.network.fabric import LINK_PARAM_NAMES, LinkParams
from chaosreplay.sim.network.fabric import SNAPSHOT_VERSION as FABRIC_VERSION
from chaosreplay.sim.oracle import SNAPSHOT_VERSION as ORACLE_VERSION

NS = Int(0, I64_MAX)
COUNT = Int(0, U64_MAX)
TEXT = Str(1 << 16)
PAYLOAD = Bytes(1 << 20)
KINDS = OneOf(*(int(k) for k in AssertKind))
_INT_PARAMS = {"latency_ns", "jitter_ns", "reorder_delay_ns", "bandwidth_bps"}


def _link_param(name: str) -> Check:
    return Int(0, I64_MAX) if name in _INT_PARAMS else Float(0.0, 1.0)


def _valid_link_params(params: dict[str, Any]) -> str | None:
    try:
        LinkParams(**{**LinkParams().to_dict(), **params})
    except (ValueError, TypeError) as exc:
        return f"is not a valid set of link parameters ({exc})"
    return None


LINK_PARAMS = Where(Record({name: _link_param(name) for name in LINK_PARAM_NAMES}),
                    _valid_link_params)
LINK_LAYER = Where(Record({name: _link_param(name) for name in LINK_PARAM_NAMES},
                          partial=True), _valid_link_params)


def _node(node_count: int) -> Int:
    return Int(0, node_count - 1)


def _delivery(node_count: int) -> Row:
    """A packet in flight or in an inbox (network.fabric.Delivery._to_list)."""
    node = _node(node_count)
    return Row(NS, node, node, PAYLOAD, COUNT, Int(0, 255), Int(0, 255), Int(0, 2**32 - 1), NS)


def _sides_disjoint(sides: list[list[int]]) -> str | None:
    nodes = [n for side in sides for n in side]
    if len(nodes) != len(set(nodes)) or not all(sides):
        return "names a node on two sides, or has an empty side"
    return None


def fabric(node_count: int) -> Check:
    """network.fabric.NetworkFabric.snapshot()."""
    node = _node(node_count)
    return Record({
        "version": OneOf(FABRIC_VERSION),
        "seed": Int(0, U64_MAX),
        "node_count": OneOf(node_count),
        "position": Int(0, I64_MAX),
        "next_id": COUNT,
        "defaults": LINK_PARAMS,
        "node_base": Where(ListOf(Row(node, LINK_LAYER)), unique(lambda r: r[0], "node")),
        "layers": Where(ListOf(Row(Str(256), Maybe(node), LINK_LAYER), max_len=1 << 12),
                        unique(lambda r: r[0], "layer")),
        "partitions": Where(ListOf(Row(Str(256), Where(ListOf(ListOf(node)), _sides_disjoint)),
                                   max_len=1 << 12), unique(lambda r: r[0], "partition")),
        "down": ListOf(node, max_len=node_count),
        "tx_free": Where(ListOf(Row(node, NS)), unique(lambda r: r[0], "node")),
        "in_flight": ListOf(_delivery(node_count)),
        "stats": Record({
            "sent": COUNT, "delivered": COUNT, "corrupted": COUNT, "duplicated": COUNT,
            "dropped": MapOf(Str(256), COUNT), "delayed": MapOf(Str(256), COUNT),
        }),
    })


def _fault_parser(node_count: int) -> Parsed:
    return Parsed(lambda d: Fault.from_dict(d, node_count=node_count), "a fault")


def engine(node_count: int) -> Check:
    """faults.engine.FaultEngine.snapshot()."""
    return Where(Record({
        "version": OneOf(ENGINE_VERSION),
        "faults": ListOf(_fault_parser(node_count), max_len=1 << 16),
        "node_count": OneOf(node_count),
        "wait_for_setup": Bool(),
        "origin": Maybe(NS),
        "setup_nodes": ListOf(_node(node_count), max_len=node_count),
        "next": Int(0, 1 << 16),
        "active": ListOf(Row(Str(256), Maybe(NS), Maybe(NS)), max_len=1 << 16),
        "ends": ListOf(Row(NS, Int(0, 1 << 16), Str(256)), max_len=1 << 16),
    }), _engine_refers_to_its_faults)


def _engine_refers_to_its_faults(snap: dict[str, Any]) -> str | None:
    count = len(snap["faults"])
    if snap["next"] > count:
        return f"has next fault {snap['next']} of {count}"
    for _, index, fid in snap["ends"]:
        if index >= count:
            return f"has an end for fault {index} ({fid}) of {count}"
    return None


def oracle(node_count: int) -> Check:
    """oracle.PropertyOracle.snapshot()."""
    return Record({
        "version": OneOf(ORACLE_VERSION),
        "assertions": Where(ListOf(Record({
            "assert_id": Int(0, U64_MAX), "kind": KINDS, "message": TEXT, "file": TEXT,
            "line": Int(0, 2**32), "passes": COUNT, "fails": COUNT,
            "first_tick": Int(-1, I64_MAX), "first_node": Int(-1, node_count - 1),
        }), max_len=1 << 16), unique(lambda a: (a["assert_id"], a["kind"]), "assertion")),
        "conflicts": ListOf(Record({
            "tick": NS, "node": _node(node_count), "assert_id": Int(0, U64_MAX), "kind": KINDS,
            "known_message": TEXT, "new_message": TEXT, "file": TEXT, "line": Int(0, 2**32),
        }), max_len=1 << 16),
        "conflicts_taken": COUNT,
        "bug_count": COUNT,
    })


def inboxes(node_count: int) -> Check:
    """network.datagrams.Messaging.snapshot(): per node its inbox and blocked cr_recv."""
    pending = Maybe(Row(Int(0, U64_MAX), Int(0, U64_MAX), Int(0, U64_MAX)))
    return Where(ListOf(Row(ListOf(_delivery(node_count)), pending), max_len=node_count),
                 lambda rows: None if len(rows) == node_count
                 else f"has {len(rows)} endpoints for {node_count} nodes")


def stream_seeds(node_count: int) -> Check:
    """The controller's `stream_seeds` (sim/reseed.py): one seed or nil per node."""
    return Where(ListOf(Maybe(Int(0, 2**63 - 1)), max_len=node_count),
                 lambda s: None if len(s) == node_count
                 else f"has {len(s)} nodes, the scenario {node_count}")


def controller(node_count: int, statuses: tuple[str, ...], version: int) -> Check:
    """The controller part (sim.checkpoint.capture): counters, node statuses, bugs."""
    node = _node(node_count)
    return Record({
        "version": OneOf(version),
        "statuses": Where(ListOf(OneOf(*statuses), max_len=node_count),
                          lambda s: None if len(s) == node_count
                          else f"has {len(s)} nodes, the scenario {node_count}"),
        "now_ns": NS, "tick": NS, "event_count": COUNT, "checkpoint_count": COUNT,
        "next_checkpoint_ns": NS,
        "bugs": ListOf(Row(node, NS, KINDS, TEXT, TEXT, Int(0, 2**32), Int(0, U64_MAX), Bool()),
                       max_len=1 << 16),
        "failures": ListOf(Record({"kind": Str(64), "node": node, "tick": NS,
                                   "detail": TEXT}, open=True), max_len=1 << 16),
    }, open=True)
