"""A run's outcome in plain words, from its summary (`RunResult.summary()` or a recording's).

`record`, `record --seeds`, `replay` and `info` all describe a run with these functions, so
they cannot disagree: "passed: ran the full 60 s", "FAILED: node probe-1 exited with status
2 (expected 0) at 0.004 s", with the failed node's last stderr lines below.
"""

from __future__ import annotations

from typing import Any

ENDED_SHOWN = 10  # ended nodes listed by name; beyond this they are counted


def seconds(ticks: int) -> str:
    """Ticks (ms) as seconds without needless digits: 60000 -> "60 s", 1234 -> "1.234 s"."""
    if ticks % 1000 == 0:
        return f"{ticks // 1000} s"
    return f"{ticks / 1000:.3f}".rstrip("0") + " s"


def node_name(summary: dict[str, Any], index: int) -> str:
    """A node's display name from the summary (older recordings only have its number)."""
    for node in summary.get("nodes") or []:
        if isinstance(node, dict) and node.get("node") == index:
            return f"node {index} ({node.get('name')})"
    return f"node {index}"


def failure_words(summary: dict[str, Any], failure: dict[str, Any]) -> str:
    """One crash, hang or unexpected exit: "node 1 (probe-1) exited with status 2 ..."."""
    who = node_name(summary, failure.get("node", -1))
    kind, detail = failure.get("kind"), failure.get("detail", "")
    at = seconds(int(failure.get("tick", 0)))
    if kind == "crash":
        return f"{who} crashed at {at}: {detail}"
    if kind == "hang":
        return f"{who} hung at {at}: {detail}"
    return f"{who} {detail} at {at}"


def bug_words(summary: dict[str, Any], bug: dict[str, Any]) -> str:
    """One violated property: 'always "x > 0" failed on node 2 (raft-2) at 1.5 s (f.c:9)'."""
    what = {"always": "failed", "unreachable": "was reached"}.get(str(bug.get("assert_kind")),
                                                                   "was violated")
    return (f'{bug.get("assert_kind")} "{bug.get("message")}" {what} on '
            f"{node_name(summary, bug.get('node', -1))} at {seconds(int(bug.get('tick', 0)))}"
            f" ({bug.get('file')}:{bug.get('line')})")


def first_failure(summary: dict[str, Any]) -> str | None:
    """The earliest bug or failure of the run in words (a bug first on a tie), or None."""
    found = [(int(b.get("tick", 0)), 0, bug_words(summary, b))
             for b in summary.get("bugs") or []]
    found += [(int(f.get("tick", 0)), 1, failure_words(summary, f))
              for f in summary.get("failures") or []]
    return min(found)[2] if found else None


def outcome_words(summary: dict[str, Any] | None, duration_ticks: int) -> str:
    """The one-line verdict: passed or FAILED, and why, in words."""
    if not summary:
        return "incomplete: the run did not finish (no summary recorded)"
    failure = first_failure(summary)
    if summary.get("failed") or failure:
        return f"FAILED: {failure or summary.get('reason')}"
    reason, end = summary.get("reason"), int(summary.get("end_tick", 0))
    if reason == "duration":
        return f"passed: ran the full {seconds(duration_ticks)}"
    if reason == "all nodes ended":
        return "passed: every node ended as expected"
    return f"passed: {reason} at {seconds(end)}"


def ended_nodes(summary: dict[str, Any]) -> str | None:
    """Which nodes ended, and how: "probe-0 exit 2, probe-1 exit 0", or None if none did."""
    ended = [n for n in summary.get("nodes") or []
             if isinstance(n, dict) and n.get("status") in ("exited", "crashed", "hung")]
    if not ended:
        return None
    words = [f"{n.get('name')} {n.get('ended') or n.get('status')}"
             for n in ended[:ENDED_SHOWN]]
    more = f", and {len(ended) - ENDED_SHOWN} more" if len(ended) > ENDED_SHOWN else ""
    return ", ".join(words) + more


def failure_details(summary: dict[str, Any]) -> list[str]:
    """Every bug and failure in words, each failure followed by its node's last stderr."""
    lines = [f"bug: {bug_words(summary, b)}" for b in summary.get("bugs") or []]
    for failure in summary.get("failures") or []:
        lines.append(f"{failure.get('kind')}: {failure_words(summary, failure)}")
        tail = failure.get("stderr") or []
        if tail:
            lines.append("  its last stderr lines:")
            lines += [f"  | {line}" for line in tail]
    return lines
