"""`chaosreplay debug`: refusals before the screen starts, and what it hands the app."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from tui_helpers import story_rows, write_rows

from chaosreplay.cli import main
from chaosreplay.tui.app import DebuggerApp
from chaosreplay.tui.seek_target import SeekTarget


def _debug(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["debug", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture()
def never_run(monkeypatch: pytest.MonkeyPatch) -> list[DebuggerApp]:
    """Replace DebuggerApp.run: collect the apps the CLI would have started."""
    started: list[DebuggerApp] = []
    monkeypatch.setattr(DebuggerApp, "run", lambda self, *a, **k: started.append(self))
    return started


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "missing.ccr", "cannot open"),
    (lambda tmp: tmp, "Is a directory"),
    (lambda tmp: (tmp / "junk.ccr", (tmp / "junk.ccr").write_bytes(b"x" * 100))[0],
     "not a .ccr recording"),
])
def test_unreadable_recordings_exit_2_before_the_screen(
        tmp_path: Path, never_run: list[DebuggerApp], make: Any, message: str) -> None:
    """One line on stderr, exit status 2, no app started."""
    code, out, err = _debug(str(make(tmp_path)))
    assert code == 2, (code, out, err)
    assert message in err and err.count("\n") == 1 and err.startswith("chaosreplay: error:"), err
    assert out == "" and never_run == []


@pytest.mark.parametrize(("option", "message"), [
    (["--seek", "later"], "expected a tick"), (["--filter", "node:x"], "node:x"),
])
def test_bad_seek_or_filter_exit_2(tmp_path: Path, never_run: list[DebuggerApp],
                                   option: list[str], message: str) -> None:
    """A --seek or --filter that cannot be read is refused the same way."""
    path = write_rows(tmp_path / "story.ccr", story_rows())
    code, _, err = _debug(str(path), *option)
    assert code == 2 and message in err and never_run == [], err


def test_the_app_gets_the_seek_and_the_filter(tmp_path: Path,
                                              never_run: list[DebuggerApp]) -> None:
    """The CLI builds the app with make_app and closes the session after it ends."""
    path = write_rows(tmp_path / "story.ccr", story_rows())
    code, _, err = _debug(str(path), "--seek", "#12", "--filter", "fault node:1")
    assert code == 0, err
    (app,) = never_run
    assert app.seek == SeekTarget(seq=12) and app.filter_text == "fault node:1"
    assert app.session.path == path
