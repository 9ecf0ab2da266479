"""The values a recording hands back: events and checkpoint descriptions."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One recorded event; `seq` is its 0-based position in the run."""

    seq: int
    tick: int
    vtime_ns: int
    node: int
    kind: str
    fields: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """What the index knows about a checkpoint without loading its payloads."""

    index: int
    tick: int
    seq: int
    digest: bytes
    base: int | None
    offset: int  # file offset of the CHECKPOINT frame
    blob_bytes: int  # total size of its named blobs
    page_count: int  # page entries listed by this checkpoint itself (full map or delta)
    new_pages: int  # pages first stored by this checkpoint (the rest were deduplicated)
    stored_bytes: int  # bytes of the frames written for it, the CHECKPOINT frame included
