"""DebuggerScreen: one recording — the timeline, the event under the cursor, the state panes
and the status line, driven by the keys in keys.py.

The cursor lives here, on the UI thread; every question about the recording goes to the
engine thread (engine_bridge.py) and comes back as a message, so no key ever waits for a
read or a reconstruction. Answers that are no longer current (the cursor moved on, the
filter changed) are dropped by their tags. Navigation and filtering are in navigation.py,
what-if and memory in cursor_tools.py.
"""

from __future__ import annotations

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer, Static, TabbedContent, TabPane

from chaosreplay.debugger.filters import EventFilter
from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.views import SimulationState
from chaosreplay.tui.cursor_tools import CursorTools
from chaosreplay.tui.engine import EngineThread
from chaosreplay.tui.engine_bridge import EngineBridge
from chaosreplay.tui.event_format import event_detail
from chaosreplay.tui.faults_pane import FaultsPane
from chaosreplay.tui.keys import bindings
from chaosreplay.tui.match_index import MatchIndex
from chaosreplay.tui.messages import EventsLoaded, FactsLoaded, StateLoaded
from chaosreplay.tui.navigation import Navigation
from chaosreplay.tui.network_pane import NetworkPane
from chaosreplay.tui.node_facts import NodeFacts, recorded_nodes
from chaosreplay.tui.node_pane import NodePane
from chaosreplay.tui.oracle_pane import OraclePane
from chaosreplay.tui.seek_target import SeekTarget
from chaosreplay.tui.state_pane import PaneContext, StatePane
from chaosreplay.tui.status_line import StatusInfo, StatusLine
from chaosreplay.tui.timeline import Timeline


def short_message(text: str, session: DebugSession) -> str:
    """A message without the recording's full path (the title already names the file)."""
    return text.replace(f"{session.path}: ", "").replace(str(session.path), session.path.name)


