"""RecordingReader: seeking, filters, checkpoints, and crash/truncation tolerance."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_helpers import event_streams, flip, frame_offsets, page, write_recording

from chaosreplay.errors import RecordingError
from chaosreplay.recording import Event, RecordingReader, RecordingWriter
from chaosreplay.recording.format import FRAME_HEADER, PREAMBLE, TRAILER, pack_preamble

_TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
                max_examples=40)


def _rows(n: int, seed: int = 1) -> list[tuple]:
    """n events over three nodes with irregular tick steps."""
    rng = random.Random(seed)
    rows, tick = [], 0
    for i in range(n):
        tick += rng.choice((0, 0, 0, 1, 2, 7))
        rows.append((tick, i * 100, rng.randrange(-1, 3), rng.choice(("a", "b", "c")), {"i": i}))
    return rows


def _frame_offsets(path: Path) -> list[int]:
    """Offsets of every frame of a complete file, then the trailer's."""
    return [*frame_offsets(path), path.stat().st_size - TRAILER.size]


@_TMP
@given(rows=event_streams(max_events=80), probes=st.lists(st.integers(-2, 300), max_size=8),
       flush=st.integers(1, 7))
def test_seeks_equal_a_linear_scan(tmp_path: Path, rows: list, probes: list[int],
                                   flush: int) -> None:
    """seq_at_tick, event(seq) and events(from/to/filters) agree with scanning a list."""
    path = tmp_path / "s.ccr"
    write_recording(path, rows, flush_every_events=flush)
    events = [Event(seq, *row) for seq, row in enumerate(rows)]
    with RecordingReader(path) as reader:
        for tick in probes:
            linear = next((e.seq for e in events if e.tick >= tick), len(events))
            assert reader.seq_at_tick(tick) == linear
            assert list(reader.events(from_tick=tick)) == events[linear:]
            assert list(reader.events(to_tick=tick)) == [e for e in events if e.tick <= tick]
            assert list(reader.events(from_seq=max(tick, 0))) == events[max(tick, 0):]
        for event in events:
            assert reader.event(event.seq) == event
        for kind_set, node_set in ((["syscall"], None), (None, [0, -1]), (["bug"], [2])):
            expected = [e for e in events if (kind_set is None or e.kind in kind_set)
                        and (node_set is None or e.node in node_set)]
            assert list(reader.events(kinds=kind_set, nodes=node_set)) == expected
            for before in probes:
                assert list(reader.events_before(before, kind_set, node_set)) == [
                    e for e in reversed(expected) if e.seq < before]
        assert reader.first_tick == (events[0].tick if events else None)
        assert reader.last_tick == (events[-1].tick if events else None)


def test_counts_by_kind_and_node(tmp_path: Path) -> None:
    """Counts come from the index and match the events."""
    rows = _rows(3000)
    write_recording(tmp_path / "c.ccr", rows, flush_every_events=128)
    with RecordingReader(tmp_path / "c.ccr") as reader:
        kinds: dict[str, int] = {}
        nodes: dict[int, int] = {}
        for _, _, node, kind, _ in rows:
            kinds[kind] = kinds.get(kind, 0) + 1
            nodes[node] = nodes.get(node, 0) + 1
        assert reader.counts_by_kind == kinds
        assert reader.counts_by_node == dict(sorted(nodes.items()))


def test_checkpoint_before_and_delta_resolution(tmp_path: Path) -> None:
    """checkpoint_before finds the latest at or before; deltas resolve through a chain."""
    path = tmp_path / "k.ccr"
    with RecordingWriter(path, {}) as writer:
        for i in range(100):
            writer.append(i, i, 0, "a", {})
        writer.add_checkpoint(10, 10, b"0", {"r": b"0"}, {"m": {1: page(1), 2: page(2)}})
        writer.add_checkpoint(20, 20, b"1", {"r": b"1"}, {"m": {2: b"", 3: page(3)}}, base=0)
        writer.add_checkpoint(30, 30, b"2", {"r": b"2"}, {"n": {0: page(9)}}, base=1)
        writer.add_checkpoint(40, 40, b"3", {}, {"m": {7: page(7)}})
    with RecordingReader(path) as reader:
        assert reader.checkpoint_before(5) is None
        assert reader.checkpoint_before(25).index == 1
        assert reader.checkpoint_before(seq=40).index == 3
        assert reader.checkpoint_before(35, seq=15).index == 0
        third = reader.load_checkpoint(2)
        assert third.regions == ["m", "n"]
        assert third.pages("m") == {1: page(1), 3: page(3)}
        assert third.pages("n") == {0: page(9)}
        assert third.blobs == {"r": b"2"}
        assert reader.load_checkpoint(3).pages("m") == {7: page(7)}
        assert reader.load_checkpoint(3).pages("n") == {}


