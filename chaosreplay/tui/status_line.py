"""StatusLine: where the cursor is, what is filtered, what is running, what went wrong."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static


@dataclass(frozen=True)
class StatusInfo:
    """Everything the status line shows."""

    cursor: int
    total: int
    tick: int | None  # None while the cursor's event is being read
    filter_text: str = ""
    match_position: int = 0  # matches at or before the cursor
    match_count: int = 0
    matches_complete: bool = True
    is_match: bool = False
    only_matches: bool = False
    bookmarks: int = 0
    reconstructing: bool = False
    message: str = ""
    is_error: bool = False
    warning: str = ""  # stays while the message changes (a damaged recording)

    def render(self) -> Text:
        """The line as styled text."""
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.warning:
            text.append(f" ⚠ {self.warning} ", "bold red")
        text.append(f" tick {'…' if self.tick is None else self.tick}", "bold")
        percent = 100.0 * self.cursor / max(self.total - 1, 1)
        text.append(f" · #{self.cursor}/{self.total - 1} ({percent:.1f}%)")
        if self.filter_text:
            text.append(" · filter ", "dim")
            text.append(self.filter_text, "bold")
            more = "" if self.matches_complete else "+"
            if self.match_count or self.matches_complete:
                mark = "" if self.is_match else "~"
                text.append(f" match {mark}{self.match_position}/{self.match_count}{more}")
            else:
                text.append(" indexing…", "italic")
            if self.only_matches:
                text.append(" (matches only)", "italic")
        if self.bookmarks:
            text.append(f" · ◆ {self.bookmarks}")
        if self.reconstructing:
            text.append(" · reconstructing…", "italic yellow")
        if self.message:
            text.append(" · ")
            text.append(self.message, "bold red" if self.is_error else "")
        return text


class StatusLine(Static):
    """The one-line status bar."""

    DEFAULT_CSS = """
    StatusLine { height: 1; background: $panel; }
    """

    def show(self, info: StatusInfo) -> None:
        """Redraw from info."""
        self.update(info.render())
