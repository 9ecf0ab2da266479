"""Damaged and partial recordings in the debugger: problems are shown, never thrown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from recording_helpers import flip, frame_offsets
from textual.pilot import Pilot
from tui_helpers import (
    debugger,
    drive,
    pane_text,
    press,
    status_text,
    story_rows,
    timeline_text,
    write_rows,
)

from chaosreplay.tui import make_app


@pytest.fixture(scope="module")
def frames(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """The synthetic run in frames of 50 events, and the frames' offsets."""
    path = write_rows(tmp_path_factory.mktemp("tui") / "story.ccr", story_rows(),
                      flush_every_events=50)
    return path, frame_offsets(path)


def test_a_corrupt_frame_shows_its_rows_as_unreadable(frames: tuple[Path, list[int]],
                                                      tmp_path: Path) -> None:
    """Rows of a frame whose checksum fails say why; the rest of the window still reads."""
    path, offsets = frames
    broken = tmp_path / "broken.ccr"
    broken.write_bytes(path.read_bytes())
    flip(broken, offsets[3] + 30, 0xFF)  # events 100..149

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *"#120", "enter")
        assert screen.cursor == 120
        detail = str(screen.query_one("#detail").content)  # type: ignore[attr-defined]
        assert "#120 unreadable" in detail and "checksum" in detail, detail
        assert "cannot read events" in status_text(screen) and "checksum" in status_text(screen)
        rows = timeline_text(screen)
        assert any("#120" in row and "unreadable" in row for row in rows), rows
        await press(pilot, "g", *"#99", "enter")
        assert any(row.lstrip().startswith("#99") and "unreadable" not in row
                   for row in timeline_text(screen)), timeline_text(screen)

    drive(make_app(broken), script)


def test_a_truncated_recording_opens_and_says_so(frames: tuple[Path, list[int]],
                                                 tmp_path: Path) -> None:
    """A cut file opens read-only with what survives; the status line keeps a warning."""
    path, offsets = frames
    cut = tmp_path / "cut.ccr"
    cut.write_bytes(path.read_bytes()[:offsets[4] + 10])

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        assert "damaged recording" in status_text(screen)
        assert "truncated" in status_text(screen)
        await press(pilot, "end", "k", "g", *"#3", "enter")
        assert screen.cursor == 3
        assert status_text(screen).startswith("⚠ damaged recording")
        assert screen.session.event_count == 150

    drive(make_app(cut), script)


def test_without_a_run_manifest_the_events_still_tell_a_lot(frames: tuple[Path, list[int]]
                                                            ) -> None:
    """No states, but each node's pane shows its status, last syscall and output."""
    path, _ = frames

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *"150", "enter", "2")
        text = pane_text(screen, "node-1")
        assert "states unavailable: not a simulation recording (no run manifest)" in text
        assert str(path.parent) not in text, "messages name the file, not its directory"
        assert "node 1 · killed" in text
        assert "last syscall: #76 t148 write(fd 1, 4096, 12) = 12" in text
        assert text.rstrip().endswith("│ node 1: term 2"), text
        for pane in ("node-2", "network", "faults", "oracle"):
            await press(pilot, "p")
            assert "states unavailable" in pane_text(screen, pane), pane

    drive(make_app(path), script)
