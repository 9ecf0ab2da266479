"""Declarative checks for state read back from a file: shapes, types and ranges.

A recording is untrusted input: a checkpoint blob decodes to whatever msgpack the file
holds. Each loader describes the plain data it accepts with the small checks below, and
`validate` runs them before anything is loaded, so a bad blob is one clear error naming the
part and the field (`part node1.kernel: field vmas[2] is not [int, int, int, str]`) instead
of a KeyError, a TypeError or a half-loaded state. Checks descend only as deep as the
description, so deeply nested hostile data is refused at the first level that does not fit.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

from chaosreplay.errors import ChaosReplayError, RecordingError

U64_MAX = 2**64 - 1
I64_MIN, I64_MAX = -(2**63), 2**63 - 1


class SchemaError(RecordingError, ValueError):
    """A blob from a file that does not have the shape its loader needs (one line)."""


class _Mismatch(Exception):
    """Raised inside the checks; validate() turns it into a SchemaError with the part."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(path, problem)
        self.path, self.problem = path, problem


class Check:
    """One rule for a value: call it with the value and its path; raises on a mismatch."""

    def describe(self) -> str:
        """What the rule accepts, as the error message names it."""
        raise NotImplementedError

    def __call__(self, value: Any, path: str) -> None:
        raise NotImplementedError

    def _fail(self, path: str, value: Any = None, problem: str | None = None) -> None:
        raise _Mismatch(path, problem or f"is not {self.describe()}")


class Int(Check):
    """An int (not a bool) in [lo, hi]."""

    def __init__(self, lo: int = 0, hi: int = U64_MAX) -> None:
        self.lo, self.hi = lo, hi

    def describe(self) -> str:
        return "int"

    def __call__(self, value: Any, path: str) -> None:
        if not isinstance(value, int) or isinstance(value, bool):  # IntFlag: in-memory state
            self._fail(path)
        if not self.lo <= value <= self.hi:
            self._fail(path, problem=f"is {value}, outside {self.lo}..{self.hi}")


class Float(Check):
    """A finite float (or int) in [lo, hi]."""

    def __init__(self, lo: float = -math.inf, hi: float = math.inf) -> None:
        self.lo, self.hi = lo, hi

    def describe(self) -> str:
        return "float"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) not in (int, float) or not math.isfinite(value):
            self._fail(path)
        if not self.lo <= value <= self.hi:
            self._fail(path, problem=f"is {value}, outside {self.lo}..{self.hi}")


class Bool(Check):
    """True or False."""

    def describe(self) -> str:
        return "bool"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) is not bool:
            self._fail(path)


class Str(Check):
    """A str of at most max_len characters."""

    def __init__(self, max_len: int = 4096) -> None:
        self.max_len = max_len

    def describe(self) -> str:
        return "str"

    def __call__(self, value: Any, path: str) -> None:
        if not isinstance(value, str):
            self._fail(path)
        if len(value) > self.max_len:
            self._fail(path, problem=f"is {len(value)} characters long, more than "
                                     f"{self.max_len}")


class Bytes(Check):
    """bytes of at most max_len."""

    def __init__(self, max_len: int = 1 << 30) -> None:
        self.max_len = max_len

    def describe(self) -> str:
        return "bytes"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) is not bytes:
            self._fail(path)
        if len(value) > self.max_len:
            self._fail(path, problem=f"is {len(value)} bytes long, more than {self.max_len}")


class OneOf(Check):
    """One of a fixed set of values (status names, versions, stream names)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)

    def __call__(self, value: Any, path: str) -> None:
        # The type too: 1 == True and 1.0 == 1, neither may stand in for the other here.
        if not any(isinstance(value, type(v)) and isinstance(value, bool) == isinstance(v, bool)
                   and value == v for v in self.values):
            self._fail(path)


class Anything(Check):
    """Any value (a field whose shape a later check decides, like a description's own state)."""

    def describe(self) -> str:
        return "anything"

    def __call__(self, value: Any, path: str) -> None:
        pass


class AnyOf(Check):
    """What one of `options` accepts (tried in order; the first mismatch is not reported)."""

    def __init__(self, *options: Check) -> None:
        self.options = options

    def describe(self) -> str:
        return " or ".join(option.describe() for option in self.options)

    def __call__(self, value: Any, path: str) -> None:
        for option in self.options:
            try:
                option(value, path)
                return
            except _Mismatch:
                pass
        self._fail(path)


class Maybe(Check):
    """None, or what `inner` accepts."""

    def __init__(self, inner: Check) -> None:
        self.inner = inner

    def describe(self) -> str:
        return f"None or {self.inner.describe()}"

    def __call__(self, value: Any, path: str) -> None:
        if value is not None:
            self.inner(value, path)


class ListOf(Check):
    """A list of at most max_len items, each what `item` accepts."""

    def __init__(self, item: Check, max_len: int = 1 << 20) -> None:
        self.item, self.max_len = item, max_len

    def describe(self) -> str:
        return f"a list of {self.item.describe()}"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) not in (list, tuple):  # tuples: the same data before serialising
            self._fail(path)
        if len(value) > self.max_len:
            self._fail(path, problem=f"has {len(value)} items, more than {self.max_len}")
        for i, item in enumerate(value):
            self.item(item, f"{path}[{i}]")


