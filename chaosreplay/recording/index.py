"""The index of a recording: where every events, pages and checkpoint frame is.

The writer builds it while appending and stores it as the INDEX frame on close; a reader
of a crashed recording rebuilds the same structure by scanning. Both paths feed the same
`add_*` methods, which also enforce the ordering rules (sequence numbers continue, ticks
never decrease, page ids continue, checkpoints come in order) — so `verify` can compare
a stored index with a rebuilt one by equality.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.batch import BatchSummary
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.model import CheckpointInfo

INDEX_CONTAINERS = 256  # the INDEX body is a few flat columns; anything bushier is hostile

_FRAME_COLUMNS = ("offset", "first_seq", "count", "first_tick", "last_tick")
_CHECKPOINT_COLUMNS = ("offset", "index", "tick", "seq", "base", "blob_bytes", "page_count",
                       "new_pages", "stored_bytes")


@dataclass(frozen=True, slots=True)
class EventsFrame:
    """Index entry of one EVENTS frame."""

    offset: int
    first_seq: int
    count: int
    first_tick: int
    last_tick: int
    kinds: dict[str, int]
    nodes: dict[int, int]


@dataclass(frozen=True, slots=True)
class PagesFrame:
    """Index entry of one PAGES frame: page ids first_id .. first_id+count-1."""

    offset: int
    first_id: int
    count: int


@dataclass(eq=True)
class RecordingIndex:
    """Frame tables of a recording, with the rules that keep them consistent."""

    frames: list[EventsFrame] = field(default_factory=list)
    checkpoints: list[CheckpointInfo] = field(default_factory=list)
    page_frames: list[PagesFrame] = field(default_factory=list)
    event_count: int = 0
    page_count: int = 0
    raw_bytes: int = 0  # sum of raw payload sizes of all frames before the INDEX frame
    _keys: dict[str, list[int]] = field(default_factory=dict, compare=False, repr=False)

    def add_batch(self, offset: int, summary: BatchSummary, strict: bool = True) -> None:
        """Record an EVENTS frame; its events must continue the sequence and the ticks.

        With strict=False a frame breaking those rules is still recorded before the
        ValueError, so a gap is reported once rather than by every later frame.
        """
        problem = None
        if summary.first_seq != self.event_count:
            problem = (f"events frame starts at seq {summary.first_seq}, "
                       f"expected {self.event_count}")
        elif self.frames and summary.first_tick < self.frames[-1].last_tick:
            problem = (f"events frame starts at tick {summary.first_tick}, "
                       f"before tick {self.frames[-1].last_tick} of the previous frame")
        if problem and strict:
            raise ValueError(problem)
        self.frames.append(EventsFrame(offset, summary.first_seq, summary.count,
                                       summary.first_tick, summary.last_tick,
                                       summary.kinds, summary.nodes))
        self.event_count = summary.first_seq + summary.count
        if problem:
            raise ValueError(problem)

    def add_pages(self, offset: int, first_id: int, count: int, strict: bool = True) -> None:
        """Record a PAGES frame; page ids are numbered in file order without gaps."""
        problem = None
        if first_id != self.page_count or count < 1:
            problem = (f"pages frame holds ids from {first_id} (x{count}), "
                       f"expected from {self.page_count}")
            if strict:
                raise ValueError(problem)
        self.page_frames.append(PagesFrame(offset, first_id, count))
        self.page_count = first_id + count
        if problem:
            raise ValueError(problem)

    def add_checkpoint(self, info: CheckpointInfo, strict: bool = True) -> None:
        """Record a CHECKPOINT frame; checkpoints are numbered and ordered by tick and seq."""
        problem = None
        last = self.checkpoints[-1] if self.checkpoints else None
        if info.index != len(self.checkpoints):
            problem = f"checkpoint {info.index} where {len(self.checkpoints)} expected"
        elif info.base is not None and not 0 <= info.base < info.index:
            problem = f"checkpoint {info.index} has base {info.base}"
        elif info.seq > self.event_count:
            problem = (f"checkpoint at seq {info.seq} is past the {self.event_count} "
                       "events before it")
        elif last and (info.tick < last.tick or info.seq < last.seq):
            problem = f"checkpoint {info.index} goes back in tick or seq"
        if problem and strict:
            raise ValueError(problem)
        self.checkpoints.append(info)
        if problem:
            raise ValueError(problem)

    # ---- queries -----------------------------------------------------------------------

    def _column(self, name: str, table: list[Any]) -> list[int]:
        """A cached column of `table` for bisecting (rebuilt when the table has grown)."""
        column = self._keys.get(name)
        if column is None or len(column) != len(table):
            column = self._keys[name] = [getattr(row, name) for row in table]
        return column

    def frame_of_seq(self, seq: int) -> int:
        """Position in `frames` of the frame holding event `seq` (which must exist)."""
        return bisect_right(self._column("first_seq", self.frames), seq) - 1

    def first_frame_reaching_tick(self, tick: int) -> int:
        """Position of the first frame whose last tick is >= tick (len(frames) if none)."""
        return bisect_left(self._column("last_tick", self.frames), tick)

    def page_frame_of(self, page_id: int) -> PagesFrame:
        """The PAGES frame holding a page id (which must exist)."""
        starts = self._column("first_id", self.page_frames)
        return self.page_frames[bisect_right(starts, page_id) - 1]

    def check_offsets(self, data_start: int, data_end: int) -> None:
        """Raise ValueError unless every frame offset lies in [data_start, data_end)."""
        for table in (self.frames, self.page_frames, self.checkpoints):
            offsets = [row.offset for row in table]
            if offsets != sorted(set(offsets)):
                raise ValueError("frame offsets are not strictly increasing")
            if offsets and (offsets[0] < data_start or offsets[-1] >= data_end):
                raise ValueError(f"a frame offset lies outside [{data_start}, {data_end})")

    def counts_by_kind(self) -> dict[str, int]:
        """Events per kind over the whole recording, in order of first appearance."""
        totals: dict[str, int] = {}
        for frame in self.frames:
            for kind, n in frame.kinds.items():
                totals[kind] = totals.get(kind, 0) + n
        return totals

    def counts_by_node(self) -> dict[int, int]:
        """Events per node over the whole recording, ascending node."""
        totals: dict[int, int] = {}
        for frame in self.frames:
            for node, n in frame.nodes.items():
                totals[node] = totals.get(node, 0) + n
        return dict(sorted(totals.items()))

    def difference(self, other: RecordingIndex) -> str | None:
        """First way `other` (rebuilt from the frames) differs from this stored index."""
        for table in ("frames", "page_frames", "checkpoints"):
            for mine, theirs in zip_longest(getattr(self, table), getattr(other, table)):
                if mine != theirs:
                    where = (mine or theirs).offset
                    name = table.replace("_", " ").rstrip("s")
                    return f"index entry of the {name} frame at offset {where} does not match"
        for total in ("event_count", "page_count", "raw_bytes"):
            if getattr(self, total) != getattr(other, total):
                return (f"index {total.replace('_', ' ')} {getattr(self, total)} != "
                        f"{getattr(other, total)} found in the frames")
        return None

    # ---- the INDEX frame body ----------------------------------------------------------

    def encode(self, summary: dict[str, Any] | None) -> bytes:
        """msgpack body of the INDEX frame."""
        kinds = list(self.counts_by_kind())
        kind_id = {name: i for i, name in enumerate(kinds)}
        frames: dict[str, list[int]] = {name: [] for name in _FRAME_COLUMNS}
        frames.update(kind_counts=[], kind_pairs=[], node_counts=[], node_pairs=[])
        for entry in self.frames:
            for name in _FRAME_COLUMNS:
                frames[name].append(getattr(entry, name))
            frames["kind_pairs"].append(len(entry.kinds))
            for kind, n in entry.kinds.items():
                frames["kind_counts"] += (kind_id[kind], n)
            frames["node_pairs"].append(len(entry.nodes))
            for node, n in entry.nodes.items():
                frames["node_counts"] += (node, n)
        checkpoints: dict[str, list[Any]] = {name: [] for name in (*_CHECKPOINT_COLUMNS,
                                                                   "digest")}
        for info in self.checkpoints:
            for name in checkpoints:
                value = getattr(info, name)
                checkpoints[name].append(-1 if value is None else value)
        pages = {"offset": [f.offset for f in self.page_frames],
                 "first_id": [f.first_id for f in self.page_frames],
                 "count": [f.count for f in self.page_frames]}
        return packb({"events": self.event_count, "raw_bytes": self.raw_bytes, "kinds": kinds,
                      "frames": frames, "checkpoints": checkpoints, "page_frames": pages,
                      "summary": summary})

    @classmethod
    def decode(cls, raw: bytes, where: str) -> tuple[RecordingIndex, dict[str, Any] | None]:
        """Rebuild an index (and the close() summary) from an INDEX body, validating it all."""
        body = unpackb(raw, where, max_containers=INDEX_CONTAINERS)
        try:
            return _decode_index(body)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise RecordingError(f"{where}: index is inconsistent ({exc})") from None


def _ints(table: Any, name: str, length: int | None = None) -> list[int]:
    """A column of plain ints from a decoded table, of the given length when set."""
    column = table[name]
    if type(column) is not list or set(map(type, column)) - {int}:
        raise TypeError(f"column {name} is not a list of integers")
    if length is not None and len(column) != length:
        raise ValueError(f"column {name} has {len(column)} entries, expected {length}")
    return column


def _pairs(flat: list[int], lengths: list[int]) -> Iterator[dict[int, int]]:
    """Split a flat [key, count, key, count...] column into one dict per frame."""
    if sum(lengths) * 2 != len(flat) or min(lengths, default=0) < 0:
        raise ValueError("pair columns do not add up")
    position = 0
    for n in lengths:
        chunk = flat[position:position + 2 * n]
        position += 2 * n
        yield dict(zip(chunk[::2], chunk[1::2], strict=True))


def _decode_index(body: Any) -> tuple[RecordingIndex, dict[str, Any] | None]:
    """The work of RecordingIndex.decode; raises plain exceptions on any inconsistency."""
    if type(body) is not dict:
        raise TypeError("index body is not a map")
    kinds = body["kinds"]
    if type(kinds) is not list or set(map(type, kinds)) - {str}:
        raise TypeError("kinds table is not a list of names")
    frames, checkpoints, pages = body["frames"], body["checkpoints"], body["page_frames"]
    n = len(_ints(frames, "offset"))
    columns = [_ints(frames, name, n) for name in _FRAME_COLUMNS]
    kind_maps = _pairs(_ints(frames, "kind_counts"), _ints(frames, "kind_pairs", n))
    node_maps = _pairs(_ints(frames, "node_counts"), _ints(frames, "node_pairs", n))
    index = RecordingIndex()
    for values, kind_map, node_map in zip(zip(*columns, strict=True), kind_maps, node_maps,
                                          strict=True):
        offset, first_seq, count, first_tick, last_tick = values
        if count < 1 or last_tick < first_tick or min(kind_map.values(), default=1) < 1:
            raise ValueError(f"frame at {offset} has a bad count or tick range")
        if sum(kind_map.values()) != count or sum(node_map.values()) != count:
            raise ValueError(f"frame at {offset}: kind/node counts do not add up to {count}")
        if min(kind_map, default=0) < 0 or min(node_map, default=0) < -1:
            raise ValueError(f"frame at {offset} names a negative kind id or node")
        named = {kinds[k]: c for k, c in kind_map.items()}
        index.add_batch(offset, BatchSummary(first_seq, count, first_tick, last_tick, named,
                                             node_map))
    m = len(_ints(pages, "offset"))
    for offset, first_id, count in zip(*(_ints(pages, k, m) for k in ("offset", "first_id",
                                                                       "count")), strict=True):
        index.add_pages(offset, first_id, count)
    c = len(_ints(checkpoints, "offset"))
    digests = checkpoints["digest"]
    if type(digests) is not list or len(digests) != c or set(map(type, digests)) - {bytes}:
        raise TypeError("checkpoint digests are not a list of byte strings")
    for values in zip(*(_ints(checkpoints, k, c) for k in _CHECKPOINT_COLUMNS), digests,
                      strict=True):
        row = dict(zip((*_CHECKPOINT_COLUMNS, "digest"), values, strict=True))
        row["base"] = None if row["base"] == -1 else row["base"]
        index.add_checkpoint(CheckpointInfo(**row))
    if body["events"] != index.event_count:
        raise ValueError(f"index counts {body['events']} events, frames hold "
                         f"{index.event_count}")
    index.raw_bytes = body["raw_bytes"]
    if type(index.raw_bytes) is not int or index.raw_bytes < 0:
        raise TypeError("raw_bytes is not a non-negative integer")
    summary = body.get("summary")
    if summary is not None and type(summary) is not dict:
        raise TypeError("summary is not a map")
    return index, summary
