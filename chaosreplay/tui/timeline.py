"""Timeline: the virtualized event list (only the rows on screen are ever read).

A recording may hold millions of events. The widget's virtual height is the event count
(or the number of matches, in matches-only mode); rendering a row looks it up in a small
cache, and a missing row is drawn as a placeholder while the widget asks for the window
around the visible area (`NeedEvents`); the screen reads it on the engine thread and hands
it back through `add_events`. Keys belong to the screen: the widget only draws and scrolls.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual import events
from textual.geometry import Size
from textual.message import Message
from textual.scroll_view import ScrollView
from textual.strip import Strip

from chaosreplay.debugger.filters import EventFilter
from chaosreplay.recording.model import Event
from chaosreplay.tui.event_format import timeline_row

CACHE_ROWS = 20_000
MARGIN = 100  # rows read beyond the visible ones, so stepping rarely waits


class Timeline(ScrollView, can_focus=True, inherit_bindings=False):
    """The event list with a cursor (see the module docstring)."""

    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "timeline--cursor", "timeline--pending", "timeline--error"}
    DEFAULT_CSS = """
    Timeline { height: 1fr; overflow-x: hidden; }
    Timeline > .timeline--cursor { background: $accent 40%; text-style: bold; }
    Timeline > .timeline--pending { color: $text-muted; }
    Timeline > .timeline--error { color: $error; }
    """

    @dataclass
    class NeedEvents(Message):
        """Rows to read: the range [first, end) of event numbers, or explicit numbers."""

        first: int
        end: int
        seqs: tuple[int, ...] | None = None

    @dataclass
    class Picked(Message):
        """The user clicked an event."""

        seq: int

    def __init__(self, total: int, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.total = total
        self.cursor = 0
        self.only: list[int] | None = None  # matches-only mode: the rows are these events
        self.event_filter: EventFilter | None = None
        self.bookmarks: Collection[int] = ()
        self.read_error: str | None = None
        self._cache: OrderedDict[int, Event] = OrderedDict()
        self._asked: tuple[int, int] | None = None  # the window requested and not yet loaded
        self._failed: tuple[int, int] | None = None  # the last window that came back short
        self.virtual_size = Size(0, total)

    # -- what the screen tells the widget ---------------------------------------------------

    @property
    def row_count(self) -> int:
        """Rows in the list (events, or matches in matches-only mode)."""
        return self.total if self.only is None else len(self.only)

    def cached(self, seq: int) -> Event | None:
        """The event if it has been read."""
        return self._cache.get(seq)

    def unreadable(self, seq: int) -> str | None:
        """Why an event could not be read (None: it was, or has not been asked for)."""
        if seq in self._cache or self._failed is None:
            return None
        row = self.row_of(seq)
        return self.read_error if self._failed[0] <= row < self._failed[1] else None

    def add_events(self, loaded: list[Event], requested: tuple[int, int],
                   error: str | None = None) -> None:
        """Rows read by the engine; a window that came back short is not asked for again
        (it would be asked for at every repaint), its missing rows read as unreadable."""
        for event in loaded:
            self._cache[event.seq] = event
            self._cache.move_to_end(event.seq)
        while len(self._cache) > CACHE_ROWS:
            self._cache.popitem(last=False)
        if self._asked == requested:
            self._asked = None
        wanted = requested[1] - requested[0] if self.only is None else None
        if error is not None or (wanted is not None and len(loaded) < wanted):
            self._failed = requested
            self.read_error = error or "not in the recording"
        self.refresh()

    def set_only(self, seqs: list[int] | None) -> None:
        """Show only these events (None: every event)."""
        self.only = seqs
        self._asked = self._failed = None
        self.virtual_size = Size(0, self.row_count)
        self.scroll_to_cursor(center=True)
        self.refresh()

    def rows_changed(self) -> None:
        """The matches-only list grew (the scan found more)."""
        self.virtual_size = Size(0, self.row_count)
        self._failed = None
        self.refresh()

    def row_of(self, seq: int) -> int:
        """The row that shows seq (in matches-only mode: the last match at or before it)."""
        if self.only is None:
            return seq
        return max(0, bisect_right(self.only, seq) - 1)

    def seq_of(self, row: int) -> int | None:
        """The event a row shows."""
        if not 0 <= row < self.row_count:
            return None
        return row if self.only is None else self.only[row]

    def move_to(self, seq: int) -> None:
        """Put the cursor on an event and scroll it into view."""
        self.cursor = seq
        self.scroll_to_cursor()
        self.refresh()

    def scroll_to_cursor(self, center: bool = False) -> None:
        """Scroll so the cursor's row is visible."""
        row = self.row_of(self.cursor)
        height = max(self.scrollable_content_region.height, 1)
        top = round(self.scroll_y)
        if center or row < top or row >= top + height:
            target = row - height // 2 if center or abs(row - top) > height else (
                row if row < top else row - height + 1)
            self.scroll_to(y=max(0, target), animate=False, immediate=True)

    # -- drawing ----------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        """One row: markers, then the event (or a placeholder while it is being read)."""
        width = self.scrollable_content_region.width
        row = round(self.scroll_y) + y
        seq = self.seq_of(row)
        base = self.rich_style
        if seq is None:
            return Strip.blank(width, base)
        event = self._cache.get(seq)
        if event is None:
            self._ask_window()
            if self._failed is not None and self._failed[0] <= row < self._failed[1]:
                text = Text(f"   #{seq:<8} unreadable: {self.read_error}",
                            self.get_component_rich_style("timeline--error"))
            else:
                text = Text(f"   #{seq:<8} …", self.get_component_rich_style("timeline--pending"))
        else:
            marks = ("◆" if seq in self.bookmarks else " ") + (
                "•" if self.event_filter is not None and not self.event_filter.empty
                and self.event_filter.matches(event) else " ")
            text = Text(marks + " ") + timeline_row(event)
        if seq == self.cursor:
            base = base + self.get_component_rich_style("timeline--cursor")
        text.truncate(width, overflow="ellipsis", pad=True)
        strip = Strip(list(text.render(self.app.console, end="")), width)
        return strip.apply_style(base).crop_extend(0, width, base)

    def _ask_window(self) -> None:
        """Request the rows around the visible area (once until they arrive)."""
        top = round(self.scroll_y)
        height = self.scrollable_content_region.height
        first_row = max(0, top - MARGIN)
        end_row = min(self.row_count, top + height + MARGIN)
        window = (first_row, end_row)
        if window in (self._asked, self._failed) or first_row >= end_row:
            return
        self._asked = window
        if self.only is None:
            self.post_message(self.NeedEvents(first_row, end_row))
        else:
            seqs = tuple(s for s in self.only[first_row:end_row] if s not in self._cache)
            self.post_message(self.NeedEvents(first_row, end_row, seqs))

    def on_resize(self, event: events.Resize) -> None:
        """Keep the cursor in view when the size changes (the first layout included: a
        seek made before it could not scroll)."""
        self.scroll_to_cursor()

    def on_click(self, event: events.Click) -> None:
        """Clicking a row moves the cursor there."""
        seq = self.seq_of(round(self.scroll_y) + event.y)
        if seq is not None:
            self.post_message(self.Picked(seq))
