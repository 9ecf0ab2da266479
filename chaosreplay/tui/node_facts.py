"""What the events alone say about each node at the cursor (no reconstruction needed).

The last system call comes from the recording, not from a state; the status and output
come from events too, so a recording whose states cannot be reconstructed (no run
manifest, an unusable host) still shows them. Runs on the engine thread.
"""

from __future__ import annotations

from dataclasses import dataclass

from chaosreplay.debugger.session import DebugSession
from chaosreplay.events import EventKind
from chaosreplay.recording.model import Event

OUTPUT_EVENTS = 200  # output events gathered backwards for a tail
OUTPUT_LINES = 40


@dataclass(frozen=True)
class NodeFacts:
    """One node up to an event: its last syscall, status and output tail."""

    node: int
    last_syscall: Event | None
    status: str | None  # from the last node.status event (None: never changed)
    output_tail: str  # the last lines written (stdout and stderr interleaved)


def recorded_nodes(session: DebugSession) -> list[int]:
    """The nodes of a run: from its scenario, else those that have events."""
    scenario = getattr(session, "scenario", None)
    if scenario is not None:
        return list(range(sum(group.count for group in scenario.nodes)))
    return sorted(n for n in session.reader.counts_by_node if n >= 0)


def node_facts(session: DebugSession, seq: int, nodes: list[int]) -> list[NodeFacts]:
    """Facts of every node just after event seq."""
    reader = session.reader
    facts = []
    for node in nodes:
        last_syscall = next(reader.events_before(seq + 1, [EventKind.SYSCALL.value], [node]),
                            None)
        status_event = next(reader.events_before(seq + 1, [EventKind.NODE_STATUS.value],
                                                 [node]), None)
        chunks: list[bytes] = []
        lines = 0
        for event in reader.events_before(seq + 1, [EventKind.OUTPUT.value], [node]):
            data = event.fields.get("data", b"")
            chunks.append(data if isinstance(data, bytes) else str(data).encode())
            lines += chunks[-1].count(b"\n")
            if lines > OUTPUT_LINES or len(chunks) >= OUTPUT_EVENTS:
                break
        text = b"".join(reversed(chunks)).decode("utf-8", "replace")
        facts.append(NodeFacts(
            node, last_syscall,
            None if status_event is None else str(status_event.fields.get("status")),
            "\n".join(text.splitlines()[-OUTPUT_LINES:])))
    return facts
