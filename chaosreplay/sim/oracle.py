"""PropertyOracle: the verdicts on the assertions node programs make through the SDK.

Four kinds (the guest ABI numbers, `sdk_abi.AssertKind`): `always` must hold every time it
is evaluated; `sometimes` must hold at least once in a run; `reachable` must be reached at
least once; `unreachable` must never be reached. A failed always or a reached unreachable is
a bug the moment it happens; a sometimes never true or a reachable never reached is only
known at the end of the run (`unsatisfied`).

Assertions are keyed by (id, kind), the id being the FNV-1a of the message, so an id survives
code moving between lines. The oracle only learns of an assertion when a node evaluates it;
`declare` registers one ahead of time (e.g. from a catalog of the binary) so that a
`reachable` that is never reached can be reported at all.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from chaosreplay.events import EventKind, make_record
from chaosreplay.kernel.sdk_abi import AssertKind, fnv1a64

SNAPSHOT_VERSION = 1
TABLE_COLUMNS = ("kind", "message", "location", "passes", "fails", "hits", "first tick", "status")


def assertion_id(message: str | bytes) -> int:
    """The id the SDK gives an assertion: FNV-1a 64 of its message bytes."""
    return fnv1a64(message.encode() if isinstance(message, str) else message)


@dataclass
class AssertionStats:
    """What the oracle knows about one assertion (id, kind) over the run so far."""

    assert_id: int
    kind: AssertKind
    message: str
    file: str
    line: int
    passes: int = 0  # evaluations with the condition true
    fails: int = 0  # evaluations with the condition false
    first_tick: int = -1  # -1: declared but never evaluated
    first_node: int = -1

    @property
    def hits(self) -> int:
        """How many times a node evaluated (reached) this assertion."""
        return self.passes + self.fails

    @property
    def location(self) -> str:
        """file:line of the first place it was seen."""
        return f"{self.file}:{self.line}"

    @property
    def satisfied(self) -> bool:
        """Whether the assertion holds for the run so far."""
        if self.kind == AssertKind.ALWAYS:
            return self.fails == 0
        if self.kind == AssertKind.SOMETIMES:
            return self.passes > 0
        if self.kind == AssertKind.REACHABLE:
            return self.hits > 0
        return self.hits == 0

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (kind as its ABI number)."""
        return {**asdict(self), "kind": int(self.kind)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AssertionStats:
        """The inverse of to_dict."""
        return cls(**{**data, "kind": AssertKind(data["kind"])})


@dataclass(frozen=True)
class Bug:
    """A property violation: a failed always or a reached unreachable."""

    node: int
    tick: int
    kind: AssertKind
    message: str
    file: str
    line: int
    assert_id: int
    first: bool  # the first violation of this assertion in the run

    @property
    def location(self) -> str:
        """file:line of the violated assertion."""
        return f"{self.file}:{self.line}"

    def to_record(self) -> dict[str, Any]:
        """The bug record for the recorder."""
        return make_record(
            EventKind.BUG, tick=self.tick, node=self.node, assert_kind=self.kind.name.lower(),
            message=self.message, file=self.file, line=self.line, assert_id=self.assert_id,
            first=self.first,
        )


@dataclass(frozen=True)
class Conflict:
    """Two different messages reported under one assertion id (a hash collision or SDK bug)."""

    tick: int
    node: int
    assert_id: int
    kind: AssertKind
    known_message: str
    new_message: str
    file: str
    line: int

    def to_record(self) -> dict[str, Any]:
        """The oracle.conflict record for the recorder."""
        return make_record(
            EventKind.ORACLE_CONFLICT, tick=self.tick, node=self.node, assert_id=self.assert_id,
            assert_kind=self.kind.name.lower(), known_message=self.known_message,
            new_message=self.new_message, file=self.file, line=self.line,
        )


class PropertyOracle:
    """Tracks every SDK assertion of a run and turns violations into bugs."""

    def __init__(self) -> None:
        self._stats: dict[tuple[int, int], AssertionStats] = {}
        self._conflicts: list[Conflict] = []
        self._conflicts_taken = 0
        self.bug_count = 0

    def declare(self, kind: int, assert_id: int, message: str, file: str, line: int) -> None:
        """Register an assertion before any node evaluates it (so never-reached is visible)."""
        self._entry(-1, -1, AssertKind(kind), assert_id, message, file, line)

    def observe(
        self, tick: int, node: int, kind: int, condition: bool, assert_id: int, message: str,
        file: str, line: int,
    ) -> Bug | None:
        """Count one evaluation; a failed always or a reached unreachable returns the Bug."""
        akind = AssertKind(kind)
        if akind in (AssertKind.REACHABLE, AssertKind.UNREACHABLE):
            condition = True  # being reached is the whole observation
        stats = self._entry(tick, node, akind, assert_id, message, file, line)
        if stats.first_tick < 0:
            stats.first_tick, stats.first_node = tick, node
        if condition:
            stats.passes += 1
        else:
            stats.fails += 1
        violated = (akind == AssertKind.ALWAYS and not condition) or (
            akind == AssertKind.UNREACHABLE
        )
        if not violated:
            return None
        self.bug_count += 1
        first = stats.hits == 1 if akind == AssertKind.UNREACHABLE else stats.fails == 1
        return Bug(node, tick, akind, message, file, line, assert_id, first)

    def assertions(self) -> list[AssertionStats]:
        """Every known assertion, in a stable order (location, then id and kind)."""
        return sorted(
            self._stats.values(), key=lambda s: (s.file, s.line, s.assert_id, int(s.kind))
        )

    def get(self, assert_id: int, kind: int) -> AssertionStats | None:
        """The stats of one assertion, if known."""
        return self._stats.get((assert_id, int(kind)))

    def conflicts(self) -> list[Conflict]:
        """Every id reported with a message other than the first one seen, in report order."""
        return list(self._conflicts)

    def take_new_conflicts(self) -> list[Conflict]:
        """The conflicts found since the last call (for the controller to record as events)."""
        new = self._conflicts[self._conflicts_taken :]
        self._conflicts_taken = len(self._conflicts)
        return new

    def unsatisfied(self) -> list[AssertionStats]:
        """At the end of a run: sometimes never true and reachable never reached."""
        return [
            s for s in self.assertions()
            if s.kind in (AssertKind.SOMETIMES, AssertKind.REACHABLE) and not s.satisfied
        ]

    def unsatisfied_records(self, tick: int) -> list[dict[str, Any]]:
        """The `unsatisfied` records for the recorder at the end of a run."""
        return [
            make_record(
                EventKind.UNSATISFIED, tick=tick, assert_kind=s.kind.name.lower(),
                message=s.message, file=s.file, line=s.line, assert_id=s.assert_id,
                hits=s.hits,
            )
            for s in self.unsatisfied()
        ]

    def table(self) -> list[tuple[str, ...]]:
        """One row of display strings per assertion, matching TABLE_COLUMNS."""
        rows = []
        for s in self.assertions():
            if s.kind == AssertKind.ALWAYS:
                status = "ok" if s.satisfied else "FAILED"
            elif s.kind == AssertKind.UNREACHABLE:
                status = "ok" if s.satisfied else "REACHED"
            else:
                status = "ok" if s.satisfied else "never"
            first = "-" if s.first_tick < 0 else str(s.first_tick)
            rows.append((
                s.kind.name.lower(), s.message, s.location, str(s.passes), str(s.fails),
                str(s.hits), first, status,
            ))
        return rows

    def snapshot(self) -> dict[str, Any]:
        """The oracle's whole state as a msgpack-serialisable dict."""
        return {
            "version": SNAPSHOT_VERSION,
            "assertions": [s.to_dict() for s in self._stats.values()],
            "conflicts": [{**asdict(c), "kind": int(c.kind)} for c in self._conflicts],
            "conflicts_taken": self._conflicts_taken,
            "bug_count": self.bug_count,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        """Replace the state with a snapshot's (the inverse of `snapshot`)."""
        if snap.get("version") != SNAPSHOT_VERSION:
            raise ValueError(f"unsupported oracle snapshot version {snap.get('version')!r}")
        stats = [AssertionStats.from_dict(d) for d in snap["assertions"]]
        self._stats = {(s.assert_id, int(s.kind)): s for s in stats}
        self._conflicts = [
            Conflict(**{**c, "kind": AssertKind(c["kind"])}) for c in snap["conflicts"]
        ]
        self._conflicts_taken = snap["conflicts_taken"]
        self.bug_count = snap["bug_count"]

    @classmethod
    def from_snapshot(cls, snap: dict[str, Any]) -> PropertyOracle:
        """A new oracle in a snapshot's state."""
        oracle = cls()
        oracle.restore(snap)
        return oracle

    def _entry(
        self, tick: int, node: int, kind: AssertKind, assert_id: int, message: str, file: str,
        line: int,
    ) -> AssertionStats:
        """The stats of (id, kind), created on first sight; a differing message is a conflict."""
        key = (assert_id, int(kind))
        stats = self._stats.get(key)
        if stats is None:
            stats = AssertionStats(assert_id, kind, message, file, line)
            self._stats[key] = stats
        elif stats.message != message and not any(
            c.assert_id == assert_id and c.kind == kind and c.new_message == message
            for c in self._conflicts
        ):  # each differing message is reported once, not at every evaluation
            self._conflicts.append(
                Conflict(tick, node, assert_id, kind, stats.message, message, file, line)
            )
        return stats
