"""The TUI's watch list (e) and "where did it change" keys (< and >) (needs KVM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from tui_helpers import debugger, drive, pane_text, press, status_text

from chaosreplay.cli import main
from chaosreplay.debugger.session import DebugSession
from chaosreplay.tui import make_app

pytestmark = pytest.mark.kvm
NODE = 1


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two virtual seconds of the built-in Raft demo."""
    path = tmp_path_factory.mktemp("tui-watch") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "2s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


def test_watch_and_go_to_where_it_changed(demo: Path) -> None:
    """e sets the watches of the node shown (drawn in its pane with their values); > goes to
    the next event at which the first one changes and < back to the previous change, as
    the session's change search finds them, saying what changed; a bad expression is
    refused in the prompt."""
    with DebugSession(demo) as session:
        first = session.find_change(NODE, "current_term", 0, forward=True)
        assert first is not None
        second = session.find_change(NODE, "current_term", first.seq, forward=True)
        end = session.event_count - 1
        session.set_watches(NODE, ["current_term", "next_index[0]"])
        at_end = {w.expression: w.value for w in session.state(end).nodes[NODE].watches}

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, str(NODE + 1), "<")
        assert "has no watch: press e" in status_text(screen)
        await press(pilot, "e", *"log_[", "enter")
        assert "expected more" in pilot.app.screen.query_one("#prompt-error").content
        await press(pilot, *[*("backspace" for _ in "log_[")], *"current_term; next_index[0]",
                    "enter")
        assert screen.watches == {NODE: ["current_term", "next_index[0]"]}
        await press(pilot, "end")
        text = pane_text(screen, f"node-{NODE}")
        for expression, value in at_end.items():
            assert f"{expression} = {value}" in text, text
        await press(pilot, "home", ">")
        assert screen.cursor == first.seq
        assert (f"current_term on node {NODE} changed at #{first.seq}: "
                f"{first.before.value} → {first.after.value}") in status_text(screen)
        if second is not None:
            await press(pilot, ">")
            assert screen.cursor == second.seq
            await press(pilot, "<")
            assert screen.cursor == first.seq
        await press(pilot, "<")
        assert screen.cursor == first.seq
        assert "does not change before" in status_text(screen)

    drive(make_app(demo), script)
