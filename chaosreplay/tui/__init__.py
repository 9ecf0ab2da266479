"""The Textual front end of the debugger (the only package that imports Textual).

`make_app` builds the app for the CLI (`chaosreplay debug`) and the tests alike; the
engine it drives is chaosreplay.debugger, which knows nothing of screens.
"""

from chaosreplay.tui.app import DebuggerApp, make_app

__all__ = ["DebuggerApp", "make_app"]
