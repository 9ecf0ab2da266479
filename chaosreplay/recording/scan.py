"""Reading frames from a file, and rebuilding the index by walking them in order.

`FrameSource` is the only code that reads a recording's bytes: every read is a pread of a
length already checked against the file size and the per-kind limit, so no header value
can make the reader allocate more than those limits allow.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.batch import decode_batch
from chaosreplay.recording.checkpoint import CheckpointRecord, decode_checkpoint
from chaosreplay.recording.format import (
    FRAME_HEADER,
    MANIFEST_CONTAINERS,
    PAGE_SIZE,
    PREAMBLE,
    FrameHeader,
    FrameKind,
    decode_payload,
    unpack_frame_header,
    unpack_preamble,
    unpackb,
)
from chaosreplay.recording.index import RecordingIndex

DATA_START = PREAMBLE.size  # the MANIFEST frame always starts right after the preamble


class FrameSource:
    """Bounded, position-independent reads of one recording file."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        try:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise RecordingError(f"cannot open {self.path}: {exc.strerror}") from None
        self.size = os.fstat(self._fd).st_size

    def read(self, offset: int, length: int) -> bytes:
        """Up to `length` bytes at `offset` (fewer at the end of the file)."""
        return os.pread(self._fd, max(0, min(length, self.size - offset)), offset)

    def version(self) -> tuple[int, int]:
        """(major, minor) from the preamble; RecordingError for other files."""
        return unpack_preamble(self.read(0, PREAMBLE.size))

    def header(self, offset: int, end: int | None = None) -> FrameHeader:
        """The validated header of the frame at offset, which must end by `end`."""
        limit = self.size if end is None else end
        return unpack_frame_header(self.read(offset, FRAME_HEADER.size), offset, limit)

    def frame(self, offset: int, kind: int | None = None,
              end: int | None = None) -> tuple[FrameHeader, bytes]:
        """(header, raw payload) of the frame at offset, optionally of an expected kind."""
        header = self.header(offset, end)
        if kind is not None and header.kind != kind:
            raise RecordingError(f"offset {offset}: expected a {FrameKind(kind).name} frame, "
                                 f"found kind {header.kind}")
        payload = self.read(offset + FRAME_HEADER.size, header.stored_len)
        return header, decode_payload(header, payload)

    def close(self) -> None:
        """Release the file descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def decode_manifest(raw: bytes, where: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(manifest, host) from a MANIFEST body."""
    body = unpackb(raw, where, max_containers=MANIFEST_CONTAINERS)
    if type(body) is not dict or type(body.get("manifest")) is not dict:
        raise RecordingError(f"{where}: manifest body is not a map holding a manifest map")
    host = body.get("host")
    if host is not None and type(host) is not dict:
        raise RecordingError(f"{where}: host section is not a map")
    return body["manifest"], host


def pages_header(raw: bytes, where: str) -> tuple[int, int]:
    """(first page id, page count) of a PAGES payload."""
    if len(raw) < 8 + PAGE_SIZE or (len(raw) - 8) % PAGE_SIZE:
        raise RecordingError(f"{where}: PAGES payload of {len(raw)} bytes is not 8 + n*4096")
    return struct.unpack_from("<Q", raw)[0], (len(raw) - 8) // PAGE_SIZE


@dataclass
class FrameFacts:
    """What one frame contributed while walking a file."""

    header: FrameHeader
    checkpoint: CheckpointRecord | None = None
    is_index: bool = False


def apply_frame(index: RecordingIndex, header: FrameHeader, raw: bytes,
                strict: bool = True) -> FrameFacts:
    """Decode a data frame fully and add it to an index being rebuilt.

    With strict=False (used by `verify`), ordering problems are still raised, but only after
    the frame has been added, so one lost frame is reported once instead of once per frame
    that follows it.
    """
    where = f"offset {header.offset}"
    facts = FrameFacts(header, is_index=header.kind == FrameKind.INDEX)
    if facts.is_index:
        return facts
    try:
        if header.kind == FrameKind.EVENTS:
            index.add_batch(header.offset, decode_batch(raw, where).summary(), strict=strict)
        elif header.kind == FrameKind.PAGES:
            first_id, count = pages_header(raw, where)
            index.add_pages(header.offset, first_id, count, strict=strict)
        elif header.kind == FrameKind.CHECKPOINT:
            size = header.end - header.offset
            facts.checkpoint = decode_checkpoint(raw, header.offset, size, index.page_count,
                                                 where)
            index.add_checkpoint(facts.checkpoint.info, strict=strict)
        elif header.kind == FrameKind.MANIFEST:
            raise RecordingError(f"{where}: a second MANIFEST frame")
    except ValueError as exc:
        if not strict:  # the frame was added despite the problem; count it as such
            index.raw_bytes += header.raw_len
        raise RecordingError(f"{where}: {exc}") from None
    index.raw_bytes += header.raw_len
    return facts


@dataclass
class ScanResult:
    """An index rebuilt by walking frames, and where (and why) the walk stopped."""

    index: RecordingIndex
    end: int  # offset just past the last whole, valid frame
    problem: str | None


def scan(source: FrameSource, start: int, stop: int, raw_bytes: int) -> ScanResult:
    """Walk frames from start until stop, the first INDEX frame, or the first damage."""
    index = RecordingIndex(raw_bytes=raw_bytes)
    offset = start
    while offset < stop:
        try:
            header, raw = source.frame(offset, end=stop)
            if apply_frame(index, header, raw).is_index:
                break
        except RecordingError as exc:
            return ScanResult(index, offset, str(exc))
        offset = header.end
    return ScanResult(index, offset, None)
