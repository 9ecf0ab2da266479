"""The debugger's commands: one table for the key bindings, the help screen and the palette."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding


@dataclass(frozen=True)
class Command:
    """One command: the screen action it runs and the keys that run it."""

    action: str  # an action of DebuggerScreen, e.g. "step(1)"
    keys: str  # Textual key names, comma-separated
    keys_shown: str  # how the help screen writes them
    short: str  # footer label
    description: str  # help screen and command palette
    footer: bool = True


COMMANDS: tuple[Command, ...] = (
    Command("step(1)", "j,down,right", "j ↓ →", "step", "step forward one event"),
    Command("step(-1)", "k,up,left", "k ↑ ←", "back", "step back one event", footer=False),
    Command("page(1)", "pagedown,space", "PgDn space", "page", "forward one screen",
            footer=False),
    Command("page(-1)", "pageup", "PgUp", "page back", "back one screen", footer=False),
    Command("ends(0)", "home", "Home", "first", "first event", footer=False),
    Command("ends(1)", "end,G", "End G", "last", "last event (gg: the first)", footer=False),
    Command("node_step(1)", "J", "J", "node step",
            "next event of the node whose pane is shown", footer=False),
    Command("node_step(-1)", "K", "K", "node back",
            "previous event of the node whose pane is shown", footer=False),
    Command("to_bug", "exclamation_mark", "!", "bug",
            "the run's first bug (failed assertion, crash, hang, bad exit)", footer=False),
    Command("match(1)", "n", "n", "next match", "next event matching the filter"),
    Command("match(-1)", "N", "N", "prev match", "previous event matching the filter",
            footer=False),
    Command("bookmark", "b", "b", "bookmark", "toggle a bookmark at the cursor"),
    Command("to_bookmark(1)", "right_square_bracket", "]", "next ◆",
            "next bookmark", footer=False),
    Command("to_bookmark(-1)", "left_square_bracket", "[", "prev ◆",
            "previous bookmark", footer=False),
    Command("seek", "g", "g", "seek",
            "seek to a tick (12500), a time (12.5s) or an event (#N); g again: the first"),
    Command("filter", "f", "f", "filter", "filter picker: categories, node, free text"),
    Command("search", "slash", "/", "search", "search: free text (or any filter words)"),
    Command("clear_filter", "c", "c", "clear", "clear the filter", footer=False),
    Command("only_matches", "m", "m", "only", "show only matching events (toggle)",
            footer=False),
    Command("pane(1)", "p", "p", "pane", "next pane (nodes, network, faults, oracle)",
            footer=False),
    Command("pane(-1)", "P", "P", "prev pane", "previous pane", footer=False),
    Command("examine", "x", "x", "memory", "examine memory of the node shown (symbol or address)",
            footer=False),
    Command("watch", "e", "e", "watch", "watch expressions on the node shown (; between them)",
            footer=False),
    Command("changed(-1)", "less_than_sign", "<", "changed ←",
            "back to where the node's first watch last changed", footer=False),
    Command("changed(1)", "greater_than_sign", ">", "changed →",
            "forward to where the node's first watch changes next", footer=False),
    Command("packet", "o", "o", "packet",
            "the packet under the cursor: payload, decoded fields, its send and delivery",
            footer=False),
    Command("whatif", "w", "w", "what-if", "what-if: change the future faults, run a branch"),
    Command("help", "question_mark", "?", "help", "this help"),
    Command("quit", "q", "q", "quit", "quit"),
)


def bindings() -> list[Binding]:
    """The screen's bindings. They take priority over the focused widget, so the panes and
    the timeline never swallow the debugger's keys (modals are other screens and keep theirs)."""
    out = [Binding(c.keys, c.action, c.short, show=c.footer, priority=True) for c in COMMANDS]
    out += [Binding(str(i + 1), f"node_pane({i})", f"node {i}", show=False, priority=True)
            for i in range(9)]
    return out
