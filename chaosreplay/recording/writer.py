"""RecordingWriter: appends events and checkpoints to a .ccr file.

Events are batched in memory and written as one EVENTS frame per batch — one write(2) per
frame, never per event — when the batch reaches `flush_every_events` events or spans
`flush_every_ticks` virtual ticks. A writer killed at any moment therefore leaves whole
frames plus at most one partial frame, which readers ignore. Only close() writes the
INDEX frame and the trailer, so a file without them is recognisably unfinished.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from types import TracebackType
from typing import Any

import zstandard

from chaosreplay.recording.batch import FIELDS_PER_EVENT, encode_batch
from chaosreplay.recording.checkpoint import PageStore, encode_checkpoint
from chaosreplay.recording.format import (
    MANIFEST_CONTAINERS,
    MAX_RAW,
    PAGE_SIZE,
    FrameKind,
    pack_frame,
    pack_preamble,
    pack_trailer,
    packb,
    unpackb,
)
from chaosreplay.recording.index import RecordingIndex
from chaosreplay.recording.model import CheckpointInfo

FLUSH_DATA_BYTES = MAX_RAW[FrameKind.EVENTS] // 2  # pending payload bytes that force a flush

class RecordingWriter:
    """Writes one recording; use as a context manager or call close()."""

    __slots__ = ("_batch", "_batch_seq", "_closed", "_compressor", "_file", "_flush_items",
                 "_flush_ticks", "_hi", "_index", "_lo", "_pages", "_pending_data", "offset",
                 "path")

    def __init__(
        self,
        path: str | os.PathLike[str],
        manifest: dict[str, Any],
        *,
        flush_every_events: int = 4096,
        flush_every_ticks: int = 1000,
        level: int = 3,
        host: dict[str, Any] | None = None,
    ) -> None:
        if type(manifest) is not dict or (host is not None and type(host) is not dict):
            raise ValueError("manifest (and host, when given) must be dicts")
        if flush_every_events < 1 or flush_every_ticks < 1:
            raise ValueError("flush intervals must be >= 1")
        # `host` is the one informational, non-deterministic section (hostname, kernel...);
        # it is kept apart from the manifest so tools can ignore it when comparing runs.
        try:
            body = packb({"manifest": manifest, "host": host})
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"manifest is not msgpack-serialisable: {exc}") from None
        unpackb(body, "manifest", max_containers=MANIFEST_CONTAINERS)  # readable by readers
        self.path = os.fspath(path)
        self._flush_items = flush_every_events * FIELDS_PER_EVENT
        self._flush_ticks = flush_every_ticks
        # threads=0 (the default) keeps zstd output a pure function of the input and level.
        self._compressor = zstandard.ZstdCompressor(level=level)
        manifest_frame = pack_frame(FrameKind.MANIFEST, body, self._compressor)  # size check
        self._index = RecordingIndex()
        self._pages = PageStore()
        self._batch: list[Any] = []  # flat: see batch.FIELDS_PER_EVENT
        self._batch_seq = 0  # seq of the first pending event
        self._pending_data = 0  # bytes of `data` fields (output, sdk.event) in the batch
        self._lo = 0  # tick of the last event: the next may not be smaller
        self._hi = -1  # end of the current batch's tick window (-1: no batch open)
        self._closed = False
        # Truncates an existing file, like open(path, "w"). Unbuffered: each frame is one
        # write(2), so what a killed process leaves is whole frames plus at most a partial one.
        self._file = open(self.path, "wb", buffering=0)  # noqa: SIM115 - lives with self
        self.offset = 0
        self._write_all(pack_preamble() + manifest_frame)
        self._index.raw_bytes += len(body)

    # ---- events ------------------------------------------------------------------------

    def append(self, tick: int, vtime_ns: int, node: int, kind: str,
               fields: dict[str, Any]) -> int:
        """Queue one event and return its sequence number (hot path: no I/O per event).

        Only the tick order is checked here; types and msgpack-serialisability are checked
        when the batch is encoded, where a bad event makes that flush raise ValueError
        naming its seq and stops the writer, leaving the file readable but unfinished.
        """
        # One chained comparison guards the common case; everything rarer (first event of
        # a batch, tick interval reached, tick going back, writer closed) is in _admit.
        if not self._lo <= tick < self._hi:
            self._admit(tick)
        self._lo = tick
        batch = self._batch
        batch += (tick, vtime_ns, node, kind, fields)
        n = len(batch)
        seq = self._batch_seq + n // FIELDS_PER_EVENT - 1
        data = fields.get("data") if fields.__class__ is dict else None  # bad types: at flush
        if data.__class__ is bytes:
            # A guest flooding stdout puts MiBs into one tick: bound the batch by bytes too.
            self._pending_data += len(data)
        if n >= self._flush_items or self._pending_data >= FLUSH_DATA_BYTES:
            self.flush()
        return seq

    def _admit(self, tick: int) -> None:
        """The slow path of append: check the tick, flush on the tick interval."""
        if self._closed:
            raise ValueError("append to a closed RecordingWriter")
        if tick < self._lo:
            raise ValueError(f"tick {tick} is before {self._lo}: ticks start at 0 and never "
                             "decrease")
        if self._batch:
            self.flush()
        self._hi = tick + self._flush_ticks

    @property
    def event_count(self) -> int:
        """Events appended so far (written or pending)."""
        return self._batch_seq + len(self._batch) // FIELDS_PER_EVENT

    def flush(self) -> None:
        """Write the pending batch as EVENTS frames now."""
        if not self._batch:
            return
        if self._closed:
            raise ValueError("flush of a closed RecordingWriter")
        try:
            self._write_batch(self._batch_seq, self._batch)
        except ValueError:
            # An unencodable event is a caller bug; stop here rather than renumber events.
            # The frames already written stay readable, and no footer marks it complete.
            self._abandon()
            raise
        self._batch_seq += len(self._batch) // FIELDS_PER_EVENT
        self._batch.clear()
        self._pending_data = 0
        self._hi = -1  # the next event starts a new batch (and its tick window)

    def _write_batch(self, first_seq: int, batch: list[Any]) -> None:
        """Encode and write a (flat) batch, halving it until each frame fits the limit."""
        raw, summary = encode_batch(first_seq, batch)
        if len(raw) > MAX_RAW[FrameKind.EVENTS]:
            if len(batch) == FIELDS_PER_EVENT:
                raise ValueError(f"event seq {first_seq} encodes to {len(raw)} bytes, over the "
                                 f"{MAX_RAW[FrameKind.EVENTS]}-byte frame limit")
            half = len(batch) // FIELDS_PER_EVENT // 2
            self._write_batch(first_seq, batch[:half * FIELDS_PER_EVENT])
            self._write_batch(first_seq + half, batch[half * FIELDS_PER_EVENT:])
            return
        offset, _ = self._write_frame(FrameKind.EVENTS, raw)
        self._index.add_batch(offset, summary)

    # ---- checkpoints -------------------------------------------------------------------

    def add_checkpoint(
        self,
        tick: int,
        seq: int,
        digest: bytes,
        blobs: Mapping[str, bytes],
        pages: Mapping[str, Mapping[int, bytes]],
        base: int | None = None,
    ) -> int:
        """Store a checkpoint taken after events [0, seq); return its index."""
        if self._closed:
            raise ValueError("add_checkpoint on a closed RecordingWriter")
        done = self._index.checkpoints
        count = self.event_count
        if type(tick) is not int or type(seq) is not int or not 0 <= seq <= count:
            raise ValueError(f"checkpoint seq {seq!r} must be an int in [0, {count}]")
        if done and (tick < done[-1].tick or seq < done[-1].seq):
            raise ValueError(f"checkpoint (tick {tick}, seq {seq}) goes back before "
                             f"checkpoint {done[-1].index} (tick {done[-1].tick}, "
                             f"seq {done[-1].seq})")
        if tick < 0 or (base is not None and not (type(base) is int and 0 <= base < len(done))):
            raise ValueError(f"tick must be >= 0 and base one of 0..{len(done) - 1} or None")
        self.flush()  # events before the checkpoint precede it in the file
        index = len(done)
        body, sizes = encode_checkpoint(index, tick, seq, digest, blobs, pages, base,
                                        self._pages, self._write_frame)
        offset, size = self._write_frame(FrameKind.CHECKPOINT, body)
        self._index.add_checkpoint(CheckpointInfo(
            index=index, tick=tick, seq=seq, digest=bytes(digest), base=base, offset=offset,
            blob_bytes=sizes["blob_bytes"], page_count=sizes["page_count"],
            new_pages=sizes["new_pages"], stored_bytes=sizes["stored_bytes"] + size))
        return index

    # ---- frames and the file -----------------------------------------------------------

    def _write_frame(self, kind: int, raw: bytes) -> tuple[int, int]:
        """Append one frame; return (its offset, its size on disk)."""
        frame = pack_frame(kind, raw, self._compressor)
        offset = self.offset
        self._write_all(frame)
        self._index.raw_bytes += len(raw)
        if kind == FrameKind.PAGES:
            (first_id,) = struct.unpack_from("<Q", raw)
            self._index.add_pages(offset, first_id, (len(raw) - 8) // PAGE_SIZE)
        return offset, len(frame)

    def _write_all(self, data: bytes) -> None:
        """write(2) until all of data is in the file (regular files rarely write short)."""
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written:]
            self.offset += written

    def close(self, summary: dict[str, Any] | None = None) -> None:
        """Flush, write the INDEX frame and the trailer: the recording is now complete."""
        if self._closed:
            return
        if summary is not None and type(summary) is not dict:
            raise ValueError("summary must be a dict or None")
        try:
            packb(summary)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError(f"summary is not msgpack-serialisable: {exc}") from None
        self.flush()
        body = self._index.encode(summary)
        offset, _ = self._write_frame(FrameKind.INDEX, body)
        self._write_all(pack_trailer(offset, self._batch_seq))
        self._closed = True
        self._hi = -1
        self._file.close()

    def _abandon(self) -> None:
        """Close the file without a footer: readers will see an unfinished recording."""
        self._closed = True
        self._hi = -1
        self._file.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
            return
        # The run failed: keep what was appended, but do not let it pass for complete.
        try:
            self.flush()
        finally:
            self._abandon()
