"""FilterScreen: the filter picker — categories as checkboxes, nodes, and free text.

It edits the filter's words (filters.py), so whatever it builds could have been typed with
`/` or `--filter`, and a filter typed there opens here with its boxes ticked.
"""

from __future__ import annotations

import shlex
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, Label, Static

from chaosreplay.debugger.filters import CATEGORIES, EventFilter, FilterError


def split_filter(text: str) -> tuple[set[str], list[str], str]:
    """(categories, node words, the rest) of a filter's words."""
    try:
        tokens = shlex.split(text)
    except ValueError:
        return set(), [], text
    categories = {t.lower() for t in tokens if t.lower() in CATEGORIES}
    nodes = [t.partition(":")[2] for t in tokens if t.lower().startswith("node:")]
    rest = [t for t in tokens if t.lower() not in CATEGORIES and not t.lower().startswith("node:")]
    return categories, nodes, " ".join(shlex.quote(t) for t in rest)


def join_filter(categories: list[str], nodes: str, text: str) -> str:
    """Filter words from the picker's fields (nodes as "1 2" or "1,sim")."""
    words = list(categories)
    words += [f"node:{n}" for n in nodes.replace(",", " ").split()]
    if text.strip():
        words.append(text.strip())
    return " ".join(words)


class FilterScreen(ModalScreen[str | None]):
    """Pick a filter; returns its text ("" clears it), or None when cancelled."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    FilterScreen { align: center middle; }
    FilterScreen > Vertical { width: 84; height: auto; border: thick $accent;
                              background: $surface; padding: 1 2; }
    FilterScreen Grid { grid-size: 4; height: auto; grid-gutter: 0 1; }
    FilterScreen Checkbox { width: 1fr; }
    FilterScreen Horizontal { height: auto; }
    FilterScreen .filter-label { width: 12; padding: 1 0; }
    FilterScreen Input { width: 1fr; }
    FilterScreen #filter-error { color: $error; }
    FilterScreen Button { margin: 1 1 0 0; }
    """

    def __init__(self, current: str = "") -> None:
        super().__init__()
        self.current = current

    def compose(self) -> ComposeResult:
        checked, nodes, rest = split_filter(self.current)
        with Vertical():
            yield Label("Filter events (categories are OR-ed, then AND-ed with node and text)")
            with Grid():
                for name in CATEGORIES:
                    yield Checkbox(name, name in checked, id=f"cat-{name}")
            with Horizontal():
                yield Label("node(s)", classes="filter-label")
                yield Input(" ".join(nodes), placeholder="e.g. 1  or  0,2  or  sim",
                            id="filter-nodes")
            with Horizontal():
                yield Label("text", classes="filter-label")
                yield Input(rest, placeholder='free text, syscall:write, kind:crash, "term 4"',
                            id="filter-text")
            yield Static("", id="filter-error")
            with Horizontal():
                yield Button("Apply", variant="primary", id="filter-apply")
                yield Button("Clear", id="filter-clear")
                yield Button("Cancel", id="filter-cancel")

    def on_mount(self) -> None:
        for field in self.query(Input):
            field.cursor_blink = False  # steady, so screenshots are stable
        self.query_one("#filter-text", Input).focus()

    def built(self) -> str:
        """The filter text the fields describe."""
        categories = [name for name in CATEGORIES
                      if self.query_one(f"#cat-{name}", Checkbox).value]
        return join_filter(categories, self.query_one("#filter-nodes", Input).value,
                           self.query_one("#filter-text", Input).value)

    def apply(self) -> None:
        """Return the filter if it parses, else say why."""
        text = self.built()
        try:
            EventFilter.parse(text)
        except FilterError as exc:
            self.query_one("#filter-error", Static).update(str(exc))
            return
        self.dismiss(text)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Enter in a field applies."""
        event.stop()
        self.apply()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        """Apply, clear or cancel."""
        if event.button.id == "filter-apply":
            self.apply()
        elif event.button.id == "filter-clear":
            self.dismiss("")
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        """Close without changing the filter."""
        self.dismiss(None)
