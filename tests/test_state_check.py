"""The declarative checks for state from a file (recording.schema) and the kernel's tables
(kernel.state_check): honest states pass, every kind of bad field is named."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from chaosreplay.errors import RecordingError
from chaosreplay.kernel.process import GuestProcess, ProcessConfig
from chaosreplay.kernel.signals.delivery import TaskSignals
from chaosreplay.kernel.state_check import (
    CODE_PAGES,
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
    assert set(kernel["code_pages"]) ^ set(CODE_PAGES.inner.fields) == set(), \
        "CodePages.to_state() and kernel/state_check.CODE_PAGES name different fields"
    assert set(disk) ^ set(DISK_STATE.inner.fields) == set(), \
        "FileSystem.snapshot() and kernel/state_check.DISK_STATE name different fields"
    assert sorted(STREAMS) == sorted(process.random)
    assert disk["inodes"], "the files guest left something on its disk"


_TASK = [1000, None, TaskSignals().to_state(), 0, 0, 0, None, None, 0, 0, False, None, None,
         0]  # the main thread, on the vCPU
KERNEL_ATTACKS: list[tuple[str, Any, str]] = [
    ("vmas", [[4096, 0, 3, "x"]], "field vmas item 0 [0x1000, 0x0) is not a page-aligned"),
    ("vmas", [[0, 8192, 3, "a"], [4096, 12288, 3, "b"]], "item 1 at 0x1000 overlaps"),
    ("vmas", [[0, 1 << 48, 3, "a"]], "field vmas[0][1] is 281474976710656"),
    ("brk", 0, "has brk 0x0 below brk_start"),
    ("status", "zombie", "field status is not one of 'running'"),
    ("exit_code", 256, "field exit_code is 256"),
    ("random", [["sdk", 1], ["sdk", 2]], "field random names stream 'sdk' twice"),
    ("signals", {"actions": [], "pending": {}}, "field signals.actions"),
    ("itimer_real", [-5, 0], "field itimer_real[0]"),
    ("clock", {"anchor_ns": 0, "offset_ns": 0, "rate_ppb": -10**9, "realtime_offset_ns": 0},
     "field clock.rate_ppb is -1000000000"),
    ("files", {"version": 1, "open": [], "fds": [[3, 0, False]]},
     "field files has fd 3 naming description 0 of 0"),
    ("files", {"version": 6, "open": [], "fds": []}, "field files.version"),
    ("stdout", "text", "field stdout is not bytes"),
    ("tasks", [], "field tasks has no task"),
    ("tasks", [_TASK, _TASK], "field tasks lists task 1000 after task 1000"),
    ("tasks", [_TASK, [1001, b"short", *_TASK[2:]]], "field tasks[1] is not [int, None or bytes"),
    ("tasks", [_TASK, [1001, None, *_TASK[2:]]], "does not have exactly one task on the vCPU"),
    ("current_tid", 1001, "names current task 1001, which is not a task"),
    ("next_tid", 1000, "would hand out tid 1000, which is taken"),
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


# -- the descriptor table, code pages and the other parts merged since ----------------------
def test_every_description_kind_defines_the_shape_of_its_saved_state() -> None:
    """Each registered kind has its own STATE beside its save/load; a new kind without one
    is refused when its class is made, so no kind's saved state goes unchecked."""
    import chaosreplay.kernel.syscalls.files  # noqa: F401 (imports every kind)
    from chaosreplay.kernel.fs.files import FileDescription

    assert {"disk", "tty", "device", "pipe", "eventfd", "timerfd", "epoll", "synth-dir",
            "synth-file", "exe", "socket"} <= set(FileDescription.registry)
    for kind, cls in FileDescription.registry.items():
        assert "STATE" in cls.__dict__, kind
    with pytest.raises(TypeError, match="'nosuch' defines no STATE"):
        type("NoSuch", (FileDescription,), {"kind": "nosuch"})
    assert "nosuch" not in FileDescription.registry


def test_a_loop_of_watching_descriptions_is_found() -> None:
    from chaosreplay.kernel.state_check import _no_loop

    assert _no_loop([[], [0], [0, 1]]) is None
    assert _no_loop([[1], [2], [0]]) == "has description 0 watching itself"
    assert _no_loop([[], [1]]) == "has description 1 watching itself"


@pytest.fixture(scope="module")
def blocked_fds(guest_bin) -> tuple[dict[str, Any], GuestProcess]:
    """A state blocked in a timerfd read with a pipe holding data, an eventfd and an epoll
    set open (every kind with state of its own that a guest makes)."""
    from chaosreplay.kernel.process import Status

    path = guest_bin("musl", "fds")
    process = GuestProcess(load_program(path), ProcessConfig(argv=[b"fds", b"checkpoint"]))
    while process.waiting is None or "timerfd" not in process.waiting.reason:
        assert process.run() in (Status.RUNNING, Status.BLOCKED), process.crash
    return unpackb(packb(process.kernel_state()), "kernel"), process


