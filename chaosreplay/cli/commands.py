"""The list of commands the CLI offers; each family lives in its own module."""

from __future__ import annotations

import click

ALL: list[click.Command] = []
