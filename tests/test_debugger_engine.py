"""The debugger engine: filters, the cursor, and states reconstructed from a recording.

The central property: the state at event N rebuilt from the recording (nearest checkpoint +
re-execution, with caches) is the state of a simulation run directly from the start to N.
"""

from __future__ import annotations

import errno
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.debugger.filters import EventFilter, FilterError
from chaosreplay.debugger.reconstruct import ReconstructionError
from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.views import capture_state
from chaosreplay.errors import ChaosReplayError, RecordingError
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording import RecordingWriter
from chaosreplay.recording.model import Event
from chaosreplay.runs.record_replay import RunOptions, record_run
from chaosreplay.sim.checkpoint import capture
from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import Simulation

# -- filters and the cursor, on a hand-written recording (no KVM) -------------------------


def _synthetic(path: Path) -> list[tuple]:
    rows = [
        (0, 0, -1, "run.start", {"seed": 1}),
        (1, 1_000_000, 0, "syscall", {"name": "write", "nr": 1, "ret": 5}),
        (2, 2_000_000, 1, "assert", {"assert_kind": int(AssertKind.ALWAYS), "condition": True,
                                     "message": "one leader"}),
        (3, 3_000_000, -1, "fault.start", {"fault_id": "partition-1", "fault": {}}),
        (4, 4_000_000, 1, "assert", {"assert_kind": int(AssertKind.ALWAYS), "condition": False,
                                     "message": "one leader"}),
        (4, 4_000_100, 1, "bug", {"message": "one leader"}),
        (5, 5_000_000, 2, "output", {"fd": 1, "data": b"node 2: LEADER term 4\n"}),
        (6, 6_000_000, 0, "syscall", {"name": "fsync", "nr": 74, "ret": 0}),
        (9, 9_000_000, 2, "node.status", {"status": "killed"}),
        (9, 9_000_000, -1, "fault.end", {"fault_id": "partition-1", "fault": {}}),
    ]
    with RecordingWriter(path, {"kind": "hand-written"}) as writer:
        for row in rows:
            writer.append(*row)
        writer.close()
    return rows


def test_filter_words_combine():
    f = EventFilter.parse('fault bug node:1 "one leader"')
    assert f.kinds == {"fault.start", "fault.end", "bug"} and f.nodes == {1}
    assert f.matches(Event(5, 4, 0, 1, "bug", {"message": "One Leader broken"}))
    assert not f.matches(Event(5, 4, 0, 2, "bug", {"message": "one leader"}))  # node
    assert not f.matches(Event(5, 4, 0, 1, "bug", {"message": "other"}))  # text
    assert EventFilter.parse("").empty
    failed = EventFilter.parse("failed")
    ok = {"assert_kind": int(AssertKind.ALWAYS), "condition": True}
    assert not failed.matches(Event(0, 0, 0, 0, "assert", ok))
    assert failed.matches(Event(0, 0, 0, 0, "assert", {**ok, "condition": False}))
    assert failed.matches(Event(0, 0, 0, 0, "assert", {
        "assert_kind": int(AssertKind.UNREACHABLE), "condition": True}))
    assert EventFilter.parse("syscall:fsync").matches(Event(0, 0, 0, 0, "syscall",
                                                            {"name": "fsync"}))
    assert not EventFilter.parse("syscall:fsync").matches(Event(0, 0, 0, 0, "syscall",
                                                                {"name": "write"}))
    for bad in ("node:x", "kind:nope", "syscall:", '"unclosed'):
        with pytest.raises(FilterError):
            EventFilter.parse(bad)


