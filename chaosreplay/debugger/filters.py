"""Event filters: which recorded events a search, a "next match" or a timeline view shows.

A filter is written as words, e.g. ``fault bug node:1 "term 4"``:

- category words pick event kinds and are OR-ed: ``fault`` (fault.start/end), ``assert``
  (every assertion), ``failed`` (assertions that failed: always false, unreachable hit),
  ``bug``, ``status`` (node status changes), ``output``, ``sent``, ``delivered``,
  ``dropped``, ``packet`` (all packet events), ``syscall`` (any), ``syscall:NAME``, and
  ``kind:KIND`` for any event kind by its recorded name;
- ``node:N`` (repeatable, OR-ed; ``node:sim`` for simulation-level events) narrows to nodes;
- anything else is free text, matched case-insensitively against the event's kind and
  fields (output bytes as text); several words must all match.

The groups are AND-ed: ``fault bug node:1 leader`` is "a fault or a bug, on node 1,
mentioning leader". The empty filter matches everything.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording.model import Event

PACKET_KINDS = frozenset(k.value for k in EventKind if k.value.startswith("packet."))
CATEGORIES: dict[str, frozenset[str]] = {
    "fault": frozenset({EventKind.FAULT_START.value, EventKind.FAULT_END.value}),
    "assert": frozenset({EventKind.ASSERT.value}),
    "failed": frozenset({EventKind.ASSERT.value}),
    "bug": frozenset({EventKind.BUG.value}),
    "status": frozenset({EventKind.NODE_STATUS.value}),
    "output": frozenset({EventKind.OUTPUT.value}),
    "sent": frozenset({EventKind.PACKET_SENT.value}),
    "delivered": frozenset({EventKind.PACKET_DELIVERED.value}),
    "dropped": frozenset({EventKind.PACKET_DROPPED.value}),
    "packet": PACKET_KINDS,
    "syscall": frozenset({EventKind.SYSCALL.value}),
}
KNOWN_KINDS = frozenset(k.value for k in EventKind)


class FilterError(ValueError):
    """A filter that cannot be parsed (unknown category, bad node number)."""


def assertion_failed(fields: dict[str, Any]) -> bool:
    """Whether an assert event is a violation: an always that is false, an unreachable hit."""
    kind = fields.get("assert_kind")
    return (kind == AssertKind.ALWAYS and not fields.get("condition")) or (
        kind == AssertKind.UNREACHABLE and bool(fields.get("condition")))


def event_text(kind: str, fields: dict[str, Any]) -> str:
    """The searchable text of an event: its kind and every field value, lower-cased."""
    parts = [kind]
    for key, value in fields.items():
        if isinstance(value, bytes):
            value = value.decode("utf-8", "replace")
        parts.append(f"{key}={value}")
    return " ".join(parts).lower()


@dataclass(frozen=True)
class EventFilter:
    """A parsed filter (see the module docstring)."""

    kinds: frozenset[str] | None = None  # None: every kind
    nodes: frozenset[int] | None = None  # None: every node
    failed_only: bool = False  # "failed" alone: only violated assertions among asserts
    syscalls: frozenset[str] = frozenset()  # syscall:NAME words
    words: tuple[str, ...] = ()
    text: str = field(default="", compare=False)  # as written, for display

    @classmethod
    def parse(cls, text: str) -> EventFilter:
        """Parse a filter; FilterError names the word it cannot use."""
        try:
            tokens = shlex.split(text)
        except ValueError as exc:
            raise FilterError(f"filter {text!r}: {exc}") from None
        kinds: set[str] = set()
        nodes: set[int] = set()
        syscalls: set[str] = set()
        words: list[str] = []
        categories: set[str] = set()
        for token in tokens:
            head, colon, rest = token.partition(":")
            key = head.lower()
            if colon and key == "node":
                nodes.add(_node(rest))
            elif colon and key == "syscall":
                if not rest:
                    raise FilterError("syscall: needs a name, e.g. syscall:write")
                syscalls.add(rest.lower())
                kinds.add(EventKind.SYSCALL.value)
            elif colon and key == "kind":
                if rest not in KNOWN_KINDS:
                    raise FilterError(f"unknown event kind {rest!r} (kinds: "
                                      f"{', '.join(sorted(KNOWN_KINDS))})")
                kinds.add(rest)
            elif not colon and key in CATEGORIES:
                categories.add(key)
                kinds |= CATEGORIES[key]
            else:
                words.append(token.lower())
        # "failed" narrows assertions only when no other word asks for all of them.
        failed_only = "failed" in categories and "assert" not in categories
        if syscalls and "syscall" in categories:
            syscalls = set()  # "syscall" asked for every syscall
        return cls(frozenset(kinds) or None, frozenset(nodes) or None, failed_only,
                   frozenset(syscalls), tuple(words), text.strip())

    @property
    def empty(self) -> bool:
        """Whether the filter matches every event."""
        return self.kinds is None and self.nodes is None and not self.words

    def matches(self, event: Event) -> bool:
        """Whether one event passes the filter."""
        return self.matches_row(event.node, event.kind, event.fields)

    def matches_row(self, node: int, kind: str, fields: dict[str, Any]) -> bool:
        """`matches` on bare columns (the index scan avoids building Event objects)."""
        if self.kinds is not None and kind not in self.kinds:
            return False
        if self.nodes is not None and node not in self.nodes:
            return False
        if self.failed_only and kind == EventKind.ASSERT and not assertion_failed(fields):
            return False
        if self.syscalls and kind == EventKind.SYSCALL and fields.get("name") not in self.syscalls:
            return False
        if self.words:
            text = event_text(kind, fields)
            return all(word in text for word in self.words)
        return True


def _node(text: str) -> int:
    if text.lower() in ("sim", "simulation", "-1"):
        return -1
    if not text.isdigit():
        raise FilterError(f"node:{text}: expected a node number (or node:sim)")
    return int(text)

