"""Messages the engine thread posts to the debugger screen: small, one per result.

Each carries the tag it was asked with (an event number, a filter generation) so the
screen can drop answers to questions that are no longer current. Floods of the same kind
coalesce in the queue (`can_replace`) except the event windows, which all fill the cache.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message

from chaosreplay.debugger.views import SimulationState
from chaosreplay.recording.model import Event
from chaosreplay.tui.node_facts import NodeFacts


@dataclass
class EventsLoaded(Message):
    """Events for the timeline (or why they could not be read)."""

    requested: tuple[int, int]  # (first, end) of the range asked for
    events: list[Event]
    error: str | None = None


@dataclass
class StateLoaded(Message):
    """The reconstructed state after an event, or why there is none."""

    seq: int
    state: SimulationState | None
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        """An older state is never worth drawing once a newer one arrived."""
        return isinstance(message, StateLoaded)


@dataclass
class FactsLoaded(Message):
    """Per-node facts from the events at an event number."""

    seq: int
    facts: list[NodeFacts]
    error: str | None = None

    def can_replace(self, message: Message) -> bool:
        """Only the latest facts matter."""
        return isinstance(message, FactsLoaded)


@dataclass
class MatchesFound(Message):
    """A chunk of the match index scan for filter generation `generation`."""

    generation: int
    seqs: list[int]
    complete: bool
    error: str | None = None


@dataclass
class JumpFound(Message):
    """Where a seek or search landed (None: nothing there), for request `request`."""

    request: int
    seq: int | None
    what: str  # what was looked for, for the message when nothing is found
    error: str | None = None


@dataclass
class EngineNotice(Message):
    """Anything else the engine reports: a long job's progress or result."""

    topic: str
    value: Any = None
    error: str | None = None
    final: bool = True
