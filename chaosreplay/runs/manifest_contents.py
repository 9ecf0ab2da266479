"""The large file contents of a run manifest, each stored as its own xz stream.

A scenario's canonical form keeps every file content of 64 KiB or more once, by SHA-256,
in its `file_contents` table (sim/scenario.py); a root's libraries are most of them. The
MANIFEST frame is compressed with zstd at the writer's level (3: fast, right for events and
checkpoints), which leaves shared libraries at about 41% of their size, and no zstd level
does much better on machine code (19: 35%). Manifest version 2 moves the table out of the
scenario into the manifest's `contents`, each content one xz stream: LZMA2 (preset 6)
behind the x86 branch filter for ELF files, which turns relative call and jump targets
into absolute ones so that repeated calls compress (31%: the 15 MB of libraries a redis
root holds store in 4.7 MB). The MANIFEST frame's zstd then passes over them. Each stream
is a pure function of the content (one thread, fixed filters), so it is cached by SHA-256
for the process: a seed sweep compresses a root once per worker.

A row is {"size": raw bytes, "xz": stream}. Reading decompresses each stream bounded by
its declared size (at most MAX_CONTENT_BYTES in all, under XZ_MEMLIMIT of decoder memory),
requires exactly one stream of exactly that size, and checks the bytes against their
SHA-256: a damaged or edited content is a one-line refusal naming it.
"""

from __future__ import annotations

import hashlib
import lzma
import threading
from collections import OrderedDict
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.sim.disk_files import MAX_FILES_BYTES

LZMA_PRESET = 6  # 8 MiB dictionary; 9 finds nothing more in libraries and takes longer
XZ_MEMLIMIT = 1 << 27  # decoder memory a stream may ask for (preset 9 needs 65 MiB)
MAX_CONTENT_BYTES = MAX_FILES_BYTES  # what a scenario's files may hold in all
CACHE_BYTES = 256 << 20  # raw bytes of contents kept compressed for the process (LRU)
_ELF = b"\x7fELF"

_cache: OrderedDict[str, bytes] = OrderedDict()
_cache_sizes: dict[str, int] = {}
_cache_lock = threading.Lock()  # the TUI records what-if branches from worker threads


def compress_content(digest: str, content: bytes) -> bytes:
    """The xz stream of one content (cached by its SHA-256 hex for the process)."""
    with _cache_lock:
        stream = _cache.get(digest)
        if stream is not None:
            _cache.move_to_end(digest)
            return stream
    lzma2 = {"id": lzma.FILTER_LZMA2, "preset": LZMA_PRESET}
    filters = [{"id": lzma.FILTER_X86}, lzma2] if content.startswith(_ELF) else [lzma2]
    # no xz check: the content's SHA-256 is checked on reading
    stream = lzma.compress(content, format=lzma.FORMAT_XZ, check=lzma.CHECK_NONE,
                           filters=filters)
    with _cache_lock:
        _cache[digest] = stream
        _cache_sizes[digest] = len(content)
        while sum(_cache_sizes.values()) > CACHE_BYTES and len(_cache) > 1:
            old, _ = _cache.popitem(last=False)
            del _cache_sizes[old]
    return stream


def pack_contents(scenario: dict[str, Any]) -> dict[str, dict[str, Any]] | None:
    """Take a canonical scenario's `file_contents` out of it (in place) as `contents`
    rows; None when it has none (the manifest then stays version 1)."""
    table = scenario.pop("file_contents", None)
    if not table:
        return None
    return {digest: {"size": len(table[digest]), "xz": compress_content(digest, table[digest])}
            for digest in sorted(table)}


def _decompress(stream: bytes, size: int, at: str) -> bytes:
    """One xz stream that holds exactly `size` bytes and nothing after it."""
    decoder = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=XZ_MEMLIMIT)
    try:
        data = decoder.decompress(stream, max_length=size + 1)
    except lzma.LZMAError as exc:
        raise RecordingError(f"{at}: not a readable xz stream ({exc})") from None
    if len(data) != size or not decoder.eof or decoder.unused_data:
        raise RecordingError(f"{at}: xz stream is not exactly one stream of {size:,} bytes")
    return data


def unpack_contents(contents: dict[str, dict[str, Any]], where: str) -> dict[str, bytes]:
    """The manifest's `contents` (rows already of their types: manifest_check) decompressed
    and checked, as the scenario's `file_contents` table."""
    out: dict[str, bytes] = {}
    total = 0
    for digest, row in contents.items():
        at = f"{where}: manifest: contents[{digest[:12]}…]"
        total += row["size"]
        if total > MAX_CONTENT_BYTES:
            raise RecordingError(f"{at}: contents past {MAX_CONTENT_BYTES:,} bytes in all")
        data = _decompress(row["xz"], row["size"], at)
        if hashlib.sha256(data).hexdigest() != digest:
            raise RecordingError(f"{at}: content does not match its SHA-256")
        out[digest] = data
    return out


def scenario_table(manifest: dict[str, Any], where: str) -> dict[str, Any]:
    """The manifest's scenario table as Scenario.from_dict reads it: for version 2, with
    `file_contents` put back from `contents` (refused when the scenario has its own too)."""
    table = dict(manifest["scenario"])
    if manifest.get("version") != 2:
        return table
    if "file_contents" in table:
        raise RecordingError(f"{where}: manifest: version 2 keeps file contents in contents, "
                             "but its scenario has file_contents too")
    table["file_contents"] = unpack_contents(manifest["contents"], where)
    return table
