"""Checking user-written configuration values, with errors that name the exact key path.

Scenario files and fault plans are both plain nested tables; every check here takes a
`KeyPath` so the one-line error reads `scenario.toml: faults.schedule[2].at: <problem>`.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from chaosreplay.errors import ConfigError

NS_PER_TICK = 1_000_000
MAX_NS = 2**63 - 1
"""The latest virtual time a run can reach: events store nanoseconds as signed 64-bit."""
MAX_TICKS = MAX_NS // NS_PER_TICK

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|µs|ms|s|m|h)\s*$")
_DURATION_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB|KB|MB|GB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KiB": 1 << 10,
    "MiB": 1 << 20,
    "GiB": 1 << 30,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
}


def show(value: Any) -> str:
    """A value as the user wrote it in TOML, for error messages."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list | tuple):
        return "an array" if len(value) > 3 else "[" + ", ".join(show(v) for v in value) + "]"
    return repr(value)


@dataclass(frozen=True)
class KeyPath:
    """Where a value sits: the source (file name) and the dotted key path inside it."""

    source: str
    path: str = ""

    def key(self, name: str) -> KeyPath:
        """The path of a key inside this table."""
        return KeyPath(self.source, f"{self.path}.{name}" if self.path else name)

    def index(self, i: int) -> KeyPath:
        """The path of an element of this array."""
        return KeyPath(self.source, f"{self.path}[{i}]")

    def fail(self, problem: str) -> NoReturn:
        """Raise the one-line ConfigError for a problem at this path."""
        where = f"{self.source}: {self.path}" if self.path else self.source
        raise ConfigError(f"{where}: {problem}")


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """' (did you mean "x"?)' for the closest known name, or "" when none is close."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f' (did you mean "{close[0]}"?)' if close else ""


def check_keys(table: Mapping[str, Any], allowed: Iterable[str], at: KeyPath) -> None:
    """Reject keys that are not allowed, suggesting the closest allowed key."""
    known = list(allowed)
    for name in table:
        if name not in known:
            at.key(str(name)).fail(f"unknown key{did_you_mean(str(name), known)}")


def expect_table(value: Any, at: KeyPath) -> Mapping[str, Any]:
    """A TOML table."""
    if not isinstance(value, Mapping):
        at.fail(f"expected a table, got {show(value)}")
    return value


def expect_list(value: Any, at: KeyPath) -> list[Any]:
    """A TOML array."""
    if not isinstance(value, list | tuple):
        at.fail(f"expected an array, got {show(value)}")
    return list(value)


def expect_bool(value: Any, at: KeyPath) -> bool:
    """true or false."""
    if not isinstance(value, bool):
        at.fail(f"expected true or false, got {show(value)}")
    return value


def expect_str(value: Any, at: KeyPath, *, nonempty: bool = False) -> str:
    """A string (optionally non-empty)."""
    if not isinstance(value, str):
        at.fail(f"expected a string, got {show(value)}")
    if nonempty and not value:
        at.fail("expected a non-empty string")
    return value


def expect_int(
    value: Any, at: KeyPath, *, minimum: int | None = None, maximum: int | None = None,
    what: str = "integer",
) -> int:
    """An integer within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, int):
        bound = f"{what} >= {minimum}" if minimum is not None else what
        at.fail(f"expected an {bound}, got {show(value)}")
    if minimum is not None and value < minimum:
        at.fail(f"expected an {what} >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        at.fail(f"expected an {what} <= {maximum}, got {value}")
    return value


def expect_float(
    value: Any, at: KeyPath, *, minimum: float | None = None, maximum: float | None = None,
) -> float:
    """A number within [minimum, maximum], as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value != value:
        at.fail(f"expected a number, got {show(value)}")
    if minimum is not None and value < minimum:
        at.fail(f"expected a number >= {minimum}, got {value}")
    if maximum is not None and value > maximum:
        at.fail(f"expected a number <= {maximum}, got {value}")
    return float(value)


def expect_probability(value: Any, at: KeyPath) -> float:
    """A probability in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        at.fail(f"expected a probability between 0 and 1, got {show(value)}")
    return float(value)


def parse_duration_ns(text: str) -> int | None:
    """Nanoseconds of a duration string like "500ms", "60s", "2m", or None if malformed."""
    match = _DURATION_RE.match(text)
    if match is None:
        return None
    number, unit = match.groups()
    # Decimal arithmetic by string split keeps "1.5s" exact without floats.
    whole, _, frac = number.partition(".")
    scale = _DURATION_UNITS_NS[unit]
    ns = int(whole) * scale
    if frac:
        ns += int(frac) * scale // 10 ** len(frac)
    return ns


def expect_ns(value: Any, at: KeyPath) -> int:
    """Nanoseconds: an integer of ns or a duration string like "2ms"."""
    if isinstance(value, str):
        ns = parse_duration_ns(value)
        if ns is None:
            at.fail(f'expected nanoseconds or a duration like "2ms", got {show(value)}')
    else:
        ns = expect_int(value, at, minimum=0, what="integer of nanoseconds")
    if ns > MAX_NS:
        at.fail(f"expected at most {MAX_NS} ns (about 292 years), got {ns}")
    return ns


def expect_ticks(value: Any, at: KeyPath, *, minimum: int = 0) -> int:
    """Ticks (1 ms each): an integer of ms or a duration string like "60s"."""
    if isinstance(value, str):
        ns = parse_duration_ns(value)
        if ns is None:
            at.fail(f'expected a non-negative integer tick or a duration like "2s", '
                    f"got {show(value)}")
        if ns % NS_PER_TICK:
            at.fail(f"expected a whole number of ticks (1 ms each), got {show(value)}")
        value = ns // NS_PER_TICK
        if value < minimum:
            at.fail(f"expected at least {minimum} ticks, got {value}")
    elif isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "non-negative" if minimum == 0 else f">= {minimum}"
        at.fail(f"expected a {kind} integer tick, got {show(value)}")
    if value > MAX_TICKS:
        at.fail(f"expected at most {MAX_TICKS} ticks (about 292 years), got {value}")
    return value


def expect_bytes_size(value: Any, at: KeyPath, *, minimum: int = 0) -> int:
    """A size in bytes: an integer or a string like "64MiB"."""
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is None:
            at.fail(f'expected a size in bytes or like "64MiB", got {show(value)}')
        value = int(match.group(1)) * _SIZE_UNITS[match.group(2)]
    else:
        value = expect_int(value, at, minimum=0, what="integer of bytes")
    if value < minimum:
        at.fail(f"expected at least {minimum} bytes, got {value}")
    return value


def expect_node(value: Any, at: KeyPath, node_count: int | None) -> int:
    """A 0-based node index, below node_count when that is known."""
    node = expect_int(value, at, minimum=0, what="node index")
    if node_count is not None and node >= node_count:
        at.fail(f"node {node} does not exist (nodes are 0..{node_count - 1})")
    return node
