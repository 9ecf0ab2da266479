"""SVG snapshots of the debugger on the synthetic recording, at 120x40 and at the two sizes
issue 16 names (80x24: the status line and the keys stay; 160x45).

A snapshot that differs fails with the screen as text and the new SVG's path. After a
deliberate change to the look, refresh them with
`CHAOSREPLAY_UPDATE_SNAPSHOTS=1 python -m pytest tests/test_tui_snapshots.py` and review
the SVGs (a browser opens them) before committing.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_helpers import drive, plain, press, settle, story_rows, write_rows

from chaosreplay.tui import make_app

SNAPSHOTS = Path(__file__).parent / "snapshots"
UPDATE = os.environ.get("CHAOSREPLAY_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic recording (its directory never shows on screen)."""
    return write_rows(tmp_path_factory.mktemp("tui") / "story.ccr", story_rows())


def _check(story: Path, name: str, tmp_path: Path,
           script: Callable[[Pilot[Any]], Awaitable[None]],
           size: tuple[int, int] = (120, 40)) -> None:
    shot: dict[str, str] = {}

    async def run(pilot: Pilot[Any]) -> None:
        await script(pilot)
        await settle(pilot)
        shot["svg"] = pilot.app.export_screenshot(title="chaosreplay debug")
        shot["text"] = plain(pilot.app.screen._compositor.render_update(
            full=True, screen_stack=pilot.app._background_screens))

    drive(make_app(story), run, size)
    expected = SNAPSHOTS / f"{name}.svg"
    if UPDATE:
        expected.write_text(shot["svg"], encoding="utf-8")
        return
    actual = tmp_path / f"{name}.svg"
    actual.write_text(shot["svg"], encoding="utf-8")
    assert expected.exists(), f"no snapshot {expected}; make it with CHAOSREPLAY_UPDATE_SNAPSHOTS=1"
    assert expected.read_text(encoding="utf-8") == shot["svg"], (
        f"{name} differs from {expected}; the new one is {actual}. The screen now:\n"
        + shot["text"])


def test_snapshot_timeline_with_filter_and_bookmark(story: Path, tmp_path: Path) -> None:
    """The main screen: a filter with its match count, a bookmark, node 1's pane."""
    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "j", "j", "b", "g", *"#40", "enter")
        pilot.app.screen.set_filter("fault status")  # type: ignore[attr-defined]
        await settle(pilot)  # the match index is complete before n
        await press(pilot, "n", "2")

    _check(story, "main", tmp_path, script)


def test_snapshot_matches_only(story: Path, tmp_path: Path) -> None:
    """Only the events that pass the filter, the cursor on the failed assertion."""
    async def script(pilot: Pilot[Any]) -> None:
        pilot.app.screen.set_filter("failed bug fault")  # type: ignore[attr-defined]
        await settle(pilot)
        await press(pilot, "m", "n", "n", "n")

    _check(story, "matches_only", tmp_path, script)


def test_snapshot_help(story: Path, tmp_path: Path) -> None:
    """The help screen over the debugger."""
    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "question_mark")

    _check(story, "help", tmp_path, script)


def test_snapshot_filter_picker(story: Path, tmp_path: Path) -> None:
    """The filter picker opened on a typed filter: its words ticked and filled in."""
    async def script(pilot: Pilot[Any]) -> None:
        pilot.app.screen.set_filter('dropped output node:2 "term 4"')  # type: ignore[attr-defined]
        await settle(pilot)
        await press(pilot, "f")

    _check(story, "filter_picker", tmp_path, script)


@pytest.mark.parametrize("size", [(80, 24), (160, 45)], ids=["80x24", "160x45"])
def test_snapshot_main_at_small_and_large_sizes(story: Path, tmp_path: Path,
                                                size: tuple[int, int]) -> None:
    """The main screen with a filter, at 80x24 (compact: the detail shrinks, the status
    line and the key hints stay on screen) and at 160x45."""
    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "j", "j", "b", "g", *"#40", "enter")
        pilot.app.screen.set_filter("fault status")  # type: ignore[attr-defined]
        await settle(pilot)
        await press(pilot, "n", "2")
        screen = pilot.app.screen
        width, height = size
        status = screen.query_one("#status")
        assert status.region.height == 1 and status.region.bottom == height - 1, status.region
        assert "tick" in plain(status.render(), width)  # type: ignore[arg-type]
        assert screen.query_one("Footer").region.y == height - 1
        assert screen.has_class("-compact") == (height < 32)

    _check(story, f"main_{size[0]}x{size[1]}", tmp_path, script, size)