def _at(kernel: dict[str, Any], kind: str) -> int:
    """The index of the first description of that kind."""
    return next(i for i, d in enumerate(kernel["files"]["table"]["descriptions"])
                if d[0] == kind)


def _own(kind: str, value: Any) -> Any:
    return lambda k: k["files"]["table"]["descriptions"][_at(k, kind)].__setitem__(4, value)


@pytest.mark.kvm
def test_a_real_descriptor_table_passes(blocked_fds) -> None:
    kernel, process = blocked_fds
    check_kernel_state(kernel, "node0.kernel")
    check_kernel_state(process.kernel_state(), "node0.kernel")
    kinds = {d[0] for d in kernel["files"]["table"]["descriptions"]}
    assert {"tty", "pipe", "eventfd", "epoll", "timerfd"} <= kinds
    assert kernel["files"]["waiting"] is not None and kernel["files"]["table"]["shared"]


def _table(k: dict[str, Any]) -> dict[str, Any]:
    return k["files"]["table"]


FILES_ATTACKS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("unknown kind", lambda k: _table(k)["descriptions"][0].__setitem__(0, "nosuch"),
     "field files.table.descriptions[0] has an unknown kind 'nosuch'"),
    ("fd naming a missing description", lambda k: _table(k)["fds"][3].__setitem__(1, 99),
     "field files.table has fd 3 naming description 99 of 8"),
    ("fd at the limit", lambda k: _table(k).update(limit=5),
     "field files.table has fd 5 at or above its limit 5"),
    ("fd twice", lambda k: _table(k)["fds"].append([3, 0, False]), "names fd 3 twice"),
    ("flags outside Linux's", lambda k: _table(k)["descriptions"][0].__setitem__(1, 1 << 30),
     "field files.table.descriptions[0][1] has flags 0o10000000000 outside Linux's open flags"),
    ("path too long", lambda k: _table(k)["descriptions"][0].__setitem__(2, b"x" * 5000),
     "field files.table.descriptions[0][2] is 5000 bytes long, more than 4096"),
    ("pipe buffer over its capacity", lambda k: _table(k)["shared"][0].__setitem__(
        2, b"x" * 65537), "field files.table.shared[0] holds 65537 bytes, more than its "
     "capacity 65536"),
    ("pipe capacity over the maximum", lambda k: _table(k)["shared"][0].__setitem__(1, 1 << 21),
     "field files.table.shared[0][1] is 2097152, outside 4096..1048576"),
    ("pipe end naming a missing pipe", _own("pipe", 1),
     "field files.table has description 3 (pipe) naming shared object 1 of 1"),
    ("epoll entry naming a missing description", lambda k: _table(k)["descriptions"][
        _at(k, "epoll")][4][1][0].__setitem__(1, 99),
     "field files.table has description 6 (epoll) naming description 99 of 8"),
    ("epoll watching itself", lambda k: _table(k)["descriptions"][
        _at(k, "epoll")][4][1][0].__setitem__(1, 6), "has description 6 watching itself"),
    ("eventfd of the wrong types", _own("eventfd", ["seven", False, 0]),
     "field files.table.descriptions[5][4] is not [int, bool, int]"),
    ("timerfd of an unknown clock", lambda k: _table(k)["descriptions"][
        _at(k, "timerfd")][4].__setitem__(0, 3),
     "field files.table.descriptions[7][4][0] is not one of 0, 1, 7, 8, 9"),
    ("tty of stream 3", _own("tty", 3), "field files.table.descriptions[0][4] is not one of"),
    ("directory of a missing mount", lambda k: _table(k)["descriptions"].__setitem__(
        0, ["synth-dir", 0, b"/x", 0, [b"nope", []]]), "descriptions[0][4][0] fails as a mount"),
    ("disk file of inode 0", lambda k: _table(k)["descriptions"].__setitem__(
        0, ["disk", 0, b"/x", 0, 0]), "field files.table.descriptions[0][4] is 0, outside 1.."),
    ("waiting on a missing description", lambda k: k["files"]["waiting"][0][1][4][0]
     .__setitem__(0, 8), "field files has a blocked call waiting on description 8 of 8"),
    ("waiting of the wrong types", lambda k: k["files"].update(waiting=[[1000, ["read", 0]]]),
     "field files.waiting[0] is not [int, [int, str, None or int, int, a list of [int, int]]]"),
    ("waiting of a task that does not exist", lambda k: k["files"]["waiting"][0].__setitem__(
        0, 1001), "has a blocked call of task 1001, which is not a task"),
    ("umask over 0o777", lambda k: k["files"].update(umask=0o1000), "field files.umask is 512"),
    ("cwd in a missing mount", lambda k: k["files"].update(cwd=[b"nope", 1, []]),
     "field files.cwd[0] names mount b'nope', which does not exist"),
]


