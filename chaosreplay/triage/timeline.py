"""The last events of each node before a failure, in words: what a reader of a report needs
to see the failure coming.

System calls, checkpoints and assertions that merely held are left out: a node makes
thousands of them and they bury the messages, faults, status changes and output that
explain a failure. A node that did nothing else in the recent past shows its system calls
instead, so that no node's timeline is empty for lack of interesting events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from chaosreplay.events import EventKind
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.model import Event

TIMELINE_EVENTS = 8
SCAN_LIMIT = 50_000  # events looked at per node before settling for what was found
_TEXT_LIMIT = 120
_NOISE = (EventKind.SYSCALL.value, EventKind.CHECKPOINT.value)


@dataclass(frozen=True)
class TimelineEvent:
    """One event of a timeline."""

    seq: int
    tick: int
    kind: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for reports)."""
        return {"seq": self.seq, "tick": self.tick, "kind": self.kind, "text": self.text}


@dataclass(frozen=True)
class NodeTimeline:
    """A node's (or the simulation's, node -1) last events before a failure, oldest first."""

    node: int
    events: tuple[TimelineEvent, ...]
    syscalls_only: bool  # nothing but system calls happened on it recently

    @property
    def name(self) -> str:
        """"node N", or "simulation" for node -1."""
        return "simulation" if self.node < 0 else f"node {self.node}"

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for reports)."""
        return {"node": self.node, "syscalls_only": self.syscalls_only,
                "events": [e.to_dict() for e in self.events]}


def timeline(reader: RecordingReader, before_seq: int,
             per_node: int = TIMELINE_EVENTS) -> list[NodeTimeline]:
    """The last `per_node` useful events of every node with events before `before_seq`."""
    out = []
    for node in sorted(reader.counts_by_node):
        picked: list[Event] = []
        syscalls: list[Event] = []
        for scanned, event in enumerate(reader.events_before(before_seq, nodes=(node,))):
            if len(picked) >= per_node or scanned >= SCAN_LIMIT:
                break
            if _useful(event):
                picked.append(event)
            elif event.kind == EventKind.SYSCALL.value and len(syscalls) < per_node:
                syscalls.append(event)
        chosen = picked or syscalls
        if chosen:
            out.append(NodeTimeline(node, tuple(_entry(e) for e in reversed(chosen)),
                                    not picked))
    return out


def _useful(event: Event) -> bool:
    """Whether an event tells a reader something (see the module docstring)."""
    if event.kind in _NOISE:
        return False
    if event.kind == EventKind.ASSERT.value:
        return not _held(event.fields)
    return True


def _held(fields: Mapping[str, Any]) -> bool:
    """An always that held or a sometimes still false: an evaluation that changed nothing."""
    kind, condition = fields.get("assert_kind"), bool(fields.get("condition"))
    return (kind == AssertKind.ALWAYS and condition) or (kind == AssertKind.SOMETIMES
                                                          and not condition)


def _entry(event: Event) -> TimelineEvent:
    text = describe_event(event.kind, event.fields)
    if len(text) > _TEXT_LIMIT:
        text = text[:_TEXT_LIMIT - 1] + "…"
    return TimelineEvent(event.seq, event.tick, event.kind, text)


def describe_event(kind: str, f: Mapping[str, Any]) -> str:
    """An event's fields in a few words."""
    if kind == EventKind.OUTPUT.value:
        data = f.get("data", b"")
        text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(data)
        stream = "stderr" if f.get("fd") == 2 else "stdout"
        return f"{stream}: {' | '.join(line for line in text.splitlines() if line.strip())}"
    if kind == EventKind.PACKET_SENT.value:
        return f"sent #{f.get('packet_id')} to n{f.get('dst')} ({f.get('size')} B)"
    if kind == EventKind.PACKET_DELIVERED.value:
        return f"received #{f.get('packet_id')} from n{f.get('src')} ({f.get('size')} B)"
    if kind == EventKind.PACKET_DROPPED.value:
        return (f"dropped #{f.get('packet_id')} n{f.get('src')}→n{f.get('dst')}: "
                f"{f.get('reason')}")
    if kind in (EventKind.FAULT_START.value, EventKind.FAULT_END.value):
        return _describe_fault(kind, f)
    if kind == EventKind.NODE_STATUS.value:
        return f"status {f.get('status')} ({f.get('reason')})"
    if kind == EventKind.ASSERT.value:
        return _describe_assert(f)
    if kind == EventKind.BUG.value:
        where = f"{f.get('file')}:{f.get('line')}"
        return f"BUG {f.get('assert_kind')} \"{f.get('message')}\" at {where}"
    if kind == EventKind.CRASH.value:
        if f.get("reason") == "hang":
            return "hung: no VM exit past the hang timeout"
        return f"crash signal {f.get('signal')} ({f.get('reason')}) in {f.get('symbol')}"
    if kind == EventKind.SYSCALL.value:
        args = ", ".join(hex(a) if isinstance(a, int) and a > 4096 else str(a)
                         for a in f.get("args", [])[:3])
        return f"{f.get('name')}({args}, …) = {f.get('ret')}"
    return " ".join(f"{k}={_short(v)}" for k, v in f.items()) or kind


def _describe_fault(kind: str, f: Mapping[str, Any]) -> str:
    fault = f.get("fault") or {}
    params = ", ".join(f"{k}={_short(v)}" for k, v in fault.items()
                       if k not in ("kind", "at", "duration"))
    what = f"{fault.get('kind')}{f' ({params})' if params else ''}"
    if kind == EventKind.FAULT_START.value:
        lasting = f" for {fault.get('duration')} ms" if fault.get("duration") else ""
        return f"fault starts: {what}{lasting}"
    return f"fault ends: {what} ({f.get('reason', 'ended')})"


def _describe_assert(f: Mapping[str, Any]) -> str:
    try:
        kind = AssertKind(int(f.get("assert_kind", -1))).name.lower()
    except ValueError:
        kind = str(f.get("assert_kind"))
    verdict = {"always": "FAILED", "sometimes": "satisfied", "reachable": "reached",
               "unreachable": "REACHED"}.get(kind, str(f.get("condition")))
    return f"{kind} {verdict}: \"{f.get('message')}\""


def _short(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"
