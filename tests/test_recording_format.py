"""Byte layout: preamble, frames, trailer, and refusal of hostile frames before allocation."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import msgpack
import pytest
import zstandard
from recording_helpers import write_recording

from chaosreplay.errors import RecordingError
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import (
    FORMAT_MAJOR,
    FRAME_HEADER,
    MAX_RAW,
    PREAMBLE,
    TRAILER,
    Codec,
    FrameKind,
    decode_payload,
    pack_frame,
    pack_preamble,
    pack_trailer,
    unpack_frame_header,
    unpack_preamble,
    unpack_trailer,
    unpackb,
)


def hostile_frame(kind: int, payload: bytes, raw_len: int, codec: int = Codec.ZSTD) -> bytes:
    """A frame with valid checksums around whatever payload and declared size we like."""
    head = struct.pack("<4sBBHIII", b"CCRF", kind, codec, 0, len(payload), raw_len,
                       zlib.crc32(payload))
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def file_with(tmp_path: Path, frames: list[bytes]) -> Path:
    """A recording whose events section is exactly `frames` (no footer)."""
    source = tmp_path / "base.ccr"
    write_recording(source, [], close=False)
    path = tmp_path / "hostile.ccr"
    path.write_bytes(source.read_bytes() + b"".join(frames))
    return path


def test_preamble_round_trip_and_layout() -> None:
    """16 bytes: magic, major, minor (little-endian), CRC-32 of the first 12."""
    data = pack_preamble()
    assert len(data) == PREAMBLE.size == 16
    assert data[:8] == b"\x89CCR\r\n\x1a\n"
    assert struct.unpack_from("<HH", data, 8) == (FORMAT_MAJOR, 0)
    assert unpack_preamble(data) == (FORMAT_MAJOR, 0)
    with pytest.raises(RecordingError, match="offset 8: preamble checksum"):
        unpack_preamble(data[:10] + b"\x05" + data[11:])


def test_frame_round_trip_and_codec_choice() -> None:
    """Compressible payloads use zstd, incompressible ones are stored raw."""
    compressor = zstandard.ZstdCompressor(level=3)
    for raw, codec in ((b"a" * 5000, Codec.ZSTD), (bytes(range(7)), Codec.STORED)):
        frame = pack_frame(FrameKind.EVENTS, raw, compressor)
        header = unpack_frame_header(frame[:FRAME_HEADER.size], 100, 100 + len(frame))
        assert (header.codec, header.raw_len, header.end) == (codec, len(raw), 100 + len(frame))
        assert decode_payload(header, frame[FRAME_HEADER.size:]) == raw


def test_trailer_round_trip() -> None:
    """The trailer is 24 bytes ending in CCRE; any flipped bit invalidates it."""
    data = pack_trailer(1234, 99)
    assert len(data) == TRAILER.size and data.endswith(b"CCRE")
    assert unpack_trailer(data) == (1234, 99)
    for bit in range(len(data) * 8):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        assert unpack_trailer(bytes(flipped)) is None


def test_huge_declared_length_is_refused_before_reading(tmp_path: Path) -> None:
    """A header declaring 4 GiB is refused from the header alone."""
    frame = hostile_frame(FrameKind.EVENTS, b"", 0xFFFFFFFF)
    with pytest.raises(RecordingError, match=r"declared size 4294967295 exceeds the limit"):
        unpack_frame_header(frame[:FRAME_HEADER.size], 0, 10**12)
    with RecordingReader(file_with(tmp_path, [frame])) as reader:
        assert any("exceeds the limit" in line for line in reader.damage)


def test_decompression_bomb_is_refused(tmp_path: Path) -> None:
    """A zstd frame expanding beyond its declared size, or not declaring one, is refused."""
    bomb = zstandard.ZstdCompressor(level=19).compress(b"\0" * (64 << 20))
    assert len(bomb) < 10_000
    no_size = zstandard.ZstdCompressor(write_content_size=False).compress(b"\0" * (8 << 20))
    for payload, message in ((bomb, "declares 67108864 bytes"), (no_size, "declares -1")):
        path = file_with(tmp_path, [hostile_frame(FrameKind.EVENTS, payload, 100_000)])
        with RecordingReader(path) as reader:
            assert reader.event_count == 0
            assert any(message in line for line in reader.damage), reader.damage
    lying = bytearray(zstandard.ZstdCompressor().compress(bytes(range(256)) * 4096))
    lying[5:9] = struct.pack("<I", 5000)  # content size field says 5000 bytes, not 1 MiB
    frame = hostile_frame(FrameKind.EVENTS, bytes(lying), 5000)
    header = unpack_frame_header(frame[:FRAME_HEADER.size], 0, len(frame))
    with pytest.raises(RecordingError, match="zstd data damaged"):
        decode_payload(header, bytes(lying))


@pytest.mark.parametrize(("payload", "message"), [
    (b"\x91" * 100_000 + b"\xc0", "malformed msgpack"),  # 100k nested arrays
    (b"\xdd\xff\xff\xff\xff", "malformed msgpack"),  # array header claiming 2^32-1 items
    (b"\xc7\x01\x05\x00", "malformed msgpack"),  # an extension type
    (msgpack.packb([0, [1], [1], [0], ["k"], [0], [[]]]), "wrong type"),
    (msgpack.packb([0, [1, 2], [1], [0], ["k"], [0], [{}]]), "different or zero lengths"),
    (msgpack.packb([0, [1], [1], [0], ["k"], [5], [{}]]), "kind index out of range"),
])
def test_hostile_events_payloads(tmp_path: Path, payload: bytes, message: str) -> None:
    """Malformed or hostile EVENTS bodies (with valid checksums) are reported, not raised."""
    path = file_with(tmp_path, [hostile_frame(FrameKind.EVENTS, payload, len(payload),
                                              Codec.STORED)])
    with RecordingReader(path) as reader:
        assert reader.event_count == 0
        assert any(message in line for line in reader.damage), reader.damage
        assert reader.ignored_tail_bytes == FRAME_HEADER.size + len(payload)


def test_manifest_container_budget() -> None:
    """A manifest of millions of empty maps is refused before it is built."""
    hostile = b"\xdd" + struct.pack(">I", 2_000_000) + b"\x80" * 2_000_000
    with pytest.raises(RecordingError, match="too many nested"):
        unpackb(hostile, "offset 16", max_containers=1 << 20)


def test_limits_cover_every_kind() -> None:
    """Every frame kind has a size limit, and msgpack kinds stay small."""
    assert set(MAX_RAW) == set(FrameKind)
    assert MAX_RAW[FrameKind.EVENTS] <= 4 << 20