@pytest.mark.kvm
@pytest.mark.parametrize("name", [case[0] for case in FILES_ATTACKS])
def test_a_bad_descriptor_table_is_refused_before_anything_is_loaded(blocked_fds,
                                                                      name) -> None:
    _, edit, message = next(case for case in FILES_ATTACKS if case[0] == name)
    kernel, process = blocked_fds
    hostile = copy.deepcopy(kernel)
    edit(hostile)
    before = process.kernel_state()
    with pytest.raises(SchemaError) as caught:
        process.load_kernel_state(hostile)
    assert message in str(caught.value) and "part node0.kernel" in str(caught.value)
    assert process.kernel_state() == before, "a refused state changed the process"


SITE = [0x401000, 2, "rdtsc", b"\x0f\x31", "main+0x10", None, 64]


def _code(**fields: Any) -> Callable[[dict[str, Any]], Any]:
    return lambda k: k["code_pages"].update(fields)


NEW_KERNEL_ATTACKS: list[tuple[str, Callable[[dict[str, Any]], Any], str]] = [
    ("honest site", _code(sites=[SITE]), ""),
    ("site past the user half", _code(sites=[[(1 << 47) - 1, 2, "rdtsc", b"\x0f\x31", "f",
                                              None, 64]]),
     "field code_pages.sites[0] at 0x7fffffffffff reaches past the user half"),
    ("site in the kernel half", _code(sites=[[1 << 63, *SITE[1:]]]),
     "field code_pages.sites[0][0] is 9223372036854775808, outside 0..140737488355327"),
    ("site of 16 bytes", _code(sites=[[0x401000, 16, "rdtsc", b"\x0f" * 16, "f", None, 64]]),
     "field code_pages.sites[0][1] is 16, outside 1..15"),
    ("site whose bytes are not its length",
     _code(sites=[[0x401000, 3, "rdtsc", b"\x0f\x31", "f", None, 64]]),
     "field code_pages.sites[0] has 2 original bytes for an instruction of 3"),
    ("site of an unknown instruction", _code(sites=[[0x401000, 2, "hlt", b"\xf4\x90", "f",
                                                     None, 64]]),
     "field code_pages.sites[0][2] is not one of 'rdtsc'"),
    ("site of an unknown register", _code(sites=[[0x401000, 3, "rdrand", b"\x0f\xc7\xf0",
                                                  "f", "rip", 64]]),
     "field code_pages.sites[0][5] is not one of 'rax'"),
    ("sites twice at one address", _code(sites=[SITE, SITE]),
     "field code_pages.sites item 1 is not after the one before"),
    ("code page not aligned", _code(code=[0x401001]),
     "field code_pages.code[0] is 0x401001, not page-aligned"),
    ("code page in the kernel half", _code(code=[1 << 47]), "field code_pages.code[0] is"),
    ("overhang past an instruction", _code(overhang=[[0x401000, 15]]),
     "field code_pages.overhang[0][1] is 15, outside 0..14"),
    ("write step not aligned", _code(write_step=5), "field code_pages.write_step is 0x5"),
    ("code pages of the wrong type", _code(scans="many"), "field code_pages.scans is not int"),
    ("code pages with an unknown field", _code(extra=1),
     "field code_pages has an unknown field 'extra'"),
    ("honest trap and its pending step", _code(traps=[[0x401000, b"\xb8\x0f\x31\x90\x90"]],
                                               disarmed=[0x401000]), ""),
    ("trap overlapping the one before", _code(traps=[[0x401000, b"\x90" * 5],
                                                     [0x401004, b"\x90"]]),
     "field code_pages.traps has the trap at 0x401004 overlapping the one before"),
    ("trap longer than any", _code(traps=[[0x401000, b"\x90" * 65]]),
     "field code_pages.traps[0][1] is 65 bytes long, more than 64"),
    ("disarmed trap that is none", _code(disarmed=[0x401000]),
     "field code_pages has disarmed ['0x401000'], not traps each named once"),
    ("comm too long", lambda k: k.update(comm=b"x" * 16), "field comm is 16 bytes long"),
    ("output dropped negative", lambda k: k.update(output_dropped=[0, -1]),
     "field output_dropped[1] is -1"),
    ("framed chunk past the user half", lambda k: k.update(framed_chunks=[1 << 26]),
     "field framed_chunks[0] is 67108864, outside 0..67108863"),
    ("unknown syscalls other a string", lambda k: k.update(unknown_syscalls_other="x"),
     "field unknown_syscalls_other is not int"),
    ("urandom stream twice", lambda k: k.update(random=[["urandom", 1], ["urandom", 2]]),
     "field random names stream 'urandom' twice"),
    ("an honest coverage map", lambda k: k.update(coverage_map=[0x423000, 1 << 14]), ""),
    ("coverage map not a power of two", lambda k: k.update(coverage_map=[0x423000, 3000]),
     "field coverage_map has size 3000, not a power of two"),
    ("coverage map leaving the user half",
     lambda k: k.update(coverage_map=[(1 << 47) - 4096, 1 << 14]),
     "field coverage_map [0x7ffffffff000, +0x4000) leaves the user half"),
    ("coverage map too large", lambda k: k.update(coverage_map=[0x423000, 1 << 21]),
     "field coverage_map[1] is 2097152"),
]


