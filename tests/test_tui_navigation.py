"""The debugger's keys on a synthetic recording (no KVM): stepping, seeking, matches,
filters, search, bookmarks, help and the command palette."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot
from tui_helpers import (
    debugger,
    drive,
    press,
    settle,
    status_text,
    story_rows,
    timeline_text,
    write_rows,
)

from chaosreplay.debugger.filters import EventFilter
from chaosreplay.debugger.session import DebugSession
from chaosreplay.tui import make_app
from chaosreplay.tui.filter_screen import FilterScreen
from chaosreplay.tui.help_screen import HelpScreen
from chaosreplay.tui.prompt_screen import PromptScreen


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The synthetic three-node recording."""
    return write_rows(tmp_path_factory.mktemp("tui") / "story.ccr", story_rows())


def _seqs(path: Path, text: str) -> list[int]:
    with DebugSession(path) as session:
        return [seq for chunk in session.scan_matches(EventFilter.parse(text)) for seq in chunk]


def test_opens_at_the_first_event_and_steps_both_ways(story: Path) -> None:
    """j/→/↓ step forward, k/←/↑ back; the cursor row, the detail and the status follow."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        assert screen.cursor == 0
        assert timeline_text(screen)[0].lstrip().startswith("#0"), timeline_text(screen)[:2]
        await press(pilot, "j", "right", "down")
        assert screen.cursor == 3
        await press(pilot, "k")
        assert screen.cursor == 2
        await press(pilot, "left", "up", "up")
        assert screen.cursor == 0, "stepping back stops at the first event"
        await press(pilot, "end")
        last = screen.session.event_count - 1
        assert screen.cursor == last
        assert f"#{last}/{last}" in status_text(screen)
        assert "run.end" in timeline_text(screen)[-1] or any(
            "run.end" in row for row in timeline_text(screen)), timeline_text(screen)
        await press(pilot, "j")
        assert screen.cursor == last, "stepping forward stops at the last event"
        await press(pilot, "home")
        assert screen.cursor == 0

    drive(make_app(story), script)


def test_seek_by_event_tick_and_time(story: Path) -> None:
    """g takes #N (an event), N (a tick) or a time; a bad target is refused in the modal."""
    with DebugSession(story) as session:
        tick_100 = session.reader.seq_at_tick(100)
        tick_200 = session.reader.seq_at_tick(200)

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g")
        assert isinstance(pilot.app.screen, PromptScreen)
        await pilot.press(*"#42", "enter")
        await settle(pilot)
        assert screen.cursor == 42
        await press(pilot, "g", *"100", "enter")
        assert screen.cursor == tick_100
        assert "tick 100" in status_text(screen)
        await press(pilot, "g", *"0.2s", "enter")
        assert screen.cursor == tick_200
        await press(pilot, "g", *"soon", "enter")
        assert isinstance(pilot.app.screen, PromptScreen), "a bad target keeps the modal open"
        await press(pilot, "escape")
        assert pilot.app.screen is screen and screen.cursor == tick_200

    drive(make_app(story), script)


def test_initial_seek_and_filter(story: Path) -> None:
    """make_app(seek=..., filter_text=...) starts where the CLI's --seek/--filter say."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        assert screen.cursor == 17
        assert screen.event_filter.text == "fault"
        assert "filter fault" in status_text(screen)

    drive(make_app(story, seek="#17", filter_text="fault"), script)


def test_next_and_previous_match(story: Path) -> None:
    """n/N go through the filter's matches in order and say when there is no more."""
    expected = _seqs(story, "failed")
    assert len(expected) == 1

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        screen.set_filter("assert")
        await settle(pilot)
        asserts = _seqs(story, "assert")
        await press(pilot, "n")
        assert screen.cursor == asserts[0]
        await press(pilot, "n", "n")
        assert screen.cursor == asserts[2]
        assert f"match 3/{len(asserts)}" in status_text(screen)
        await press(pilot, "N")
        assert screen.cursor == asserts[1]
        await press(pilot, "end", "n")
        assert "no next match" in status_text(screen)
        assert screen.cursor == screen.session.event_count - 1

    drive(make_app(story), script)


def test_match_before_the_index_is_built(story: Path) -> None:
    """n works while the match index is still empty (the engine searches directly)."""
    drops = _seqs(story, "dropped")

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        screen.set_filter("dropped")
        screen.bridge.stop_scan()  # as if the scan had not reached anything yet
        await pilot.press("n")
        await settle(pilot)
        assert screen.cursor == drops[0]

    drive(make_app(story), script)


