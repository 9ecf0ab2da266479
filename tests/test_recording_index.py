"""RecordingIndex: ordering rules, INDEX body round trip, and hostile index bodies."""

from __future__ import annotations

from collections.abc import Callable

import msgpack
import pytest

from chaosreplay.errors import RecordingError
from chaosreplay.recording.batch import BatchSummary
from chaosreplay.recording.index import RecordingIndex
from chaosreplay.recording.model import CheckpointInfo


def _index() -> RecordingIndex:
    """An index with two events frames, a pages frame and two checkpoints."""
    index = RecordingIndex(raw_bytes=1234)
    index.add_batch(100, BatchSummary(0, 3, 0, 5, {"a": 2, "b": 1}, {-1: 1, 0: 2}))
    index.add_pages(200, 0, 4)
    index.add_checkpoint(CheckpointInfo(0, 5, 3, b"d0", None, 300, 10, 4, 4, 999))
    index.add_batch(400, BatchSummary(3, 2, 5, 9, {"c": 2}, {1: 2}))
    index.add_checkpoint(CheckpointInfo(1, 9, 5, b"d1", 0, 500, 0, 1, 0, 50))
    return index


def test_index_body_round_trip() -> None:
    """decode(encode(index)) gives an equal index and the summary."""
    index = _index()
    decoded, summary = RecordingIndex.decode(index.encode({"ok": True}), "offset 0")
    assert decoded == index and summary == {"ok": True}
    assert decoded.counts_by_kind() == {"a": 2, "b": 1, "c": 2}
    assert decoded.counts_by_node() == {-1: 1, 0: 2, 1: 2}
    assert decoded.frame_of_seq(4) == 1 and decoded.first_frame_reaching_tick(6) == 1
    assert decoded.difference(index) is None


def test_ordering_rules() -> None:
    """Sequence gaps, ticks going back, page id gaps and misnumbered checkpoints raise."""
    index = _index()
    with pytest.raises(ValueError, match="expected 5"):
        index.add_batch(600, BatchSummary(6, 1, 9, 9, {"a": 1}, {0: 1}))
    with pytest.raises(ValueError, match="before tick 9"):
        index.add_batch(600, BatchSummary(5, 1, 8, 8, {"a": 1}, {0: 1}))
    with pytest.raises(ValueError, match="expected from 4"):
        index.add_pages(600, 7, 1)
    with pytest.raises(ValueError, match="checkpoint 5 where 2"):
        index.add_checkpoint(CheckpointInfo(5, 9, 5, b"", None, 600, 0, 0, 0, 0))
    assert index.event_count == 5 and len(index.checkpoints) == 2


def test_lenient_add_records_then_raises() -> None:
    """strict=False keeps the frame (so a gap is reported once) and still raises."""
    index = _index()
    with pytest.raises(ValueError):
        index.add_batch(600, BatchSummary(9, 2, 9, 9, {"a": 2}, {0: 2}), strict=False)
    index.add_batch(700, BatchSummary(11, 1, 9, 9, {"a": 1}, {0: 1}))
    assert index.event_count == 12


@pytest.mark.parametrize("mutate", [
    lambda b: b.update(events=99),
    lambda b: b["frames"].update(count=[3]),
    lambda b: b["frames"].update(kind_counts=[7, 2, 1, 1]),
    lambda b: b["frames"].update(kind_counts=[-1, 2, 1, 1]),
    lambda b: b["checkpoints"].update(base=[1, 0]),
    lambda b: b["page_frames"].update(first_id=[3]),
    lambda b: b.update(kinds="abc"),
    lambda b: b.update(summary=[1]),
])
def test_hostile_index_bodies_raise_recording_error(mutate: Callable[[dict], None]) -> None:
    """Inconsistent INDEX bodies are refused with the offset, never a stray exception."""
    body = msgpack.unpackb(_index().encode(None))
    mutate(body)
    with pytest.raises(RecordingError, match="offset 77: "):
        RecordingIndex.decode(msgpack.packb(body), "offset 77")
