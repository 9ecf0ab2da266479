"""The EVENTS frame body: a batch of events stored column by column.

Columns (delta-coded ticks and virtual times, node numbers, kind indices) compress far
better than row-wise records, and building them is a handful of C-speed passes over the
batch instead of Python work per event — which keeps `RecordingWriter.append` cheap.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate
from operator import sub
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.model import Event

# The writer keeps pending events flat: tick, vtime_ns, node, kind, fields, tick, ...
# One list of plain items (rather than a tuple per event) means appending allocates no
# object that outlives the call, so queued events do not trigger garbage collections.
FIELDS_PER_EVENT = 5


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """What the index records about one EVENTS frame."""

    first_seq: int
    count: int
    first_tick: int
    last_tick: int
    kinds: dict[str, int]  # events per kind, in order of first appearance
    nodes: dict[int, int]  # events per node, ascending node


def encode_batch(first_seq: int, flat: list[Any]) -> tuple[bytes, BatchSummary]:
    """msgpack body of an EVENTS frame for the flat pending list, plus its index summary."""
    ticks, vtimes, nodes, kinds, fields = (flat[i::FIELDS_PER_EVENT]
                                           for i in range(FIELDS_PER_EVENT))
    _check_types(first_seq, ticks, vtimes, nodes, kinds, fields)
    names = list(dict.fromkeys(kinds))
    position = {name: i for i, name in enumerate(names)}
    body = [
        first_seq,
        list(map(sub, ticks, [0, *ticks[:-1]])),
        list(map(sub, vtimes, [0, *vtimes[:-1]])),
        nodes,
        names,
        list(map(position.__getitem__, kinds)),
        fields,
    ]
    try:
        raw = packb(body)
    except (TypeError, ValueError, OverflowError):
        raise ValueError(_find_unpackable(first_seq, flat)) from None
    return raw, summarize(first_seq, ticks, nodes, kinds)


def summarize(first_seq: int, ticks: Sequence[int], nodes: Sequence[int],
              kinds: Sequence[str]) -> BatchSummary:
    """Index summary of a batch given its columns."""
    node_counts = Counter(nodes)
    return BatchSummary(
        first_seq=first_seq,
        count=len(ticks),
        first_tick=ticks[0],
        last_tick=ticks[-1],
        kinds=dict(Counter(kinds)),
        nodes={node: node_counts[node] for node in sorted(node_counts)},
    )


def _check_types(first_seq: int, ticks: list, vtimes: list, nodes: list, kinds: list,
                 fields: list) -> None:
    """Reject wrongly typed columns with a message naming the first bad event."""
    checks = ((ticks, "tick", int), (vtimes, "vtime_ns", int), (nodes, "node", int),
              (kinds, "kind", str), (fields, "fields", dict))
    for column, name, wanted in checks:
        if set(map(type, column)) != {wanted}:  # exact types: bool is not an int here
            bad = next(i for i, value in enumerate(column) if type(value) is not wanted)
            raise ValueError(
                f"event seq {first_seq + bad}: {name} must be {wanted.__name__}, "
                f"got {type(column[bad]).__name__}"
            )
    if min(vtimes) < 0 or min(nodes) < -1 or ticks[0] < 0:
        raise ValueError(f"events from seq {first_seq}: tick, vtime_ns >= 0 and node >= -1")


def _find_unpackable(first_seq: int, flat: list[Any]) -> str:
    """Name the first event of a batch that msgpack cannot encode, and why."""
    for i in range(0, len(flat), FIELDS_PER_EVENT):
        try:
            packb(flat[i:i + FIELDS_PER_EVENT])
        except (TypeError, ValueError, OverflowError) as exc:
            seq = first_seq + i // FIELDS_PER_EVENT
            return f"event seq {seq} ({flat[i + 3]}): not msgpack-serialisable: {exc}"
    return f"events from seq {first_seq}: batch not msgpack-serialisable"


class DecodedBatch:
    """The columns of one decoded EVENTS frame; events are built only when asked for."""

    __slots__ = ("fields", "first_seq", "kinds", "nodes", "ticks", "vtimes")

    def __init__(self, first_seq: int, ticks: list[int], vtimes: list[int], nodes: list[int],
                 kinds: list[str], fields: list[dict[str, Any]]) -> None:
        self.first_seq = first_seq
        self.ticks = ticks
        self.vtimes = vtimes
        self.nodes = nodes
        self.kinds = kinds
        self.fields = fields

    def __len__(self) -> int:
        return len(self.ticks)

    def summary(self) -> BatchSummary:
        """The index summary this frame should have."""
        return summarize(self.first_seq, self.ticks, self.nodes, self.kinds)

    def event(self, i: int) -> Event:
        """The i-th event of the frame."""
        return Event(self.first_seq + i, self.ticks[i], self.vtimes[i], self.nodes[i],
                     self.kinds[i], self.fields[i])

    def first_at_or_after_tick(self, tick: int) -> int:
        """Position of the first event with tick >= `tick` (len when none)."""
        return bisect_left(self.ticks, tick)


def decode_batch(raw: bytes, where: str) -> DecodedBatch:
    """Parse and validate an EVENTS frame body; damage becomes a RecordingError at `where`."""
    body = unpackb(raw, where)
    if not isinstance(body, list) or len(body) < 7:
        raise RecordingError(f"{where}: events body is not a list of 7 columns")
    first_seq, tick_deltas, vtime_deltas, nodes, names, kind_ids, fields = body[:7]
    columns = (tick_deltas, vtime_deltas, nodes, kind_ids, fields)
    if type(first_seq) is not int or first_seq < 0:
        raise RecordingError(f"{where}: events frame has no valid first sequence number")
    if not all(type(column) is list for column in (*columns, names)):
        raise RecordingError(f"{where}: events columns are not lists")
    count = len(tick_deltas)
    if count == 0 or any(len(column) != count for column in columns):
        raise RecordingError(f"{where}: events columns have different or zero lengths")
    int_columns = (tick_deltas, vtime_deltas, nodes, kind_ids)
    if any(set(map(type, column)) != {int} for column in int_columns):
        raise RecordingError(f"{where}: non-integer in an integer events column")
    if set(map(type, names)) - {str} or set(map(type, fields)) != {dict}:
        raise RecordingError(f"{where}: kind names or fields have the wrong type")
    if min(kind_ids) < 0 or max(kind_ids) >= len(names):
        raise RecordingError(f"{where}: kind index out of range")
    if tick_deltas[0] < 0 or min(tick_deltas) < 0 or min(nodes) < -1:
        raise RecordingError(f"{where}: ticks decrease or a node number is below -1")
    vtimes = list(accumulate(vtime_deltas))
    if min(vtimes) < 0:
        raise RecordingError(f"{where}: negative virtual time")
    return DecodedBatch(first_seq, list(accumulate(tick_deltas)), vtimes, nodes,
                        list(map(names.__getitem__, kind_ids)), fields)