def test_filter_picker(story: Path) -> None:
    """f opens the picker; ticking categories and a node builds the filter; Clear drops it."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "f")
        picker = pilot.app.screen
        assert isinstance(picker, FilterScreen)
        await pilot.click("#cat-fault")
        await pilot.click("#cat-status")
        picker.query_one("#filter-nodes").value = "1"  # type: ignore[attr-defined]
        await pilot.click("#filter-apply")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert screen.event_filter == EventFilter.parse("fault status node:1")
        assert screen.matches.complete
        assert screen.matches.seqs == _seqs(story, "fault status node:1")
        await press(pilot, "f")
        assert pilot.app.screen.query_one("#cat-fault").value  # type: ignore[attr-defined]
        await pilot.click("#filter-clear")
        await settle(pilot)
        assert screen.event_filter.empty

    drive(make_app(story), script)


def test_filter_picker_refuses_a_bad_filter(story: Path) -> None:
    """A filter that does not parse is explained in the picker, which stays open."""
    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "f")
        picker = pilot.app.screen
        picker.query_one("#filter-nodes").value = "x"  # type: ignore[attr-defined]
        await pilot.click("#filter-apply")
        await settle(pilot)
        assert pilot.app.screen is picker
        assert "node:x" in str(picker.query_one("#filter-error").content)  # type: ignore[attr-defined]

    drive(make_app(story), script)


def test_search_sets_the_filter_and_jumps(story: Path) -> None:
    """/ takes free text; it becomes the filter and the cursor goes to the first hit."""
    hits = _seqs(story, '"term 3"')

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "slash")
        assert isinstance(pilot.app.screen, PromptScreen)
        await pilot.press(*'"term 3"', "enter")
        await settle(pilot)
        assert screen.cursor == hits[0]
        assert 'term 3' in screen.query_one("#detail").content.plain  # type: ignore[attr-defined]
        await press(pilot, "m")
        assert screen.only_matches
        rows = [row for row in timeline_text(screen) if row]
        assert len(rows) == len(hits) and all("term 3" in row for row in rows), rows
        await press(pilot, "c")
        assert screen.event_filter.empty and not screen.only_matches

    drive(make_app(story), script)


def test_bookmarks(story: Path) -> None:
    """b toggles a bookmark; ] and [ go to the next and previous one."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "j", "j", "b", *"jjjjj", "b", "home")
        assert sorted(screen.session.bookmarks) == [2, 7]
        assert "◆ 2" in status_text(screen)
        assert timeline_text(screen)[2].startswith("◆")
        await press(pilot, "right_square_bracket")
        assert screen.cursor == 2
        await press(pilot, "right_square_bracket")
        assert screen.cursor == 7
        await press(pilot, "right_square_bracket")
        assert screen.cursor == 7 and "no next bookmark" in status_text(screen)
        await press(pilot, "left_square_bracket")
        assert screen.cursor == 2
        await press(pilot, "b")
        assert sorted(screen.session.bookmarks) == [7]

    drive(make_app(story), script)


def test_help_lists_every_key(story: Path) -> None:
    """? shows the key table; ? or escape closes it."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "question_mark")
        assert isinstance(pilot.app.screen, HelpScreen)
        await press(pilot, "question_mark")
        assert pilot.app.screen is screen

    drive(make_app(story), script)


def test_command_palette_runs_debugger_commands(story: Path) -> None:
    """The palette lists the debugger's commands by name and runs them."""
    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        titles = [c.title for c in pilot.app.get_system_commands(screen)]
        assert "Step forward one event" in titles and "Toggle a bookmark at the cursor" in titles
        await press(pilot, "ctrl+p")
        await pilot.press(*"step forward one")
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert pilot.app.screen is screen
        assert screen.cursor == 1

    drive(make_app(story), script)


def test_panes_switch_by_key(story: Path) -> None:
    """p cycles the panes; 1-9 pick a node's pane."""
    async def script(pilot: Pilot[Any]) -> None:
        from textual.widgets import TabbedContent

        screen = debugger(pilot.app)
        tabs = screen.query_one(TabbedContent)
        assert tabs.active == "node-0"
        await press(pilot, "p")
        assert tabs.active == "node-1"
        await press(pilot, "P", "P")
        assert tabs.active == "oracle"
        await press(pilot, "3")
        assert tabs.active == "node-2"

    drive(make_app(story), script)


def test_quit(story: Path) -> None:
    """q ends the app."""
    async def script(pilot: Pilot[Any]) -> None:
        await pilot.press("q")
        await pilot.pause()
        assert pilot.app._exit

    drive(make_app(story), script)


def test_ends_first_bug_node_steps_and_the_pane_following_the_cursor(story: Path) -> None:
    """G goes to the last event and g g to the first; ! to the run's first bug from
    anywhere; J / K to the next / previous event of the node whose pane is shown; moving the
    cursor shows the pane of its event's node (a sim-level event, or another tab on show,
    keeps the pane); opened with open_at_bug the debugger starts at the bug."""
    rows = story_rows()
    first_bug = next(seq for seq, row in enumerate(rows) if row[3] == "bug")

    def node_events(node: int) -> list[int]:
        return [seq for seq, row in enumerate(rows) if row[2] == node]

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "G")
        assert screen.cursor == len(rows) - 1
        await press(pilot, "g", "g")
        assert screen.cursor == 0 and not isinstance(pilot.app.screen, PromptScreen)
        await press(pilot, "exclamation_mark")
        assert screen.cursor == first_bug
        await press(pilot, "g", *"#30", "enter", "2")
        assert screen.active_pane() == "node-1"
        await press(pilot, "J")
        assert screen.cursor == min(s for s in node_events(1) if s > 30)
        after = screen.cursor
        await press(pilot, "K")
        assert screen.cursor == max(s for s in node_events(1) if s < after)
        node_2 = min(s for s in node_events(2) if s > screen.cursor)
        await press(pilot, "g", *f"#{node_2}", "enter")
        assert screen.active_pane() == "node-2"  # followed the cursor's event
        await press(pilot, "g", *f"#{first_bug}", "enter")
        assert screen.active_pane() == "node-2"  # a sim-level event keeps the pane
        await press(pilot, "p", "p", "p")
        shown = screen.active_pane()
        assert not shown.startswith("node-")
        await press(pilot, "g", *f"#{node_events(0)[3]}", "enter")
        assert screen.active_pane() == shown  # the network (or other) tab stays

    drive(make_app(story), script)

    async def opened(pilot: Pilot[Any]) -> None:
        assert debugger(pilot.app).cursor == first_bug

    drive(make_app(story, open_at_bug=True), opened)
