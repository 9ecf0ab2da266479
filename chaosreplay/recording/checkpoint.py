"""Checkpoint frames: named blobs and memory pages, both deduplicated by content, and deltas.

A checkpoint is written as its BLOB chunk frames and any PAGES frames holding pages the file
does not have yet, then one CHECKPOINT frame referring to them. The CHECKPOINT frame comes
last so that a checkpoint exists only once everything it needs is on disk.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.format import (
    BLOB_CHUNK,
    INLINE_BLOB,
    PAGE_SIZE,
    PAGES_PER_FRAME,
    FrameKind,
    packb,
    unpackb,
)
from chaosreplay.recording.model import CheckpointInfo

MAX_BLOB_BYTES = 1 << 30  # per checkpoint, all blobs together
MAX_REGION_PAGES = 1 << 20  # 4 GiB of guest memory per resolved region
CHECKPOINT_CONTAINERS = 1 << 16
REMOVED = -1  # page id meaning "this page is absent (zero / unmapped)"
_BYTES_LIKE = (bytes, bytearray, memoryview)

WriteFrame = Callable[[int, bytes], tuple[int, int]]  # (kind, raw) -> (offset, frame size)
ReadFrame = Callable[[int, int], bytes]  # (offset, expected kind) -> raw payload


class PageStore:
    """Writer-side content dedup: gives each distinct page a permanent id."""

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}  # blake2b-128 of the page -> id; pages are not kept
        self._pending: list[bytes] = []
        self.count = 0  # ids handed out so far (written or pending)
        # blake2b-128 of a chunked blob -> the BLOB frames already holding it: a blob that
        # recurs (a file on every node's disk, in every checkpoint) is written once, and a
        # later checkpoint names the same frames (still in increasing order, as 4.3 asks).
        self.blobs: dict[bytes, list[int]] = {}

    def id_of(self, page: bytes) -> int:
        """The page's id, queuing it for the next PAGES frame when it is new."""
        key = hashlib.blake2b(page, digest_size=16).digest()
        page_id = self._ids.get(key)
        if page_id is None:
            page_id = self._ids[key] = self.count
            self.count += 1
            self._pending.append(page)
        return page_id

    def take_frames(self) -> list[tuple[int, int, bytes]]:
        """Pending pages as (first id, count, PAGES payload) groups; clears the queue."""
        first = self.count - len(self._pending)
        groups = []
        for start in range(0, len(self._pending), PAGES_PER_FRAME):
            chunk = self._pending[start:start + PAGES_PER_FRAME]
            groups.append((first + start, len(chunk),
                           struct.pack("<Q", first + start) + b"".join(chunk)))
        self._pending.clear()
        return groups


def encode_checkpoint(
    index: int, tick: int, seq: int, digest: bytes, blobs: Mapping[str, bytes],
    pages: Mapping[str, Mapping[int, bytes]], base: int | None, store: PageStore,
    write: WriteFrame,
) -> tuple[bytes, dict[str, int]]:
    """Write a checkpoint's chunk and page frames; return its CHECKPOINT body and sizes."""
    # Validate everything before touching the page store or the file, so a bad argument
    # leaves the writer exactly as it was.
    checked = {_text(name, "region"): [(pfn, _page(name, pfn, page))
                                       for pfn, page in sorted(pages[name].items())]
               for name in sorted(pages)}  # sorted: the bytes must not depend on dict order
    for name, data in blobs.items():
        if not isinstance(_text(name, "blob"), str) or not isinstance(data, _BYTES_LIKE):
            raise ValueError(f"blob {name} must be bytes, got {type(data).__name__}")
    if not isinstance(digest, _BYTES_LIKE):
        raise ValueError(f"digest must be bytes, got {type(digest).__name__}")
    total_blob = sum(len(data) for data in blobs.values())
    if total_blob > MAX_BLOB_BYTES:
        raise ValueError(f"checkpoint blobs total {total_blob} bytes > {MAX_BLOB_BYTES}")
    region_rows = []
    for name, entries in checked.items():
        ids = [REMOVED if not page else store.id_of(page) for _, page in entries]
        region_rows.append([name, _deltas([pfn for pfn, _ in entries]), ids])
    listed = sum(map(len, checked.values()))
    stored = 0
    blob_rows: list[list[Any]] = []
    new_pages = 0
    for _first_id, count, payload in store.take_frames():
        stored += write(FrameKind.PAGES, payload)[1]
        new_pages += count
    for name in sorted(blobs):
        data = bytes(blobs[name])
        if len(data) <= INLINE_BLOB:
            blob_rows.append([name, len(data), data, []])
            continue
        key = hashlib.blake2b(data, digest_size=16).digest()
        chunk_offsets = store.blobs.get(key)
        if chunk_offsets is None:
            chunk_offsets = store.blobs[key] = []
            for start in range(0, len(data), BLOB_CHUNK):
                offset, size = write(FrameKind.BLOB, data[start:start + BLOB_CHUNK])
                chunk_offsets.append(offset)
                stored += size
        blob_rows.append([name, len(data), None, chunk_offsets])
    body = packb({"index": index, "tick": tick, "seq": seq, "digest": bytes(digest),
                  "base": base, "blobs": blob_rows, "regions": region_rows,
                  "new_pages": new_pages, "stored": stored})
    sizes = {"blob_bytes": total_blob, "page_count": listed, "new_pages": new_pages,
             "stored_bytes": stored}
    return body, sizes


