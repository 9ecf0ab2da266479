"""The list of commands the CLI offers; each family lives in its own module."""

from __future__ import annotations

import click

from chaosreplay.cli.debug_command import debug
from chaosreplay.cli.explore_command import explore
from chaosreplay.cli.gdb_command import gdb
from chaosreplay.cli.lint_command import lint
from chaosreplay.cli.recording_commands import COMMANDS as RECORDING_COMMANDS
from chaosreplay.cli.rootfs_command import rootfs
from chaosreplay.cli.run_command import run
from chaosreplay.cli.sim_commands import COMMANDS as SIM_COMMANDS
from chaosreplay.cli.state_command import state
from chaosreplay.cli.triage_command import triage

ALL: list[click.Command] = []
ALL.append(lint)
ALL.append(rootfs)
ALL.append(run)
ALL.extend(SIM_COMMANDS)
ALL.extend(RECORDING_COMMANDS)
ALL.append(state)
ALL.append(triage)
ALL.append(debug)
ALL.append(gdb)
ALL.append(explore)
