"""`chaosreplay state`: the debugger's state reconstruction, for scripts and tests."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from chaosreplay.cli.integrity import check_integrity, force_option
from chaosreplay.debugger.changes import Change
from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.views import NodeView, SimulationState
from chaosreplay.debugger.watch import WatchError
from chaosreplay.errors import ChaosReplayError, RecordingError
from chaosreplay.sim.validation import NS_PER_TICK

OUTPUT_TAIL_LINES = 8
STACK_LINES = 8


@click.command("state")
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--tick", type=click.IntRange(min=0), help="State after every event of this tick.")
@click.option("--event", "seq", type=click.IntRange(min=0),
              help="State just after this event number (instead of --tick).")
@click.option("--node", type=click.IntRange(min=0), help="Show only this node.")
@click.option("--json", "as_json", is_flag=True, help="Print the state as JSON.")
@click.option("--watch", "watches", multiple=True, metavar="EXPR",
              help="Show a C expression of each node's program (repeatable): "
                   "current_term, log_[commit_index].term, *src.")
@click.option("--changed-before", "before", is_flag=True,
              help="Show the state at the last event at or before --event/--tick at which "
                   "the --watch value of --node changed.")
@click.option("--changed-after", "after", is_flag=True,
              help="The same, at the first event after it.")
@force_option
def state(recording: str, tick: int | None, seq: int | None, node: int | None,
          as_json: bool, watches: tuple[str, ...], before: bool, after: bool,
          force: bool) -> None:
    """Reconstruct a recorded run's state at a tick or an event (re-executes from the
    nearest checkpoint): every node's status, clocks, registers, code, stack with typed
    arguments and locals, globals, output and files; packets in flight; active faults; the
    assertion table; every node's sockets and connections (state, queues, retransmits,
    timers)."""
    if (tick is None) == (seq is None):
        raise click.UsageError("give exactly one of --tick and --event")
    if (before or after) and (before == after or len(watches) != 1 or node is None):
        raise click.UsageError("--changed-before or --changed-after (one) needs one --watch "
                               "and --node")
    change: Change | None = None
    try:
        check_integrity(recording, force, "reconstruct its state")
        with DebugSession(recording) as session:
            if seq is None:
                assert tick is not None
                seq = max(0, session.reader.seq_at_tick(tick + 1) - 1)
            if seq >= session.event_count:
                raise RecordingError(f"{recording}: event {seq} out of range "
                                     f"(0..{session.event_count - 1})")
            if watches:
                for index in range(len(session.scenario.node_specs())):
                    session.set_watches(index, list(watches))
            if before or after:
                assert node is not None
                change = session.find_change(node, watches[0], seq, forward=after)
                if change is None:
                    _no_change(watches[0], node, seq, after, as_json)
                    return
                seq = change.seq
            result = session.state(seq)
    except (ChaosReplayError, OSError, WatchError, IndexError) as exc:
        click.echo(f"chaosreplay: error: {exc}", err=True)
        sys.exit(2)
    if node is not None and node >= len(result.nodes):
        click.echo(f"chaosreplay: error: {recording}: node {node} does not exist (nodes 0.."
                   f"{len(result.nodes) - 1})", err=True)
        sys.exit(2)
    if as_json:
        data: dict[str, Any] = result.to_dict()
        if node is not None:
            data["nodes"] = [data["nodes"][node]]
        if change is not None:
            data["change"] = asdict(change)
        click.echo(json.dumps(data, indent=2, default=_plain))
        return
    if change is not None:
        how = "" if change.exact else (" (found through checkpoint samples: a change that "
                                       "came back between two of them can be missed)")
        click.echo(f"{change.expression} on node {change.node} changed at #{change.seq}: "
                   f"{change.before.value} → {change.after.value} (before: #{change.previous})"
                   f"{how}")
    _print(result, node)


def _no_change(expression: str, node: int, seq: int, after: bool, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({"change": None}))
    else:
        where = f"after #{seq}" if after else f"up to #{seq}"
        click.echo(f"{expression} on node {node} did not change {where}")


def _plain(value: Any) -> Any:
    """JSON for what json cannot write itself (bytes in fault parameters, tuples)."""
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _print(result: SimulationState, only: int | None) -> None:
    out = Console(highlight=False, soft_wrap=True)
    reached = "" if result.reached == result.seq else f" (executed through {result.reached})"
    out.print(f"[bold]tick {result.tick}[/] · event {result.seq}{reached} · virtual "
              f"{result.now_ns / 1e9:.3f}s" + (" · run ended" if result.ended else ""))
    for view in result.nodes:
        if only is None or view.index == only:
            _print_node(out, view)
    if only is not None:
        return
    net = result.network
    out.print(f"\n[bold]network[/]: {len(net.in_flight)} in flight · partitions "
              f"{net.partitions or 'none'} · down {net.down or 'none'} · inboxes "
              f"{net.inbox_sizes}")
    for packet in net.in_flight[:10]:
        out.print(f"  #{packet.packet_id} {packet.src}→{packet.dst} {packet.size} B, due "
                  f"tick {packet.deliver_ns // NS_PER_TICK} {packet.flags}")
    out.print(f"\n[bold]faults active[/]: {len(result.faults) or 'none'}")
    for fault in result.faults:
        ends = "run end" if fault.end_tick is None else f"tick {fault.end_tick}"
        where = "" if fault.node is None else f" node {fault.node}"
        out.print(f"  {fault.fault_id}{where} {fault.params} from tick {fault.start_tick} "
                  f"to {ends}")
    table = Table(*result.oracle_columns, title="assertions", title_justify="left")
    for row in result.oracle:
        table.add_row(*row)
    out.print(table)
    for bug in result.bugs:
        out.print(f"[red]bug[/]: {bug}")


def _print_node(out: Console, view: NodeView) -> None:
    regs = view.registers
    blocked = "" if view.wake_at_ns is None else f" · blocked until {view.wake_at_ns / 1e9:.6f}s"
    out.print(f"\n[bold]node {view.index} ({view.name})[/]: {view.status} · life "
              f"{view.incarnation} · vtime {view.vtime_ns / 1e9:.6f}s · monotonic "
              f"{view.monotonic_ns / 1e9:.6f}s{blocked} · {view.syscalls} syscalls")
    if view.crash:
        out.print(f"  [red]crash[/]: {view.crash}")
    out.print(f"  at {regs['rip']:#x} {view.location}")
    for insn in view.disassembly[:4]:
        out.print(f"    {insn.address:#x}  {insn.text}")
    out.print("  " + "  ".join(f"{name}={regs[name]:#x}" for name in
                               ("rsp", "rbp", "rax", "rdi", "rsi", "rdx")))
    for line in view.stack[:STACK_LINES]:
        out.print(f"  {line}", markup=False)
    for watch in view.watches:
        out.print(f"  watch {watch.expression} = {watch.value}", markup=False)
    for f in view.files:
        out.print(f"  fd {f.fd}: {f.path} @ {f.offset}")
    for sock in view.sockets:
        timer = "" if sock.timer_ns is None else f" · {sock.timer} at {sock.timer_ns / 1e9:.6f}s"
        out.print(f"  socket {sock.sid} {sock.kind} {sock.local or '-'} → {sock.remote or '-'} "
                  f"{sock.state} · send-q {sock.send_queue} recv-q {sock.recv_queue} · "
                  f"{sock.retransmits} retransmits{timer}", markup=False)
    tail = view.stdout.splitlines()[-OUTPUT_TAIL_LINES:]
    for line in tail:
        out.print(f"  | {line}", markup=False)
