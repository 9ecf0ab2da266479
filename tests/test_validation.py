"""Configuration value checks: units, sizes, key paths and one-line errors."""

from __future__ import annotations

import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.sim.validation import (
    KeyPath,
    check_keys,
    expect_bytes_size,
    expect_ns,
    expect_ticks,
    parse_duration_ns,
    show,
)

AT = KeyPath("s.toml", "a")


@pytest.mark.parametrize(("text", "ns"), [
    ("100ns", 100), ("250us", 250_000), ("250µs", 250_000), ("2ms", 2_000_000),
    ("1.5s", 1_500_000_000), ("0.001s", 1_000_000), ("2m", 120 * 10**9), (" 1h ", 3600 * 10**9),
    ("1.25ms", 1_250_000), ("5", None), ("ms", None), ("-1s", None), ("1 sec", None),
])
def test_parse_duration_ns(text: str, ns: int | None) -> None:
    """Durations are exact (no float rounding); malformed text gives None."""
    assert parse_duration_ns(text) == ns


def test_ticks_and_ns_accept_integers_and_strings() -> None:
    """Integers are taken in the key's unit; strings are converted."""
    assert expect_ticks(42, AT) == 42 and expect_ticks("2s", AT) == 2000
    assert expect_ns(7, AT) == 7 and expect_ns("3us", AT) == 3000
    with pytest.raises(ConfigError, match=r"^s\.toml: a: expected a whole number of ticks"):
        expect_ticks("1.5ms", AT)
    with pytest.raises(ConfigError, match="got -3"):
        expect_ns(-3, AT)


def test_sizes() -> None:
    """Byte sizes take integers and binary/decimal unit strings."""
    assert expect_bytes_size("64MiB", AT) == 64 << 20
    assert expect_bytes_size("1GB", AT) == 10**9 and expect_bytes_size(512, AT) == 512
    with pytest.raises(ConfigError, match='got "64 mb"'):
        expect_bytes_size("64 mb", AT)


def test_key_paths_and_unknown_keys() -> None:
    """Paths compose as dotted keys and [indices]; unknown keys suggest the closest."""
    path = KeyPath("f.toml").key("faults").key("schedule").index(2).key("at")
    with pytest.raises(ConfigError) as info:
        path.fail("bad")
    assert str(info.value) == "f.toml: faults.schedule[2].at: bad"
    with pytest.raises(ConfigError) as info:
        check_keys({"latncy": 1}, ["latency", "loss"], KeyPath("f.toml", "network"))
    assert str(info.value) == 'f.toml: network.latncy: unknown key (did you mean "latency"?)'
    with pytest.raises(ConfigError, match=r"unknown key$"):
        check_keys({"zzz": 1}, ["latency"], AT)


def test_show_writes_values_as_toml() -> None:
    assert [show("x"), show(True), show(1.5), show([1, 2]), show({})] == [
        '"x"', "true", "1.5", "[1, 2]", "a table"]
