"""A debugging session over one recording: the cursor, bookmarks, searching, and states.

This is the debugger without a screen (the TUI in tui/ is one front end, `chaosreplay
state` another, tests a third); nothing here imports Textual. The cursor is an event
number. Moving it is cheap (events come from the recording's index); asking for the state
at it re-executes from a checkpoint (reconstruct.py), which is cached.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from chaosreplay.debugger.changes import Change, ChangeSearch
from chaosreplay.debugger.filters import EventFilter
from chaosreplay.debugger.packets import PacketView, packet_view
from chaosreplay.debugger.payloads import PayloadDecoder, make_decoder
from chaosreplay.debugger.reconstruct import Reconstructor
from chaosreplay.debugger.views import SimulationState
from chaosreplay.errors import ChaosReplayError, RecordingError
from chaosreplay.events import EventKind
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.model import Event
from chaosreplay.runs.record_replay import load_run

SCAN_CHUNK = 50_000  # events per progress report of a match scan
FAILURE_KINDS = (EventKind.BUG.value, EventKind.CRASH.value, EventKind.VMM_BUG.value)


@dataclass(frozen=True)
class Bookmark:
    """A named event."""

    seq: int
    label: str


class DebugSession:
    """One opened recording with a cursor (see the module docstring)."""

    def __init__(self, path: str | os.PathLike[str], hang_seconds: float = 10.0) -> None:
        self.path = Path(path)
        self.reader = RecordingReader(self.path)  # RecordingError: unreadable
        if self.reader.event_count == 0:
            self.reader.close()
            raise RecordingError(f"{self.path}: the recording holds no events")
        self.cursor = 0
        self.bookmarks: dict[int, Bookmark] = {}
        self.reconstructor: Reconstructor | None = None
        self.cannot_reconstruct: str | None = None  # why states are unavailable
        self._searches: dict[tuple[int, str], ChangeSearch] = {}  # keep their samples
        self.decoder: PayloadDecoder | None = None  # renders packet payloads as fields
        self.decoder_problem: str | None = None  # why the scenario's decoder is not used
        try:
            scenario, images, options = load_run(self.reader)
            self.scenario = scenario
            self.reconstructor = Reconstructor(self.reader, scenario, images, hang_seconds,
                                               options.keep_going)
        except ChaosReplayError as exc:
            self.cannot_reconstruct = str(exc)
        else:
            if scenario.packet_decoder:
                try:
                    self.set_decoder(scenario.packet_decoder)
                except ChaosReplayError as exc:
                    self.decoder_problem = str(exc)

    # -- the recording ---------------------------------------------------------------------

    @property
    def event_count(self) -> int:
        """Events in the recording."""
        return self.reader.event_count

    @property
    def damage(self) -> list[str]:
        """Problems found while opening (a truncated file still opens, read-only)."""
        return list(self.reader.damage)

    def event(self, seq: int | None = None) -> Event:
        """The event at seq (default: the cursor)."""
        return self.reader.event(self.cursor if seq is None else seq)

    def events(self, first: int, count: int) -> list[Event]:
        """`count` events from `first` on (a window of the timeline)."""
        return list(islice(self.reader.events(from_seq=max(first, 0)), max(count, 0)))

    # -- moving ----------------------------------------------------------------------------

    def seek(self, seq: int) -> int:
        """Put the cursor on event seq (clamped to the recording)."""
        self.cursor = max(0, min(seq, self.event_count - 1))
        return self.cursor

    def step(self, count: int = 1) -> int:
        """Move the cursor by count events (negative: back)."""
        return self.seek(self.cursor + count)

    def seek_tick(self, tick: int) -> int:
        """Put the cursor on the first event at or after tick (the last one if none)."""
        return self.seek(self.reader.seq_at_tick(tick))

    def node_event(self, node: int, at: int, direction: int) -> int | None:
        """The first event of `node` after `at` (direction 1) or the last before it (-1)."""
        if direction > 0:
            found = next(self.reader.events(from_seq=at + 1, nodes=[node]), None)
        else:
            found = next(self.reader.events_before(at, nodes=[node]), None)
        return None if found is None else found.seq

    def first_bug(self) -> int | None:
        """The run's first failure: a broken property, a crash or hang, a VMM bug."""
        found = next(self.reader.events(kinds=FAILURE_KINDS), None)
        return None if found is None else found.seq

    def next_match(self, event_filter: EventFilter, after: int | None = None) -> int | None:
        """The first event after `after` (default: the cursor) that passes; None if none."""
        start = (self.cursor if after is None else after) + 1
        for event in self.reader.events(from_seq=start, kinds=event_filter.kinds,
                                        nodes=event_filter.nodes):
            if event_filter.matches(event):
                return event.seq
        return None

    def prev_match(self, event_filter: EventFilter, before: int | None = None) -> int | None:
        """The last event before `before` (default: the cursor) that passes; None if none."""
        end = self.cursor if before is None else before
        for event in self.reader.events_before(end, event_filter.kinds, event_filter.nodes):
            if event_filter.matches(event):
                return event.seq
        return None

    def scan_matches(self, event_filter: EventFilter,
                     cancelled: Callable[[], bool] = lambda: False) -> Iterator[list[int]]:
        """Every matching event number, in chunks (for an index built in the background)."""
        chunk: list[int] = []
        events = self.reader.events(kinds=event_filter.kinds, nodes=event_filter.nodes)
        for scanned, event in enumerate(events, 1):
            if event_filter.matches(event):
                chunk.append(event.seq)
            if scanned % SCAN_CHUNK == 0:
                if cancelled():
                    return
                yield chunk
                chunk = []
        yield chunk

    # -- bookmarks ------------------------------------------------------------------------

    def toggle_bookmark(self, seq: int | None = None, label: str = "") -> bool:
        """Add a bookmark at seq (default: the cursor), or remove it; True when added."""
        seq = self.cursor if seq is None else seq
        if seq in self.bookmarks:
            del self.bookmarks[seq]
            return False
        self.bookmarks[seq] = Bookmark(seq, label or f"#{len(self.bookmarks) + 1}")
        return True

    def next_bookmark(self) -> int | None:
        """The first bookmark after the cursor."""
        return min((s for s in self.bookmarks if s > self.cursor), default=None)

    def prev_bookmark(self) -> int | None:
        """The last bookmark before the cursor."""
        return max((s for s in self.bookmarks if s < self.cursor), default=None)

    # -- packets --------------------------------------------------------------------------

    def set_decoder(self, spec: str) -> None:
        """Decode packet payloads with `spec` (payloads.py; DecoderError when unusable)."""
        rec = self._reconstructor()
        specs = self.scenario.node_specs()
        self.decoder = make_decoder(spec, rec.programs, lambda node: specs[node].group
                                    if 0 <= node < len(specs) else -1)

    def packet(self, seq: int | None = None) -> PacketView | None:
        """The packet of event seq (default: the cursor): payload, fields, its two ends;
        None when the event is not about a packet."""
        return packet_view(self.reader, self.cursor if seq is None else seq, self.decoder)

    # -- state ----------------------------------------------------------------------------

    def state(self, seq: int | None = None) -> SimulationState:
        """The whole simulation just after event seq (default: the cursor)."""
        return self._reconstructor().state(self.cursor if seq is None else seq)

    def memory(self, node: int, where: int | str, size: int,
               seq: int | None = None) -> tuple[int, bytes | None]:
        """(address, bytes) of a node's memory at an address or a symbol's address."""
        rec = self._reconstructor()
        if isinstance(where, str):
            address = rec.symbol_address(node, where)
            if address is None:
                raise ChaosReplayError(f"node {node}'s program has no symbol {where!r}")
        else:
            address = where
        return address, rec.memory(self.cursor if seq is None else seq, node, address, size)

    def set_watches(self, node: int, expressions: list[str]) -> None:
        """A node's watch list, shown in its states (WatchError: one does not parse)."""
        self._reconstructor().set_watches(node, expressions)

    def find_change(self, node: int, expression: str, at: int,
                    forward: bool = False) -> Change | None:
        """The last event at or before `at` (forward: the first after it) at which a watched
        value of a node changed (changes.py); None when there is none."""
        search = self.change_search(node, expression)
        return search.next_change(at) if forward else search.last_change(at)

    def change_search(self, node: int, expression: str) -> ChangeSearch:
        """The change search of one watched value (kept: its checkpoint samples serve the
        next question)."""
        key = (node, expression)
        search = self._searches.get(key)
        if search is None:
            search = self._searches[key] = ChangeSearch(self._reconstructor(), node, expression)
        return search

    def _reconstructor(self) -> Reconstructor:
        if self.reconstructor is None:
            raise RecordingError(f"{self.path}: states cannot be reconstructed: "
                                 f"{self.cannot_reconstruct}")
        return self.reconstructor

    def close(self) -> None:
        """Release the recording and the live simulations."""
        if self.reconstructor is not None:
            self.reconstructor.close()
        self.reader.close()

    def __enter__(self) -> DebugSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
