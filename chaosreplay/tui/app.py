"""The debugger's apps and make_app: the one way the CLI and the tests build the debugger."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from functools import partial

from textual.app import App, SystemCommand
from textual.screen import Screen

from chaosreplay.debugger.session import DebugSession
from chaosreplay.tui.debugger_screen import DebuggerScreen
from chaosreplay.tui.keys import COMMANDS
from chaosreplay.tui.seek_target import SeekTarget
from chaosreplay.vm.watchdog import install_wake_handler


class ChaosReplayApp(App[None]):
    """What every chaosreplay app shares: the debugger's commands in the palette, the
    watchdog's signal handler, and engines stopped on the way out."""

    TITLE = "chaosreplay debug"

    def __init__(self) -> None:
        super().__init__()
        self.engines_stopped = True
        if threading.current_thread() is threading.main_thread():
            # Reconstructions run on the engine thread; their hang watchdog signals it,
            # and only the main thread may install the signal's handler.
            install_wake_handler()

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """The palette: Textual's own commands, then every debugger command by name."""
        yield from super().get_system_commands(screen)
        if isinstance(screen, DebuggerScreen):
            for command in COMMANDS:
                yield SystemCommand(command.description.capitalize(),
                                    f"key: {command.keys_shown}",
                                    partial(screen.run_action, command.action))

    def on_unmount(self) -> None:
        self.engines_stopped = all(screen.engine.stop() for screen in self.screen_stack
                                   if isinstance(screen, DebuggerScreen))


class DebuggerApp(ChaosReplayApp):
    """The time-travel debugger over one recording (the screen does the work)."""

    def __init__(self, session: DebugSession, *, seek: SeekTarget | None = None,
                 filter_text: str = "", owns_session: bool = False,
                 open_at_bug: bool = False) -> None:
        super().__init__()
        self.session = session
        self.seek = seek
        self.filter_text = filter_text
        self.owns_session = owns_session
        self.open_at_bug = open_at_bug

    def on_mount(self) -> None:
        self.sub_title = self.session.path.name
        self.push_screen(DebuggerScreen(self.session, seek=self.seek,
                                        filter_text=self.filter_text,
                                        open_at_bug=self.open_at_bug))

    def on_unmount(self) -> None:
        super().on_unmount()
        if self.owns_session and self.engines_stopped:
            self.session.close()  # never under a reconstruction that is still running


def make_app(session_or_path: DebugSession | str | os.PathLike[str], *,
             seek: SeekTarget | str | None = None, filter_text: str = "",
             open_at_bug: bool = False) -> DebuggerApp:
    """The debugger app for a session or a recording's path (RecordingError when it cannot
    be opened; SeekError for a bad seek). A session opened here is closed with the app.
    open_at_bug: without a seek, start at the run's first bug (the CLI's default)."""
    target = SeekTarget.parse(seek) if isinstance(seek, str) else seek
    if isinstance(session_or_path, DebugSession):
        return DebuggerApp(session_or_path, seek=target, filter_text=filter_text,
                           open_at_bug=open_at_bug)
    session = DebugSession(session_or_path)
    return DebuggerApp(session, seek=target, filter_text=filter_text, owns_session=True,
                       open_at_bug=open_at_bug)
