"""The `chaosreplay` command line: one click group, one module per family of commands."""

from __future__ import annotations

import sys

import click

from chaosreplay import __version__
from chaosreplay.errors import ChaosReplayError


class _Group(click.Group):
    """A click group that turns ChaosReplayError into one clear line and a nonzero exit."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except ChaosReplayError as exc:
            click.echo(f"chaosreplay: error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("chaosreplay: interrupted", err=True)
            sys.exit(130)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="chaosreplay")
def main() -> None:
    """Deterministic simulation testing of distributed systems in KVM micro-VMs."""


def _register() -> None:
    """Attach every command module's commands to the group (one line per module)."""
    from chaosreplay.cli import commands

    for command in commands.ALL:
        main.add_command(command)


_register()
