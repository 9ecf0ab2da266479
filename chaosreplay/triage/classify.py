"""What one recording found: its primary failure, as a signature, and the faults around it.

A run can fail several times (an assertion, then a crash of the node that went astray);
only the earliest failure counts, so one bug gives one finding. Bugs and failures (crashes,
hangs, exits with a status the scenario does not allow, output on stderr where the scenario
says that is a failure) are ordered by tick, a bug first at equal ticks (the oracle sees a
violation before the node that made it can die of it). A run without any is classified by
its first never-satisfied `sometimes`/`reachable`. `signature_from_summary` works on a
`RunResult.summary()` dict alone (plus the exits and stderr writes the shrinker's runs add
to it, judged by the recording's `NodeRule`s), which is all a shrinker has of a candidate
run; a recording whose summary was lost with its footer is classified from its `bug`,
`crash` and `unsatisfied` events instead, with the same rules and therefore the same
signature. Exits and stderr writes are always read from the recording's own `exit` and
`output` events, so they count whether or not the simulation that made the recording
treated them as failures.
"""

from __future__ import annotations

import hashlib
import json
import re
import signal
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePosixPath
from typing import Any

from chaosreplay.events import EventKind
from chaosreplay.recording import RecordingReader
from chaosreplay.sim.faults.model import KIND_SPECS, FaultKind

# Faults that ended this many ticks (ms) before a failure still count as its context: the
# demo's election timeouts are 150-300 ms, so a heal one second earlier still shapes the
# elections that follow it.
FAULT_WINDOW_TICKS = 1000
HANG_MESSAGE = "no progress: a node ran without a VM exit past the hang timeout"
_CRASH_DETAIL = re.compile(r"^(?P<signal>\w+) \((?P<reason>.*)\) at 0x[0-9a-f]+ "
                           r"\((?P<symbol>[^()]*)\)(?:, address 0x[0-9a-f]+)?$")
_BUG_ORDER, _FAILURE_ORDER, _NEVER_ORDER = 0, 1, 2
_FAILURE_KINDS = (EventKind.BUG.value, EventKind.CRASH.value, EventKind.UNSATISFIED.value,
                  EventKind.EXIT.value, EventKind.OUTPUT.value)
STDERR_MESSAGE = "wrote to stderr"
DEFAULT_EXITS = frozenset({0})


class FailureClass(StrEnum):
    """The kinds of failure triage tells apart."""

    ALWAYS = "always"  # an always assertion failed
    UNREACHABLE = "unreachable"  # an unreachable assertion was reached
    CRASH = "crash"  # a guest died of a signal
    HANG = "hang"  # a guest made no progress (the host watchdog ended it)
    NEVER = "never"  # a sometimes/reachable was never satisfied in the run
    EXIT = "exit"  # a node exited with a status its scenario does not allow
    STDERR = "stderr"  # a node wrote to stderr, which its scenario counts as a failure
    DIVERGENCE = "divergence"  # the replay differs from the recording


_TITLES = {
    FailureClass.ALWAYS: "always failed", FailureClass.UNREACHABLE: "unreachable reached",
    FailureClass.CRASH: "crash", FailureClass.HANG: "hang",
    FailureClass.NEVER: "never satisfied", FailureClass.DIVERGENCE: "replay diverged",
    FailureClass.EXIT: "exit", FailureClass.STDERR: "stderr",
}


