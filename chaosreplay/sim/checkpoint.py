"""Whole-simulation checkpoints: capture a running Simulation and load it into a fresh one.

A checkpoint is three things the recording stores:

- blobs, one per part of the state, each msgpack except the vCPU bytes: per node
  "node<i>.vcpu" (canonical vCPU and allocator state), "node<i>.kernel" (the process's
  kernel-side state) and "node<i>.disk" (its file system); then "fabric" (with packets in
  flight), "engine", "oracle", "inboxes" and "controller" (counters, node statuses, bugs);
  and "parts", the digest of every part, so a replay that diverges can say which differs;
- pages: per node, region "node<i>": the guest pages written since the previous
  checkpoint (the VMM's incremental snapshot), or all of them after a restart; and for
  each other live process of the node, its own VM's as region "node<i>.p<pid>.life<n>"
  with its vCPU blob "node<i>.p<pid>.life<n>.vcpu" (its kernel state is in the node's);
- the digest: SHA-256 over the part digests in name order.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaosreplay.errors import RecordingError
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.kernel.state_check import DISK_STATE
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.schema import Check, SchemaError, validate
from chaosreplay.sim import checkpoint_check as checks
from chaosreplay.sim.oracle import Bug
from chaosreplay.sim.reseed import rekey_process
from chaosreplay.vm.vmm import (
    PAGE_SIZE,
    SCRATCH_END,
    SCRATCH_START,
    Snapshot,
    VmmError,
    masked_page,
)

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess
    from chaosreplay.sim.simulation import Node, Simulation

STATE_VERSION = 1
PART_CONTAINERS = 1 << 22  # lists and maps per decoded part: bounds a hostile part's memory
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
            snaps = {f"node{node.index}": node.snap,
                     **{name: snap for name, (snap, _) in node.process_snaps.items()}}
            for name, snap in snaps.items():
                memory = snap.memory_view()
                out[name] = {pfn: _stored_page(pfn, memory) for pfn in snap.last_pages()}
        return out


_ZERO_PAGE = bytes(PAGE_SIZE)


def _stored_page(pfn: int, memory: memoryview) -> bytes:
    """A page as a recording keeps it: the VMM's scratch as zeros and the fast path's slots
    masked, as a restore from a file expects them; so a run records the same bytes with
    the fast path on or off."""
    if pfn in _SCRATCH_PAGES:
        return _ZERO_PAGE
    return bytes(masked_page(pfn, memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE]))


def _sha(data: bytes | memoryview) -> bytes:
    return hashlib.sha256(data).digest()


def process_region(node_index: int, q: GuestProcess) -> str:
    """The memory region (and blob prefix) of a node's process other than its program:
    named by pid and life, as a restarted node hands out the same pids again."""
    return f"node{node_index}.p{q.pid}.life{q.incarnation}"


def _memory_digest(snap: Snapshot, hashes: dict[int, bytes], changed: Iterable[int]) -> bytes:
    """Guest memory's digest: SHA-256 over per-page hashes, rehashing only changed pages.

    The VMM's scratch pages are left out, as in the VM digest: they hold no guest state.
    """
    memory = snap.memory_view()
    for pfn in changed:
        hashes[pfn] = _sha(masked_page(pfn, memory[pfn * PAGE_SIZE:(pfn + 1) * PAGE_SIZE]))
    high = len(memory) // PAGE_SIZE
    return _sha(b"".join(hashes[pfn] for pfn in range(high) if pfn not in _SCRATCH_PAGES))


DISK_DATA_BLOB = 64 << 10
"""File contents at least this long leave a disk part for a blob of their own, named by
their SHA-256: the same file on every node, in every checkpoint, is then one blob, which
the recording stores once (its chunk frames are shared: recording/checkpoint.py)."""


def _disk_part(snapshot: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
    """A disk snapshot with its large file contents moved into content-named blobs; the
    part lists them under "external" as [inode, field, sha256 hex]."""
    external = []
    for inode in snapshot["inodes"]:
        for key in ("data", "durable"):
            data = inode[key]
            if len(data) >= DISK_DATA_BLOB:
                digest = hashlib.sha256(data).hexdigest()
                blobs.setdefault(f"disk-data.{digest}", bytes(data))
                inode[key] = b""
                external.append([inode["ino"], key, digest])
    if external:
        snapshot["external"] = external
    return snapshot


def _disk_contents(part: Any, blobs: dict[str, bytes], name: str) -> Any:
    """A disk part with its external contents put back, each checked against its digest."""
    if not isinstance(part, dict) or "external" not in part:
        return part
    external = part.pop("external")
    listed = part.get("inodes")
    inodes = {node["ino"]: node for node in (listed if isinstance(listed, list) else ())
              if isinstance(node, dict) and type(node.get("ino")) is int}
    if not isinstance(external, list):
        raise SchemaError(f"part {name}: field external is not a list")
    for i, row in enumerate(external):
        if (not isinstance(row, list) or len(row) != 3 or type(row[0]) is not int
                or row[0] not in inodes
                or row[1] not in ("data", "durable") or not isinstance(row[2], str)):
            raise SchemaError(f"part {name}: field external[{i}] is not [inode, field, sha256]")
        data = blobs.get(f"disk-data.{row[2]}")
        if type(data) is not bytes or hashlib.sha256(data).hexdigest() != row[2]:
            raise SchemaError(f"part {name}: field external[{i}] names a blob that is missing "
                              "or does not match its digest")
        inodes[row[0]][row[1]] = data
    return part


def capture(sim: Simulation, tick: int) -> SimCheckpoint:
    """Snapshot every node (incrementally) and serialise everything else, each part once."""
    blobs: dict[str, bytes] = {}
    parts: dict[str, bytes] = {}
    for node in sim.nodes:
        p = node.process
        if node.snap is None:
            node.snap = p.vm.snapshot()
        node.snap.take(incremental=True)
        name = f"node{node.index}"
        blobs[f"{name}.vcpu"] = node.snap.state()
        blobs[f"{name}.kernel"] = packb(p.kernel_state())
        blobs[f"{name}.disk"] = packb(_disk_part(p.fs.snapshot(), blobs))
        parts[f"{name}.memory"] = _memory_digest(node.snap, node.page_hashes,
                                                 node.snap.last_pages())
        _capture_processes(node, blobs, parts)
    blobs["fabric"] = packb(sim.fabric.snapshot())
    blobs["engine"] = packb(sim.engine.snapshot())
    blobs["oracle"] = packb(sim.oracle.snapshot())
    blobs["inboxes"] = packb(sim.messaging.snapshot())
    controller = {
        "version": STATE_VERSION, "statuses": [n.status.value for n in sim.nodes],
        "now_ns": sim.now_ns, "tick": sim.tick, "event_count": sim.event_count,
        "checkpoint_count": sim.checkpoint_count, "next_checkpoint_ns": sim.next_checkpoint_ns,
        "bugs": [_bug_row(b) for b in sim.bugs], "failures": [f.to_dict() for f in sim.failures],
    }
    if any(seed is not None for seed in sim.stream_seeds):
        # only then: a run without reseeds keeps the controller part (and digest) it had
        controller["stream_seeds"] = list(sim.stream_seeds)
    blobs["controller"] = packb(controller)
    parts.update((name, _sha(data)) for name, data in blobs.items())
    parts = dict(sorted(parts.items()))
    blobs["parts"] = packb(parts)
    return SimCheckpoint(tick, sim.event_count, parts_digest(parts), parts, blobs, sim)


def _capture_processes(node: Node, blobs: dict[str, bytes], parts: dict[str, bytes]) -> None:
    """Snapshot the node's other live processes' VMs (incrementally after the first)."""
    p = node.process
    others = [q for q in p.table.live() if q is not p] if p.table is not None else []
    kept: dict[str, tuple[Snapshot, dict[int, bytes]]] = {}
    for q in others:
        region = process_region(node.index, q)
        snap, hashes = node.process_snaps.get(region) or (q.vm.snapshot(), {})
        snap.take(incremental=True)
        blobs[f"{region}.vcpu"] = snap.state()
        parts[f"{region}.memory"] = _memory_digest(snap, hashes, snap.last_pages())
        kept[region] = (snap, hashes)
    node.process_snaps = kept  # the ended ones' snapshots go


def _load_processes(node: Node, blobs: dict[str, bytes],
                    pages: Callable[[str], dict[int, bytes]]) -> None:
    """Fill the fresh VMs load_kernel_state gave the node's other live processes."""
    p = node.process
    node.process_snaps = {}
    for q in [q for q in p.table.live() if q is not p] if p.table is not None else []:
        region = process_region(node.index, q)
        vcpu = blobs.get(f"{region}.vcpu")
        if type(vcpu) is not bytes:
            raise SchemaError(f"part {region}.vcpu: missing or not bytes (process {q.pid})")
        snap = q.vm.snapshot()
        try:
            snap.load(vcpu, pages(region))
            snap.restore()
        except VmmError as exc:
            raise SchemaError(f"part {region}.vcpu: refused by the VMM: {exc.strerror}") from None
        hashes: dict[int, bytes] = {}
        _memory_digest(snap, hashes, range(len(snap.memory_view()) // PAGE_SIZE))
        node.process_snaps[region] = (snap, hashes)


def parts_digest(parts: dict[str, bytes]) -> bytes:
    """A checkpoint's digest: SHA-256 over its part digests in name order."""
    return hashlib.sha256(b"".join(k.encode() + v for k, v in sorted(parts.items()))).digest()


def rewrite_blob(blobs: dict[str, bytes], name: str, data: bytes) -> dict[str, bytes]:
    """A checkpoint's blobs with one part replaced, its "parts" digests updated to match
    (the new digest is `parts_digest(stored_parts(result))`)."""
    parts = stored_parts(blobs)
    parts[name] = _sha(data)
    return {**blobs, name: data, "parts": packb(dict(sorted(parts.items())))}


def load(sim: Simulation, blobs: dict[str, bytes],
         pages: Callable[[str], dict[int, bytes]]) -> None:
    """Put a freshly built Simulation (same scenario and programs) into a checkpoint's state.

    Every part is untrusted (the file's digests are plain SHA-256 an attacker recomputes):
    each is decoded and checked against its table (checkpoint_check, kernel.state_check)
    before it is loaded, and the VMs' parts are checked again by the C core, so a bad part
    is one SchemaError naming it and the field.
    """
    from chaosreplay.sim.simulation import Failure, NodeStatus

    n = len(sim.nodes)

    def part(name: str, check: Check | None = None) -> Any:
        if name not in blobs:
            raise SchemaError(f"checkpoint has no {name!r} part")
        try:
            value = unpackb(blobs[name], f"part {name}", PART_CONTAINERS)
        except RecordingError as exc:
            raise SchemaError(str(exc)) from None
        if check is not None:
            validate(value, check, name)
        return value

    c = part("controller")
    if not isinstance(c, dict) or c.get("version") != STATE_VERSION:
        version = c.get("version") if isinstance(c, dict) else None
        raise SchemaError(f"part controller: unsupported simulation state version {version!r}")
    validate(c, checks.controller(n, tuple(s.value for s in NodeStatus), STATE_VERSION),
             "controller")
    stream_seeds = c.get("stream_seeds", [None] * n)
    validate(stream_seeds, checks.stream_seeds(n), "controller.stream_seeds")
    for node, status in zip(sim.nodes, c["statuses"], strict=True):
        p, name = node.process, f"node{node.index}"
        vcpu = blobs.get(f"{name}.vcpu")
        if type(vcpu) is not bytes:
            raise SchemaError(f"part {name}.vcpu: missing or not bytes")
        node.snap = p.vm.snapshot()
        try:
            node.snap.load(vcpu, pages(name))
        except VmmError as exc:
            raise SchemaError(f"part {name}.vcpu: refused by the VMM: {exc.strerror}") from None
        try:
            node.snap.restore()
        except VmmError as exc:
            raise SchemaError(f"region {name} (guest memory): refused by the VMM: "
                              f"{exc.strerror}") from None
        node.page_hashes.clear()
        _memory_digest(node.snap, node.page_hashes,
                       range(len(node.snap.memory_view()) // PAGE_SIZE))
        kernel = part(f"{name}.kernel")  # load_kernel_state checks it (kernel.state_check)
        disk = _disk_contents(part(f"{name}.disk"), blobs, f"{name}.disk")
        validate(disk, DISK_STATE, f"part {name}.disk")
        problem = p.fs.root_problem(disk)
        if problem is not None:  # the checkpoint was taken over another root
            raise SchemaError(f"part {name}.disk: {problem}")
        with _loading(f"{name}.disk"):  # first: an exec'd program is loaded from it
            p.fs.restore(disk)
        with _loading(f"{name}.kernel"):
            p.load_kernel_state(kernel)
        _load_processes(node, blobs, pages)
        if stream_seeds[node.index] is not None:  # load_kernel_state made the scenario's
            rekey_process(p, stream_seeds[node.index])
        node.status = NodeStatus(status)
    for name, check, restore in (("fabric", checks.fabric(n), sim.fabric.restore),
                                 ("engine", checks.engine(n), sim.engine.restore),
                                 ("oracle", checks.oracle(n), sim.oracle.restore),
                                 ("inboxes", checks.inboxes(n), sim.messaging.restore)):
        value = part(name, check)
        with _loading(name):
            restore(value)
    sim.now_ns, sim.tick, sim.event_count = c["now_ns"], c["tick"], c["event_count"]
    sim.checkpoint_count, sim.next_checkpoint_ns = c["checkpoint_count"], c["next_checkpoint_ns"]
    sim.bugs = [_bug_from_row(row) for row in c["bugs"]]
    sim.failures = [Failure(**f) for f in c["failures"]]
    sim.stream_seeds = list(stream_seeds)
    sim.started = True


@contextmanager
def _loading(name: str) -> Iterator[None]:
    """A part that passed its table but still does not load (a reference the table cannot
    see, such as a fault id the engine does not know) is the same one clear error."""
    try:
        yield
    except SchemaError:
        raise
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SchemaError(f"part {name}: does not load ({type(exc).__name__}: {exc})") from None


def stored_parts(blobs: dict[str, bytes]) -> dict[str, bytes]:
    """The per-part digests a recorded checkpoint carries."""
    return dict(unpackb(blobs["parts"], "checkpoint parts"))


def _bug_row(bug: Bug) -> list[Any]:
    return [bug.node, bug.tick, int(bug.kind), bug.message, bug.file, bug.line, bug.assert_id,
            bug.first]


def _bug_from_row(row: list[Any]) -> Bug:
    node, tick, kind, message, file, line, assert_id, first = row
    return Bug(node, tick, AssertKind(kind), message, file, line, assert_id, first)
