"""One packet in a modal: its two ends, its decoded fields and its payload in hex + text.

The view comes from the engine (`DebugSession.packet` at the cursor); `s` and `d` close
the modal and move the cursor to the packet's send or its delivery.
"""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

from chaosreplay.debugger.packets import PacketView
from chaosreplay.tui.memory_screen import hex_dump


def packet_text(view: PacketView, decoder: str | None) -> Text:
    """The header, the ends and the fields (the dump is drawn apart)."""
    text = Text()
    text.append(f"packet #{view.packet_id}  {view.src}→{view.dst}  {view.size} B", "bold")
    text.append(f"   (from #{view.seq}, {view.kind})\n", "dim")
    text.append("sent ", "bold")
    text.append(f"#{view.sent_seq} (s)" if view.sent_seq is not None else "not found")
    text.append("   delivered ", "bold")
    text.append(f"#{view.delivered_seq} (d)" if view.delivered_seq is not None
                else "never (dropped, or after the recording's end)")
    text.append("\n")
    if view.fields is None:
        text.append("no decoder: debug --decoder 'struct NAME' or FILE.py:FUNCTION\n"
                    if decoder is None else "no payload kept to decode\n", "dim")
    elif isinstance(view.fields, str):
        text.append(f"{decoder}: {view.fields}\n", "yellow")
    else:
        text.append(f"{decoder}\n", "bold")
        for name, value in view.fields:
            text.append(f"  {name} = ", "dim")
            text.append(f"{value}\n")
    if view.payload is None:
        text.append("the recording kept no payload (packet_payload_bytes = 0)", "dim")
    else:
        kept = len(view.payload)
        text.append(f"payload: {kept} of {view.size} bytes kept", "bold")
    return text


class PacketScreen(ModalScreen[int | None]):
    """A packet; escape closes it, s / d go to its send / its delivery."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,o", "close", "Close"),
        Binding("s", "to_send", "Its send"),
        Binding("d", "to_delivery", "Its delivery"),
    ]
    DEFAULT_CSS = """
    PacketScreen { align: center middle; }
    PacketScreen > VerticalScroll { width: 92; height: auto; max-height: 90%;
                                    border: thick $accent; background: $surface;
                                    padding: 0 1; }
    """

    def __init__(self, view: PacketView, decoder: str | None) -> None:
        super().__init__()
        self.view = view
        self.decoder = decoder

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(packet_text(self.view, self.decoder), id="packet-fields")
            yield Static(hex_dump(0, self.view.payload or b""), id="packet-dump")

    def action_close(self) -> None:
        """Back to the debugger."""
        self.dismiss(None)

    def action_to_send(self) -> None:
        """Close and put the cursor on the packet's send."""
        if self.view.sent_seq is not None:
            self.dismiss(self.view.sent_seq)

    def action_to_delivery(self) -> None:
        """Close and put the cursor on the packet's delivery."""
        if self.view.delivered_seq is not None:
            self.dismiss(self.view.delivered_seq)
