"""HelpScreen: every key of the debugger, from the same table the bindings come from."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chaosreplay.tui.keys import COMMANDS

FILTER_HELP = (
    "Filters: fault assert failed bug status output sent delivered dropped packet syscall "
    "syscall:NAME kind:KIND node:N (node:sim), and free text. Categories are OR-ed, nodes "
    "OR-ed, the groups AND-ed: 'fault bug node:1 leader'."
)
SEEK_HELP = "Seek: #1234 is an event number, 12500 a tick, 12.5s or 300ms a virtual time."


def key_table() -> Table:
    """The keys and what they do."""
    table = Table("key", "command", box=None, header_style="bold", padding=(0, 2))
    for command in COMMANDS:
        table.add_row(Text(command.keys_shown, "bold cyan"), command.description)
    table.add_row(Text("1…9", "bold cyan"), "the pane of node 0…8")
    table.add_row(Text("ctrl+p", "bold cyan"), "command palette (every command by name)")
    return table


class HelpScreen(ModalScreen[None]):
    """The key list; any of escape, q or ? closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark", "close", "Close")]
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll { width: 84; height: 90%; border: thick $accent;
                                  background: $surface; padding: 0 1; }
    """

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text("chaosreplay debug — keys", "bold"))
            yield Static(key_table())
            yield Static(Text("\n" + FILTER_HELP + "\n\n" + SEEK_HELP, "dim"))

    def action_close(self) -> None:
        """Back to the debugger."""
        self.dismiss(None)
