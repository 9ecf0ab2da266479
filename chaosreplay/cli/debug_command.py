"""`chaosreplay debug`: the time-travel debugger (Textual) over one recording."""

from __future__ import annotations

import sys

import click

from chaosreplay.cli.integrity import check_integrity, force_option
from chaosreplay.debugger.filters import EventFilter, FilterError
from chaosreplay.errors import ChaosReplayError


@click.command("debug")
@click.argument("recording", type=click.Path())
@click.option("--seek", metavar="TICK|#EVENT",
              help="Start at a tick (12500), a virtual time (12.5s) or an event (#1234).")
@click.option("--filter", "filter_text", metavar="TEXT", default="",
              help='Start with this filter, e.g. "fault bug node:1" (keys n/N jump between '
                   "matches).")
@click.option("--decoder", metavar="TYPE|FILE.py:FUNCTION",
              help="Decode packet payloads (key o) as a C type of the programs' debug info "
                   "('struct msg') or with a Python function (payload, src, dst) -> dict; "
                   "default: the scenario's packet_decoder.")
@force_option
def debug(recording: str, seek: str | None, filter_text: str, decoder: str | None,
          force: bool) -> None:
    """Open a recording in the time-travel debugger: a timeline of every event, the state
    of each node at the cursor (registers, code, stack, output), the network, the active
    faults and the assertion table; step, seek, filter, search, bookmark, and branch the
    future fault schedule (what-if). Press ? inside for the keys."""
    # Everything that can be refused is checked before Textual takes the terminal.
    from chaosreplay.debugger.session import DebugSession
    from chaosreplay.tui.seek_target import SeekError, SeekTarget

    try:
        target = SeekTarget.parse(seek) if seek is not None else None
        EventFilter.parse(filter_text)
    except (SeekError, FilterError) as exc:
        click.echo(f"chaosreplay: error: {exc}", err=True)
        sys.exit(2)
    try:
        check_integrity(recording, force, "open it")
        session = DebugSession(recording)
        if decoder is not None:
            try:
                session.set_decoder(decoder)
            except ChaosReplayError:
                session.close()
                raise
    except ChaosReplayError as exc:
        click.echo(f"chaosreplay: error: {exc}", err=True)
        sys.exit(2)
    except OSError as exc:  # a directory, a file that vanished between checks
        click.echo(f"chaosreplay: error: cannot open {recording}: {exc.strerror}", err=True)
        sys.exit(2)
    from chaosreplay.tui import make_app

    app = make_app(session, seek=target, filter_text=filter_text, open_at_bug=True)
    try:
        app.run()
    finally:
        if app.engines_stopped:  # never close under a reconstruction still running
            session.close()