class Row(Check):
    """A list of exactly these items, in order (a record stored as a list)."""

    def __init__(self, *items: Check) -> None:
        self.items = items

    def describe(self) -> str:
        return "[" + ", ".join(item.describe() for item in self.items) + "]"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) not in (list, tuple) or len(value) != len(self.items):
            self._fail(path)
        for i, (item, check) in enumerate(zip(value, self.items, strict=True)):
            try:
                check(item, f"{path}[{i}]")
            except _Mismatch as exc:
                inner = check.inner if isinstance(check, Maybe) else check
                if exc.problem.startswith("is not ") and not isinstance(inner, OneOf):
                    self._fail(path)  # a wrong type: "[int, int, int, str]" says more
                raise


class Record(Check):
    """A dict with exactly these str keys, each checked by its rule (a table of field ->
    check, so a loader that gains a field adds one line); with `partial`, any subset; with
    `open`, other keys are allowed and left unchecked (for data the loader does not read)."""

    def __init__(self, fields: Mapping[str, Check], partial: bool = False,
                 open: bool = False) -> None:
        self.fields = dict(fields)
        self.partial, self.open = partial, open

    def describe(self) -> str:
        return "a table of " + ", ".join(self.fields)

    def __call__(self, value: Any, path: str) -> None:
        if type(value) is not dict:
            self._fail(path)
        missing = [k for k in self.fields if k not in value]
        if missing and not self.partial:
            self._fail(path, problem=f"has no field {missing[0]!r}")
        unknown = sorted(repr(k) for k in value if k not in self.fields)
        if unknown and not self.open:
            self._fail(path, problem=f"has an unknown field {unknown[0]}")
        for key, check in self.fields.items():
            if key in value:
                check(value[key], f"{path}.{key}" if path else key)


class MapOf(Check):
    """A dict of at most max_len entries whose keys and values pass their rules."""

    def __init__(self, key: Check, value: Check, max_len: int = 1 << 16) -> None:
        self.key, self.value, self.max_len = key, value, max_len

    def describe(self) -> str:
        return f"a table of {self.key.describe()} to {self.value.describe()}"

    def __call__(self, value: Any, path: str) -> None:
        if type(value) is not dict:
            self._fail(path)
        if len(value) > self.max_len:
            self._fail(path, problem=f"has {len(value)} entries, more than {self.max_len}")
        for k, v in value.items():
            self.key(k, f"{path} key")
            self.value(v, f"{path}[{k!r}]")


class Where(Check):
    """What `inner` accepts and a further condition on it (uniqueness, cross-field rules)."""

    def __init__(self, inner: Check, holds: Callable[[Any], str | None]) -> None:
        self.inner, self.holds = inner, holds

    def describe(self) -> str:
        return self.inner.describe()

    def __call__(self, value: Any, path: str) -> None:
        self.inner(value, path)
        problem = self.holds(value)
        if problem is not None:
            self._fail(path, problem=problem)


class Parsed(Check):
    """What a loader's own parser accepts: `parse(value)` raising ValueError, TypeError,
    KeyError or a ChaosReplayError means no (its message is kept)."""

    def __init__(self, parse: Callable[[Any], Any], what: str) -> None:
        self.parse, self.what = parse, what

    def describe(self) -> str:
        return self.what

    def __call__(self, value: Any, path: str) -> None:
        try:
            self.parse(value)
        except (ValueError, TypeError, KeyError, ChaosReplayError) as exc:
            self._fail(path, problem=f"fails as {self.what}: {exc}")


def unique(key: Callable[[Any], Any], what: str) -> Callable[[list[Any]], str | None]:
    """A Where condition: no two items of the list share key(item)."""

    def holds(items: list[Any]) -> str | None:
        seen: set[Any] = set()
        for item in items:
            k = key(item)
            if k in seen:
                return f"names {what} {k!r} twice"
            seen.add(k)
        return None

    return holds


def validate(value: Any, check: Check, part: str, what: str = "part") -> None:
    """Raise SchemaError naming `part` and the field unless `check` accepts `value`."""
    try:
        check(value, "")
    except _Mismatch as exc:
        field = f"field {exc.path} " if exc.path else ""
        name = f"{what} {part}" if what else part
        raise SchemaError(f"{name}: {field}{exc.problem}") from None