def _text(name: Any, what: str) -> str:
    """A blob or region name, which must be a str."""
    if type(name) is not str:
        raise ValueError(f"{what} name must be str, got {type(name).__name__}")
    return name


def _page(region: str, pfn: Any, page: Any) -> bytes:
    """Validate one page entry of add_checkpoint's `pages` map (b"" means removed)."""
    if type(pfn) is not int or not 0 <= pfn < 1 << 52:
        raise ValueError(f"region {region}: page frame number {pfn!r} out of range")
    if isinstance(page, _BYTES_LIKE) and len(page) == 0:
        return b""
    if not isinstance(page, _BYTES_LIKE) or len(page) != PAGE_SIZE:
        raise ValueError(f"region {region} page {pfn}: pages are {PAGE_SIZE} bytes (or b'')")
    return bytes(page)


def _deltas(values: list[int]) -> list[int]:
    """Ascending values as differences from the previous one (the first from 0)."""
    return [b - a for a, b in zip([0, *values], values, strict=False)]


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """A decoded CHECKPOINT body: references into the file, not yet loaded."""

    info: CheckpointInfo
    blobs: dict[str, tuple[int, bytes | None, list[int]]]  # name -> (size, inline, chunks)
    regions: dict[str, dict[int, int]]  # name -> {pfn: page id or REMOVED}


def decode_checkpoint(raw: bytes, offset: int, frame_size: int, pages_before: int,
                      where: str) -> CheckpointRecord:
    """Parse and validate a CHECKPOINT body found at `offset`."""
    body = unpackb(raw, where, max_containers=CHECKPOINT_CONTAINERS)
    try:
        return _decode(body, offset, frame_size, pages_before)
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError(f"{where}: checkpoint record is inconsistent ({exc})") from None


