"""StatePane: a tab that draws one part of the run at the cursor; PaneContext: its input."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import RenderableType
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from chaosreplay.debugger.views import SimulationState
from chaosreplay.tui.node_facts import NodeFacts


@dataclass(frozen=True)
class PaneContext:
    """What the panes draw from: the latest state, the event facts, and why either is
    missing or stale."""

    cursor: int
    state: SimulationState | None = None  # may be for an earlier event while one computes
    facts: dict[int, NodeFacts] = field(default_factory=dict)
    pending: bool = False  # a reconstruction for the cursor is under way
    error: str | None = None  # why the state at the cursor failed
    unavailable: str | None = None  # why no state can ever be shown

    def state_note(self) -> Text | None:
        """A line saying why the state is missing or not at the cursor (None: it is)."""
        if self.unavailable is not None:
            return Text(f"states unavailable: {self.unavailable}", "yellow")
        if self.error is not None:
            return Text(f"state at #{self.cursor} unavailable: {self.error}", "red")
        if self.state is None:
            return Text("reconstructing…", "italic")
        if self.state.seq != self.cursor:
            return Text(f"showing the state after #{self.state.seq}; reconstructing #"
                        f"{self.cursor}…", "italic")
        return None


class StatePane(VerticalScroll, can_focus=False):
    """A scrollable tab with one body (keys stay with the screen)."""

    DEFAULT_CSS = """
    StatePane { height: 1fr; padding: 0 1; }
    StatePane > Static { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static(classes="pane-body")

    def show(self, renderable: RenderableType) -> None:
        """Replace what the pane draws."""
        self.query_one(".pane-body", Static).update(renderable)

    def update_from(self, context: PaneContext) -> None:
        """Redraw from the context (each pane draws its own part)."""
        raise NotImplementedError
