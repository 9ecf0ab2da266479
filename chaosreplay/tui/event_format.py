"""How one recorded event reads on screen: a timeline row and a detail block."""

from __future__ import annotations

from typing import Any

from rich.text import Text

from chaosreplay.debugger.filters import assertion_failed
from chaosreplay.debugger.syscall_args import describe_arguments
from chaosreplay.events import EventKind
from chaosreplay.kernel import sdk_abi
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.recording.model import Event

KIND_STYLES: dict[str, str] = {
    EventKind.FAULT_START: "bold yellow",
    EventKind.FAULT_END: "yellow",
    EventKind.BUG: "bold red",
    EventKind.CRASH: "bold red",
    EventKind.UNSATISFIED: "red",
    EventKind.ORACLE_CONFLICT: "red",
    EventKind.NODE_STATUS: "bold cyan",
    EventKind.OUTPUT: "green",
    EventKind.PACKET_DROPPED: "magenta",
    EventKind.PACKET_CORRUPTED: "magenta",
    EventKind.DISK_FAULT: "magenta",
    EventKind.CHECKPOINT: "blue",
    EventKind.RUN_START: "bold",
    EventKind.RUN_END: "bold",
    EventKind.SYSCALL: "dim",
}
SUMMARY_LIMIT = 160  # characters of fields on a timeline row
# The SDK's calls by the names a program calls them (guest/include/chaosreplay.h); the
# recording names them syscall_<n>, as it names every number Linux does not.
SDK_CALL_NAMES: dict[int, str] = {
    sdk_abi.CR_SYS_ASSERT: "cr_assert", sdk_abi.CR_SYS_SETUP_COMPLETE: "cr_setup_complete",
    sdk_abi.CR_SYS_SEND_EVENT: "cr_send_event", sdk_abi.CR_SYS_RANDOM: "cr_get_random",
    sdk_abi.CR_SYS_NODE_ID: "cr_node_id", sdk_abi.CR_SYS_NODE_COUNT: "cr_node_count",
    sdk_abi.CR_SYS_SEND: "cr_send", sdk_abi.CR_SYS_RECV: "cr_recv",
    sdk_abi.CR_SYS_COVERAGE: "cr__coverage_register",
}


def kind_style(event: Event) -> str:
    """The style of an event's kind (a failed assertion is red, a passing one plain)."""
    if event.kind == EventKind.ASSERT:
        return "bold red" if assertion_failed(event.fields) else ""
    return KIND_STYLES.get(event.kind, "")


def node_label(node: int) -> str:
    """"n2" for a node, "sim" for simulation-level events."""
    return "sim" if node < 0 else f"n{node}"


def show_value(value: Any, limit: int = 60) -> str:
    """A field value in a few characters: bytes as escaped text, long values cut."""
    if isinstance(value, bytes):
        # Control characters escaped (a newline would break the row), the rest as written.
        text = "".join(c if c.isprintable() else repr(c)[1:-1]
                       for c in value.decode("utf-8", "replace"))
    elif isinstance(value, float):
        text = f"{value:.4g}"
    else:
        text = str(value)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def summary(event: Event) -> str:
    """The fields that matter for the event's kind, in one line."""
    f = event.fields
    kind = event.kind
    if kind == EventKind.SYSCALL:
        recorded = f.get("name")
        args = describe_arguments(recorded if isinstance(recorded, str) else "",
                                  list(f.get("args", [])))
        name = SDK_CALL_NAMES.get(f.get("nr"), f.get("name", f.get("nr")))  # type: ignore[arg-type]
        return f"{name}({args}) = {f.get('ret')}"
    if kind == EventKind.OUTPUT:
        return f"fd {f.get('fd')}: {show_value(f.get('data', b''), SUMMARY_LIMIT)}"
    if kind == EventKind.ASSERT:
        try:
            what = AssertKind(f.get("assert_kind", -1)).name.lower()
        except ValueError:
            what = str(f.get("assert_kind"))
        verdict = "FAILED" if assertion_failed(f) else ("true" if f.get("condition") else "false")
        return f"{what} {verdict}: {f.get('message', '')}"
    if kind in (EventKind.FAULT_START, EventKind.FAULT_END):
        fault = dict(f.get("fault") or {})
        fault.pop("at", None)
        params = " ".join(f"{k}={show_value(v, 20)}" for k, v in fault.items() if k != "kind")
        reason = f" ({f['reason']})" if "reason" in f else ""
        return f"{f.get('fault_id')} {fault.get('kind', '')} {params}{reason}".rstrip()
    if kind.startswith("packet."):
        extra = f.get("reason", "")
        payload = f.get("payload")
        text = (" |" + "".join(chr(b) if 32 <= b < 127 else "·" for b in payload[:32]) + "|"
                if isinstance(payload, bytes) else "")
        return (f"#{f.get('packet_id')} {f.get('src')}→{f.get('dst')} {f.get('size')} B"
                + (f" {extra}" if extra else "") + tcp_summary(f.get("tcp")) + text)
    return " ".join(f"{k}={show_value(v, 40)}" for k, v in f.items())[:SUMMARY_LIMIT]


def tcp_summary(tcp: Any) -> str:
    """A packet event's TCP segment as tcpdump would put it (empty for other packets)."""
    if not isinstance(tcp, dict):
        return ""
    return (f" tcp {tcp.get('src')}→{tcp.get('dst')} [{tcp.get('flags')}] seq {tcp.get('seq')}"
            f" ack {tcp.get('ack')} len {tcp.get('len')}")


def timeline_row(event: Event) -> Text:
    """A timeline row: number, tick, virtual time, node, kind, summary."""
    row = Text(no_wrap=True, overflow="ellipsis")
    row.append(f"#{event.seq:<8} ", "dim")
    row.append(f"t{event.tick:<7} ")
    row.append(f"{event.vtime_ns / 1e9:10.6f}s ", "dim")
    row.append(f"{node_label(event.node):>4} ", "cyan" if event.node >= 0 else "dim")
    style = kind_style(event)
    row.append(f"{event.kind:<17} ", style or "bold")
    row.append(summary(event), style if event.kind != EventKind.SYSCALL else "")
    return row


def event_detail(event: Event) -> Text:
    """Every field of an event, one line each (the detail under the timeline)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"#{event.seq}", "bold")
    text.append(f"  tick {event.tick}  {event.vtime_ns / 1e9:.9f}s  {node_label(event.node)}  ")
    text.append(event.kind, kind_style(event) or "bold")
    for key, value in event.fields.items():
        text.append(f"\n  {key}: ", "dim")
        text.append(show_value(value, 200))
    return text
