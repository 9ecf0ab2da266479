"""NodePane: one node at the cursor — status, clocks, last syscall, registers, code, stack,
files and output."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaosreplay.debugger.views import NodeView
from chaosreplay.tui.event_format import summary
from chaosreplay.tui.node_facts import NodeFacts
from chaosreplay.tui.state_pane import PaneContext, StatePane

REGISTER_COLUMNS = 2
REGISTER_CELL = 27  # "   rax 0xffffffffffffff92" and a gap
NARROW = 110  # columns below which the pane stacks code and registers instead of side by side
OUTPUT_LINES = 12
FRAMES_WITH_VARIABLES = 2  # the pane lists arguments and locals of the innermost frames


def seconds(ns: int) -> str:
    """Virtual nanoseconds as seconds with every digit."""
    return f"{ns / 1e9:.9f}s"


def _header(node: int, view: NodeView | None, facts: NodeFacts | None) -> Text:
    text = Text()
    name = f" ({view.name})" if view is not None else ""
    text.append(f"node {node}{name}", "bold")
    status = view.status if view is not None else (facts.status if facts else None)
    if status is not None:
        text.append(f" · {status}", "bold red" if status in ("crashed", "killed", "hung")
                    else "bold green" if status == "running" else "bold yellow")
    if view is not None:
        text.append(f" · life {view.incarnation} · {view.syscalls} syscalls")
        if view.exit_code is not None:
            text.append(f" · exit {view.exit_code}")
    return text


def _clocks(view: NodeView) -> Text:
    text = Text(f"vtime {seconds(view.vtime_ns)}  monotonic {seconds(view.monotonic_ns)}  "
                f"realtime {seconds(view.realtime_ns)}")
    if view.wake_at_ns is not None:
        text.append(f"\nblocked until {seconds(view.wake_at_ns)}", "italic")
    if len(view.threads) > 1:  # a single-threaded program's one thread is the node
        for thread in view.threads:
            text.append(f"\nthread {thread.tid}: {thread.state} at {thread.location}")
    return text


def _last_syscall(facts: NodeFacts | None) -> Text:
    text = Text("last syscall: ", "dim", no_wrap=True, overflow="ellipsis")
    if facts is None:
        text.append("…")
    elif facts.last_syscall is None:
        text.append("none yet")
    else:
        event = facts.last_syscall
        text.append(f"#{event.seq} t{event.tick} ", "dim")
        text.append(summary(event))
    return text


def _registers(view: NodeView, columns: int = REGISTER_COLUMNS) -> Table:
    grid = Table.grid(padding=(0, 2))
    for _ in range(columns):
        grid.add_column(no_wrap=True)
    cells = [Text.assemble((f"{name:>6} ", "dim"), f"{value:#x}")
             for name, value in view.registers.items()]
    cells.append(Text.assemble(("fs_base ", "dim"), f"{view.fs_base:#x}"))
    for i in range(0, len(cells), columns):
        grid.add_row(*cells[i:i + columns])
    return grid


def _code(view: NodeView) -> Text:
    rip = view.registers.get("rip", 0)
    text = Text(no_wrap=True, overflow="ellipsis")  # one instruction per line, at any width
    text.append(f"{rip:#x} ", "bold")
    text.append(view.location, "bold cyan")
    if view.crash:
        text.append(f"\ncrash: {view.crash}", "bold red")
    for insn in view.disassembly:
        mark = "→" if insn.address == rip else " "
        text.append(f"\n{mark} {insn.address:#x}  ", "bold" if mark == "→" else "dim")
        code = insn.hex if len(insn.hex) <= 16 else insn.hex[:15] + "…"
        text.append(f"{code:<16} ", "dim")
        text.append(insn.text)
    return text


def _stack_and_files(view: NodeView) -> Text:
    text = Text("stack", "bold")
    for frame in view.frames:
        text.append(f"\n  {frame.line()}", "bold" if frame.level == 0 else "")
        if frame.level < FRAMES_WITH_VARIABLES:
            for variable in frame.arguments + frame.locals:
                text.append(f"\n      {variable.name} = ", "dim" if variable.kind == "local"
                            else "cyan")
                text.append(variable.value, "dim" if variable.value.startswith("<") else "")
    if not view.frames:
        text.append("\n  (no frames)")
    if view.files:
        text.append("\nfiles", "bold")
        for f in view.files:
            text.append(f"\n  fd {f.fd} {f.path} @ {f.offset} flags {f.flags:#o}")
    return text


def _watches(view: NodeView) -> Text:
    text = Text("watch", "bold")
    for watch in view.watches:
        text.append(f"\n  {watch.expression} = ", "cyan")
        text.append(watch.value, "dim" if watch.value.startswith("<") else "bold")
    return text


def _globals(view: NodeView) -> Text:
    text = Text("globals", "bold")
    for variable in view.globals:
        text.append(f"\n  {variable.name} = ", "cyan")
        text.append(variable.value)
    return text


def _output(text: str) -> Text:
    lines = text.splitlines()[-OUTPUT_LINES:]
    out = Text("output (up to the cursor)", "bold")
    for line in lines or ["(nothing yet)"]:
        out.append(f"\n│ {line}", "green")
    return out


def node_body(node: int, context: PaneContext, width: int = 0) -> RenderableType:
    """The pane's drawing for one node; below NARROW columns (width 0: unknown, wide) code,
    registers and the rest are stacked, so no column squeezes another into wrapping."""
    state = context.state
    view = state.nodes[node] if state is not None and node < len(state.nodes) else None
    facts = context.facts.get(node)
    parts: list[RenderableType] = [_header(node, view, facts)]
    note = context.state_note()
    if note is not None:
        parts.append(note)
    parts.append(_last_syscall(facts))
    if view is None:
        parts.append(_output(facts.output_tail if facts is not None else ""))
        return Group(*parts)
    parts.append(_clocks(view))
    if view.watches:
        parts.append(_watches(view))
    if 0 < width < NARROW:
        parts += [_code(view), _registers(view, max(1, (width - 2) // REGISTER_CELL)),
                  _stack_and_files(view), _output(view.stdout + view.stderr), _globals(view)]
        return Group(*parts)
    columns = Table.grid(padding=(0, 3), expand=True)
    columns.add_column(ratio=1)
    columns.add_column(ratio=1)
    columns.add_row(Group(_code(view), Text(""), _stack_and_files(view)),
                    Group(_registers(view), Text(""), _output(view.stdout + view.stderr),
                          Text(""), _globals(view)))
    parts.append(columns)
    return Group(*parts)


class NodePane(StatePane):
    """The tab of one node."""

    def __init__(self, node: int, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.node = node
        self._drawn_from: PaneContext | None = None
        self._drawn_narrow: bool | None = None  # the layout last drawn

    def update_from(self, context: PaneContext) -> None:
        """Draw this node from the context, for the pane's width."""
        self._drawn_from = context
        width = self.size.width
        self._drawn_narrow = 0 < width < NARROW
        self.show(node_body(self.node, context, width))

    def on_resize(self) -> None:
        # Only a change of layout redraws: a scrollbar coming and going resizes the pane too.
        if self._drawn_from is not None and (0 < self.size.width < NARROW) != self._drawn_narrow:
            self.update_from(self._drawn_from)
