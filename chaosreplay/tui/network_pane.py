"""NetworkPane: the network at the cursor — partitions, nodes down, stats, packets in flight,
and every node's sockets and connections."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from chaosreplay.debugger.views import NetworkView, NodeView
from chaosreplay.sim.validation import NS_PER_TICK
from chaosreplay.tui.state_pane import PaneContext, StatePane

IN_FLIGHT_ROWS = 50
SOCKET_ROWS = 50


def _stats(net: NetworkView) -> Text:
    stats = net.stats
    text = Text("stats ", "bold")
    text.append(" · ".join(f"{key} {value}" for key, value in stats.items()
                           if not isinstance(value, dict)))
    for key in ("dropped", "delayed"):
        reasons = stats.get(key) or {}
        if reasons:
            text.append(f"\n  {key}: " + ", ".join(f"{r} {n}" for r, n in reasons.items()))
    return text


def _in_flight(net: NetworkView) -> RenderableType:
    if not net.in_flight:
        return Text("no packets in flight", "dim")
    table = Table("packet", "src→dst", "bytes", "sent tick", "due tick", "flags", "copy",
                  title=f"{len(net.in_flight)} in flight", title_justify="left", box=None,
                  header_style="bold")
    for p in net.in_flight[:IN_FLIGHT_ROWS]:
        table.add_row(f"#{p.packet_id}", f"{p.src}→{p.dst}", str(p.size),
                      str(p.sent_ns // NS_PER_TICK), str(p.deliver_ns // NS_PER_TICK),
                      p.flags, str(p.copy))
    if len(net.in_flight) > IN_FLIGHT_ROWS:
        table.add_row("…", f"{len(net.in_flight) - IN_FLIGHT_ROWS} more", "", "", "", "", "")
    return table


def _sockets(nodes: list[NodeView], now_ns: int) -> RenderableType:
    """Every node's sockets as `ss` lists them: kind, ends, state, queues, retransmits and
    the next TCP timer (in ms from the cursor)."""
    rows = [(view.index, sock) for view in nodes for sock in view.sockets]
    if not rows:
        return Text("no sockets", "dim")
    table = Table("node", "kind", "local", "remote", "state", "send-q", "recv-q", "rtx",
                  "timer", title=f"{len(rows)} sockets", title_justify="left", box=None,
                  header_style="bold")
    for node, sock in rows[:SOCKET_ROWS]:
        timer = "" if sock.timer_ns is None else (
            f"{sock.timer} {(sock.timer_ns - now_ns) / 1e6:+.0f}ms"
            + (f" ({sock.keepalive_probes} probes)" if sock.keepalive_probes else ""))
        kind = sock.kind if sock.has_descriptor else f"{sock.kind}*"  # *: no descriptor
        table.add_row(f"n{node}", kind, sock.local or "-", sock.remote or "-", sock.state,
                      str(sock.send_queue), str(sock.recv_queue), str(sock.retransmits),
                      timer)
    if len(rows) > SOCKET_ROWS:
        table.add_row("…", f"{len(rows) - SOCKET_ROWS} more", *[""] * 7)
    return table


def network_body(context: PaneContext) -> RenderableType:
    """The pane's drawing."""
    note = context.state_note()
    state = context.state
    if state is None:
        return note or Text("")
    net = state.network
    parts: list[RenderableType] = [note] if note is not None else []
    partitions = "; ".join(f"{key}: " + " | ".join(",".join(map(str, side)) for side in sides)
                           for key, sides in net.partitions.items()) or "none"
    parts.append(Text.assemble(("partitions ", "bold"), partitions, ("   down ", "bold"),
                               ", ".join(map(str, net.down)) or "none", ("   inboxes ", "bold"),
                               " ".join(f"n{i}:{n}" for i, n in enumerate(net.inbox_sizes))))
    parts.append(_stats(net))
    parts.append(_in_flight(net))
    parts.append(_sockets(state.nodes, state.now_ns))
    return Group(*parts)


class NetworkPane(StatePane):
    """The network tab."""

    def update_from(self, context: PaneContext) -> None:
        """Draw the fabric from the context."""
        self.show(network_body(context))
