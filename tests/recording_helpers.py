"""Shared strategies and builders for the tests of chaosreplay.recording."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from chaosreplay.recording import RecordingWriter
from chaosreplay.recording.format import PAGE_SIZE, PREAMBLE, TRAILER, unpack_trailer
from chaosreplay.recording.scan import FrameSource

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1),
    st.floats(allow_nan=False), st.text(max_size=12), st.binary(max_size=24),
)
field_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=4),
    max_leaves=8,
)
event_fields = st.dictionaries(st.text(max_size=8), field_values, max_size=5)
kinds = st.sampled_from(["syscall", "output", "fault", "assert", "bug", "packet.sent", "x" * 40])


@st.composite
def event_streams(draw: st.DrawFn, max_events: int = 60) -> list[tuple[Any, ...]]:
    """Rows (tick, vtime_ns, node, kind, fields) with non-decreasing ticks."""
    steps = draw(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5_000_000),
                                    st.integers(-1, 4), kinds, event_fields),
                          max_size=max_events))
    rows, tick = [], 0
    for step, vtime, node, kind, fields in steps:
        tick += step
        rows.append((tick, vtime, node, kind, fields))
    return rows


def page(fill: int) -> bytes:
    """A 4096-byte page whose content identifies `fill`."""
    return fill.to_bytes(4, "little") * (PAGE_SIZE // 4)


@dataclass
class PlannedCheckpoint:
    """A checkpoint to add after `after` events, and what it should resolve to."""

    after: int
    base: int | None
    blobs: dict[str, bytes]
    pages: dict[str, dict[int, bytes]]  # as passed (full map or delta)
    resolved: dict[str, dict[int, bytes]] = field(default_factory=dict)


@st.composite
def checkpoint_plans(draw: st.DrawFn, event_count: int) -> list[PlannedCheckpoint]:
    """Checkpoints at increasing positions, some full, some deltas over earlier ones."""
    positions = sorted(draw(st.lists(st.integers(0, event_count), max_size=4)))
    plans: list[PlannedCheckpoint] = []
    for i, after in enumerate(positions):
        base = draw(st.none() | st.integers(0, i - 1)) if i else None
        regions = draw(st.dictionaries(
            st.sampled_from(["node0.mem", "node1.mem"]),
            st.dictionaries(st.integers(0, 40), st.integers(0, 6).map(page) | st.just(b""),
                            max_size=6),
            max_size=2))
        blobs = draw(st.dictionaries(st.sampled_from(["regs", "fabric", "rng"]),
                                     st.binary(max_size=64), max_size=3))
        resolved = {} if base is None else {k: dict(v) for k, v in plans[base].resolved.items()}
        for name, entries in regions.items():
            target = resolved.setdefault(name, {})
            for pfn, content in entries.items():
                if content:
                    target[pfn] = content
                else:
                    target.pop(pfn, None)
        plans.append(PlannedCheckpoint(after, base, blobs, regions, resolved))
    return plans


def write_recording(path: Path, rows: list[tuple[Any, ...]],
                    plans: list[PlannedCheckpoint] = (), close: bool = True,
                    **options: Any) -> RecordingWriter:
    """Write rows (and checkpoints at their positions) to path; close unless told not to."""
    writer = RecordingWriter(path, {"seed": 1, "scenario": "test"}, **options)
    pending = list(plans)
    for seq, row in enumerate(rows):
        while pending and pending[0].after == seq:
            _add(writer, pending.pop(0), row[0])
        writer.append(*row)
    for plan in pending:
        _add(writer, plan, rows[-1][0] if rows else 0)
    if close:
        writer.close({"verdict": "pass"})
    return writer


def _add(writer: RecordingWriter, plan: PlannedCheckpoint, tick: int) -> None:
    """Add one planned checkpoint at the writer's current position."""
    digest = plan.after.to_bytes(8, "little") * 4
    writer.add_checkpoint(tick, plan.after, digest, plan.blobs, plan.pages, base=plan.base)


def frame_offsets(path: Path) -> list[int]:
    """Offsets of the whole frames of a file (up to its trailer, damage or end)."""
    source = FrameSource(path)
    try:
        end = source.size
        if unpack_trailer(source.read(end - TRAILER.size, TRAILER.size)) is not None:
            end -= TRAILER.size
        offsets, offset = [], PREAMBLE.size
        while offset < end:
            offsets.append(offset)
            offset = source.header(offset).end
        return offsets
    finally:
        source.close()


def flip(path: Path, offset: int, mask: int) -> None:
    """XOR one byte of a file in place."""
    data = bytearray(path.read_bytes())
    data[offset] ^= mask
    path.write_bytes(bytes(data))