def _decode(body: Any, offset: int, frame_size: int, pages_before: int) -> CheckpointRecord:
    """The work of decode_checkpoint; raises plain exceptions on any inconsistency."""
    if type(body) is not dict:
        raise TypeError("body is not a map")
    ints = {key: body[key] for key in ("index", "tick", "seq", "new_pages", "stored")}
    if any(type(v) is not int or v < 0 for v in ints.values()):
        raise TypeError("index, tick, seq and sizes must be non-negative integers")
    base, digest = body["base"], body["digest"]
    if not (base is None or type(base) is int) or type(digest) is not bytes:
        raise TypeError("base or digest has the wrong type")
    blobs: dict[str, tuple[int, bytes | None, list[int]]] = {}
    for row in body["blobs"]:
        name, size, inline, chunks = row
        if type(name) is not str or name in blobs or type(size) is not int or size < 0:
            raise ValueError(f"bad blob entry {name!r}")
        if type(chunks) is not list or set(map(type, chunks)) - {int}:
            raise TypeError(f"blob {name}: chunk offsets are not integers")
        if inline is not None and (type(inline) is not bytes or len(inline) != size or chunks):
            raise ValueError(f"blob {name}: inline data does not match its size")
        if inline is None and (len(chunks) != -(-size // BLOB_CHUNK) or chunks != sorted(
                set(chunks)) or (chunks and not 0 <= chunks[0] <= chunks[-1] < offset)):
            raise ValueError(f"blob {name}: chunk offsets do not fit its size and position")
        blobs[name] = (size, inline, chunks)
    if sum(size for size, _, _ in blobs.values()) > MAX_BLOB_BYTES:
        raise ValueError("blobs exceed the size limit")
    regions: dict[str, dict[int, int]] = {}
    for row in body["regions"]:
        name, pfn_deltas, ids = row
        if type(name) is not str or name in regions or type(pfn_deltas) is not list:
            raise ValueError(f"bad region entry {name!r}")
        if type(ids) is not list or len(ids) != len(pfn_deltas):
            raise ValueError(f"region {name}: columns differ in length")
        if set(map(type, pfn_deltas)) - {int} or set(map(type, ids)) - {int}:
            raise TypeError(f"region {name}: non-integer page entry")
        if pfn_deltas and (pfn_deltas[0] < 0 or min(pfn_deltas[1:], default=1) < 1):
            raise ValueError(f"region {name}: page frame numbers not ascending")
        if ids and (min(ids) < REMOVED or max(ids) >= pages_before):
            raise ValueError(f"region {name}: page id outside the {pages_before} stored pages")
        pfns = _undelta(pfn_deltas)
        regions[name] = dict(zip(pfns, ids, strict=True))
    info = CheckpointInfo(
        index=ints["index"], tick=ints["tick"], seq=ints["seq"], digest=digest, base=base,
        offset=offset, blob_bytes=sum(size for size, _, _ in blobs.values()),
        page_count=sum(map(len, regions.values())), new_pages=ints["new_pages"],
        stored_bytes=ints["stored"] + frame_size)
    return CheckpointRecord(info, blobs, regions)


def _undelta(deltas: list[int]) -> list[int]:
    """Inverse of _deltas."""
    total, out = 0, []
    for delta in deltas:
        total += delta
        out.append(total)
    return out


class Checkpoint:
    """A loaded checkpoint: its blobs, and its memory regions resolved through its bases."""

    def __init__(self, info: CheckpointInfo, blobs: dict[str, bytes],
                 page_ids: dict[str, dict[int, int]], read_page: Callable[[int], bytes]) -> None:
        self.info = info
        self.blobs = blobs
        self._page_ids = page_ids
        self._read_page = read_page

    @property
    def regions(self) -> list[str]:
        """Names of the memory regions this checkpoint holds, sorted."""
        return sorted(self._page_ids)

    def page_ids(self, region: str) -> dict[int, int]:
        """{pfn: page id} of a region; equal ids mean equal page contents."""
        return dict(self._page_ids.get(region, {}))

    def pages(self, region: str) -> dict[int, bytes]:
        """{pfn: 4096-byte page} of a region, fully resolved (empty for unknown regions)."""
        return {pfn: self._read_page(page_id)
                for pfn, page_id in self._page_ids.get(region, {}).items()}


def resolve_regions(chain: list[CheckpointRecord], where: str) -> dict[str, dict[int, int]]:
    """Apply a root-first chain of checkpoint records into complete {pfn: id} maps."""
    resolved: dict[str, dict[int, int]] = {}
    for record in chain:
        for name, entries in record.regions.items():
            current = resolved.setdefault(name, {})
            for pfn, page_id in entries.items():
                if page_id == REMOVED:
                    current.pop(pfn, None)
                else:
                    current[pfn] = page_id
            if len(current) > MAX_REGION_PAGES:
                raise RecordingError(f"{where}: region {name} resolves to more than "
                                     f"{MAX_REGION_PAGES} pages")
    return resolved


def read_blobs(record: CheckpointRecord, read: ReadFrame) -> dict[str, bytes]:
    """Load every blob of a checkpoint, joining chunk frames."""
    out = {}
    for name, (size, inline, chunks) in record.blobs.items():
        if inline is not None:
            out[name] = inline
            continue
        data = b"".join(read(offset, FrameKind.BLOB) for offset in chunks)
        if len(data) != size:
            raise RecordingError(f"offset {record.info.offset}: blob {name} has {len(data)} "
                                 f"bytes in its chunks, {size} declared")
        out[name] = data
    return out