def test_cursor_moves_searches_and_bookmarks(tmp_path):
    rows = _synthetic(tmp_path / "h.ccr")
    with DebugSession(tmp_path / "h.ccr") as s:
        assert s.event_count == len(rows) and s.cursor == 0
        assert s.step(3) == 3 and s.step(-10) == 0 and s.seek(99) == len(rows) - 1
        assert s.seek_tick(4) == 4 and s.event().kind == "assert"
        faults = EventFilter.parse("fault")
        assert s.next_match(faults) == 9 and s.prev_match(faults) == 3
        assert s.prev_match(EventFilter.parse("fault"), before=3) is None
        assert s.next_match(EventFilter.parse("leader node:2")) == 6  # output bytes as text
        assert s.next_match(EventFilter.parse("failed")) is None  # the failed one is at 4
        assert s.prev_match(EventFilter.parse("failed"), before=5) == 4
        assert [x for chunk in s.scan_matches(EventFilter.parse("syscall")) for x in chunk] == [
            1, 7]
        assert s.toggle_bookmark(2) and s.toggle_bookmark(8) and s.next_bookmark() == 8
        assert s.prev_bookmark() == 2 and not s.toggle_bookmark(2) and s.prev_bookmark() is None
        assert [e.seq for e in s.events(7, 5)] == [7, 8, 9]
        # Not a simulation recording: browsing works, states say why they cannot be had.
        assert "not a simulation recording" in (s.cannot_reconstruct or "")
        with pytest.raises(RecordingError, match="cannot be reconstructed"):
            s.state()


def test_unreadable_and_empty_recordings_are_refused(tmp_path):
    (tmp_path / "junk.ccr").write_bytes(b"not a recording at all")
    with pytest.raises(RecordingError):
        DebugSession(tmp_path / "junk.ccr")
    with RecordingWriter(tmp_path / "empty.ccr", {"kind": "x"}) as writer:
        writer.close()
    with pytest.raises(RecordingError, match="no events"):
        DebugSession(tmp_path / "empty.ccr")


# -- reconstruction from a real recording (KVM) ----------------------------------------------

def _dense(seed: int) -> Scenario:
    """The demo for 3 virtual seconds, faults ten times as often, checkpoints every 500 ms."""
    data = demo_scenario().to_dict()
    data.update(seed=seed, duration=3000, checkpoint_interval=500)
    data["faults"]["random"]["rates"] = {
        kind: rate * 10 for kind, rate in data["faults"]["random"]["rates"].items()}
    return Scenario.from_dict(data)


@pytest.fixture(scope="module")
def recorded(guest_bin, tmp_path_factory):
    guest_bin("musl", "raft")
    sc = _dense(4)
    images = resolve_images(sc, Path.cwd())
    path = tmp_path_factory.mktemp("debug") / "run.ccr"
    record_run(sc, images, path, RunOptions())
    return sc, images, path


@pytest.mark.kvm
def test_state_from_recording_equals_a_direct_run(recorded):
    """At random events (visited in random order, so caches, live simulations and fresh
    checkpoints all serve), every part of the state equals a run straight to that event."""
    sc, images, path = recorded
    with DebugSession(path) as session:
        rec = session.reconstructor
        assert rec is not None
        count = session.event_count
        checkpoints = [c.seq for c in session.reader.checkpoints]
        picks = random.Random(7).sample(range(count), 12)
        picks += [0, count - 1, checkpoints[1], checkpoints[1] - 1, picks[0] + 1, picks[0]]
        for seq in picks:
            state = session.state(seq)
            direct = Simulation(sc, images)
            direct.run_to(seq)
            assert state.reached == direct.event_count - 1 >= seq
            assert state.to_dict() == capture_state(direct, seq, rec.programs).to_dict(), seq
            live = rec.simulation_at(seq)
            assert capture(live, 0).parts == capture(direct, 0).parts, f"event {seq}"
        assert rec.runs < len(picks)  # live simulations were reused