class DebuggerScreen(Navigation, CursorTools, Screen[None]):
    """The debugger over one session (see the module docstring)."""

    BINDINGS = bindings()
    DEFAULT_CSS = """
    DebuggerScreen #timeline { height: 1fr; min-height: 6; border-bottom: solid $panel; }
    DebuggerScreen #detail { height: 5; padding: 0 1; background: $boost; }
    DebuggerScreen #panes { height: 55%; }
    DebuggerScreen.-compact #timeline { height: 6; min-height: 3; }
    DebuggerScreen.-compact #detail { height: 3; }
    DebuggerScreen.-compact #panes { height: 1fr; }
    """
    COMPACT_ROWS = 32  # below this the detail shrinks so the status line and keys stay

    def __init__(self, session: DebugSession, *, seek: SeekTarget | None = None,
                 filter_text: str = "", closable: bool = False,
                 owns_session: bool = False, intro: str = "", open_at_bug: bool = False) -> None:
        super().__init__()
        self.session = session
        self.owns_session = owns_session  # close it with the screen (a branch, a triage run)
        self.initial_seek = seek
        self.initial_filter = filter_text
        self.open_at_bug = open_at_bug
        self.follow_pending = False  # the cursor moved: show its node's pane once known
        self.closable = closable  # q goes back to the screen below instead of quitting
        self.engine = EngineThread(session)
        self.bridge = EngineBridge(self.engine, self)
        self.nodes = recorded_nodes(session)
        self.cursor = 0
        self.event_filter = EventFilter()
        self.matches = MatchIndex()
        self.generation = 0  # of the filter, tags its match scan
        self.jump_request = 0  # tags seeks and searches
        self.only_matches = False
        self.state: SimulationState | None = None
        self.state_error: str | None = None
        self.facts: dict[int, NodeFacts] = {}
        self.watches: dict[int, list[str]] = {}  # per node (the session holds the same)
        self.message = intro
        self.is_error = False
        self.unavailable = (None if session.cannot_reconstruct is None
                            else short_message(session.cannot_reconstruct, session))

    def compose(self) -> ComposeResult:
        yield Timeline(self.session.event_count, id="timeline")
        yield Static(id="detail")
        with TabbedContent(id="panes"):
            for node in self.nodes:
                with TabPane(f"node {node}", id=f"node-{node}"):
                    yield NodePane(node)
            with TabPane("network", id="network"):
                yield NetworkPane()
            with TabPane("faults", id="faults"):
                yield FaultsPane()
            with TabPane("oracle", id="oracle"):
                yield OraclePane()
        yield StatusLine(id="status")
        yield Footer()

    @property
    def timeline(self) -> Timeline:
        """The event list."""
        return self.query_one(Timeline)

    def on_mount(self) -> None:
        self.engine.start()
        self.title = self.session.path.name
        self.timeline.focus()
        if self.session.damage:
            self.say("damaged recording: " + short_message("; ".join(self.session.damage),
                                                           self.session), error=True)
        if self.initial_filter:
            self.set_filter(self.initial_filter)
        if self.initial_seek is not None:
            self.seek_to(self.initial_seek)
        else:
            self.go(0)
            if self.open_at_bug:
                self.action_to_bug()

    def on_resize(self, event: events.Resize) -> None:
        self.set_class(event.size.height < self.COMPACT_ROWS, "-compact")

    def on_unmount(self) -> None:
        if self.engine.stop() and self.owns_session:
            self.session.close()  # never under a reconstruction that is still running

    # -- the cursor -------------------------------------------------------------------------

    def go(self, seq: int) -> None:
        """Move the cursor; ask for the facts and the state there (latest request wins)."""
        self.cursor = max(0, min(seq, self.session.event_count - 1))
        self.follow_pending = True
        self.timeline.move_to(self.cursor)
        self.bridge.facts(self.cursor, self.nodes)
        if self.unavailable is None:
            self.state_error = None
            self.bridge.state(self.cursor)
        self.refresh_view()

    def say(self, message: str, error: bool = False) -> None:
        """Put a message on the status line (until the next one)."""
        self.message, self.is_error = message, error
        self.refresh_status()

    def short(self, text: str) -> str:
        """A message without the recording's directory."""
        return short_message(text, self.session)

    def reconstructing(self) -> bool:
        """Whether the state at the cursor is still being computed."""
        return (self.unavailable is None and self.state_error is None
                and (self.state is None or self.state.seq != self.cursor))

    def refresh_view(self) -> None:
        """Redraw the detail, the panes and the status line from what is known now."""
        event = self.timeline.cached(self.cursor)
        if event is not None and self.follow_pending:
            self.follow_pending = False
            self.follow_node(event.node)
        problem = self.timeline.unreadable(self.cursor)
        self.query_one("#detail", Static).update(
            event_detail(event) if event is not None
            else Text(f"#{self.cursor} unreadable: {short_message(problem, self.session)}",
                      "red") if problem is not None else f"#{self.cursor} …")
        self.refresh_panes()
        self.refresh_status()

    def refresh_panes(self) -> None:
        """Redraw the pane on show; the hidden ones are drawn when their tab opens (drawing
        every pane at every step would cost more than the step)."""
        context = PaneContext(self.cursor, self.state, self.facts, self.reconstructing(),
                              self.state_error, self.unavailable)
        active = self.query_one(TabbedContent).active
        for pane in self.query(StatePane):
            parent = pane.parent
            if parent is not None and parent.id == active:
                pane.update_from(context)

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        self.refresh_panes()

    def refresh_status(self) -> None:
        """Redraw the status line."""
        event = self.timeline.cached(self.cursor)
        self.query_one(StatusLine).show(StatusInfo(
            cursor=self.cursor, total=self.session.event_count,
            tick=None if event is None else event.tick,
            filter_text="" if self.event_filter.empty else self.event_filter.text,
            match_position=self.matches.position(self.cursor),
            match_count=len(self.matches), matches_complete=self.matches.complete,
            is_match=self.matches.is_match(self.cursor), only_matches=self.only_matches,
            bookmarks=len(self.session.bookmarks), reconstructing=self.reconstructing(),
            message=self.message, is_error=self.is_error,
            warning="damaged recording" if self.session.damage else ""))

    # -- answers from the engine ------------------------------------------------------------

    def on_timeline_need_events(self, message: Timeline.NeedEvents) -> None:
        self.bridge.events(message.first, message.end, message.seqs)

    def on_timeline_picked(self, message: Timeline.Picked) -> None:
        self.go(message.seq)

    def on_events_loaded(self, message: EventsLoaded) -> None:
        self.timeline.add_events(message.events, message.requested, message.error)
        if message.error is not None:
            self.say(f"cannot read events: {short_message(message.error, self.session)}",
                     error=True)
        self.refresh_view()

    def on_state_loaded(self, message: StateLoaded) -> None:
        if message.state is not None:
            self.state = message.state
        elif message.seq == self.cursor:
            self.state_error = short_message(message.error or "no state", self.session)
        self.refresh_view()

    def on_facts_loaded(self, message: FactsLoaded) -> None:
        if message.error is not None:
            self.say(f"cannot read events: {short_message(message.error, self.session)}",
                     error=True)
        self.facts = {f.node: f for f in message.facts}
        self.refresh_view()

    # -- panes ------------------------------------------------------------------------------

    def active_pane(self) -> str:
        """The id of the pane on show ("node-0", "network", ...)."""
        return self.query_one(TabbedContent).active

    def action_pane(self, direction: int) -> None:
        """Show the next (1) or previous (-1) pane."""
        tabs = self.query_one(TabbedContent)
        ids = [pane.id for pane in tabs.query(TabPane) if pane.id]
        at = ids.index(tabs.active) if tabs.active in ids else 0
        tabs.active = ids[(at + direction) % len(ids)]

    def follow_node(self, node: int) -> None:
        """When a node's pane is on show, show the pane of the node of the cursor's event
        (sim-level events keep the pane)."""
        tabs = self.query_one(TabbedContent)
        if node in self.nodes and tabs.active.startswith("node-"):
            tabs.active = f"node-{node}"

    def action_node_pane(self, index: int) -> None:
        """Show a node's pane (keys 1–9)."""
        if index < len(self.nodes):
            self.query_one(TabbedContent).active = f"node-{self.nodes[index]}"

    def action_quit(self) -> None:
        """Leave the debugger (back to the screen below when opened from one)."""
        if self.closable:
            self.dismiss(None)
        else:
            self.app.exit()
