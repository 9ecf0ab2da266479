"""Byte layout of a .ccr file: preamble, frame headers, trailer, limits and payload codecs.

Everything here is the single source of truth for docs/recording-format.md; the writer,
the reader and `verify` all go through these functions so they cannot disagree on a byte.
"""

from __future__ import annotations

import gc
import struct
import zlib
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import msgpack
import zstandard

from chaosreplay.errors import RecordingError

FORMAT_MAJOR = 1
FORMAT_MINOR = 0

MAGIC = b"\x89CCR\r\n\x1a\n"  # PNG-style: catches text-mode and 7-bit transfer damage
PREAMBLE = struct.Struct("<8sHHI")  # magic, major, minor, crc32 of the first 12 bytes
FRAME_MAGIC = b"CCRF"
FRAME_HEADER = struct.Struct("<4sBBHIIII")  # magic kind codec flags stored raw payload_crc hdr_crc
TRAILER_MAGIC = b"CCRE"
TRAILER = struct.Struct("<QQI4s")  # index offset, event count, crc32 of first 16 bytes, magic

PAGE_SIZE = 4096
PAGES_PER_FRAME = 256  # 1 MiB of pages per PAGES frame
BLOB_CHUNK = 1 << 20  # blobs above INLINE_BLOB are cut into 1 MiB BLOB frames
INLINE_BLOB = 64 << 10  # smaller blobs travel inside the CHECKPOINT frame
MAX_WINDOW = 1 << 24  # no frame needs a zstd window beyond its own content size (<= 16 MiB)
MANIFEST_CONTAINERS = 1 << 20  # a manifest is a few maps and big byte strings, never millions


class FrameKind(IntEnum):
    """What a frame's payload holds; kinds >= 0x80 may be skipped by readers that lack them."""

    MANIFEST = 1
    EVENTS = 2
    BLOB = 3
    PAGES = 4
    CHECKPOINT = 5
    INDEX = 6


class Codec(IntEnum):
    """How a frame's payload is stored."""

    STORED = 0
    ZSTD = 1


SKIPPABLE_KIND = 0x80

# Largest raw (decompressed) payload per kind. Checked from the header before any read or
# allocation. msgpack payloads can decode to ~75x their size in Python objects, so those
# stay small; byte payloads (BLOB, PAGES) decode 1:1.
MAX_RAW: dict[int, int] = {
    FrameKind.MANIFEST: 64 << 20,  # programs and disk files (a root's libraries) travel in it
    FrameKind.EVENTS: 4 << 20,
    FrameKind.BLOB: BLOB_CHUNK,
    FrameKind.PAGES: 8 + PAGES_PER_FRAME * PAGE_SIZE,
    FrameKind.CHECKPOINT: 4 << 20,
    FrameKind.INDEX: 16 << 20,
}
MAX_SKIPPABLE_RAW = 16 << 20


def _crc(data: bytes | memoryview) -> int:
    """CRC-32 (zlib/IEEE polynomial) of data."""
    return zlib.crc32(data) & 0xFFFFFFFF


def pack_preamble(major: int = FORMAT_MAJOR, minor: int = FORMAT_MINOR) -> bytes:
    """The 16 bytes that open every recording."""
    head = struct.pack("<8sHH", MAGIC, major, minor)
    return head + struct.pack("<I", _crc(head))


def unpack_preamble(data: bytes) -> tuple[int, int]:
    """Check the preamble and return (major, minor); refuse other files and newer majors."""
    if len(data) < PREAMBLE.size:
        raise RecordingError(
            f"offset 0: file is {len(data)} bytes, too short for a .ccr preamble "
            f"({PREAMBLE.size} bytes)"
        )
    magic, major, minor, crc = PREAMBLE.unpack_from(data)
    if magic != MAGIC:
        raise RecordingError("offset 0: not a .ccr recording (wrong magic bytes)")
    if crc != _crc(data[:12]):
        raise RecordingError("offset 8: preamble checksum mismatch (version field damaged)")
    if major != FORMAT_MAJOR:
        newer = "newer" if major > FORMAT_MAJOR else "older, unsupported"
        raise RecordingError(
            f"offset 8: format version {major}.{minor} is a {newer} major version; "
            f"this chaosreplay reads {FORMAT_MAJOR}.x"
        )
    return major, minor


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """A frame's decoded 24-byte header and where it sits in the file."""

    offset: int
    kind: int
    codec: int
    stored_len: int
    raw_len: int
    payload_crc: int

    @property
    def end(self) -> int:
        """File offset just past this frame's payload."""
        return self.offset + FRAME_HEADER.size + self.stored_len


def pack_frame(kind: int, raw: bytes, compressor: zstandard.ZstdCompressor | None) -> bytes:
    """Header + payload of one frame; stored raw when zstd would not make it smaller."""
    limit = MAX_RAW.get(kind, MAX_SKIPPABLE_RAW)
    if len(raw) > limit:
        raise ValueError(f"{FrameKind(kind).name} payload of {len(raw)} bytes exceeds {limit}")
    codec, payload = Codec.STORED, raw
    if compressor is not None and raw:
        packed = compressor.compress(raw)
        if len(packed) < len(raw):
            codec, payload = Codec.ZSTD, packed
    head = struct.pack(
        "<4sBBHIII", FRAME_MAGIC, kind, codec, 0, len(payload), len(raw), _crc(payload)
    )
    return head + struct.pack("<I", _crc(head)) + payload


