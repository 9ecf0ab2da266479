"""OraclePane: the assertion table at the cursor, and the bugs found so far."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaosreplay.tui.event_format import show_value
from chaosreplay.tui.state_pane import PaneContext, StatePane

STATUS_STYLES = {"ok": "green", "never": "yellow", "FAILED": "bold red", "REACHED": "bold red"}


def oracle_body(context: PaneContext) -> RenderableType:
    """The pane's drawing."""
    note = context.state_note()
    state = context.state
    if state is None:
        return note or Text("")
    parts: list[RenderableType] = [note] if note is not None else []
    for bug in state.bugs:
        parts.append(Text("bug: " + " ".join(f"{k}={show_value(v, 60)}" for k, v in bug.items()),
                          "bold red"))
    if not state.oracle:
        parts.append(Text("no assertion evaluated yet", "dim"))
        return Group(*parts)
    table = Table(*state.oracle_columns, box=None, header_style="bold", expand=True)
    status_at = (state.oracle_columns.index("status") if "status" in state.oracle_columns
                 else None)
    for row in state.oracle:
        style = STATUS_STYLES.get(row[status_at], "") if status_at is not None else ""
        table.add_row(*row, style=style)
    parts.append(table)
    return Group(*parts)


class OraclePane(StatePane):
    """The assertions tab."""

    def update_from(self, context: PaneContext) -> None:
        """Draw the oracle from the context."""
        self.show(oracle_body(context))
