"""The state panes show what the engine reconstructs at the cursor (needs KVM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from recording_helpers import flip
from textual.pilot import Pilot
from textual.widgets import Static
from tui_helpers import debugger, drive, pane_text, plain, press, status_text

from chaosreplay.cli import main
from chaosreplay.debugger.session import DebugSession
from chaosreplay.events import EventKind
from chaosreplay.tui import make_app
from chaosreplay.tui.memory_screen import MemoryScreen

pytestmark = pytest.mark.kvm


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two virtual seconds of the built-in Raft demo (one fault starts at tick 989)."""
    path = tmp_path_factory.mktemp("tui") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "2s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


def test_panes_show_the_state_at_the_cursor(demo: Path) -> None:
    """Every pane draws the reconstruction the session gives for the cursor's event."""
    with DebugSession(demo) as session:
        seq = session.reader.seq_at_tick(1500)
        expected = session.state(seq)
        last_syscalls = {
            node: next(session.reader.events_before(seq + 1, [EventKind.SYSCALL.value], [node]))
            for node in range(len(expected.nodes))}
    assert expected.faults, "the fixture's run has a fault in effect at tick 1500"

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *f"#{seq}", "enter")
        assert screen.state is not None and screen.state.seq == seq
        assert "reconstructing" not in status_text(screen)
        for node, view in enumerate(expected.nodes):
            await press(pilot, str(node + 1))
            text = pane_text(screen, f"node-{node}")
            assert f"node {node} ({view.name}) · {view.status}" in text, text
            assert f"rip {view.registers['rip']:#x}" in text
            assert view.location.split(" ")[0] in text
            assert f"vtime {view.vtime_ns / 1e9:.9f}s" in text
            assert f"last syscall: #{last_syscalls[node].seq} " in text
            if view.disassembly:
                assert view.disassembly[0].text in text
            if view.stack:
                assert view.stack[0] in text
            term = next(g for g in view.globals if g.name == "current_term")
            assert f"current_term = {term.value}" in text  # typed globals
            for variable in view.frames[0].arguments[:1]:
                assert f"{variable.name} = {variable.value}" in text
        await press(pilot, "p")
        network = pane_text(screen, "network")
        in_flight = len(expected.network.in_flight)
        assert (f"{in_flight} in flight" if in_flight else "no packets in flight") in network
        assert f"sent {expected.network.stats['sent']}" in network
        await press(pilot, "p")
        faults = pane_text(screen, "faults")
        assert all(f.fault_id in faults for f in expected.faults), faults
        await press(pilot, "p")
        oracle = pane_text(screen, "oracle")
        assert all(row[2] in oracle for row in expected.oracle), oracle
        await press(pilot, "j", "1")
        assert screen.state is not None and screen.state.seq == seq + 1
        assert screen.state.nodes[0].registers == session_state(demo, seq + 1)

    drive(make_app(demo), script)


def session_state(path: Path, seq: int) -> dict[str, int]:
    """Node 0's registers after seq, from a fresh session."""
    with DebugSession(path) as session:
        return session.state(seq).nodes[0].registers


def test_a_reconstruction_that_fails_is_shown(demo: Path, tmp_path: Path) -> None:
    """A damaged checkpoint makes states after it fail; the panes say why, events still
    browse."""
    broken = tmp_path / "broken.ccr"
    broken.write_bytes(demo.read_bytes())
    with DebugSession(broken) as session:
        checkpoint = session.reader.checkpoints[0]
        seq = session.reader.seq_at_tick(checkpoint.tick + 200)
    flip(broken, checkpoint.offset + 40, 0xFF)

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *f"#{seq}", "enter")
        assert screen.cursor == seq
        text = pane_text(screen, "node-0")
        assert f"state at #{seq} unavailable:" in text, text
        assert "reconstructing" not in status_text(screen)
        await press(pilot, "j")
        assert screen.cursor == seq + 1

    drive(make_app(broken), script)


def test_examine_memory_at_a_symbol(demo: Path) -> None:
    """x asks for a symbol (or an address) and shows the node's bytes at the cursor."""
    with DebugSession(demo) as session:
        seq = session.reader.seq_at_tick(1500)
        address, data = session.memory(1, "current_term", 8, seq=seq)
    assert data is not None

    async def script(pilot: Pilot[Any]) -> None:
        await press(pilot, "g", *f"#{seq}", "enter", "2", "x")
        await press(pilot, *"current_term 8", "enter")
        shown = pilot.app.screen
        assert isinstance(shown, MemoryScreen)
        dump = plain(shown.query_one("#memory-dump", Static).content)
        assert dump.split()[:9] == [f"{address:#018x}", *(f"{b:02x}" for b in data)], dump
        await press(pilot, "escape")
        assert debugger(pilot.app) is pilot.app.screen

    drive(make_app(demo), script)


def test_at_80x24_the_node_pane_stacks_code_and_registers_without_wrapping(demo: Path) -> None:
    """At 80x24 the status line and the keys stay on screen, and the node pane draws one
    instruction per line and every register whole (name and value on one line), stacked
    instead of side by side."""
    with DebugSession(demo) as session:
        seq = session.reader.seq_at_tick(1500)
        view = session.state(seq).nodes[1]
    rip = view.registers["rip"]

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *f"#{seq}", "enter", "2")
        assert screen.state is not None and screen.state.seq == seq
        status = screen.query_one("#status")
        assert status.region.height == 1 and status.region.bottom == 23, status.region
        assert f"#{seq}/" in status_text(screen)
        pane = screen.query_one("#node-1 .pane-body", Static)
        text = plain(pane.content, width=pane.size.width)  # type: ignore[arg-type]
        lines = text.splitlines()
        current = next(line for line in lines if line.lstrip().startswith(f"→ {rip:#x}"))
        assert view.disassembly[0].text.split()[0] in current, (current, lines)
        for name, value in view.registers.items():
            assert any(f"{name} {value:#x}" in line for line in lines), (name, text)
        code_at = lines.index(current)
        assert all("rax 0x" not in line for line in lines[:code_at]), text

    drive(make_app(demo), script, (80, 24))