@pytest.mark.kvm
def test_state_shows_the_run(recorded):
    _, _, path = recorded
    with DebugSession(path) as session:
        end = session.event_count - 1
        last = session.state(end)
        assert last.ended and last.tick == session.event(end).tick
        node = last.nodes[0]
        assert node.location.split("+")[0] in {"wait_message", "now_ns", "main"} or node.crash
        assert node.disassembly and node.stack and "node 0:" in node.stdout
        assert "src/raft.c:" in " ".join(node.stack) + node.location  # DWARF lines
        # The stack is unwound (CFI) to main: gdb's `bt` lines, no scanned guesses.
        assert node.stack[0].startswith(f"#0 {node.registers['rip']:#x} in "), node.stack
        mains = [f for f in node.frames if f.function == "main"]
        assert mains and mains[0].location and mains[0].location.startswith("src/raft.c:")
        assert all("[scan]" not in line for line in node.stack[:mains[0].level + 1])
        assert any(row[1] == "a leader is elected" for row in last.oracle)
        address, data = session.memory(0, "current_term", 8, seq=end)
        assert data is not None and len(data) == 8
        term = next(g for g in node.globals if g.name == "current_term")
        assert (term.type, term.value) == ("uint64_t", str(int.from_bytes(data, "little")))
        assert address == session.reconstructor.symbol_address(0, "current_term")
        assert session.memory(0, 0x10, 8, seq=end)[1] is None  # unmapped
        with pytest.raises(ChaosReplayError, match="no symbol"):
            session.memory(0, "no_such_symbol", 4)


@pytest.mark.kvm
def test_a_reconstruction_that_differs_from_the_recording_is_an_error(recorded, monkeypatch):
    from chaosreplay.kernel import sdk_abi
    from chaosreplay.kernel.syscalls import HANDLERS

    _, _, path = recorded
    original = HANDLERS[sdk_abi.CR_SYS_RECV]
    monkeypatch.setitem(HANDLERS, sdk_abi.CR_SYS_RECV,
                        lambda p, r: -errno.ETIMEDOUT if p.node_id == 1 else original(p, r))
    with DebugSession(path) as session, pytest.raises(ReconstructionError, match="differs"):
        session.state(session.event_count - 1)


@pytest.mark.kvm
def test_state_command(recorded):
    _, _, path = recorded
    runner = CliRunner()
    result = runner.invoke(main, ["state", str(path), "--tick", "1200", "--json", "--node", "2"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["tick"] <= 1200 and [n["index"] for n in data["nodes"]] == [2]
    text = runner.invoke(main, ["state", str(path), "--event", "40"])
    assert text.exit_code == 0 and "node 1 (raft-1)" in text.output
    assert "assertions" in text.output


def test_state_command_errors(tmp_path):
    runner = CliRunner()
    _synthetic(tmp_path / "h.ccr")
    cases = [
        (["state", str(tmp_path / "missing.ccr"), "--tick", "1"], "cannot open"),
        (["state", str(tmp_path / "h.ccr"), "--tick", "1"], "not a simulation recording"),
        (["state", str(tmp_path / "h.ccr"), "--event", "500"], "out of range"),
    ]
    for args, message in cases:
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    assert runner.invoke(main, ["state", str(tmp_path / "h.ccr")]).exit_code == 2



@pytest.mark.kvm
def test_stepping_reuses_only_the_views_of_nodes_that_did_not_move(recorded):
    """Step by step through a stretch with faults, watches on, each state's node views (some
    reused from the step before) equal views read afresh from the same paused simulation;
    and most steps do reuse the nodes that did not run."""
    _, _, path = recorded
    with DebugSession(path) as session:
        rec = session.reconstructor
        assert rec is not None
        for node in range(3):
            session.set_watches(node, ["current_term", "log_[commit_index].term"])
        start = session.event_count // 3
        reused = 0
        previous = None
        for seq in range(start, start + 150):
            state = session.state(seq)
            fresh = capture_state(rec.simulation_at(seq), seq, rec.programs, rec.watches)
            assert state.nodes == fresh.nodes, seq
            if previous is not None:
                reused += sum(a is b for a, b in zip(state.nodes, previous.nodes, strict=True))
            previous = state
        assert reused > 150, reused
