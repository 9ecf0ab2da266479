"""Examining memory: where to look (a symbol or an address, and a size) and the hex dump.

The bytes come from the engine (`DebugSession.memory` at the cursor); this module parses
the request and shows the answer in a modal.
"""

from __future__ import annotations

import contextlib
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

DEFAULT_SIZE = 64
MAX_SIZE = 4096
ROW = 16


class MemoryRequestError(ValueError):
    """A memory request that cannot be read."""


def parse_request(text: str) -> tuple[int | str, int]:
    """"current_term 16", "0x7fffffffed00", "4198400 32" → (address or symbol, size)."""
    words = text.split()
    if not words or len(words) > 2:
        raise MemoryRequestError("expected a symbol or an address, then a size: "
                                 "current_term 16")
    where: int | str = words[0]
    with contextlib.suppress(ValueError):  # not a number: a symbol
        where = int(words[0], 0)
    size = DEFAULT_SIZE
    if len(words) == 2:
        try:
            size = int(words[1], 0)
        except ValueError:
            raise MemoryRequestError(f"{words[1]!r}: expected a size in bytes") from None
    if not 0 < size <= MAX_SIZE:
        raise MemoryRequestError(f"size {size}: between 1 and {MAX_SIZE} bytes")
    return where, size


def hex_dump(address: int, data: bytes) -> Text:
    """Rows of 16 bytes: address, hex, and the printable ones as text."""
    text = Text()
    for offset in range(0, len(data), ROW):
        chunk = data[offset:offset + ROW]
        text.append(f"{address + offset:#018x}  ", "dim")
        text.append(" ".join(f"{b:02x}" for b in chunk).ljust(ROW * 3))
        text.append(" " + "".join(chr(b) if 32 <= b < 127 else "·" for b in chunk) + "\n",
                    "green")
    return text


class MemoryScreen(ModalScreen[None]):
    """A hex dump of a node's memory at the cursor; escape or q closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,x", "close", "Close")]
    DEFAULT_CSS = """
    MemoryScreen { align: center middle; }
    MemoryScreen > VerticalScroll { width: 92; height: auto; max-height: 90%;
                                    border: thick $accent; background: $surface;
                                    padding: 0 1; }
    """

    def __init__(self, title: str, address: int, data: bytes | None) -> None:
        super().__init__()
        self.title_text = title
        self.address = address
        self.data = data

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(Text(self.title_text, "bold"))
            yield Static(hex_dump(self.address, self.data) if self.data is not None
                         else Text("not mapped: the range lies outside the node's memory",
                                   "yellow"), id="memory-dump")

    def action_close(self) -> None:
        """Back to the debugger."""
        self.dismiss(None)