@pytest.mark.kvm
@pytest.mark.parametrize("name", [case[0] for case in NEW_KERNEL_ATTACKS])
def test_bad_code_pages_and_guard_fields_are_refused(process_state, name) -> None:
    _, edit, message = next(case for case in NEW_KERNEL_ATTACKS if case[0] == name)
    kernel, _, _ = process_state
    hostile = copy.deepcopy(kernel)
    edit(hostile)
    if not message:  # the edits' baseline: an honest site passes
        check_kernel_state(hostile, "node0.kernel")
        return
    with pytest.raises(SchemaError) as caught:
        check_kernel_state(hostile, "node0.kernel")
    assert message in str(caught.value) and "part node0.kernel" in str(caught.value)


@pytest.mark.kvm
@pytest.mark.parametrize("edit, message", [
    (lambda d: d["inodes"][0].update(target=b"/elsewhere"),
     "has inode 1 both a directory and a symbolic link"),
    (lambda d: d["inodes"][1].update(uid=2**32), "field inodes[1].uid is 4294967296"),
    (lambda d: d["inodes"][1].update(atime="now"), "field inodes[1].atime is not int"),
    (lambda d: d["inodes"][1].update(target=b"x" * 4096),
     "field inodes[1].target is 4096 bytes long, more than 4095"),
])
def test_bad_owners_times_and_links_on_disk_are_refused(process_state, edit, message) -> None:
    _, disk, _ = process_state
    hostile = copy.deepcopy(disk)
    edit(hostile)
    with pytest.raises(SchemaError, match=r"part node0\.disk") as caught:
        check_disk_state(hostile, "node0.disk")
    assert message in str(caught.value)


@pytest.mark.kvm
def test_a_timer_set_past_the_end_of_time_saves_a_state_that_passes(blocked_fds) -> None:
    """Linux clamps timer times to KTIME_MAX; so does the timerfd, so its state stays in range."""
    from chaosreplay.kernel.fs.files import Refs
    from chaosreplay.kernel.fs.timerfd import TimerFd

    _, process = blocked_fds
    timer = TimerFd(0)
    timer.set(process, 0, (2**63 - 1) * 10**9, 2**70)
    validate(timer.save(Refs()), TimerFd.STATE, "timer")
    assert timer.expiry_ns == timer.interval_ns == 2**63 - 1


@pytest.mark.kvm
def test_a_timeout_past_the_end_of_time_is_a_deadline_in_range(process_state) -> None:
    from chaosreplay.kernel.fs.waiters import deadline_after

    _, _, process = process_state
    assert process.waiting is None
    assert deadline_after(process, (2**63 - 1) * 10**9) == 2**63 - 1


def test_a_seek_past_the_largest_offset_is_refused_so_offsets_stay_in_range() -> None:
    import errno
    from types import SimpleNamespace

    from chaosreplay.kernel.fs.exefs import ExeFile
    from chaosreplay.kernel.fs.synthetic import StaticFile

    p: Any = SimpleNamespace(image=SimpleNamespace(raw=b"elf"))  # all ExeFile.seek reads
    for file in (StaticFile(0, b"/proc/self/status", b"abc"), ExeFile(0, b"/proc/self/exe")):
        assert file.seek(p, 2**63 - 1, 0) == 2**63 - 1
        assert file.seek(p, 1, 1) == -errno.EINVAL
        assert file.offset == 2**63 - 1


@pytest.mark.kvm
def test_open_drops_the_bits_linux_does_not_know(process_state) -> None:
    """So no description holds flags outside Linux's open flags (the check refuses those)."""
    from chaosreplay.kernel.fs.files import O_NONBLOCK, O_RDWR
    from chaosreplay.kernel.fs.paths import AT_FDCWD
    from chaosreplay.kernel.syscalls.files import open_file

    _, _, process = process_state
    file = open_file(process, AT_FDCWD, b"/dev/null", O_RDWR | O_NONBLOCK | 1 << 30, 0)
    assert not isinstance(file, int) and file.flags == O_RDWR | O_NONBLOCK
