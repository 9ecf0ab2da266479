"""Whole-simulation checkpoints: capture a running Simulation and load it into a fresh one.

A checkpoint is three things the recording stores:

- blobs: "sim" (msgpack of the controller, the nodes' kernel state and disks, the fabric
  with its packets in flight, the fault engine, the oracle and the inboxes), "parts" (the
  digest of each part, so a replay that diverges can say which part differs) and, per
  node, "node<i>.vcpu" (the canonical vCPU and allocator state);
- pages: per node, region "node<i>": the guest pages written since the previous
  checkpoint (the VMM's incremental snapshot), or all of them after a restart;
- the digest: SHA-256 over the part digests in name order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.oracle import Bug
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.sdk_abi import AssertKind
from chaosreplay.vmm import PAGE_SIZE, SCRATCH_END, SCRATCH_START

if TYPE_CHECKING:
    from chaosreplay.simulation import Node, Simulation

STATE_VERSION = 1
_SCRATCH_PAGES = range(SCRATCH_START // PAGE_SIZE, SCRATCH_END // PAGE_SIZE)


@dataclass
class SimCheckpoint:
    """One captured checkpoint, ready for a RecordingWriter or a replay's comparison."""

    tick: int
    seq: int  # events recorded before it
    digest: bytes
    parts: dict[str, bytes]
    blobs: dict[str, bytes]
    _sim: Simulation

    def pages(self) -> dict[str, dict[int, bytes]]:
        """Per node region, the pages this checkpoint's VM snapshots copied."""
        out: dict[str, dict[int, bytes]] = {}
        for node in self._sim.nodes:
            assert node.snap is not None
            memory = node.snap.memory_view()
            out[f"node{node.index}"] = {
                pfn: bytes(memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE])
                for pfn in node.snap.last_pages()
            }
        return out


def _sha(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def _memory_digest(node: Node, changed: Iterable[int]) -> bytes:
    """Guest memory's digest: SHA-256 over per-page hashes, rehashing only changed pages.

    The VMM's scratch pages are left out, as in the VM digest: they hold no guest state.
    """
    assert node.snap is not None
    memory = node.snap.memory_view()
    hashes = node.page_hashes
    for pfn in changed:
        hashes[pfn] = _sha(memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE])
    high = len(memory) // PAGE_SIZE
    return _sha(b"".join(hashes[pfn] for pfn in range(high) if pfn not in _SCRATCH_PAGES))


def capture(sim: Simulation, tick: int) -> SimCheckpoint:
    """Snapshot every node (incrementally) and serialise everything else."""
    blobs: dict[str, bytes] = {}
    parts: dict[str, bytes] = {}
    nodes = []
    for node in sim.nodes:
        p = node.process
        if node.snap is None:
            node.snap = p.vm.snapshot()
        node.snap.take(incremental=True)
        name = f"node{node.index}"
        vcpu = node.snap.state()
        blobs[f"{name}.vcpu"] = vcpu
        parts[f"{name}.vcpu"] = _sha(vcpu)
        parts[f"{name}.memory"] = _memory_digest(node, node.snap.last_pages())
        kernel, disk = p.kernel_state(), p.fs.snapshot()
        parts[f"{name}.kernel"] = _sha(packb(kernel))
        parts[f"{name}.disk"] = _sha(packb(disk))
        nodes.append({"status": node.status.value, "kernel": kernel, "disk": disk})
    shared = {
        "fabric": sim.fabric.snapshot(),
        "engine": sim.engine.snapshot(),
        "oracle": sim.oracle.snapshot(),
        "inboxes": sim.messaging.snapshot(),
        "controller": {
            "now_ns": sim.now_ns, "tick": sim.tick, "event_count": sim.event_count,
            "checkpoint_count": sim.checkpoint_count,
            "next_checkpoint_ns": sim.next_checkpoint_ns,
            "bugs": [_bug_row(b) for b in sim.bugs],
            "failures": [f.to_dict() for f in sim.failures],
        },
    }
    for key, value in shared.items():
        parts[key] = _sha(packb(value))
    blobs["sim"] = packb({"version": STATE_VERSION, "nodes": nodes, **shared})
    blobs["parts"] = packb(dict(sorted(parts.items())))
    digest = hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(parts.items()))).digest()
    return SimCheckpoint(tick, sim.event_count, digest, parts, blobs, sim)


def load(sim: Simulation, blobs: dict[str, bytes],
         pages: Callable[[str], dict[int, bytes]]) -> None:
    """Put a freshly built Simulation (same scenario and programs) into a checkpoint's state."""
    from chaosreplay.simulation import Failure, NodeStatus

    state = unpackb(blobs["sim"], "checkpoint state")
    if state.get("version") != STATE_VERSION:
        raise ValueError(f"unsupported simulation state version {state.get('version')!r}")
    if len(state["nodes"]) != len(sim.nodes):
        raise ValueError(f"checkpoint has {len(state['nodes'])} nodes, the scenario "
                         f"{len(sim.nodes)}")
    for node, saved in zip(sim.nodes, state["nodes"], strict=True):
        p = node.process
        node.snap = p.vm.snapshot()
        node.snap.load(blobs[f"node{node.index}.vcpu"], pages(f"node{node.index}"))
        node.snap.restore()
        node.page_hashes.clear()
        _memory_digest(node, range(len(node.snap.memory_view()) // PAGE_SIZE))
        p.load_kernel_state(saved["kernel"])
        p.fs.restore(saved["disk"])
        node.status = NodeStatus(saved["status"])
    sim.fabric.restore(state["fabric"])
    sim.engine.restore(state["engine"])
    sim.oracle.restore(state["oracle"])
    sim.messaging.restore(state["inboxes"])
    c = state["controller"]
    sim.now_ns, sim.tick, sim.event_count = c["now_ns"], c["tick"], c["event_count"]
    sim.checkpoint_count, sim.next_checkpoint_ns = c["checkpoint_count"], c["next_checkpoint_ns"]
    sim.bugs = [_bug_from_row(row) for row in c["bugs"]]
    sim.failures = [Failure(**f) for f in c["failures"]]
    sim.started = True


def stored_parts(blobs: dict[str, bytes]) -> dict[str, bytes]:
    """The per-part digests a recorded checkpoint carries."""
    return dict(unpackb(blobs["parts"], "checkpoint parts"))


def _bug_row(bug: Bug) -> list[Any]:
    return [bug.node, bug.tick, int(bug.kind), bug.message, bug.file, bug.line, bug.assert_id,
            bug.first]


def _bug_from_row(row: list[Any]) -> Bug:
    node, tick, kind, message, file, line, assert_id, first = row
    return Bug(node, tick, AssertKind(kind), message, file, line, assert_id, first)