def unpack_frame_header(data: bytes, offset: int, file_size: int) -> FrameHeader:
    """Validate a 24-byte frame header read at offset; raise RecordingError naming it."""
    if len(data) < FRAME_HEADER.size:
        raise RecordingError(
            f"offset {offset}: truncated frame header ({len(data)} of {FRAME_HEADER.size} bytes)"
        )
    magic, kind, codec, flags, stored, raw, pcrc, hcrc = FRAME_HEADER.unpack_from(data)
    if magic != FRAME_MAGIC:
        raise RecordingError(f"offset {offset}: no frame starts here (bad frame magic)")
    if hcrc != _crc(data[:20]):
        raise RecordingError(f"offset {offset}: frame header checksum mismatch")
    where = f"offset {offset}: frame kind {kind}"
    if codec not in (Codec.STORED, Codec.ZSTD) or flags != 0:
        raise RecordingError(f"{where}: unknown codec {codec} or flags {flags:#x}")
    if kind not in MAX_RAW and kind < SKIPPABLE_KIND:
        raise RecordingError(f"{where}: unknown frame kind (written by a newer chaosreplay?)")
    limit = MAX_RAW.get(kind, MAX_SKIPPABLE_RAW)
    if raw > limit:
        raise RecordingError(f"{where}: declared size {raw} exceeds the limit of {limit} bytes")
    if stored > raw or (codec == Codec.STORED and stored != raw):
        raise RecordingError(f"{where}: stored size {stored} inconsistent with raw size {raw}")
    end = offset + FRAME_HEADER.size + stored
    if end > file_size:
        raise RecordingError(
            f"{where}: payload runs {end - file_size} bytes past the end of the file (truncated)"
        )
    return FrameHeader(offset, kind, codec, stored, raw, pcrc)


def decode_payload(header: FrameHeader, payload: bytes) -> bytes:
    """Check the payload checksum and decompress it to exactly header.raw_len bytes."""
    where = f"offset {header.offset}: frame kind {header.kind}"
    if len(payload) != header.stored_len:
        raise RecordingError(f"{where}: truncated payload")
    if _crc(payload) != header.payload_crc:
        raise RecordingError(f"{where}: payload checksum mismatch")
    if header.codec == Codec.STORED:
        return payload
    return _decompress_bounded(payload, header.raw_len, where)


def _decompress_bounded(payload: bytes, raw_len: int, where: str) -> bytes:
    """Decompress one zstd frame that must declare and hold exactly raw_len bytes."""
    try:
        declared = zstandard.frame_content_size(payload)
    except zstandard.ZstdError as exc:
        raise RecordingError(f"{where}: not a zstd frame ({exc})") from None
    # The declared size must match our header; libzstd then refuses any frame whose real
    # output differs from it, so the output buffer never exceeds raw_len.
    if declared != raw_len:
        raise RecordingError(f"{where}: zstd frame declares {declared} bytes, header {raw_len}")
    decompressor = zstandard.ZstdDecompressor(max_window_size=MAX_WINDOW).decompressobj()
    try:
        out = decompressor.decompress(payload)
    except zstandard.ZstdError as exc:
        raise RecordingError(f"{where}: zstd data damaged ({exc})") from None
    if len(out) != raw_len or not decompressor.eof or decompressor.unused_data:
        raise RecordingError(f"{where}: zstd payload is not exactly one {raw_len}-byte frame")
    return out


def pack_trailer(index_offset: int, event_count: int) -> bytes:
    """The fixed 24 bytes that end a complete recording."""
    head = struct.pack("<QQ", index_offset, event_count)
    return head + struct.pack("<I4s", _crc(head), TRAILER_MAGIC)


def unpack_trailer(data: bytes) -> tuple[int, int] | None:
    """(index offset, event count) if data is an intact trailer, else None."""
    if len(data) != TRAILER.size:
        return None
    index_offset, count, crc, magic = TRAILER.unpack(data)
    if magic != TRAILER_MAGIC or crc != _crc(data[:16]):
        return None
    return index_offset, count


def packb(obj: Any) -> bytes:
    """msgpack encoding used for every structured payload (bin for bytes, str for text)."""
    return msgpack.packb(obj, use_bin_type=True)


class _ContainerBudget:
    """Counts decoded maps and arrays; raises once a payload holds more than allowed."""

    __slots__ = ("left",)

    def __init__(self, limit: int) -> None:
        self.left = limit

    def __call__(self, obj: Any) -> Any:
        self.left -= 1
        if self.left < 0:
            raise ValueError("too many nested maps/arrays")
        return obj


def _refuse_ext(code: int, data: bytes) -> Any:
    """msgpack extension types are not part of the format."""
    raise ValueError(f"unexpected msgpack extension type {code}")


def unpackb(raw: bytes, where: str, max_containers: int | None = None) -> Any:
    """Decode one msgpack payload; any malformation becomes a RecordingError naming `where`."""
    budget = {}
    if max_containers is not None:
        hook = _ContainerBudget(max_containers)
        budget = {"list_hook": hook, "object_hook": hook}
    # Decoding builds thousands of containers at once, which would trigger cyclic garbage
    # collections scanning everything already decoded (5x the p95 seek latency). The result
    # is an acyclic tree, so collection can wait until it is built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        # strict_map_key is off because nested field maps may use int keys; unhashable
        # keys from hostile data still fail (TypeError) and are reported below.
        return msgpack.unpackb(
            raw, raw=False, strict_map_key=False, ext_hook=_refuse_ext, **budget
        )
    except Exception as exc:  # msgpack raises many types (StackError, ExtraData, Unicode...)
        reason = str(exc) or type(exc).__name__
        raise RecordingError(f"{where}: malformed msgpack payload ({reason})") from None
    finally:
        if collecting:
            gc.enable()
