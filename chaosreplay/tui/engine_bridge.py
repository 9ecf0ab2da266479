"""EngineBridge: the debugger screen's questions as engine jobs, the answers as messages."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from chaosreplay.debugger.filters import EventFilter
from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import RecordingError
from chaosreplay.recording.model import Event
from chaosreplay.tui.engine import EngineThread, JobResult, Priority
from chaosreplay.tui.messages import (
    EngineNotice,
    EventsLoaded,
    FactsLoaded,
    JumpFound,
    MatchesFound,
    StateLoaded,
)
from chaosreplay.tui.node_facts import node_facts


def _one_by_one(session: DebugSession,
                seqs: Iterable[int]) -> tuple[list[Event], str | None]:
    """The readable events among seqs, and the first reason one was not."""
    loaded, error = [], None
    for seq in seqs:
        try:
            loaded.append(session.event(seq))
        except (RecordingError, IndexError) as exc:
            error = error or str(exc)
    return loaded, error


class EngineBridge:
    """Submits jobs to one EngineThread and posts their results to `target`."""

    def __init__(self, engine: EngineThread, target: MessagePump) -> None:
        self.engine = engine
        self.target = target

    def _post(self, message: Message) -> None:
        self.target.post_message(message)  # thread-safe: Textual queues it on the UI loop

    def events(self, first: int, end: int, seqs: tuple[int, ...] | None = None) -> None:
        """Read timeline rows: the range [first, end), or the given event numbers."""
        def work(session: DebugSession) -> tuple[list[Event], str | None]:
            try:
                if seqs is None:
                    return session.events(first, end - first), None
                return [session.event(seq) for seq in seqs], None
            except RecordingError:
                # A damaged frame in the window: keep every row that can still be read.
                return _one_by_one(session, seqs or range(first, end))

        def done(r: JobResult) -> None:
            loaded, error = r.value if r.value is not None else ([], r.error)
            self._post(EventsLoaded((first, end), loaded, error))

        self.engine.submit("window", Priority.WINDOW, work, done)

    def state(self, seq: int) -> None:
        """Reconstruct the state after seq (replaces any waiting reconstruction)."""
        def done(r: JobResult) -> None:
            self._post(StateLoaded(r.tag, r.value, r.error))

        self.engine.submit("state", Priority.STATE, lambda s: s.state(seq), done, tag=seq)

    def facts(self, seq: int, nodes: list[int]) -> None:
        """Per-node facts from the events after seq."""
        def done(r: JobResult) -> None:
            self._post(FactsLoaded(r.tag, r.value or [], r.error))

        self.engine.submit("facts", Priority.FACTS, lambda s: node_facts(s, seq, nodes), done,
                           tag=seq)

    def scan(self, generation: int, event_filter: EventFilter) -> None:
        """Build the match index of a filter in chunks (a long job: others run between)."""
        def done(r: JobResult) -> None:
            chunk = r.value if isinstance(r.value, list) else []
            self._post(MatchesFound(r.tag, chunk, r.final, r.error))

        self.engine.submit("scan", Priority.BACKGROUND, lambda s: s.scan_matches(event_filter),
                           done, tag=generation)

    def stop_scan(self) -> None:
        """Forget the waiting scan (the filter changed to one that needs none)."""
        self.engine.cancel("scan")

    def jump(self, request: int, what: str, find: Callable[[DebugSession], int | None]) -> None:
        """Find where the cursor should go (a seek by tick, a match search)."""
        def done(r: JobResult) -> None:
            self._post(JumpFound(r.tag, r.value, what, r.error))

        self.engine.submit("jump", Priority.NAVIGATE, find, done, tag=request)

    def background(self, topic: str, work: Callable[[DebugSession], Any]) -> None:
        """Any other job; its steps and result come back as EngineNotice(topic)."""
        def done(r: JobResult) -> None:
            self._post(EngineNotice(topic, r.value, r.error, r.final))

        self.engine.submit(topic, Priority.BACKGROUND, work, done)
