"""PromptScreen: a modal that asks for one line (seek target, search text), checked first."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

Check = Callable[[str], str | None]  # the reason a value is refused, or None


class PromptScreen(ModalScreen[str | None]):
    """Ask for a line; Enter returns it once `check` accepts it, Escape returns None."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    PromptScreen { align: center middle; }
    PromptScreen > Vertical { width: 70; height: auto; border: thick $accent;
                              background: $surface; padding: 1 2; }
    PromptScreen .prompt-hint { color: $text-muted; }
    PromptScreen .prompt-error { color: $error; }
    """

    def __init__(self, title: str, hint: str, value: str = "",
                 check: Check | None = None, at_once: dict[str, str] | None = None) -> None:
        super().__init__()
        self.title_text = title
        self.hint = hint
        self.value = value
        self.check = check
        self.at_once = at_once or {}  # a value typed exactly so returns this without Enter

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="prompt-title")
            yield Input(value=self.value, placeholder=self.hint, id="prompt-input")
            yield Static(self.hint, classes="prompt-hint")
            yield Static("", classes="prompt-error", id="prompt-error")

    def on_mount(self) -> None:
        self.query_one(Input).cursor_blink = False  # steady, so screenshots are stable
        self.query_one(Input).focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.value in self.at_once:
            event.stop()
            self.dismiss(self.at_once[event.value])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Return the value unless the check refuses it (then say why and stay)."""
        event.stop()
        problem = self.check(event.value) if self.check is not None else None
        if problem is not None:
            self.query_one("#prompt-error", Static).update(problem)
            return
        self.dismiss(event.value)

    def action_cancel(self) -> None:
        """Close without a value."""
        self.dismiss(None)
