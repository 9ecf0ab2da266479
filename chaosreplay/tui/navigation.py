"""Navigation: the debugger screen's moves — stepping, seeking, matches, bookmarks, filters.

A mixin of DebuggerScreen (which holds the cursor, the session and the engine bridge).
Answers that are already known on the UI thread (the match index, bookmarks) are used at
once; the rest (a seek by tick, a match past the indexed part) go to the engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosreplay.debugger.filters import EventFilter, FilterError
from chaosreplay.tui.filter_screen import FilterScreen
from chaosreplay.tui.help_screen import HelpScreen
from chaosreplay.tui.match_index import MatchIndex
from chaosreplay.tui.messages import JumpFound, MatchesFound
from chaosreplay.tui.prompt_screen import PromptScreen
from chaosreplay.tui.seek_target import SeekError, SeekTarget

if TYPE_CHECKING:
    from textual.app import App

    from chaosreplay.debugger.session import DebugSession
    from chaosreplay.tui.engine_bridge import EngineBridge
    from chaosreplay.tui.timeline import Timeline


def _seek_problem(text: str) -> str | None:
    try:
        SeekTarget.parse(text)
    except SeekError as exc:
        return str(exc)
    return None


def _filter_problem(text: str) -> str | None:
    try:
        EventFilter.parse(text)
    except FilterError as exc:
        return str(exc)
    return None


class Navigation:
    """Moves of the cursor and changes of the filter (see the module docstring)."""

    if TYPE_CHECKING:  # provided by DebuggerScreen
        app: App[None]
        session: DebugSession
        bridge: EngineBridge
        timeline: Timeline
        cursor: int
        event_filter: EventFilter
        matches: MatchIndex
        generation: int
        jump_request: int
        only_matches: bool

        def go(self, seq: int) -> None: ...
        def say(self, message: str, error: bool = False) -> None: ...
        def refresh_status(self) -> None: ...
        def _pane_node(self) -> int: ...

    # -- stepping ---------------------------------------------------------------------------

    def action_step(self, count: int) -> None:
        """Move by count events (in matches-only mode: by count matches)."""
        if self.only_matches and self.matches.seqs:
            row = self.timeline.row_of(self.cursor) + count
            seq = self.timeline.seq_of(max(0, min(row, self.timeline.row_count - 1)))
            if seq is not None:
                self.go(seq)
            return
        self.go(self.cursor + count)

    def action_page(self, direction: int) -> None:
        """Move by one screen of rows."""
        self.action_step(direction * max(1, self.timeline.scrollable_content_region.height - 1))

    def action_ends(self, last: int) -> None:
        """The first (0) or last (1) event."""
        self.go(self.session.event_count - 1 if last else 0)

    def action_node_step(self, direction: int) -> None:
        """The next (1) or previous (-1) event of the node whose pane is shown."""
        node, cursor = self._pane_node(), self.cursor
        self.jump_request += 1
        self.bridge.jump(self.jump_request, f"{'later' if direction > 0 else 'earlier'} "
                         f"event of node {node}",
                         lambda s: s.node_event(node, cursor, direction))

    def action_to_bug(self) -> None:
        """The run's first failure, from anywhere."""
        self.jump_request += 1
        self.bridge.jump(self.jump_request, "bug in this run", lambda s: s.first_bug())

    # -- seeking ----------------------------------------------------------------------------

    def action_seek(self) -> None:
        """Ask where to go."""
        self.app.push_screen(
            PromptScreen("Seek to", "a tick (12500), a time (12.5s, 300ms) or an event (#1234); "
                         "g: the first event", check=_seek_problem, at_once={"g": "#0"}),
            lambda text: self.seek_to(SeekTarget.parse(text)) if text else None)

    def seek_to(self, target: SeekTarget) -> None:
        """Go to an event number now, or find the first event of a tick on the engine."""
        if target.seq is not None:
            if target.seq >= self.session.event_count:
                self.say(f"#{target.seq} is past the end: the last event is "
                         f"#{self.session.event_count - 1}", error=True)
            self.go(target.seq)
            return
        tick = target.tick or 0
        self.jump_request += 1
        self.bridge.jump(self.jump_request, f"tick {tick}", lambda s: s.seek_tick(tick))

    def on_jump_found(self, message: JumpFound) -> None:
        """A seek or a search finished; go there unless something newer was asked."""
        if message.request != self.jump_request:
            return
        if message.error is not None:
            self.say(f"{message.what}: {message.error}", error=True)
        elif message.seq is None:
            self.say(f"no {message.what}")
        else:
            self.say("")
            self.go(message.seq)

    # -- matches ----------------------------------------------------------------------------

    def set_filter(self, text: str) -> bool:
        """Use a new filter (its match index is built in the background); False if bad."""
        try:
            new = EventFilter.parse(text)
        except FilterError as exc:
            self.say(str(exc), error=True)
            return False
        self.event_filter = new
        self.generation += 1
        self.matches = MatchIndex()
        self.timeline.event_filter = new
        if new.empty:
            self.bridge.stop_scan()
            self.matches.complete = True
            self.only_matches = False
            self.timeline.set_only(None)
        else:
            self.bridge.scan(self.generation, new)
            if self.only_matches:
                self.timeline.set_only(self.matches.seqs)
        self.say("")
        self.timeline.refresh()
        return True

    def on_matches_found(self, message: MatchesFound) -> None:
        """A chunk of the match index (for the current filter only)."""
        if message.generation != self.generation:
            return
        if message.error is not None:
            self.say(f"search stopped: {message.error}", error=True)
            self.matches.complete = True
        self.matches.add(message.seqs)
        self.matches.complete = self.matches.complete or message.complete
        if self.only_matches:
            self.timeline.rows_changed()
        self.refresh_status()

    def action_match(self, direction: int) -> None:
        """The next (1) or previous (-1) event that passes the filter."""
        if self.event_filter.empty:
            self.say("no filter: press f to pick one or / to search", error=True)
            return
        if direction > 0:
            known, seq = self.matches.next_after(self.cursor)
        else:
            known, seq = self.matches.prev_before(self.cursor)
        what = f"{'next' if direction > 0 else 'previous'} match for {self.event_filter.text!r}"
        if known:
            if seq is None:
                self.say(f"no {what}")
            else:
                self.say("")
                self.go(seq)
            return
        self.jump_request += 1
        event_filter, cursor = self.event_filter, self.cursor
        self.bridge.jump(self.jump_request, what,
                         (lambda s: s.next_match(event_filter, after=cursor)) if direction > 0
                         else (lambda s: s.prev_match(event_filter, before=cursor)))

    def action_filter(self) -> None:
        """Open the filter picker."""
        self.app.push_screen(FilterScreen(self.event_filter.text),
                             lambda text: self.set_filter(text) if text is not None else None)

    def action_search(self) -> None:
        """Ask for search words; they become the filter and the cursor goes to the next hit."""
        def searched(text: str | None) -> None:
            if text is not None and self.set_filter(text) and text.strip():
                self.action_match(1)

        self.app.push_screen(PromptScreen("Search", 'free text, or filter words: "term 4" '
                                          "node:1 fault syscall:write",
                                          self.event_filter.text, check=_filter_problem),
                             searched)

    def action_clear_filter(self) -> None:
        """Drop the filter."""
        self.set_filter("")

    def action_only_matches(self) -> None:
        """Show only the events that pass the filter, or every event again."""
        if self.event_filter.empty:
            self.say("no filter: press f to pick one or / to search", error=True)
            return
        self.only_matches = not self.only_matches
        self.timeline.set_only(self.matches.seqs if self.only_matches else None)
        if self.only_matches and self.matches.seqs and not self.matches.is_match(self.cursor):
            nearest = self.timeline.seq_of(self.timeline.row_of(self.cursor))
            self.go(self.cursor if nearest is None else nearest)
        self.refresh_status()

    # -- bookmarks and help -----------------------------------------------------------------

    def action_bookmark(self) -> None:
        """Toggle a bookmark at the cursor (the bookmarks stay on the UI thread: the engine
        never reads them)."""
        added = self.session.toggle_bookmark(self.cursor)
        self.timeline.bookmarks = self.session.bookmarks
        self.timeline.refresh()
        self.say(f"bookmark {'added at' if added else 'removed from'} #{self.cursor}")

    def action_to_bookmark(self, direction: int) -> None:
        """The next (1) or previous (-1) bookmark."""
        marks = self.session.bookmarks
        seq = (min((s for s in marks if s > self.cursor), default=None) if direction > 0
               else max((s for s in marks if s < self.cursor), default=None))
        if seq is None:
            self.say(f"no {'next' if direction > 0 else 'previous'} bookmark")
        else:
            self.say(f"bookmark {marks[seq].label}")
            self.go(seq)

    def action_help(self) -> None:
        """Show the keys."""
        self.app.push_screen(HelpScreen())
