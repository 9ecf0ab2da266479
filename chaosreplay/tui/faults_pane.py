"""FaultsPane: the faults in effect at the cursor."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaosreplay.tui.event_format import show_value
from chaosreplay.tui.state_pane import PaneContext, StatePane


def faults_body(context: PaneContext) -> RenderableType:
    """The pane's drawing."""
    note = context.state_note()
    state = context.state
    if state is None:
        return note or Text("")
    parts: list[RenderableType] = [note] if note is not None else []
    if state.gate_tick is None:
        parts.append(Text("faults wait for every node's setup_complete", "italic"))
    if not state.faults:
        parts.append(Text("no fault in effect", "dim"))
        return Group(*parts)
    table = Table("fault", "kind", "node", "from tick", "to tick", "parameters",
                  title=f"{len(state.faults)} in effect", title_justify="left", box=None,
                  header_style="bold")
    for fault in state.faults:
        table.add_row(fault.fault_id, fault.kind, "all" if fault.node is None else str(fault.node),
                      str(fault.start_tick),
                      "run end" if fault.end_tick is None else str(fault.end_tick),
                      " ".join(f"{k}={show_value(v, 24)}" for k, v in fault.params.items()))
    parts.append(table)
    return Group(*parts)


class FaultsPane(StatePane):
    """The faults tab."""

    def update_from(self, context: PaneContext) -> None:
        """Draw the active faults from the context."""
        self.show(faults_body(context))
