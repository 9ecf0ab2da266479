"""RecordingWriter: round trips, determinism, batching, validation and crash behaviour."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from recording_helpers import checkpoint_plans, event_streams, page, write_recording

from chaosreplay.recording import Event, RecordingReader, RecordingWriter
from chaosreplay.recording.format import PAGE_SIZE

_TMP = settings(suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None,
                max_examples=60)


@_TMP
@given(data=st.data(), rows=event_streams(), flush=st.integers(1, 9))
def test_round_trip_of_generated_streams(tmp_path: Path, data: st.DataObject,
                                         rows: list, flush: int) -> None:
    """Every appended event and checkpoint reads back exactly, pages resolved through bases."""
    plans = data.draw(checkpoint_plans(len(rows)))
    path = tmp_path / "rt.ccr"
    write_recording(path, rows, plans, flush_every_events=flush, flush_every_ticks=3)
    with RecordingReader(path) as reader:
        assert reader.complete and reader.damage == []
        expected = [Event(seq, *row) for seq, row in enumerate(rows)]
        assert list(reader.events()) == expected
        assert reader.event_count == len(rows)
        assert [c.seq for c in reader.checkpoints] == [p.after for p in plans]
        for i, plan in enumerate(plans):
            loaded = reader.load_checkpoint(i)
            assert loaded.blobs == plan.blobs
            assert {r: loaded.pages(r) for r in loaded.regions if loaded.pages(r)} == {
                r: m for r, m in plan.resolved.items() if m}
        assert reader.summary == {"verdict": "pass"}


def test_identical_appends_give_identical_bytes(tmp_path: Path) -> None:
    """Two writers fed the same calls produce byte-identical files (no clock, no env)."""
    rows = [(t // 3, t * 1000, t % 3, "syscall", {"nr": t, "data": b"x" * (t % 7)})
            for t in range(5000)]
    pages = {"node0.mem": {i: page(i % 5) for i in range(30)}}
    outputs = []
    for name in ("a.ccr", "b.ccr"):
        path = tmp_path / name
        with RecordingWriter(path, {"seed": 9, "bin": b"\x7fELF" * 1000}) as writer:
            for row in rows[:2500]:
                writer.append(*row)
            writer.add_checkpoint(833, 2500, b"d" * 32, {"regs": b"r" * 100000}, pages)
            for row in rows[2500:]:
                writer.append(*row)
            writer.add_checkpoint(1666, 5000, b"e" * 32, {}, {"node0.mem": {3: b""}}, base=0)
        outputs.append(path.read_bytes())
    assert outputs[0] == outputs[1]
    os.environ["CHAOSREPLAY_UNRELATED"] = "1"  # the environment must not matter either
    try:
        write_recording(tmp_path / "c.ccr", rows[:10])
        write_recording(tmp_path / "d.ccr", rows[:10])
    finally:
        del os.environ["CHAOSREPLAY_UNRELATED"]
    assert (tmp_path / "c.ccr").read_bytes() == (tmp_path / "d.ccr").read_bytes()


def test_batches_follow_the_flush_intervals(tmp_path: Path) -> None:
    """A frame closes after flush_every_events events or when flush_every_ticks elapse."""
    path = tmp_path / "f.ccr"
    with RecordingWriter(path, {}, flush_every_events=10, flush_every_ticks=5) as writer:
        for i in range(25):  # all at tick 0: three frames of 10, 10, 5
            writer.append(0, i, 0, "a", {})
        writer.append(5, 99, 0, "a", {})  # 5 ticks after the batch start: new frame
    with RecordingReader(path) as reader:
        assert reader.frame_count == 4, reader.frame_count


def test_pages_are_deduplicated_by_content(tmp_path: Path) -> None:
    """A page already stored (in any checkpoint) is not stored again."""
    path = tmp_path / "p.ccr"
    with RecordingWriter(path, {}) as writer:
        first = writer.add_checkpoint(0, 0, b"a", {}, {"m": {0: page(1), 1: page(1), 2: page(2)}})
        second = writer.add_checkpoint(1, 0, b"b", {}, {"m": {5: page(2), 6: page(3)}})
    with RecordingReader(path) as reader:
        infos = reader.checkpoints
        assert (infos[first].new_pages, infos[second].new_pages) == (2, 1)
        assert reader.load_checkpoint(second).pages("m") == {5: page(2), 6: page(3)}


def test_large_blobs_are_chunked_and_small_manifest_binaries_kept(tmp_path: Path) -> None:
    """A 2.5 MiB blob goes out in 1 MiB chunks and comes back whole; a big manifest too."""
    blob = bytes(range(256)) * (10 * 1024)  # 2.5 MiB
    binary = os.urandom(3 << 20)
    path = tmp_path / "b.ccr"
    with RecordingWriter(path, {"guest": binary}) as writer:
        writer.add_checkpoint(0, 0, b"d", {"big": blob, "small": b"s"}, {})
    with RecordingReader(path) as reader:
        assert reader.manifest == {"guest": binary}
        assert reader.load_checkpoint(0).blobs == {"big": blob, "small": b"s"}


def test_a_large_blob_that_recurs_is_stored_once(tmp_path: Path) -> None:
    """The same 2.5 MiB under two names and in a later checkpoint: written once, the later
    references name the same BLOB frames, and each reads back whole; a different blob of
    the same size is written anew."""
    blob = os.urandom(5 << 19)
    other = os.urandom(5 << 19)
    path = tmp_path / "d.ccr"
    with RecordingWriter(path, {}) as writer:
        writer.add_checkpoint(0, 0, b"d", {"a": blob, "b": blob}, {})
        writer.add_checkpoint(1, 0, b"d", {"a": blob, "c": other}, {})
    with RecordingReader(path) as reader:
        first, second = reader.checkpoints
        assert reader.load_checkpoint(0).blobs == {"a": blob, "b": blob}
        assert reader.load_checkpoint(1).blobs == {"a": blob, "c": other}
        assert reader.damage == []
    assert 2 * len(blob) < path.stat().st_size < 2 * len(blob) + (64 << 10)  # blob, other
    assert first.blob_bytes == second.blob_bytes == 2 * len(blob)


@pytest.mark.parametrize(("row", "message"), [
    ((0, 0, 0, 5, {}), "kind must be str"),
    ((0, 0, "n", "k", {}), "node must be int"),
    ((0, 0, 0, "k", []), "fields must be dict"),
    ((0, 0, 0, "k", {"x": object()}), "not msgpack-serialisable"),
    ((0, -1, 0, "k", {}), "vtime_ns >= 0"),
])
def test_bad_events_are_refused_and_leave_a_readable_unfinished_file(
        tmp_path: Path, row: tuple, message: str) -> None:
    """An unencodable event raises at flush naming its seq; earlier frames stay readable."""
    path = tmp_path / "bad.ccr"
    writer = RecordingWriter(path, {}, flush_every_events=2)
    writer.append(0, 0, 0, "good", {})
    writer.append(0, 0, 0, "good", {})
    writer.append(*row)
    with pytest.raises(ValueError, match=message) as info:
        writer.flush()
    assert "seq 2" in str(info.value) or "from seq 2" in str(info.value)
    with RecordingReader(path) as reader:
        assert not reader.complete and reader.event_count == 2


def test_ticks_may_not_go_back_and_checkpoints_are_checked(tmp_path: Path) -> None:
    """Appends and checkpoints that break ordering rules raise ValueError, changing nothing."""
    with RecordingWriter(tmp_path / "o.ccr", {}) as writer:
        writer.append(5, 0, 0, "a", {})
        with pytest.raises(ValueError, match="before 5"):
            writer.append(4, 0, 0, "a", {})
        with pytest.raises(ValueError, match="seq"):
            writer.add_checkpoint(5, 2, b"d", {}, {})
        with pytest.raises(ValueError, match="base"):
            writer.add_checkpoint(5, 1, b"d", {}, {}, base=0)
        with pytest.raises(ValueError, match="4096"):
            writer.add_checkpoint(5, 1, b"d", {}, {"m": {0: b"short"}})
        assert writer.add_checkpoint(5, 1, b"d", {}, {"m": {0: b"\0" * PAGE_SIZE}}) == 0
        with pytest.raises(ValueError, match="goes back"):
            writer.add_checkpoint(4, 1, b"d", {}, {})
    with RecordingReader(tmp_path / "o.ccr") as reader:
        assert reader.event_count == 1 and len(reader.checkpoints) == 1


def test_exception_inside_with_block_leaves_file_unfinished(tmp_path: Path) -> None:
    """A failed run keeps its events but never gets the footer that marks completion."""
    path = tmp_path / "x.ccr"
    with pytest.raises(RuntimeError), RecordingWriter(path, {}) as writer:
        writer.append(0, 0, 0, "a", {"i": 1})
        raise RuntimeError("simulation crashed")
    with RecordingReader(path) as reader:
        assert not reader.complete
        assert [e.fields for e in reader.events()] == [{"i": 1}]


_CHILD = textwrap.dedent("""
    import sys
    from chaosreplay.recording import RecordingWriter
    w = RecordingWriter(sys.argv[1], {"child": True}, flush_every_events=100)
    i = 0
    while True:
        w.append(i // 10, i, i % 2, "syscall", {"i": i, "pad": b"p" * (i % 50)})
        if i % 100 == 99:
            print(i + 1, flush=True)  # events known to be flushed
        i += 1
""")


def test_kill_minus_9_leaves_a_readable_prefix(tmp_path: Path) -> None:
    """A writer killed with SIGKILL loses at most its last unflushed batch."""
    path = tmp_path / "killed.ccr"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(path)], env=env,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    flushed = 0
    deadline = time.monotonic() + 30
    while flushed < 20_000 and time.monotonic() < deadline:
        flushed = int(child.stdout.readline())
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    with RecordingReader(path) as reader:
        assert not reader.complete
        assert reader.event_count >= flushed, (reader.event_count, flushed)
        events = list(reader.events())
    assert [e.fields["i"] for e in events] == list(range(len(events)))


def test_unwritable_manifest_is_refused_before_creating_the_file(tmp_path: Path) -> None:
    """A manifest msgpack cannot encode, or one over the 64 MiB limit, leaves no file."""
    for manifest, message in (({"x": object()}, "not msgpack-serialisable"),
                              ({"guest": b"\0" * (65 << 20)}, "exceeds")):
        with pytest.raises(ValueError, match=message):
            RecordingWriter(tmp_path / "m.ccr", manifest)
        assert not (tmp_path / "m.ccr").exists()
