"""The list of commands the CLI offers; each family lives in its own module."""

from __future__ import annotations

import click

from chaosreplay.cli.lint_command import lint

ALL: list[click.Command] = []
ALL.append(lint)
