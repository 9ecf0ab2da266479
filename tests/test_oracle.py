"""PropertyOracle: verdicts per assertion kind, bugs, conflicts, end-of-run report, checkpoints."""

from __future__ import annotations

import msgpack
import pytest

from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.sim.oracle import TABLE_COLUMNS, Bug, PropertyOracle, assertion_id

A, S, R, U = AssertKind.ALWAYS, AssertKind.SOMETIMES, AssertKind.REACHABLE, AssertKind.UNREACHABLE


def obs(oracle: PropertyOracle, tick: int, node: int, kind: int, cond: bool, message: str,
        line: int = 10) -> Bug | None:
    return oracle.observe(tick, node, kind, cond, assertion_id(message), message, "raft.c", line)


def test_assertion_id_is_fnv1a64_of_the_message() -> None:
    """The id matches the FNV-1a 64 reference values the SDK computes."""
    assert assertion_id("") == 0xCBF29CE484222325
    assert assertion_id("a") == 0xAF63DC4C8601EC8C
    assert assertion_id(b"foobar") == 0x85944171F73967E8


def test_failed_always_is_a_bug_with_node_tick_and_location() -> None:
    """A true always is counted; a false one returns a Bug naming node, tick and location."""
    oracle = PropertyOracle()
    assert obs(oracle, 5, 0, A, True, "one leader per term") is None
    bug = obs(oracle, 9, 2, A, False, "one leader per term", line=77)
    assert bug is not None
    assert (bug.node, bug.tick, bug.kind, bug.message) == (2, 9, A, "one leader per term")
    assert bug.location == "raft.c:77"  # where this evaluation happened
    assert bug.first and bug.assert_id == assertion_id("one leader per term")
    again = obs(oracle, 11, 1, A, False, "one leader per term")
    assert again is not None and not again.first
    stats = oracle.get(assertion_id("one leader per term"), A)
    assert stats is not None and (stats.passes, stats.fails, stats.hits) == (1, 2, 3)
    assert (stats.first_tick, stats.first_node) == (5, 0)
    assert oracle.bug_count == 2


def test_reached_unreachable_is_a_bug_whatever_the_condition() -> None:
    """Reaching an unreachable is the violation; the first one is marked first."""
    oracle = PropertyOracle()
    bug = obs(oracle, 3, 1, U, False, "stale term accepted")
    assert bug is not None and bug.kind == U and bug.first
    record = bug.to_record()
    assert record["kind"] == "bug" and record["assert_kind"] == "unreachable"
    assert msgpack.unpackb(msgpack.packb(record)) == record


def test_sometimes_and_reachable_never_bugs_but_reported_when_unsatisfied() -> None:
    """Unsatisfied: a sometimes never true, a reachable declared but never reached."""
    oracle = PropertyOracle()
    for tick in range(5):
        assert obs(oracle, tick, 0, S, False, "leader elected") is None
    assert obs(oracle, 6, 0, S, True, "entry committed") is None
    assert obs(oracle, 7, 1, R, True, "snapshot installed") is None
    oracle.declare(R, assertion_id("log truncated"), "log truncated", "raft.c", 200)
    oracle.declare(U, assertion_id("never"), "never", "raft.c", 300)
    names = [s.message for s in oracle.unsatisfied()]
    assert names == ["leader elected", "log truncated"]
    records = oracle.unsatisfied_records(tick=60_000)
    assert [(r["kind"], r["assert_kind"], r["hits"]) for r in records] == [
        ("unsatisfied", "sometimes", 5), ("unsatisfied", "reachable", 0)]
    assert oracle.bug_count == 0


def test_same_message_with_different_kinds_are_separate_assertions() -> None:
    """An id used as always in one place and sometimes in another keeps two verdicts."""
    oracle = PropertyOracle()
    obs(oracle, 1, 0, S, False, "x > 0")
    assert obs(oracle, 2, 0, A, False, "x > 0") is not None
    assert len(oracle.assertions()) == 2


def test_conflicting_messages_for_one_id_are_reported_once_not_crashed_on() -> None:
    """A second message under a known id becomes one conflict; counts go to the first entry."""
    oracle = PropertyOracle()
    oracle.observe(1, 0, A, True, 1234, "first message", "a.c", 1)
    for tick in (2, 3):
        assert oracle.observe(tick, 1, A, False, 1234, "other message", "b.c", 2) is not None
    conflicts = oracle.conflicts()
    assert len(conflicts) == 1, conflicts
    assert (conflicts[0].known_message, conflicts[0].new_message) == (
        "first message", "other message")
    assert conflicts[0].to_record()["kind"] == "oracle.conflict"
    assert oracle.take_new_conflicts() == conflicts and oracle.take_new_conflicts() == []
    stats = oracle.get(1234, A)
    assert stats is not None and stats.hits == 3 and stats.message == "first message"


def test_table_rows_match_columns_and_status() -> None:
    """table() gives one row per assertion with the counts and a readable status."""
    oracle = PropertyOracle()
    obs(oracle, 4, 0, A, False, "safety", line=1)
    obs(oracle, 5, 0, S, True, "progress", line=2)
    oracle.declare(R, 99, "reach me", "raft.c", 3)
    rows = oracle.table()
    assert all(len(row) == len(TABLE_COLUMNS) for row in rows)
    assert rows[0] == ("always", "safety", "raft.c:1", "0", "1", "1", "4", "FAILED")
    assert rows[1][-1] == "ok" and rows[2][-2:] == ("-", "never")


def test_unknown_kind_is_refused() -> None:
    """A kind outside the ABI is a programming error in the caller, not silently accepted."""
    with pytest.raises(ValueError):
        PropertyOracle().observe(0, 0, 7, True, 1, "m", "f", 1)


def drive(oracle: PropertyOracle, start: int, stop: int) -> list[object]:
    """A deterministic stream of observations; the bugs it produced."""
    out: list[object] = []
    for tick in range(start, stop):
        kind = tick % 4
        message = f"assertion {tick % 7}"
        bug = oracle.observe(tick, tick % 3, kind, tick % 5 != 0, tick % 11, message, "f.c", tick)
        out.append(bug)
        out += oracle.take_new_conflicts()
    return out


def test_snapshot_restore_mid_run_gives_identical_continuation() -> None:
    """Snapshot half way through msgpack, restore fresh, continue: identical bugs and table."""
    whole = PropertyOracle()
    expected = drive(whole, 0, 400)
    first = PropertyOracle()
    head = drive(first, 0, 200)
    resumed = PropertyOracle.from_snapshot(msgpack.unpackb(msgpack.packb(first.snapshot())))
    assert head + drive(resumed, 200, 400) == expected
    assert resumed.snapshot() == whole.snapshot()
    assert resumed.table() == whole.table() and resumed.conflicts() == whole.conflicts()
