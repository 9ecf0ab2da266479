"""The TUI's plain parts: the engine thread, seek targets, the match index, event rows."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tui_helpers import story_rows, write_rows

from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import RecordingError
from chaosreplay.recording.model import Event
from chaosreplay.tui.engine import EngineThread, JobResult, Priority
from chaosreplay.tui.event_format import summary, timeline_row
from chaosreplay.tui.match_index import MatchIndex
from chaosreplay.tui.memory_screen import MemoryRequestError, hex_dump, parse_request
from chaosreplay.tui.seek_target import SeekError, SeekTarget


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[DebugSession]:
    with DebugSession(write_rows(tmp_path / "story.ccr", story_rows())) as s:
        yield s


def _engine(session: DebugSession) -> tuple[EngineThread, list[JobResult]]:
    results: list[JobResult] = []
    engine = EngineThread(session)
    return engine, results


def test_jobs_run_on_one_thread_and_report_results(session: DebugSession) -> None:
    """Every job runs on the engine's own thread; results carry their tags."""
    engine, results = _engine(session)
    threads: set[int] = set()

    def work(s: DebugSession) -> int:
        threads.add(threading.get_ident())
        return s.event_count

    engine.start()
    for n in range(5):
        engine.submit(f"slot{n}", Priority.STATE, work, results.append, tag=n)
    assert engine.wait_idle(10)
    engine.stop()
    assert sorted(r.tag for r in results) == list(range(5))
    assert {r.value for r in results} == {session.event_count}
    assert len(threads) == 1 and threading.get_ident() not in threads


def test_a_waiting_job_is_replaced_and_priorities_order_the_rest(session: DebugSession) -> None:
    """Only the latest job of a slot runs; waiting slots run lowest priority first."""
    engine, results = _engine(session)
    gate = threading.Event()
    engine.submit("block", Priority.WINDOW, lambda s: gate.wait(10), results.append, "block")
    engine.start()
    for seq in range(10):  # all but the last are replaced while the engine is busy
        engine.submit("state", Priority.STATE, lambda s, seq=seq: seq, results.append, seq)
    engine.submit("window", Priority.WINDOW, lambda s: "rows", results.append, "rows")
    gate.set()
    assert engine.wait_idle(10)
    engine.stop()
    assert [r.tag for r in results] == ["block", "rows", 9]


def test_long_jobs_step_and_let_others_through(session: DebugSession) -> None:
    """A generator job yields steps; a job submitted meanwhile runs between its steps."""
    engine, results = _engine(session)
    order: list[Any] = []

    def long(s: DebugSession) -> Iterator[int]:
        for n in range(3):
            order.append(n)
            if n == 0:
                engine.submit("quick", Priority.WINDOW, lambda s: order.append("quick"),
                              results.append)
            yield n

    engine.submit("scan", Priority.BACKGROUND, long, results.append)
    engine.start()
    assert engine.wait_idle(10)
    engine.stop()
    assert order == [0, "quick", 1, 2]
    steps = [r for r in results if r.slot == "scan"]
    assert [(r.value, r.final) for r in steps] == [(0, False), (1, False), (2, False),
                                                    (None, True)]


def test_errors_come_back_as_one_line(session: DebugSession) -> None:
    """A failing job reports its message; an unexpected exception says it is internal."""
    engine, results = _engine(session)

    def bad(s: DebugSession) -> None:
        raise RecordingError("offset 12: broken\nmore")

    engine.submit("a", Priority.STATE, bad, results.append)
    engine.submit("b", Priority.STATE, lambda s: 1 / 0, results.append)
    engine.start()
    assert engine.wait_idle(10)
    engine.stop()
    errors = {r.slot: r.error for r in results}
    assert errors == {"a": "offset 12: broken",
                      "b": "internal error: ZeroDivisionError: division by zero"}


@pytest.mark.parametrize(("text", "target"), [
    ("#42", SeekTarget(seq=42)), ("12500", SeekTarget(tick=12500)),
    ("12.5s", SeekTarget(tick=12500)), ("300ms", SeekTarget(tick=300)),
    (" 1_000 ", SeekTarget(tick=1000)),
])
def test_seek_targets(text: str, target: SeekTarget) -> None:
    """#N is an event, N a tick, a duration a virtual time."""
    assert SeekTarget.parse(text) == target


@pytest.mark.parametrize("text", ["", "#", "#x", "soon", "-5", "1.5"])
def test_bad_seek_targets(text: str) -> None:
    """Anything else is refused with the accepted forms."""
    with pytest.raises(SeekError, match="expected"):
        SeekTarget.parse(text)


def test_match_index_answers_only_what_the_scan_has_passed() -> None:
    """Next/previous are known once a match beyond the position is indexed."""
    index = MatchIndex()
    index.add([5, 9])
    assert index.next_after(5) == (True, 9)
    assert index.next_after(9) == (False, None)
    assert index.prev_before(9) == (True, 5)
    assert index.prev_before(20) == (False, None)
    index.add([30])
    index.complete = True
    assert index.next_after(30) == (True, None)
    assert index.prev_before(20) == (True, 9)
    assert index.position(9) == 2 and index.is_match(9) and not index.is_match(10)


def test_event_rows_read_well() -> None:
    """A row names the event, its tick, node and kind, with the fields that matter."""
    event = Event(12, 340, 340_000_123, 2, "syscall",
                  {"nr": 1, "name": "write", "args": [1, 0x7fff0000, 5], "ret": 5})
    assert timeline_row(event).plain.split() == [
        "#12", "t340", "0.340000s", "n2", "syscall", "write(fd", "1,", "0x7fff0000,", "5)",
        "=", "5"]
    output = Event(1, 0, 0, 0, "output", {"fd": 1, "data": b"it's\n"})
    assert summary(output) == "fd 1: it's\\n"
    failed = Event(2, 0, 0, -1, "assert", {"assert_kind": 0, "condition": False,
                                           "message": "safe"})
    assert summary(failed) == "always FAILED: safe"


def test_memory_requests_and_dumps() -> None:
    """A symbol or an address with an optional size; the dump shows hex and text."""
    assert parse_request("current_term") == ("current_term", 64)
    assert parse_request("0x7fff0010 16") == (0x7FFF0010, 16)
    for bad in ("", "a b c", "x 0", "x big", "x 99999"):
        with pytest.raises(MemoryRequestError):
            parse_request(bad)
    dump = hex_dump(0x1000, b"raft\x00" + bytes(range(1, 13)) + b"!").plain.splitlines()
    assert dump[0].startswith("0x0000000000001000  72 61 66 74 00 01")
    assert dump[0].endswith("raft" + "·" * 12) and dump[1].split()[-1] == "·!"


def test_sdk_calls_are_named_as_the_program_calls_them() -> None:
    """Every SDK call number of sdk_abi has its cr_ name on the timeline (a new call without
    one fails here), not the recording's syscall_<n>."""
    from chaosreplay.kernel import sdk_abi
    from chaosreplay.tui.event_format import SDK_CALL_NAMES

    numbers = {value for name, value in vars(sdk_abi).items()
               if name.startswith("CR_SYS_") and name != "CR_SYS_BASE"}
    assert set(SDK_CALL_NAMES) == numbers
    recv = Event(5, 1, 1, 0, "syscall", {"nr": sdk_abi.CR_SYS_RECV,
                                          "name": f"syscall_{sdk_abi.CR_SYS_RECV}",
                                          "args": [0x40D480, 528, 5], "ret": -110})
    assert summary(recv) == "cr_recv(0x40d480, 528, 5) = -110"
