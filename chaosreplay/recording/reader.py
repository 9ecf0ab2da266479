"""RecordingReader: the manifest, events by range and filter, seeking, and checkpoints."""

from __future__ import annotations

import os
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Collection, Iterator
from types import TracebackType
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.batch import DecodedBatch, decode_batch
from chaosreplay.recording.checkpoint import (
    Checkpoint,
    CheckpointRecord,
    decode_checkpoint,
    read_blobs,
    resolve_regions,
)
from chaosreplay.recording.format import TRAILER, FrameKind, unpack_trailer
from chaosreplay.recording.index import EventsFrame, RecordingIndex
from chaosreplay.recording.model import CheckpointInfo, Event
from chaosreplay.recording.scan import DATA_START, FrameSource, decode_manifest, pages_header, scan

_CACHED_FRAMES = 4  # decoded EVENTS / PAGES frames kept; more makes GC passes slower


class RecordingReader:
    """Opens a recording; raises RecordingError (naming the offset) on damage it cannot pass.

    A complete file is opened through its INDEX frame (O(1) reads). A file without a valid
    footer — a crashed writer, a truncated copy — is scanned frame by frame up to the first
    damage; what lies before stays readable and the rest is reported in `damage`.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._source = FrameSource(self.path)
        try:
            self._open()
        except BaseException:
            self._source.close()
            raise

    def _open(self) -> None:
        """Read preamble, manifest and index (or rebuild the index)."""
        source = self._source
        self.version = source.version()
        header, raw = source.frame(DATA_START, FrameKind.MANIFEST)
        self.manifest, self.host = decode_manifest(raw, f"offset {DATA_START}")
        self._data_start = header.end
        self.damage: list[str] = []
        self.summary: dict[str, Any] | None = None
        self.complete = False
        self._batches: OrderedDict[int, DecodedBatch] = OrderedDict()
        self._pages: OrderedDict[int, bytes] = OrderedDict()
        self._records: dict[int, CheckpointRecord] = {}
        index = self._load_footer(header.raw_len)
        if index is None:
            result = scan(source, self._data_start, source.size, header.raw_len)
            index, end = result.index, result.end
            if result.problem:
                self.damage.append(f"{result.problem}; ignored {source.size - end} bytes "
                                   "from there to the end")
            elif end < source.size:  # an INDEX frame whose trailer is missing or damaged
                self.damage.append(f"offset {end}: no valid trailer after the index; ignored "
                                   f"{source.size - end} bytes")
            self.ignored_tail_bytes = source.size - end
        else:
            self.complete = True
            self.ignored_tail_bytes = 0
        self._index = index

    def _load_footer(self, manifest_raw: int) -> RecordingIndex | None:
        """The stored index when the trailer and INDEX frame are intact, else None."""
        source = self._source
        if source.size < self._data_start + TRAILER.size:
            return None
        trailer = unpack_trailer(source.read(source.size - TRAILER.size, TRAILER.size))
        if trailer is None:
            return None
        index_offset, event_count = trailer
        where = f"offset {index_offset}"
        try:
            if not self._data_start <= index_offset < source.size - TRAILER.size:
                raise RecordingError(f"offset {source.size - TRAILER.size}: trailer points "
                                     f"outside the file ({index_offset})")
            header, raw = source.frame(index_offset, FrameKind.INDEX)
            if header.end != source.size - TRAILER.size:
                raise RecordingError(f"{where}: INDEX frame does not end at the trailer")
            index, summary = RecordingIndex.decode(raw, where)
            if index.event_count != event_count:
                raise RecordingError(f"{where}: index and trailer disagree on the event count")
            try:
                index.check_offsets(self._data_start, index_offset)
            except ValueError as exc:
                raise RecordingError(f"{where}: {exc}") from None
        except RecordingError as exc:
            self.damage.append(f"{exc}; index rebuilt by scanning")
            return None
        self.summary = summary
        return index

    # ---- what the index knows ----------------------------------------------------------

    @property
    def event_count(self) -> int:
        """Number of readable events."""
        return self._index.event_count

    @property
    def first_tick(self) -> int | None:
        """Tick of the first event (None when there are no events)."""
        return self._index.frames[0].first_tick if self._index.frames else None

    @property
    def last_tick(self) -> int | None:
        """Tick of the last event (None when there are no events)."""
        return self._index.frames[-1].last_tick if self._index.frames else None

    @property
    def counts_by_kind(self) -> dict[str, int]:
        """Events per kind, in order of first appearance."""
        return self._index.counts_by_kind()

    @property
    def counts_by_node(self) -> dict[int, int]:
        """Events per node (-1: simulation-level events), ascending node."""
        return self._index.counts_by_node()

    @property
    def checkpoints(self) -> list[CheckpointInfo]:
        """Every readable checkpoint, in order."""
        return list(self._index.checkpoints)

    @property
    def size(self) -> int:
        """File size in bytes."""
        return self._source.size

    @property
    def raw_bytes(self) -> int:
        """Uncompressed size of the manifest, events and checkpoint payloads."""
        return self._index.raw_bytes

    @property
    def frame_count(self) -> int:
        """Number of EVENTS frames."""
        return len(self._index.frames)

    # ---- events ------------------------------------------------------------------------

    def _batch(self, frame: EventsFrame) -> DecodedBatch:
        """The decoded events of one indexed frame (cached), checked against the index."""
        batch = self._batches.get(frame.offset)
        if batch is not None:
            self._batches.move_to_end(frame.offset)
            return batch
        where = f"offset {frame.offset}"
        _, raw = self._source.frame(frame.offset, FrameKind.EVENTS)
        batch = decode_batch(raw, where)
        if (batch.first_seq, len(batch), batch.ticks[0], batch.ticks[-1]) != (
                frame.first_seq, frame.count, frame.first_tick, frame.last_tick):
            raise RecordingError(f"{where}: events frame disagrees with the index")
        self._batches[frame.offset] = batch
        if len(self._batches) > _CACHED_FRAMES:
            self._batches.popitem(last=False)
        return batch

    def event(self, seq: int) -> Event:
        """Event number `seq`, decompressing one frame at most."""
        if not 0 <= seq < self.event_count:
            raise IndexError(f"event {seq} out of range (0..{self.event_count - 1})")
        frame = self._index.frames[self._index.frame_of_seq(seq)]
        return self._batch(frame).event(seq - frame.first_seq)

    def seq_at_tick(self, tick: int) -> int:
        """Sequence number of the first event with tick >= `tick` (event_count if none)."""
        position = self._index.first_frame_reaching_tick(tick)
        if position == len(self._index.frames):
            return self.event_count
        frame = self._index.frames[position]
        return frame.first_seq + self._batch(frame).first_at_or_after_tick(tick)

    def events(
        self,
        from_tick: int | None = None,
        to_tick: int | None = None,
        kinds: Collection[str] | None = None,
        nodes: Collection[int] | None = None,
        from_seq: int | None = None,
    ) -> Iterator[Event]:
        """Events with from_tick <= tick <= to_tick (both inclusive), seq >= from_seq,
        of the given kinds and nodes — in order, decompressing only frames that can match."""
        index = self._index
        kind_set = None if kinds is None else set(kinds)
        node_set = None if nodes is None else set(nodes)
        start = 0
        if from_seq is not None:
            if from_seq >= index.event_count:
                return
            start = max(0, index.frame_of_seq(max(from_seq, 0)))
        if from_tick is not None:
            start = max(start, index.first_frame_reaching_tick(from_tick))
        for frame in index.frames[start:]:
            if to_tick is not None and frame.first_tick > to_tick:
                break
            if (kind_set is not None and kind_set.isdisjoint(frame.kinds)) or (
                    node_set is not None and node_set.isdisjoint(frame.nodes)):
                continue
            batch = self._batch(frame)
            low = 0 if from_tick is None else batch.first_at_or_after_tick(from_tick)
            if from_seq is not None:
                low = max(low, from_seq - frame.first_seq)
            high = len(batch) if to_tick is None else bisect_right(batch.ticks, to_tick)
            for i in range(low, high):
                if (kind_set is None or batch.kinds[i] in kind_set) and (
                        node_set is None or batch.nodes[i] in node_set):
                    yield batch.event(i)

    def events_before(self, seq: int, kinds: Collection[str] | None = None,
                      nodes: Collection[int] | None = None) -> Iterator[Event]:
        """Events with seq < `seq` of the given kinds and nodes, newest first (for searching
        backwards), decompressing only frames that can match."""
        index = self._index
        kind_set = None if kinds is None else set(kinds)
        node_set = None if nodes is None else set(nodes)
        seq = min(seq, index.event_count)
        if seq <= 0:
            return
        for position in range(index.frame_of_seq(seq - 1), -1, -1):
            frame = index.frames[position]
            if (kind_set is not None and kind_set.isdisjoint(frame.kinds)) or (
                    node_set is not None and node_set.isdisjoint(frame.nodes)):
                continue
            batch = self._batch(frame)
            for i in range(min(len(batch), seq - frame.first_seq) - 1, -1, -1):
                if (kind_set is None or batch.kinds[i] in kind_set) and (
                        node_set is None or batch.nodes[i] in node_set):
                    yield batch.event(i)

    def rows(self) -> Iterator[tuple[int, int, int, str, dict[str, Any]]]:
        """Every event as a bare (tick, vtime_ns, node, kind, fields) tuple, in order: the
        fastest full scan (replay compares millions of them)."""
        for frame in self._index.frames:
            batch = self._batch(frame)
            yield from zip(batch.ticks, batch.vtimes, batch.nodes, batch.kinds, batch.fields,
                           strict=True)

    # ---- checkpoints -------------------------------------------------------------------

    def checkpoint_before(self, tick: int | None = None, *,
                          seq: int | None = None) -> CheckpointInfo | None:
        """The latest checkpoint at or before a tick and/or an event number."""
        if tick is None and seq is None:
            raise ValueError("checkpoint_before needs a tick or a seq")
        found = None
        for info in self._index.checkpoints:
            if (tick is not None and info.tick > tick) or (seq is not None and info.seq > seq):
                break
            found = info
        return found

    def _record(self, index: int) -> CheckpointRecord:
        """The decoded CHECKPOINT frame of checkpoint `index`, checked against the index."""
        record = self._records.get(index)
        if record is not None:
            return record
        info = self._index.checkpoints[index]
        header, raw = self._source.frame(info.offset, FrameKind.CHECKPOINT)
        pages_before = sum(f.count for f in self._index.page_frames if f.offset < info.offset)
        record = decode_checkpoint(raw, info.offset, header.end - header.offset, pages_before,
                                   f"offset {info.offset}")
        if record.info != info:
            raise RecordingError(f"offset {info.offset}: checkpoint frame disagrees with the "
                                 "index")
        self._records[index] = record
        return record

    def load_checkpoint(self, index: int) -> Checkpoint:
        """Checkpoint number `index` with its blobs, and its pages resolved through bases."""
        if not 0 <= index < len(self._index.checkpoints):
            raise IndexError(f"checkpoint {index} out of range "
                             f"(0..{len(self._index.checkpoints) - 1})")
        chain = [self._record(index)]
        while chain[-1].info.base is not None:  # bases are strictly smaller: this ends
            chain.append(self._record(chain[-1].info.base))
        record = chain[0]
        regions = resolve_regions(chain[::-1], f"offset {record.info.offset}")

        def read(offset: int, kind: int) -> bytes:
            return self._source.frame(offset, kind)[1]

        return Checkpoint(record.info, read_blobs(record, read), regions, self._page)

    def _page(self, page_id: int) -> bytes:
        """The 4096 bytes of a stored page."""
        if not 0 <= page_id < self._index.page_count:
            raise RecordingError(f"page id {page_id} is not stored in this file")
        frame = self._index.page_frame_of(page_id)
        raw = self._pages.get(frame.offset)
        if raw is None:
            _, raw = self._source.frame(frame.offset, FrameKind.PAGES)
            if pages_header(raw, f"offset {frame.offset}") != (frame.first_id, frame.count):
                raise RecordingError(f"offset {frame.offset}: pages frame disagrees with "
                                     "the index")
            self._pages[frame.offset] = raw
            if len(self._pages) > _CACHED_FRAMES:
                self._pages.popitem(last=False)
        start = 8 + (page_id - frame.first_id) * 4096
        return raw[start:start + 4096]

    # ---- lifetime ----------------------------------------------------------------------

    def close(self) -> None:
        """Release the file."""
        self._source.close()

    def __enter__(self) -> RecordingReader:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
