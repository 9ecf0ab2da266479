"""Corruption fuzz: mutated recordings only ever raise RecordingError, and verify never raises."""

from __future__ import annotations

import random
import struct
import zlib
from pathlib import Path

import pytest
from recording_helpers import frame_offsets, page

from chaosreplay.errors import RecordingError
from chaosreplay.recording import RecordingReader, RecordingWriter, verify_recording
from chaosreplay.recording.format import FRAME_HEADER


def _seed_files(directory: Path) -> list[bytes]:
    """Small but complete recordings exercising every frame kind."""
    complete = directory / "seed.ccr"
    with RecordingWriter(complete, {"seed": 3, "bin": b"\x7fELF" * 64},
                         flush_every_events=16) as writer:
        for i in range(120):
            writer.append(i // 4, i * 10, i % 3 - 1, ("a", "b", "c")[i % 3],
                          {"i": i, "data": bytes([i]) * (i % 9), "nested": [i, {"k": "v"}]})
            if i in (40, 90):
                writer.add_checkpoint(i // 4, i + 1, b"d" * 8, {"regs": b"r" * 200,
                                                                "big": b"z" * 70000},
                                      {"mem": {p: page(p + i) for p in range(3)}},
                                      base=None if i == 40 else 0)
    unfinished = directory / "open.ccr"
    writer = RecordingWriter(unfinished, {"seed": 4}, flush_every_events=8)
    for i in range(50):
        writer.append(i, i, 0, "a", {"i": i})
    writer.flush()
    return [complete.read_bytes(), unfinished.read_bytes()]


def _mutate(rng: random.Random, data: bytes, offsets: list[int], other: bytes) -> bytes:
    """One random damage: bit flips, truncation, splice, or a hostile length field."""
    out = bytearray(data)
    choice = rng.randrange(5)
    if choice == 0:
        for _ in range(rng.randint(1, 8)):
            position = rng.randrange(len(out))
            out[position] ^= 1 << rng.randrange(8)
    elif choice == 1:
        del out[rng.randrange(len(out)):]
    elif choice == 2:
        start = rng.randrange(len(other))
        piece = other[start:start + rng.randint(1, 300)]
        at = rng.randrange(len(out))
        out[at:at + (len(piece) if rng.random() < 0.5 else 0)] = piece
    elif choice == 3:
        # Rewrite a frame's sizes and re-seal its header checksum: a *hostile* header.
        at = rng.choice(offsets)
        stored, raw = struct.unpack_from("<II", out, at + 8)
        stored = rng.choice([stored, 0, 1, stored + 1, 0xFFFFFFFF, rng.randrange(1 << 32)])
        raw = rng.choice([raw, 0, stored, raw * 1000, 0xFFFFFFFF, rng.randrange(1 << 26)])
        struct.pack_into("<II", out, at + 8, stored, raw)
        struct.pack_into("<I", out, at + 20, zlib.crc32(bytes(out[at:at + 20])))
    else:
        # Duplicate or drop a whole frame: checksums all valid, structure wrong.
        i = rng.randrange(len(offsets))
        end = offsets[i + 1] if i + 1 < len(offsets) else len(out)
        frame = bytes(out[offsets[i]:end])
        if rng.random() < 0.5:
            out[end:end] = frame
        else:
            del out[offsets[i]:end]
    return bytes(out)


def _exercise(path: Path) -> None:
    """Everything a client might do with a file; only RecordingError may escape."""
    report = verify_recording(path)  # verify reports, never raises, on damaged content
    assert report.ok or report.problems
    try:
        with RecordingReader(path) as reader:
            list(reader.events())
            if reader.event_count:
                reader.event(reader.event_count - 1)
                reader.seq_at_tick(reader.last_tick or 0)
            list(reader.events(kinds=["b"], nodes=[0], from_tick=3, to_tick=20))
            for info in reader.checkpoints:
                checkpoint = reader.load_checkpoint(info.index)
                for region in checkpoint.regions:
                    checkpoint.pages(region)
    except RecordingError as exc:
        assert str(exc).startswith("offset ") or "page id" in str(exc), exc


def _run_fuzz(tmp_path: Path, count: int, seed: int) -> dict[str, int]:
    """Mutate the seed files `count` times; return how the reader took them."""
    seeds = _seed_files(tmp_path)
    offsets = []
    for i, data in enumerate(seeds):
        (tmp_path / f"o{i}.ccr").write_bytes(data)
        offsets.append(frame_offsets(tmp_path / f"o{i}.ccr"))
    rng = random.Random(seed)
    outcomes = {"intact": 0, "damaged": 0}
    path = tmp_path / "mutant.ccr"
    for _ in range(count):
        which = rng.randrange(len(seeds))
        mutant = _mutate(rng, seeds[which], offsets[which], seeds[1 - which])
        path.write_bytes(mutant)
        _exercise(path)
        outcomes["intact" if verify_recording(path).ok else "damaged"] += 1
    return outcomes


def test_corruption_fuzz_600_files(tmp_path: Path) -> None:
    """600 mutated files: no exception other than RecordingError; most are found damaged."""
    outcomes = _run_fuzz(tmp_path, 600, seed=1)
    assert outcomes["damaged"] > 500, outcomes


@pytest.mark.slow
def test_corruption_fuzz_sweep(tmp_path: Path) -> None:
    """A longer sweep with other seeds (pytest -m slow)."""
    for seed in range(2, 12):
        _run_fuzz(tmp_path, 1000, seed=seed)


def test_frame_header_size_is_what_the_fuzz_assumes() -> None:
    """The hostile-length mutation edits bytes 8..16 and the CRC at 20..24."""
    assert FRAME_HEADER.size == 24
