"""The integrity gate of `replay`, `state` and `debug`: a damaged recording is refused
unless `--force`, so nothing built on damaged frames reads as a good answer.

"Damaged" is what `verify` finds, minus the two things an unfinished recording (a
`.partial` file, a writer that was killed) always shows: a last frame cut short and no
trailer. Those recordings are read up to their last whole frame, as documented.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from chaosreplay.errors import ChaosReplayError, RecordingError
from chaosreplay.recording import verify_recording

FORCE_HELP = "Go on even when verify finds the recording damaged (results may be wrong)."


def force_option(func: Callable) -> Callable:
    """The `--force` flag the gated commands share."""
    return click.option("--force", is_flag=True, help=FORCE_HELP)(func)


@contextmanager
def about_file(path: str | os.PathLike[str]) -> Iterator[None]:
    """Every error raised inside names the file: a reader's "offset 0: ..." becomes
    "run.ccr: offset 0: ...", an OSError one line with its reason."""
    name = os.fspath(path)
    try:
        yield
    except ChaosReplayError as exc:
        if str(exc).startswith(name):
            raise
        raise type(exc)(f"{name}: {exc}") from None
    except OSError as exc:
        raise RecordingError(f"{name}: {exc.strerror or exc}") from None


def _unfinished_tail(problem: str) -> bool:
    """A problem that only says the file stops early (what an unfinished recording shows)."""
    cut = "past the end of the file (truncated)" in problem or "truncated frame header" in problem
    return (cut and "to the end unread" in problem) or "no valid trailer" in problem


def recording_damage(path: str | os.PathLike[str]) -> list[str]:
    """What verify finds wrong with the recording, its unfinished tail left aside."""
    try:
        report = verify_recording(path)
    except OSError as exc:
        raise RecordingError(f"{path}: cannot read the recording ({exc.strerror})") from None
    if report.complete:
        return list(report.problems)
    return [p for p in report.problems if not _unfinished_tail(p)]


def check_integrity(path: str | os.PathLike[str], force: bool, doing: str) -> None:
    """Refuse a damaged recording (RecordingError), or with force warn loudly and go on."""
    problems = recording_damage(path)
    if not problems:
        return
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    where = Path(path)
    if not force:
        raise RecordingError(
            f"{where}: damaged recording: verify finds {count} (first: {problems[0]}); "
            f"`chaosreplay verify {where}` lists them; --force to {doing} anyway")
    click.echo(f"chaosreplay: WARNING: {where}: damaged recording, verify finds {count} "
               f"(first: {problems[0]}); {doing} anyway because of --force: what follows may "
               "be wrong", err=True)
