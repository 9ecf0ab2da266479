"""A recording of a million events: the timeline opens on a window, never the whole run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_helpers import debugger, drive, press, status_text, timeline_text

from chaosreplay.debugger.session import DebugSession
from chaosreplay.recording import RecordingWriter
from chaosreplay.tui import make_app

EVENTS = 1_000_000


@pytest.fixture(scope="module")
def million(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,000,000 syscall events on three nodes, a fault every 100,000."""
    path = tmp_path_factory.mktemp("tui") / "million.ccr"
    syscall = {"nr": 39, "name": "getpid", "args": [], "ret": 1000}
    with RecordingWriter(path, {"seed": 1, "scenario": "synthetic"}) as writer:
        for seq in range(EVENTS):
            if seq % 100_000 == 50_000:
                writer.append(seq // 10, seq * 100_000, 1, "fault.start",
                              {"fault_id": f"pause-{seq}", "fault": {"kind": "pause"}})
            else:
                writer.append(seq // 10, seq * 100_000, seq % 3, "syscall", syscall)
    return path


class CountingSession(DebugSession):
    """A session that counts the events its window reads hand out, and full scans."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.events_read = 0
        self.scans = 0

    def events(self, first: int, count: int) -> list[Any]:
        out = super().events(first, count)
        self.events_read += len(out)
        return out

    def scan_matches(self, *args: Any, **kwargs: Any) -> Any:
        self.scans += 1
        return super().scan_matches(*args, **kwargs)


def test_the_first_screen_reads_one_window(million: Path) -> None:
    """Opening shows the first rows after reading a few hundred events; jumping to the end
    and to the middle reads one more window each; nothing scans the recording."""
    session = CountingSession(million)

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        rows = timeline_text(screen)
        assert rows[0].lstrip().startswith("#0") and "getpid" in rows[0], rows[:2]
        assert f"#0/{EVENTS - 1}" in status_text(screen)
        first_screen = session.events_read
        assert 0 < first_screen <= 1_000, first_screen
        await press(pilot, "end")
        assert screen.cursor == EVENTS - 1
        assert any(row.lstrip().startswith(f"#{EVENTS - 1}") for row in timeline_text(screen))
        await press(pilot, "g", *"#500000", "enter")
        assert screen.cursor == 500_000 and "(50.0%)" in status_text(screen)
        await press(pilot, "g", *"5s", "enter")  # tick 5000: the first fault
        assert screen.cursor == 50_000
        assert "fault.start" in str(screen.query_one("#detail").content)  # type: ignore[attr-defined]
        assert session.events_read <= 4 * 1_000, session.events_read
        assert session.scans == 0

    try:
        drive(make_app(session), script)
    finally:
        session.close()


def test_a_seek_given_at_start_shows_its_rows(million: Path) -> None:
    """--seek lands before the first layout; the timeline still scrolls to the cursor."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        assert screen.cursor == 765_432
        assert any(row.lstrip().startswith("#765432 ") for row in timeline_text(screen))
        assert "tick 76543 " in status_text(screen)

    drive(make_app(million, seek="#765432"), script)
