"""The declarative checks for state from a file (recording.schema) and the kernel's tables
(kernel.state_check): honest states pass, every kind of bad field is named."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from chaosreplay.errors import RecordingError
from chaosreplay.kernel.process import GuestProcess, ProcessConfig
from chaosreplay.kernel.state_check import (
    DISK_STATE,
    KERNEL_STATE,
    STREAMS,
    check_disk_state,
    check_kernel_state,
)
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.recording.schema import (
    Bool,
    Bytes,
    Float,
    Int,
    ListOf,
    MapOf,
    Maybe,
    OneOf,
    Record,
    Row,
    SchemaError,
    Str,
    validate,
)
from chaosreplay.vm.elf import load_program


def refusal(value: Any, check: Any) -> str:
    with pytest.raises(SchemaError) as caught:
        validate(value, check, "p")
    return str(caught.value)


def test_schema_error_is_a_user_error_and_a_value_error() -> None:
    assert issubclass(SchemaError, RecordingError) and issubclass(SchemaError, ValueError)
    assert SchemaError.exit_code == 2


@pytest.mark.parametrize("value, check, message", [
    (True, Int(), "part p: is not int"),
    (2**64, Int(), "part p: is 18446744073709551616, outside 0..18446744073709551615"),
    (-1, Int(), "is -1, outside 0.."),
    (float("nan"), Float(), "is not float"),
    (1, Bool(), "is not bool"),
    ("x" * 10, Str(4), "is 10 characters long, more than 4"),
    ("abc", Bytes(), "is not bytes"),
    (1, OneOf(True), "is not one of True"),
    (True, OneOf(1), "is not one of 1"),
    ([1, 2], ListOf(Int(), max_len=1), "has 2 items, more than 1"),
    ([1, "a"], ListOf(Int()), "field [1] is not int"),
    ({"v": [[1, 2, "a", 4]]}, Record({"v": ListOf(Row(Int(), Int(), Int(), Str()))}),
     "field v[0] is not [int, int, int, str]"),
    ({"v": [[1, 2**70]]}, Record({"v": ListOf(Row(Int(), Int()))}),
     "field v[0][1] is 1180591620717411303424, outside"),
    ({}, Record({"a": Int()}), "has no field 'a'"),
    ({"a": 1, "b": 2}, Record({"a": Int()}), "has an unknown field 'b'"),
    ({"a": {"b": "x"}}, Record({"a": Record({"b": Int()})}), "field a.b is not int"),
    ({1: 2}, MapOf(Str(), Int()), "field  key is not str"),
    ("x", Maybe(Int()), "is not int"),
])
def test_each_check_names_the_field_and_the_problem(value, check, message) -> None:
    assert message in refusal(value, check)


def test_deep_nesting_is_refused_at_the_first_level_that_does_not_fit() -> None:
    deep: Any = b""
    for _ in range(100_000):  # deeper than Python could recurse
        deep = [deep]
    assert "field stdout is not bytes" in refusal({"stdout": deep}, Record({"stdout": Bytes()}))


def test_open_and_partial_records() -> None:
    validate({"a": 1, "extra": object()}, Record({"a": Int()}, open=True), "p")
    validate({}, Record({"a": Int()}, partial=True), "p")
    assert "is not int" in refusal({"a": "x"}, Record({"a": Int()}, partial=True))


@pytest.fixture(scope="module")
def process_state(guest_bin) -> tuple[dict[str, Any], dict[str, Any], GuestProcess]:
    path = guest_bin("musl", "files")
    process = GuestProcess(load_program(path), ProcessConfig(argv=[str(path).encode()]))
    process.run_to_completion(hang_seconds=20)
    kernel = unpackb(packb(process.kernel_state()), "kernel")
    disk = unpackb(packb(process.fs.snapshot()), "disk")
    return kernel, disk, process


@pytest.mark.kvm
def test_a_real_kernel_state_and_disk_pass_and_the_tables_name_every_field(
        process_state) -> None:
    """The tables mirror kernel_state() and FileSystem.snapshot(): a field added there and
    not here fails this test (the unknown field would be refused on every restore)."""
    kernel, disk, process = process_state
    check_kernel_state(kernel, "node0.kernel")
    check_kernel_state(process.kernel_state(), "node0.kernel")  # in memory: tuples, enums
    check_disk_state(disk, "node0.disk")
    assert set(kernel) ^ set(KERNEL_STATE.inner.fields) == set(), \
        "kernel_state() and kernel/state_check.KERNEL_STATE name different fields"
    assert set(disk) ^ set(DISK_STATE.inner.fields) == set(), \
        "FileSystem.snapshot() and kernel/state_check.DISK_STATE name different fields"
    assert sorted(STREAMS) == sorted(process.random)
    assert disk["inodes"], "the files guest left something on its disk"


KERNEL_ATTACKS: list[tuple[str, Any, str]] = [
    ("vmas", [[4096, 0, 3, "x"]], "field vmas item 0 [0x1000, 0x0) is not a page-aligned"),
    ("vmas", [[0, 8192, 3, "a"], [4096, 12288, 3, "b"]], "item 1 at 0x1000 overlaps"),
    ("vmas", [[0, 1 << 48, 3, "a"]], "field vmas[0][1] is 281474976710656"),
    ("brk", 0, "has brk 0x0 below brk_start"),
    ("status", "zombie", "field status is not one of 'running'"),
    ("exit_code", 256, "field exit_code is 256"),
    ("random", [["sdk", 1], ["sdk", 2]], "field random names stream 'sdk' twice"),
    ("signal_actions", [[5, b"short"]], "field signal_actions[0] is not [int, bytes]"),
    ("clock", {"anchor_ns": 0, "offset_ns": 0, "rate_ppb": -10**9, "realtime_offset_ns": 0},
     "field clock.rate_ppb is -1000000000"),
    ("files", {"version": 1, "open": [], "fds": [[3, 0, False]]},
     "field files has fd 3 naming description 0 of 0"),
    ("files", {"version": 3, "open": [], "fds": []}, "field files.version"),
    ("stdout", "text", "field stdout is not bytes"),
]


@pytest.mark.kvm
@pytest.mark.parametrize("field, value, message", KERNEL_ATTACKS)
def test_a_bad_kernel_field_is_refused_before_anything_is_loaded(process_state, field, value,
                                                                  message) -> None:
    kernel, _, process = process_state
    hostile = {**copy.deepcopy(kernel), field: value}
    before = process.kernel_state()
    with pytest.raises(SchemaError) as caught:
        process.load_kernel_state(hostile)
    assert message in str(caught.value) and "part node0.kernel" in str(caught.value)
    assert process.kernel_state() == before, "a refused state changed the process"


@pytest.mark.kvm
@pytest.mark.parametrize("edit, message", [
    (lambda d: d["inodes"][0]["entries"].append([b"loop", 1]), "directory inode 1 twice"),
    (lambda d: d["inodes"][0]["entries"].append([b"gone", 999]), "naming missing inode 999"),
    (lambda d: d["inodes"].append(dict(d["inodes"][0])), "names inode 1 twice"),
    (lambda d: d["inodes"].pop(0), "has no root directory"),
    (lambda d: d["faults"].append(["f", "meteor", 0.5]), "field faults[0]"),
    (lambda d: d["inodes"][0].update(mode=0o70000), "field inodes[0].mode"),
])
def test_a_bad_disk_is_refused(process_state, edit, message) -> None:
    _, disk, _ = process_state
    hostile = copy.deepcopy(disk)
    edit(hostile)
    with pytest.raises(SchemaError, match=r"part node0\.disk") as caught:
        check_disk_state(hostile, "node0.disk")
    assert message in str(caught.value)
