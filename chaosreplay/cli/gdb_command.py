"""`chaosreplay gdb`: one node of a recording served to gdb, forward and in reverse."""

from __future__ import annotations

import socket
import sys
import tempfile
from pathlib import Path

import click

from chaosreplay.cli.integrity import check_integrity, force_option
from chaosreplay.errors import ChaosReplayError


@click.command("gdb")
@click.argument("recording", type=click.Path(dir_okay=False))
@click.option("--node", type=click.IntRange(min=0), required=True, help="The node to debug.")
@click.option("--port", type=click.IntRange(0, 65535), default=1234, show_default=True,
              help="TCP port to listen on (0: any free port; the one chosen is printed).")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--program", "program_out", type=click.Path(dir_okay=False),
              help="Write the node's program (embedded in the recording) here for gdb to "
                   "load; default: a temporary file removed at the end.")
@force_option
def gdb(recording: str, node: int, port: int, host: str, program_out: str | None,
        force: bool) -> None:
    """Serve a node of a recorded run over the GDB remote protocol: registers, memory,
    breakpoints, stepi, next, continue and their reverse forms (by running again from
    the nearest checkpoint). The node starts at its program's entry;
    one connection is served. Connect with the printed `gdb ... -ex 'target remote ...'`."""
    from chaosreplay.debugger.gdb_remote import GdbStub, serve
    from chaosreplay.debugger.node_history import NodeHistory
    from chaosreplay.debugger.session import DebugSession

    try:
        check_integrity(recording, force, "serve it to gdb")
        session = DebugSession(recording)
    except ChaosReplayError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"cannot open {recording}: {exc.strerror}")
    with session, tempfile.TemporaryDirectory(prefix="chaosreplay-gdb-") as scratch:
        rec = session.reconstructor
        if rec is None:
            _fail(f"{recording}: cannot re-execute: {session.cannot_reconstruct}")
        nodes = session.scenario.node_specs()
        if node >= len(nodes):
            _fail(f"{recording}: node {node} does not exist (nodes 0..{len(nodes) - 1})")
        image = rec.images[nodes[node].group]
        program = Path(program_out) if program_out else Path(scratch) / image.path.name
        try:
            program.write_bytes(image.raw)
            program.chmod(0o755)
        except OSError as exc:
            _fail(f"cannot write the program to {program}: {exc.strerror}")
        try:
            listener = socket.create_server((host, port))
        except OSError as exc:
            _fail(f"cannot listen on {host}:{port}: {exc.strerror}")
        with listener:
            try:
                history = NodeHistory(rec, node)
            except ChaosReplayError as exc:
                _fail(str(exc))
            bound = listener.getsockname()[1]
            click.echo(f"node {node} ({nodes[node].name}) of {recording} on {host}:{bound}\n"
                       f"  gdb {program} -ex 'target remote {host}:{bound}'", nl=True)
            sys.stdout.flush()
            serve(GdbStub(history), listener,
                  lambda peer: click.echo(f"gdb connected from {peer}"))
        click.echo(f"gdb disconnected ({history.rebuilds} states rebuilt for reverse "
                   "execution)")


def _fail(message: str) -> None:
    click.echo(f"chaosreplay: error: {message}", err=True)
    sys.exit(2)
