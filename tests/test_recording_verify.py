"""verify_recording: intact files pass; each kind of damage is one line naming its offset."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from recording_helpers import flip, frame_offsets, page, write_recording

from chaosreplay.recording import RecordingWriter, verify_recording
from chaosreplay.recording.format import FRAME_HEADER, TRAILER


def _recording(path: Path) -> list[int]:
    """A complete recording with checkpoints; returns its frame offsets."""
    with RecordingWriter(path, {"seed": 1}, flush_every_events=20) as writer:
        for i in range(100):
            writer.append(i, i, i % 2, "a", {"i": i})
        writer.add_checkpoint(99, 100, b"d", {"big": b"q" * 100_000}, {"m": {0: page(1)}})
    return frame_offsets(path)


def test_intact_recording_verifies(tmp_path: Path) -> None:
    """A freshly closed file has no problems and the counts of what was written."""
    offsets = _recording(tmp_path / "ok.ccr")
    report = verify_recording(tmp_path / "ok.ccr")
    assert report.ok, report.problems
    assert (report.events, report.checkpoints, report.frames) == (100, 1, len(offsets))
    assert report.complete


def test_flipped_payload_bit_is_named_and_the_rest_still_checked(tmp_path: Path) -> None:
    """One damaged events frame: one checksum line at its offset, plus the index mismatch."""
    path = tmp_path / "flip.ccr"
    offsets = _recording(path)
    flip(path, offsets[2] + FRAME_HEADER.size + 3, 0x80)
    report = verify_recording(path)
    assert report.problems[0] == f"offset {offsets[2]}: frame kind 2: payload checksum mismatch"
    assert report.checkpoints == 1  # frames after the damage were still checked
    assert all(line.startswith("offset ") for line in report.problems)


def test_damaged_header_resynchronises(tmp_path: Path) -> None:
    """A damaged header is skipped to the next valid frame, reported with the byte count."""
    path = tmp_path / "hdr.ccr"
    offsets = _recording(path)
    flip(path, offsets[3] + 1, 0xFF)
    report = verify_recording(path)
    skipped = offsets[4] - offsets[3]
    assert report.problems[0] == (f"offset {offsets[3]}: no frame starts here (bad frame "
                                  f"magic); skipped {skipped} bytes to the next valid frame")
    assert any("seq" in line for line in report.problems), report.problems


def test_unfinished_recording_is_reported(tmp_path: Path) -> None:
    """No trailer: the file is called incomplete."""
    path = tmp_path / "open.ccr"
    write_recording(path, [(0, 0, 0, "a", {})], close=False).flush()
    report = verify_recording(path)
    assert not report.complete
    assert report.problems == [f"offset {path.stat().st_size}: no valid trailer: the "
                               "recording is incomplete (the writer did not close it)"]


def test_index_that_disagrees_with_frames(tmp_path: Path) -> None:
    """A trailer with a valid checksum but a wrong event count is caught by comparison."""
    path = tmp_path / "idx.ccr"
    _recording(path)
    data = bytearray(path.read_bytes())
    trailer_at = len(data) - TRAILER.size
    index_offset, count = struct.unpack_from("<QQ", data, trailer_at)
    struct.pack_into("<QQ", data, trailer_at, index_offset, count + 1)
    struct.pack_into("<I", data, trailer_at + 16, zlib.crc32(bytes(data[trailer_at:
                                                                        trailer_at + 16])))
    path.write_bytes(bytes(data))
    report = verify_recording(path)
    assert f"offset {trailer_at}: trailer counts 101 events, the frames hold 100" in (
        report.problems)
