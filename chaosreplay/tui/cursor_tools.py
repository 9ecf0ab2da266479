"""CursorTools: what the debugger screen opens from the cursor — the what-if editor, memory,
watch expressions and "where did it change". A mixin of DebuggerScreen; each asks the engine
(the schedule, memory, watches and change searches live in the session) and acts when the
answer arrives as an EngineNotice."""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.watch import WatchError, parse
from chaosreplay.errors import ChaosReplayError
from chaosreplay.runs.whatif import BranchResult, schedule_of
from chaosreplay.tui.memory_screen import MemoryRequestError, MemoryScreen, parse_request
from chaosreplay.tui.messages import EngineNotice
from chaosreplay.tui.packet_screen import PacketScreen
from chaosreplay.tui.prompt_screen import PromptScreen
from chaosreplay.tui.seek_target import SeekTarget
from chaosreplay.tui.whatif_plan import WhatIfPlan
from chaosreplay.tui.whatif_screen import WhatIfScreen

if TYPE_CHECKING:
    from textual.app import App

    from chaosreplay.tui.engine_bridge import EngineBridge


def watch_list(text: str) -> list[str]:
    """Watch expressions typed as `a; b; c`."""
    return [part.strip() for part in text.split(";") if part.strip()]


def _watch_problem(text: str) -> str | None:
    try:
        for expression in watch_list(text):
            parse(expression)
    except WatchError as exc:
        return str(exc)
    return None


def _request_problem(text: str) -> str | None:
    try:
        parse_request(text)
    except MemoryRequestError as exc:
        return str(exc)
    return None


class CursorTools:
    """The what-if and memory commands (see the module docstring)."""

    if TYPE_CHECKING:  # provided by DebuggerScreen
        app: App[None]
        session: DebugSession
        bridge: EngineBridge
        cursor: int
        nodes: list[int]
        unavailable: str | None

        def say(self, message: str, error: bool = False) -> None: ...
        def short(self, text: str) -> str: ...
        def active_pane(self) -> str: ...
        def go(self, seq: int) -> None: ...

    watches: dict[int, list[str]]  # per node, as the session has them

    def _needs_states(self, what: str) -> bool:
        if self.unavailable is not None:
            self.say(f"{what} needs a run that can be re-executed: {self.unavailable}",
                     error=True)
            return False
        return True

    def action_whatif(self) -> None:
        """Load the run's fault schedule (engine thread), then open the what-if editor."""
        if not self._needs_states("what-if"):
            return
        cursor = self.cursor
        self.say("loading the fault schedule…")
        self.bridge.background("schedule", lambda s: (cursor, s.event(cursor).tick,
                                                      schedule_of(s.reader)))

    def _pane_node(self) -> int:
        active = self.active_pane()
        return int(active.split("-")[1]) if active.startswith("node-") else self.nodes[0]

    def action_watch(self) -> None:
        """Edit the watch list of the node whose pane is shown."""
        if not self._needs_states("watching"):
            return
        node = self._pane_node()

        def done(text: str | None) -> None:
            if text is None:
                return
            expressions = watch_list(text)
            self.watches[node] = expressions
            self.bridge.background("watches", lambda s: (s.set_watches(node, expressions),
                                                         node)[1])

        self.app.push_screen(PromptScreen(
            f"Watch on node {node}", "C expressions, ; between them: current_term; "
            "log_[commit_index].term; next_index[2]", "; ".join(self.watches.get(node, [])),
            check=_watch_problem), done)

    def action_changed(self, direction: int) -> None:
        """Go to the last (-1) / next (1) event at which the first watch of the node shown
        changed (a search re-executing from checkpoints, on the engine thread)."""
        if not self._needs_states("finding changes"):
            return
        node = self._pane_node()
        expressions = self.watches.get(node, [])
        if not expressions:
            self.say(f"node {node} has no watch: press e to add one", error=True)
            return
        expression, cursor = expressions[0], self.cursor
        if direction < 0 and cursor == 0:
            self.say(f"{expression} did not change before #0")
            return
        self.say(f"searching where {expression} changed…")
        at = cursor if direction > 0 else cursor - 1
        self.bridge.background("changed", lambda s: (direction, node, expression, cursor,
                                                     s.find_change(node, expression, at,
                                                                   forward=direction > 0)))

    def action_examine(self) -> None:
        """Ask where to look in the memory of the node whose pane is shown."""
        if not self._needs_states("examining memory"):
            return
        active = self.active_pane()
        node = int(active.split("-")[1]) if active.startswith("node-") else self.nodes[0]
        cursor = self.cursor

        def examine(text: str | None) -> None:
            if not text:
                return
            where, size = parse_request(text)
            self.bridge.background("memory", lambda s: (
                node, cursor, where, *s.memory(node, where, size, seq=cursor)))

        self.app.push_screen(PromptScreen(
            f"Examine node {node}'s memory after #{cursor}",
            "a symbol or an address, then a size: current_term 16, 0x7fffffffed00 64",
            check=_request_problem), examine)

    def action_packet(self) -> None:
        """Show the packet the event under the cursor is about (from the recording)."""
        cursor = self.cursor
        self.bridge.background("packet", lambda s: s.packet(cursor))

    def on_engine_notice(self, message: EngineNotice) -> None:
        if message.error is not None:
            self.say(f"{message.topic}: {self.short(message.error)}", error=True)
        elif message.topic == "watches":
            self.go(self.cursor)  # the state again, with the new watches
        elif message.topic == "changed":
            direction, node, expression, cursor, change = message.value
            if change is None:
                where = f"after #{cursor}" if direction > 0 else f"before #{cursor}"
                self.say(f"{expression} on node {node} does not change {where}")
            else:
                self.go(change.seq)
                self.say(f"{expression} on node {node} changed at #{change.seq}: "
                         f"{change.before.value} → {change.after.value}"
                         + ("" if change.exact else " (found through checkpoint samples)"))
        elif message.topic == "schedule":
            cursor, tick, schedule = message.value
            self.say("")
            scenario = self.session.scenario
            plan = WhatIfPlan(schedule, tick, scenario.node_count)
            self.app.push_screen(WhatIfScreen(self.session.path, plan, cursor,
                                              scenario.duration), self.open_branch)
        elif message.topic == "packet":
            view = message.value
            if view is None:
                self.say(f"#{self.cursor} is not about a packet", error=True)
                return
            decoder = self.session.decoder
            self.app.push_screen(PacketScreen(view, decoder.spec if decoder else None),
                                 lambda seq: None if seq is None else self.go(seq))
        elif message.topic == "memory":
            node, cursor, where, address, data = message.value
            name = f"{where} = {address:#x}" if isinstance(where, str) else f"{address:#x}"
            size = "" if data is None else f", {len(data)} bytes"
            self.app.push_screen(MemoryScreen(f"node {node} after #{cursor}: {name}{size}",
                                              address, data))

    def open_branch(self, branch: BranchResult | None) -> None:
        """Open a saved branch on a screen of its own, at its first new event (q comes back
        here)."""
        if branch is None:
            return
        from chaosreplay.tui.debugger_screen import DebuggerScreen  # the screen mixes this in

        try:
            session = DebugSession(branch.path)
        except (ChaosReplayError, OSError) as exc:
            self.say(f"cannot open {branch.path.name}: {exc}", error=True)
            return
        at = branch.diverged_at
        self.app.push_screen(DebuggerScreen(
            session, seek=None if at is None else SeekTarget(seq=at), closable=True,
            owns_session=True,
            intro=f"branch of {self.session.path.name}" + (
                "" if at is None else f", diverging at #{at}") + " (q goes back)"))
