"""sim/outcome.py: a run's verdict in plain words, from its summary."""

from __future__ import annotations

from chaosreplay.sim.outcome import ended_nodes, failure_details, outcome_words, seconds

NODES = [{"node": 0, "name": "kv-0", "status": "running", "ended": ""},
         {"node": 1, "name": "kv-1", "status": "exited", "ended": "exit 2"}]


def test_seconds_drop_needless_digits() -> None:
    assert [seconds(t) for t in (60_000, 1_234, 500, 0)] == ["60 s", "1.234 s", "0.5 s", "0 s"]


def test_a_pass_says_what_the_run_did() -> None:
    """"ran the full 60 s", not "duration after 60.000s"."""
    summary = {"reason": "duration", "end_tick": 60_000, "failed": False}
    assert outcome_words(summary, 60_000) == "passed: ran the full 60 s"
    ended = {"reason": "all nodes ended", "end_tick": 12, "failed": False}
    assert outcome_words(ended, 60_000) == "passed: every node ended as expected"
    assert outcome_words(None, 60_000).startswith("incomplete")


def test_a_failure_says_which_node_failed_how_and_when() -> None:
    """The earliest bug or failure, with the node's name; a failure's stderr follows it."""
    summary = {"reason": "exit", "end_tick": 9, "failed": True, "nodes": NODES, "bugs": [
        {"tick": 9, "node": 0, "assert_kind": "always", "message": "x > 0", "file": "kv.c",
         "line": 7}], "failures": [
        {"kind": "exit", "node": 1, "tick": 4, "detail": "exited with status 2 (expected 0)",
         "stderr": ["usage: kv [--port N]"]}]}
    assert outcome_words(summary, 1000) == ("FAILED: node 1 (kv-1) exited with status 2 "
                                            "(expected 0) at 0.004 s")
    assert failure_details(summary) == [
        'bug: always "x > 0" failed on node 0 (kv-0) at 0.009 s (kv.c:7)',
        "exit: node 1 (kv-1) exited with status 2 (expected 0) at 0.004 s",
        "  its last stderr lines:", "  | usage: kv [--port N]"]
    assert ended_nodes(summary) == "kv-1 exit 2"
