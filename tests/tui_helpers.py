"""Test helper (not a test module): synthetic recordings and a Pilot driver for the TUI."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rich.console import Console, RenderableType
from textual.pilot import Pilot
from textual.widgets import Static

from chaosreplay.recording import RecordingWriter
from chaosreplay.tui.app import DebuggerApp
from chaosreplay.tui.debugger_screen import DebuggerScreen

SIZE = (120, 40)
Row = tuple[int, int, int, str, dict[str, Any]]


def story_rows() -> list[Row]:
    """A small three-node run with one of every interesting event kind (deterministic)."""
    rows: list[Row] = [(0, 0, -1, "run.start", {"seed": 7, "nodes": ["a", "b", "c"],
                                                 "duration": 400})]
    for tick in range(0, 400, 4):
        node = (tick // 4) % 3
        vtime = tick * 1_000_000 + node * 1_000
        rows.append((tick, vtime, node, "syscall", {"nr": 1, "name": "write",
                                                    "args": [1, 4096, 12], "ret": 12}))
        if tick % 20 == 0:
            rows.append((tick, vtime + 1, node, "output",
                         {"fd": 1, "data": f"node {node}: term {tick // 40}\n".encode()}))
        if tick % 12 == 0:
            rows.append((tick, vtime + 2, node, "packet.sent",
                         {"packet_id": tick, "src": node, "dst": (node + 1) % 3, "size": 64}))
        if tick % 36 == 0:
            rows.append((tick, vtime + 3, (node + 1) % 3, "packet.dropped",
                         {"packet_id": tick, "src": node, "dst": (node + 1) % 3, "size": 64,
                          "reason": "loss"}))
        if tick % 16 == 0:
            rows.append((tick, vtime + 4, node, "assert",
                         {"assert_kind": 0, "condition": tick != 320, "id": 1,
                          "message": "one leader per term", "file": "raft.c", "line": 10}))
        if tick == 100:
            rows.append((tick, vtime + 5, 1, "fault.start",
                         {"tick": 100, "fault_id": "kill-0001", "applied": True,
                          "fault": {"kind": "kill", "at": 100, "duration": 80, "node": 1}}))
            rows.append((tick, vtime + 6, 1, "node.status", {"status": "killed"}))
        if tick == 180:
            rows.append((tick, vtime + 5, 1, "fault.end",
                         {"tick": 180, "fault_id": "kill-0001", "applied": True,
                          "reason": "duration",
                          "fault": {"kind": "kill", "at": 100, "duration": 80, "node": 1}}))
            rows.append((tick, vtime + 6, 1, "node.status", {"status": "running"}))
        if tick == 320:
            rows.append((tick, vtime + 7, -1, "bug",
                         {"message": "one leader per term", "node": node}))
    rows.append((400, 400_000_000, -1, "run.end", {"reason": "bug"}))
    return rows


def write_rows(path: Path, rows: list[Row], **options: Any) -> Path:
    """A complete recording of rows with a non-simulation manifest (states unavailable)."""
    with RecordingWriter(path, {"seed": 7, "scenario": "synthetic"}, **options) as writer:
        for row in rows:
            writer.append(*row)
    return path


def plain(renderable: RenderableType, width: int = SIZE[0]) -> str:
    """What a renderable reads as on a terminal of `width` columns, without styles."""
    console = Console(width=width, file=io.StringIO(), color_system=None, record=True,
                      legacy_windows=False)
    console.print(renderable)
    return console.export_text()


def pane_text(screen: DebuggerScreen, pane_id: str) -> str:
    """The text of one pane (e.g. "node-1", "network", "faults", "oracle")."""
    body = screen.query_one(f"#{pane_id} .pane-body", Static)
    return plain(body.content)  # type: ignore[arg-type]


def timeline_text(screen: DebuggerScreen) -> list[str]:
    """The visible timeline rows as text."""
    timeline = screen.timeline
    return [timeline.render_line(y).text.rstrip()
            for y in range(timeline.scrollable_content_region.height)]


def status_text(screen: DebuggerScreen) -> str:
    """The status line as text."""
    return plain(screen.query_one("#status", Static).content).strip()


def debugger(app: DebuggerApp) -> DebuggerScreen:
    """The app's debugger screen (below any modal)."""
    return next(s for s in reversed(app.screen_stack) if isinstance(s, DebuggerScreen))


async def settle(pilot: Pilot[Any], rounds: int = 400) -> None:
    """Wait until every debugger screen's engine is idle and its answers are drawn."""
    quiet = 0
    for _ in range(rounds):
        await pilot.pause()
        engines = [s.engine for s in pilot.app.screen_stack if isinstance(s, DebuggerScreen)]
        if all(e.idle for e in engines):
            quiet += 1
            if quiet >= 3:  # idle across several passes: no answer left to draw
                return
        else:
            quiet = 0
            await asyncio.sleep(0.01)
    raise AssertionError("the debugger did not settle")


async def press(pilot: Pilot[Any], *keys: str) -> None:
    """Press keys, then wait for the debugger to settle."""
    await pilot.press(*keys)
    await settle(pilot)


def drive(app: DebuggerApp, script: Callable[[Pilot[Any]], Awaitable[None]],
          size: tuple[int, int] = SIZE) -> None:
    """Run the app headless at a terminal size (the test size) and play a script against it."""
    app.animation_level = "none"  # no tab underline sliding: faster and steadier

    async def run() -> None:
        async with app.run_test(size=size) as pilot:
            await settle(pilot)
            await script(pilot)

    asyncio.run(run())