def short_hash(*parts: Any) -> str:
    """12 hex digits of SHA-256 over the JSON of parts: a stable key across processes."""
    text = json.dumps(parts, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Signature:
    """How a failure looks, independently of the run it happened in."""

    failure_class: FailureClass
    assertion_id: int | None  # the SDK's id of the assertion (None for crashes and hangs)
    message: str  # the assertion's message, or the signal and reason of a crash
    location: str | None  # file:line of an assertion, symbol of a crash

    @property
    def key(self) -> str:
        """A short stable hash of the signature."""
        return short_hash(self.failure_class.value, self.assertion_id, self.message,
                          self.location)

    @property
    def title(self) -> str:
        """One line for people: what failed and where."""
        head = _TITLES[self.failure_class]
        if self.failure_class in (FailureClass.CRASH, FailureClass.HANG):
            where = f" in {self.location}" if self.location else ""
            return f"{head}: {self.message}{where}"
        if self.failure_class in (FailureClass.EXIT, FailureClass.STDERR):
            return f"{head}: {self.message} (node group {self.location})"
        where = f" at {self.location}" if self.location else ""
        if self.failure_class is FailureClass.DIVERGENCE:
            return f"{head}: {self.message}{where}"
        return f'{head}: "{self.message}"{where}'

    def to_dict(self) -> dict[str, Any]:
        """Plain data (for reports)."""
        return {"class": self.failure_class.value, "assertion_id": self.assertion_id,
                "message": self.message, "location": self.location}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Signature:
        """The inverse of to_dict (KeyError/ValueError on malformed data)."""
        assertion_id = data["assertion_id"]
        return cls(FailureClass(data["class"]), None if assertion_id is None else
                   int(assertion_id), str(data["message"]),
                   None if data["location"] is None else str(data["location"]))


@dataclass(frozen=True)
class Occurrence:
    """A failure in one run: its signature, when and on which node (-1: the whole run)."""

    signature: Signature
    tick: int
    node: int
    order: int = _BUG_ORDER  # bugs before crashes/hangs before never-satisfied at one tick


@dataclass(frozen=True)
class Finding:
    """The primary failure of a recorded run, with the faults around it."""

    signature: Signature
    tick: int
    node: int
    seq: int | None  # event number of the failure in the recording (None: not found)
    faults: tuple[str, ...]  # fault kinds in effect or just ended (FAULT_WINDOW_TICKS)
    faults_started: int = 0  # faults that had started before the failure


# -- what a scenario counts as a failure of a node --------------------------------------------


@dataclass(frozen=True)
class NodeRule:
    """What a node's scenario counts as a failure besides assertions, crashes and hangs."""

    group: str  # the node group's name, which locates exit and stderr failures
    allowed_exits: frozenset[int] = DEFAULT_EXITS
    stderr_fails: bool = False


def allowed_exits(group: Mapping[str, Any]) -> frozenset[int]:
    """A node group's allowed exit statuses: its `expect_exit` (a status or a list of
    them) when the scenario has one, else 0 only."""
    value = group.get("expect_exit")
    if value is None:
        return DEFAULT_EXITS
    values = [value] if isinstance(value, int) else value
    try:
        return frozenset(int(v) & 0xFF for v in values)
    except (TypeError, ValueError):
        return DEFAULT_EXITS


def stderr_is_failure(group: Mapping[str, Any]) -> bool:
    """Whether a node group's scenario says that writing to stderr is a failure (its
    `stderr_is_failure` key; absent: no)."""
    return group.get("stderr_is_failure") is True


def node_rules(scenario: Any) -> tuple[NodeRule, ...]:
    """One rule per node, in node order, from a manifest's scenario dict."""
    groups = scenario.get("nodes") if isinstance(scenario, Mapping) else None
    rules: list[NodeRule] = []
    for group in groups if isinstance(groups, list) else []:
        if not isinstance(group, Mapping):
            continue
        label = str(group.get("name") or PurePosixPath(str(group.get("program", "?"))).name)
        count = group.get("count", 1)
        rules += [NodeRule(label, allowed_exits(group), stderr_is_failure(group))] * (
            count if isinstance(count, int) and 0 < count <= 1024 else 1)
    return tuple(rules)


def recording_rules(reader: RecordingReader) -> tuple[NodeRule, ...]:
    """The node rules of a recording's scenario (none when its manifest has no scenario)."""
    manifest = reader.manifest
    return node_rules(manifest.get("scenario") if isinstance(manifest, Mapping) else None)


def _rule(rules: Sequence[NodeRule], node: int) -> NodeRule:
    return rules[node] if 0 <= node < len(rules) else NodeRule(f"node {node}")


def exit_occurrence(rules: Sequence[NodeRule], node: int, tick: int,
                    code: Any) -> Occurrence | None:
    """A node's exit as a failure (None: its status is allowed)."""
    rule = _rule(rules, node)
    status = int(code) & 0xFF if isinstance(code, int) else -1
    if status in rule.allowed_exits:
        return None
    return Occurrence(Signature(FailureClass.EXIT, None, f"exit status {status}", rule.group),
                      tick, node, _FAILURE_ORDER)


def stderr_occurrence(rules: Sequence[NodeRule], node: int, tick: int) -> Occurrence | None:
    """A node's write to stderr as a failure (None: its scenario allows it)."""
    rule = _rule(rules, node)
    if not rule.stderr_fails:
        return None
    return Occurrence(Signature(FailureClass.STDERR, None, STDERR_MESSAGE, rule.group), tick,
                      node, _FAILURE_ORDER)


# -- signatures from the pieces of a summary or an event ------------------------------------


def assertion_signature(assert_kind: str, assertion_id: Any, message: Any, file: Any,
                        line: Any) -> Signature:
    """A violated or unsatisfied assertion's signature."""
    failure_class = {"always": FailureClass.ALWAYS, "unreachable": FailureClass.UNREACHABLE,
                     }.get(assert_kind, FailureClass.NEVER)
    location = f"{file}:{line}" if file else None
    return Signature(failure_class, None if assertion_id is None else int(assertion_id),
                     str(message), location)


def crash_signature(signal_number: int, reason: str, symbol: str | None) -> Signature:
    """A guest crash's signature: its signal and reason, located by symbol."""
    if signal_number == 0 and reason == "hang":
        return Signature(FailureClass.HANG, None, HANG_MESSAGE, None)
    try:
        name = signal.Signals(signal_number).name
    except ValueError:
        name = f"signal {signal_number}"
    return Signature(FailureClass.CRASH, None, f"{name} ({reason})", symbol or None)


def _failure_signature(kind: str, detail: str) -> Signature:
    """A summary `failures` entry's signature; its detail is `Crash.describe()`'s text."""
    if kind == "hang":
        return Signature(FailureClass.HANG, None, HANG_MESSAGE, None)
    match = _CRASH_DETAIL.match(detail)
    if match is None:  # not a described CPU crash: its whole text is what we know
        return Signature(FailureClass.CRASH, None, detail, None)
    return Signature(FailureClass.CRASH, None, f"{match['signal']} ({match['reason']})",
                     match["symbol"])


def _primary(occurrences: Iterable[Occurrence]) -> Occurrence | None:
    """The earliest failure; never-satisfied assertions only when nothing failed."""
    ranked = sorted(enumerate(occurrences), key=lambda item: (
        item[1].order == _NEVER_ORDER, item[1].tick, item[1].order, item[0]))
    return ranked[0][1] if ranked else None


def summary_occurrences(summary: Mapping[str, Any],
                        rules: Sequence[NodeRule] = ()) -> list[Occurrence]:
    """Every failure a `RunResult.summary()` dict lists, in its order; with the exits and
    stderr writes (`exits`, `stderr`: the shrinker's runs add them) judged by `rules`."""
    out = [Occurrence(assertion_signature(b.get("assert_kind", "always"), b.get("assert_id"),
                                          b.get("message", ""), b.get("file"), b.get("line")),
                      int(b.get("tick", 0)), int(b.get("node", -1)), _BUG_ORDER)
           for b in summary.get("bugs") or []]
    # An exit the simulation itself counts as a failure is judged here by the rules, from
    # `exits`, like every other exit: the same run gives the same signature either way.
    out += [Occurrence(_failure_signature(str(f.get("kind")), str(f.get("detail", ""))),
                       int(f.get("tick", 0)), int(f.get("node", -1)), _FAILURE_ORDER)
            for f in summary.get("failures") or [] if f.get("kind") != "exit"]
    for e in summary.get("exits") or []:
        occurrence = exit_occurrence(rules, int(e.get("node", -1)), int(e.get("tick", 0)),
                                     e.get("code"))
        out += [occurrence] if occurrence is not None else []
    for e in summary.get("stderr") or []:
        occurrence = stderr_occurrence(rules, int(e.get("node", -1)), int(e.get("tick", 0)))
        out += [occurrence] if occurrence is not None else []
    out += [Occurrence(assertion_signature(u.get("assert_kind", "sometimes"), u.get("assert_id"),
                                           u.get("message", ""), u.get("file"), u.get("line")),
                       int(u.get("tick", 0)), -1, _NEVER_ORDER)
            for u in summary.get("unsatisfied") or []]
    return out


def primary_from_summary(summary: Mapping[str, Any],
                         rules: Sequence[NodeRule] = ()) -> Occurrence | None:
    """The primary failure of a run from its summary (None: it found nothing)."""
    return _primary(summary_occurrences(summary, rules))


def signature_from_summary(summary: Mapping[str, Any],
                           rules: Sequence[NodeRule] = ()) -> Signature | None:
    """The signature of a run's primary failure, from `RunResult.summary()` alone."""
    primary = primary_from_summary(summary, rules)
    return None if primary is None else primary.signature


def event_occurrence(kind: str, node: int, tick: int, fields: Mapping[str, Any],
                     rules: Sequence[NodeRule] = ()) -> Occurrence | None:
    """The failure one recorded event reports (None: it reports none, e.g. a repeat bug)."""
    if kind == EventKind.EXIT.value:
        return exit_occurrence(rules, node, tick, fields.get("code"))
    if kind == EventKind.OUTPUT.value:
        return stderr_occurrence(rules, node, tick) if fields.get("fd") == 2 else None
    if kind == EventKind.BUG.value:
        if not fields.get("first", True):
            return None  # repeats of a violation are not listed in the summary either
        return Occurrence(assertion_signature(fields.get("assert_kind", "always"),
                                              fields.get("assert_id"), fields.get("message", ""),
                                              fields.get("file"), fields.get("line")),
                          int(fields.get("tick", tick)), node, _BUG_ORDER)
    if kind == EventKind.CRASH.value:
        return Occurrence(crash_signature(int(fields.get("signal", 0)),
                                          str(fields.get("reason", "")), fields.get("symbol")),
                          tick, node, _FAILURE_ORDER)
    if kind == EventKind.UNSATISFIED.value:
        return Occurrence(assertion_signature(fields.get("assert_kind", "sometimes"),
                                              fields.get("assert_id"), fields.get("message", ""),
                                              fields.get("file"), fields.get("line")),
                          tick, -1, _NEVER_ORDER)
    return None


def _event_occurrences(reader: RecordingReader,
                       rules: Sequence[NodeRule]) -> Iterator[tuple[int, Occurrence]]:
    """(seq, failure) for every failure event of a recording, in order."""
    for event in reader.events(kinds=_FAILURE_KINDS):
        occurrence = event_occurrence(event.kind, event.node, event.tick, event.fields, rules)
        if occurrence is not None:
            yield event.seq, occurrence


# -- a recording ---------------------------------------------------------------------------


def fault_pattern(reader: RecordingReader, tick: int, before_seq: int | None,
                  window: int = FAULT_WINDOW_TICKS) -> tuple[str, ...]:
    """Sorted fault kinds in effect at a failure, or ended within `window` ticks before it."""
    return fault_context(reader, tick, before_seq, window)[0]


def fault_context(reader: RecordingReader, tick: int, before_seq: int | None,
                  window: int = FAULT_WINDOW_TICKS) -> tuple[tuple[str, ...], int]:
    """(the fault pattern of a failure, how many faults had started before it)."""
    active: dict[str, str] = {}
    started = 0
    recent: set[str] = set()
    starts, ends = EventKind.FAULT_START.value, EventKind.FAULT_END.value
    for event in reader.events(kinds=(starts, ends), to_tick=tick):
        if before_seq is not None and event.seq >= before_seq:
            break
        fault = event.fields.get("fault") or {}
        kind, fault_id = str(fault.get("kind", "?")), str(event.fields.get("fault_id", ""))
        if event.kind == starts:
            started += 1
            if _instantaneous(kind):
                if event.tick >= tick - window:
                    recent.add(kind)
            else:
                active[fault_id] = kind
        elif active.pop(fault_id, None) is not None and event.tick >= tick - window:
            recent.add(kind)
    return tuple(sorted(recent | set(active.values()))), started


def _instantaneous(kind: str) -> bool:
    """Whether a fault kind acts at once and never ends (restart, clock_jump, heal)."""
    try:
        return KIND_SPECS[FaultKind(kind)].duration == "none"
    except ValueError:
        return False


def classify_recording(reader: RecordingReader) -> Finding | None:
    """The primary failure of a recording (None: the run found nothing).

    From the summary when the recording has one, else from its readable events; exits and
    stderr writes always from the events (a summary lists them only as the shrinker's runs do).
    """
    rules = recording_rules(reader)
    events = list(_event_occurrences(reader, rules))
    if reader.summary is not None:
        listed = summary_occurrences(reader.summary, rules)
        if "exits" not in reader.summary:
            listed += [o for _, o in events
                       if o.signature.failure_class in (FailureClass.EXIT, FailureClass.STDERR)]
        primary = _primary(listed)
        seq = None if primary is None else next(
            (s for s, o in events if (o.signature, o.node) == (primary.signature, primary.node)),
            None)
    else:
        primary = _primary(o for _, o in events)
        seq = next((s for s, o in events if o is primary), None)
    if primary is None:
        return None
    faults, started = fault_context(reader, primary.tick, seq)
    return Finding(primary.signature, primary.tick, primary.node, seq, faults, started)