def test_truncation_at_every_frame_boundary(tmp_path: Path) -> None:
    """Cut at each frame boundary: every whole frame before the cut is read, nothing else."""
    path = tmp_path / "t.ccr"
    rows = _rows(400)
    with RecordingWriter(path, {"m": 1}, flush_every_events=37) as writer:
        for seq, row in enumerate(rows):
            writer.append(*row)
            if seq % 150 == 149:
                writer.add_checkpoint(row[0], seq + 1, b"d", {"b": b"x" * 70000},
                                      {"m": {seq: page(seq)}})
    data = path.read_bytes()
    offsets = _frame_offsets(path)
    for cut in offsets[1:-1]:
        (tmp_path / "cut.ccr").write_bytes(data[:cut])
        with RecordingReader(tmp_path / "cut.ccr") as reader:
            assert not reader.complete and reader.ignored_tail_bytes == 0, reader.damage
            seen = list(reader.events())
            assert seen == [Event(i, *rows[i]) for i in range(len(seen))]
            for info in reader.checkpoints:
                assert reader.load_checkpoint(info.index).blobs == {"b": b"x" * 70000}
    (tmp_path / "cut.ccr").write_bytes(data[:offsets[-1]])  # only the trailer is missing
    with RecordingReader(tmp_path / "cut.ccr") as reader:
        assert not reader.complete
        assert reader.event_count == len(rows) and len(reader.checkpoints) == 2
        assert reader.ignored_tail_bytes == offsets[-1] - offsets[-2]  # the orphan INDEX
        assert "no valid trailer" in reader.damage[0]


def test_truncation_at_random_offsets(tmp_path: Path) -> None:
    """A cut inside a frame drops that frame only, and says how many bytes it ignored."""
    path = tmp_path / "r.ccr"
    rows = _rows(2000)
    write_recording(path, rows, flush_every_events=50)
    data = path.read_bytes()
    offsets = _frame_offsets(path)
    rng = random.Random(5)
    for cut in sorted(rng.sample(range(offsets[1] + 1, len(data) - 1), 60)):
        (tmp_path / "cut.ccr").write_bytes(data[:cut])
        with RecordingReader(tmp_path / "cut.ccr") as reader:
            last_whole = max(o for o in offsets if o <= cut)
            assert reader.ignored_tail_bytes == cut - last_whole
            assert bool(reader.damage) == (cut != last_whole)
            seen = list(reader.events())
            assert seen == [Event(i, *rows[i]) for i in range(len(seen))]
            assert len(rows) - len(seen) <= 50 or cut < offsets[-1]


def test_damage_before_the_manifest_end_is_fatal_with_offset(tmp_path: Path) -> None:
    """Without a readable manifest there is nothing to read: one error naming the offset."""
    path = tmp_path / "m.ccr"
    write_recording(path, _rows(10))
    data = bytearray(path.read_bytes())
    for cut in (0, 5, PREAMBLE.size, PREAMBLE.size + FRAME_HEADER.size + 3):
        (tmp_path / "cut.ccr").write_bytes(bytes(data[:cut]))
        with pytest.raises(RecordingError, match=r"offset \d+"):
            RecordingReader(tmp_path / "cut.ccr")
    data[PREAMBLE.size + FRAME_HEADER.size + 2] ^= 0x10
    (tmp_path / "flip.ccr").write_bytes(bytes(data))
    with pytest.raises(RecordingError, match=f"offset {PREAMBLE.size}: .*checksum"):
        RecordingReader(tmp_path / "flip.ccr")


def test_damaged_middle_frame_keeps_the_prefix(tmp_path: Path) -> None:
    """A flipped bit in frame k: frames before k read; reaching k raises naming its offset."""
    path = tmp_path / "d.ccr"
    rows = _rows(500)
    write_recording(path, rows, flush_every_events=100)
    victim = frame_offsets(path)[3]  # manifest, then events frames 0, 1, 2 at offsets[1..3]
    flip(path, victim + FRAME_HEADER.size + 5, 0x01)
    with RecordingReader(path) as reader:
        assert reader.complete  # the footer is intact; damage surfaces when read
        got = []
        with pytest.raises(RecordingError, match=f"offset {victim}: .*payload checksum"):
            for event in reader.events():
                got.append(event)
        assert got == [Event(i, *rows[i]) for i in range(200)]
        assert reader.event(450) == Event(450, *rows[450])  # frames after it still seek


def test_damaged_footer_falls_back_to_scanning(tmp_path: Path) -> None:
    """A damaged INDEX frame is reported and the index is rebuilt from the frames."""
    path = tmp_path / "i.ccr"
    rows = _rows(300)
    write_recording(path, rows, flush_every_events=64)
    flip(path, frame_offsets(path)[-1] + FRAME_HEADER.size + 1, 0x40)  # in the INDEX payload
    with RecordingReader(path) as reader:
        assert not reader.complete
        assert any("rebuilt by scanning" in line for line in reader.damage), reader.damage
        assert list(reader.events()) == [Event(i, *row) for i, row in enumerate(rows)]


def test_versions_older_minor_accepted_newer_major_refused(tmp_path: Path) -> None:
    """Same major with any minor opens; a newer major is refused in one clear line."""
    path = tmp_path / "v.ccr"
    write_recording(path, _rows(5))
    data = path.read_bytes()
    (tmp_path / "minor.ccr").write_bytes(pack_preamble(1, 7) + data[PREAMBLE.size:])
    with RecordingReader(tmp_path / "minor.ccr") as reader:
        assert reader.version == (1, 7) and reader.event_count == 5
    (tmp_path / "major.ccr").write_bytes(pack_preamble(2, 0) + data[PREAMBLE.size:])
    with pytest.raises(RecordingError, match=r"offset 8: format version 2\.0 is a newer major"):
        RecordingReader(tmp_path / "major.ccr")
    (tmp_path / "text.ccr").write_bytes(b'{"seq": 0}\n' * 10)
    with pytest.raises(RecordingError, match=r"not a \.ccr recording"):
        RecordingReader(tmp_path / "text.ccr")
