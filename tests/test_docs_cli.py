"""docs/cli.md documents every `chaosreplay` command with its current --help text.

The test is generic over the click group: a command registered in chaosreplay/cli/commands.py
but missing from docs/cli.md fails with a message saying what to add, and a section whose
help text no longer matches `chaosreplay <command> --help` fails until it is refreshed.
Comparisons collapse whitespace, so only wording (not line wrapping) has to match.
"""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from chaosreplay.cli import main

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
SECTION = re.compile(r"^## `chaosreplay ([\w-]+)`[ \t]*$", re.MULTILINE)
COMMANDS = sorted(main.commands)


def _squash(text: str) -> str:
    """text with every run of whitespace turned into one space."""
    return " ".join(text.split())


def _sections() -> dict[str, str]:
    """Each `## \\`chaosreplay NAME\\`` section of docs/cli.md, by command name."""
    text = DOC.read_text(encoding="utf-8")
    heads = list(SECTION.finditer(text))
    sections: dict[str, str] = {}
    for i, head in enumerate(heads):
        end = heads[i + 1].start() if i + 1 < len(heads) else len(text)
        following = re.search(r"^## ", text[head.end() : end], re.MULTILINE)
        if following is not None:
            end = head.end() + following.start()
        sections[head.group(1)] = text[head.end() : end]
    return sections


def _help_output(args: list[str]) -> str:
    """What `chaosreplay ARGS` prints, at the fixed 80-column width the docs use."""
    result = CliRunner().invoke(main, args, prog_name="chaosreplay", terminal_width=80)
    assert result.exit_code == 0, f"chaosreplay {' '.join(args)} failed:\n{result.output}"
    return result.output


def _context(command: click.Command) -> click.Context:
    """A context for command under the group, as the CLI builds it.

    The parent matters: it carries help_option_names (-h), and click caches a command's
    help option from the first context that asks for it.
    """
    group = click.Context(main, info_name="chaosreplay", **main.context_settings)
    if command is main:
        return group
    return click.Context(command, info_name=command.name, parent=group)


def _option_names(command: click.Command) -> list[str]:
    """Every option spelling of a command, --help included (e.g. ["--json", "-h", "--help"])."""
    ctx = _context(command)
    names: list[str] = []
    for param in command.get_params(ctx):
        if isinstance(param, click.Option):
            names += [*param.opts, *param.secondary_opts]
    return names


def _mentions(text: str, option: str) -> bool:
    """Whether option appears as a whole word (so "-h" is not found inside "--hang")."""
    return re.search(rf"(?<![\w-]){re.escape(option)}(?![\w-])", text) is not None


def test_there_are_commands_to_document() -> None:
    """The group registers commands, so the generic test below checks something."""
    assert COMMANDS, "chaosreplay.cli.main has no commands"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_documented_with_its_current_help(name: str) -> None:
    """docs/cli.md has a section for the command holding its docstring, options and --help."""
    sections = _sections()
    assert name in sections, (
        f"`chaosreplay {name}` is registered but not documented: add a section "
        f"'## `chaosreplay {name}`' to docs/cli.md with what it does and the output of "
        f"`chaosreplay {name} --help`"
    )
    section = _squash(sections[name])
    command = main.commands[name]
    summary = _squash((command.help or "").split("\n\n")[0])
    assert summary and summary in section, (
        f"docs/cli.md, `chaosreplay {name}`: the docstring's first line is missing: {summary!r}"
    )
    missing = [opt for opt in _option_names(command) if not _mentions(section, opt)]
    assert not missing, f"docs/cli.md, `chaosreplay {name}`: options not documented: {missing}"
    output = _help_output([name, "--help"])
    assert _squash(output) in section, (
        f"docs/cli.md, `chaosreplay {name}`: the --help text is out of date; replace the block "
        f"with the current output of `chaosreplay {name} --help`:\n{output}"
    )


def test_documented_commands_exist() -> None:
    """No section describes a command the CLI does not have (planned ones are listed apart)."""
    stale = sorted(set(_sections()) - set(main.commands))
    assert not stale, (
        f"docs/cli.md documents commands that do not exist: {stale}; move them under "
        "'Planned' without a '## `chaosreplay NAME`' heading, or remove them"
    )


def test_group_options_are_documented() -> None:
    """The top of docs/cli.md carries the group's one-line description and its options."""
    text = DOC.read_text(encoding="utf-8")
    first = SECTION.search(text)
    intro = _squash(text[: first.start()] if first is not None else text)
    summary = _squash((main.help or "").split("\n\n")[0])
    assert summary in intro, f"docs/cli.md intro lacks the group description {summary!r}"
    missing = [opt for opt in _option_names(main) if not _mentions(intro, opt)]
    assert not missing, f"docs/cli.md intro lacks the group options {missing}"
