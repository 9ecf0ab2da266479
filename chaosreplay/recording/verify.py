"""Full integrity check of a recording: every frame, every checksum, the index."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from chaosreplay.errors import RecordingError
from chaosreplay.recording.checkpoint import CheckpointRecord
from chaosreplay.recording.format import BLOB_CHUNK, FRAME_MAGIC, TRAILER, FrameKind, unpack_trailer
from chaosreplay.recording.index import RecordingIndex
from chaosreplay.recording.scan import DATA_START, FrameSource, apply_frame, decode_manifest

_RESYNC_WINDOW = 1 << 20


@dataclass
class VerifyReport:
    """The outcome of verify_recording: one line per problem, and what was checked."""

    path: str
    size: int = 0
    frames: int = 0
    events: int = 0
    checkpoints: int = 0
    complete: bool = False
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the recording is complete and nothing is damaged."""
        return not self.problems


def verify_recording(path: str | os.PathLike[str]) -> VerifyReport:
    """Walk every frame of a recording, decoding it fully, and compare the stored index.

    Unlike RecordingReader, verify goes on past damage (re-synchronising on the next valid
    frame header) so that it can list every problem, each naming its offset.
    """
    source = FrameSource(path)
    try:
        return _verify(source)
    finally:
        source.close()


def _verify(source: FrameSource) -> VerifyReport:
    """The walk behind verify_recording."""
    report = VerifyReport(source.path, source.size)
    try:
        source.version()
    except RecordingError as exc:
        report.problems.append(str(exc))
        return report
    trailer = None
    if source.size >= DATA_START + TRAILER.size:
        trailer = unpack_trailer(source.read(source.size - TRAILER.size, TRAILER.size))
    data_end = source.size - TRAILER.size if trailer else source.size
    rebuilt = RecordingIndex()
    stored: tuple[int, RecordingIndex] | None = None
    blob_sizes: dict[int, int] = {}
    records: list[CheckpointRecord] = []
    offset = DATA_START
    while offset < data_end:
        try:
            header = source.header(offset, data_end)
        except RecordingError as exc:
            found = _resync(source, offset + 1, data_end)
            skipped = (found or data_end) - offset
            report.problems.append(f"{exc}; skipped {skipped} bytes to the next valid frame"
                                   if found else f"{exc}; {skipped} bytes to the end unread")
            if found is None:
                break
            offset = found
            continue
        report.frames += 1
        try:
            _, raw = source.frame(offset, end=data_end)
            if stored is not None:
                raise RecordingError(f"offset {offset}: frame after the INDEX frame")
            if offset == DATA_START or header.kind == FrameKind.MANIFEST:
                if header.kind != FrameKind.MANIFEST or offset != DATA_START:
                    raise RecordingError(f"offset {offset}: the MANIFEST frame must come "
                                         "first, and only there")
                decode_manifest(raw, f"offset {offset}")
                rebuilt.raw_bytes += header.raw_len
            elif header.kind == FrameKind.BLOB:
                blob_sizes[offset] = header.raw_len
                rebuilt.raw_bytes += header.raw_len
            else:
                facts = apply_frame(rebuilt, header, raw, strict=False)
                if facts.checkpoint is not None:
                    records.append(facts.checkpoint)
                if facts.is_index:
                    stored = (offset, RecordingIndex.decode(raw, f"offset {offset}")[0])
        except RecordingError as exc:
            report.problems.append(str(exc))
        offset = header.end
    report.problems += _check_blobs(records, blob_sizes)
    report.problems += _check_footer(trailer, stored, rebuilt, source.size)
    report.events = rebuilt.event_count
    report.checkpoints = len(rebuilt.checkpoints)
    report.complete = trailer is not None and stored is not None
    return report


def _resync(source: FrameSource, start: int, end: int) -> int | None:
    """Offset of the next intact frame header at or after start, if any."""
    position = start
    while position < end:
        window = source.read(position, _RESYNC_WINDOW + len(FRAME_MAGIC))
        hit = window.find(FRAME_MAGIC)
        while hit >= 0:
            try:
                source.header(position + hit, end)
                return position + hit
            except RecordingError:
                hit = window.find(FRAME_MAGIC, hit + 1)
        position += _RESYNC_WINDOW
    return None


def _check_blobs(records: list[CheckpointRecord], blob_sizes: dict[int, int]) -> list[str]:
    """Every chunk a checkpoint names must be an intact BLOB frame of the right size."""
    problems = []
    for record in records:
        for name, (size, _inline, chunks) in record.blobs.items():
            sizes = [blob_sizes.get(offset) for offset in chunks]
            expected = [min(BLOB_CHUNK, size - i * BLOB_CHUNK) for i in range(len(chunks))]
            if sizes != expected:
                problems.append(f"offset {record.info.offset}: checkpoint "
                                f"{record.info.index} blob {name!r} has missing or damaged "
                                "chunk frames")
    return problems


def _check_footer(trailer: tuple[int, int] | None, stored: tuple[int, RecordingIndex] | None,
                  rebuilt: RecordingIndex, size: int) -> list[str]:
    """The trailer must point at the INDEX frame, and the index must match the frames."""
    if trailer is None:
        return [f"offset {size}: no valid trailer: the recording is incomplete "
                "(the writer did not close it)"]
    if stored is None:
        return [f"offset {trailer[0]}: the trailer points at an INDEX frame that is missing "
                "or damaged"]
    problems = []
    if stored[0] != trailer[0]:
        problems.append(f"offset {size - TRAILER.size}: trailer points at {trailer[0]}, "
                        f"the INDEX frame is at {stored[0]}")
    if trailer[1] != rebuilt.event_count:
        problems.append(f"offset {size - TRAILER.size}: trailer counts {trailer[1]} events, "
                        f"the frames hold {rebuilt.event_count}")
    difference = stored[1].difference(rebuilt)
    if difference:
        problems.append(f"offset {stored[0]}: {difference}")
    return problems
