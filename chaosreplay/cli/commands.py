"""The list of commands the CLI offers; each family lives in its own module."""

from __future__ import annotations

import click

from chaosreplay.cli.lint_command import lint
from chaosreplay.cli.recording_commands import COMMANDS as RECORDING_COMMANDS
from chaosreplay.cli.run_command import run

ALL: list[click.Command] = []
ALL.append(lint)
ALL.append(run)
ALL.extend(RECORDING_COMMANDS)
