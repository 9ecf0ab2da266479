"""The shape of a node's kernel-side state as read back from a checkpoint: the process's
(`GuestProcess.kernel_state()`) and its disk's (`FileSystem.snapshot()`), each one table of
field -> check, run before anything is adopted.

A field added to kernel_state() or the disk snapshot gets one line here: test_state_check
compares the tables with real states, so a missing line fails there. The tables are open
(a key they do not name is ignored, as the loaders ignore it), so a field added elsewhere
never makes honest checkpoints unloadable before its line is here.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from chaosreplay.kernel.fs.devices import URANDOM_STREAM
from chaosreplay.kernel.fs.disk import FAULT_KINDS, ROOT_INO, WHITEOUT, XATTR_BLOCK
from chaosreplay.kernel.fs.disk import SNAPSHOT_VERSION as DISK_VERSION
from chaosreplay.kernel.fs.files import PATH_MAX, FileDescription, SavedDescription, open_flags
from chaosreplay.kernel.fs.paths import MOUNTS
from chaosreplay.kernel.fs.pipes import Pipe
from chaosreplay.kernel.loader import ARGS_MAX_BYTES, MAX_ARG_STRLEN
from chaosreplay.kernel.mm.address_space import CHUNK_SHIFT
from chaosreplay.kernel.net.socket_file import SocketFile
from chaosreplay.kernel.net.stack import STATE as NET_STATE
from chaosreplay.kernel.net.stack import STATE_V4 as NET_STATE_V4
from chaosreplay.kernel.process import Status
from chaosreplay.kernel.sdk_abi import CR_COVERAGE_MAP_MAX
from chaosreplay.kernel.signals import delivery as signal_delivery
from chaosreplay.kernel.syscalls.files import CHILD_EVENTS
from chaosreplay.kernel.syscalls.files import STATE_VERSION as FILES_STATE_VERSION
from chaosreplay.kernel.task_attributes import STATE as TASK_ATTRIBUTES
from chaosreplay.recording.schema import (
    I64_MAX,
    I64_MIN,
    U64_MAX,
    Bool,
    Bytes,
    Check,
    Float,
    Int,
    ListOf,
    Maybe,
    OneOf,
    Record,
    Row,
    SchemaError,
    Str,
    Where,
    unique,
    validate,
)
from chaosreplay.vm.nonvirt import _MAX_INSN as MAX_INSN
from chaosreplay.vm.nonvirt import _REGISTERS_64 as REGISTERS_64
from chaosreplay.vm.nonvirt import TRAP_MAX
from chaosreplay.vm.nonvirt import Kind as SiteKind
from chaosreplay.vm.vmm import TaskContext

PAGE = 4096
USER_VA_END = 1 << 47  # the user half: every VMA and brk lies below it
NS = Int(0, I64_MAX)  # a virtual time in ns (292 years)
# Kernel.streams (a test checks the mirror)
STREAMS = ("auxv", "getrandom", "sdk", URANDOM_STREAM)


def _vmas_in_order(vmas: list[list[Any]]) -> str | None:
    """VMAs are page-aligned, non-empty, sorted and disjoint, as AddressSpace keeps them."""
    end = 0
    for i, (start, stop, *_) in enumerate(vmas):
        if start % PAGE or stop % PAGE or not start < stop:
            return f"item {i} [{start:#x}, {stop:#x}) is not a page-aligned range"
        if start < end:
            return f"item {i} at {start:#x} overlaps or precedes the one before"
        end = stop
    return None


def _coverage_map_fits(region: list[int]) -> str | None:
    address, size = region
    if size & (size - 1):
        return f"has size {size}, not a power of two"
    if address + size > USER_VA_END:
        return f"[{address:#x}, +{size:#x}) leaves the user half"
    return None


def _brk_in_order(state: dict[str, Any]) -> str | None:
    if state["brk"] < state["brk_start"]:
        return f"has brk {state['brk']:#x} below brk_start {state['brk_start']:#x}"
    return None


class _VmaRow(Check):
    """[start, end, prot, name], plus the file offset for a file mapping, plus the mapped
    description (its index in the descriptor tables' descriptions: AddressSpace.adopt_files
    checks it names one) and whether the mapping is MAP_SHARED."""

    _range = (Int(0, USER_VA_END), Int(0, USER_VA_END), Int(0, 7), Str(4096))
    plain, file = Row(*_range), Row(*_range, Int(0, I64_MAX))
    held = Row(*_range, Int(0, I64_MAX), Int(0, 1 << 20), Int(0, 1))

    def describe(self) -> str:
        return f"{self.plain.describe()}, {self.file.describe()} or {self.held.describe()}"

    def __call__(self, value: Any, path: str) -> None:
        size = len(value) if type(value) in (list, tuple) else 0
        {5: self.file, 7: self.held}.get(size, self.plain)(value, path)


VMA = _VmaRow()


def _table_references_exist(table: dict[str, Any]) -> str | None:
    """Every fd names a description and lies below the table's limit, every description names
    descriptions and shared objects that exist, and no description watches itself through
    others (an epoll loop would notify itself forever): FdTable.load and link index by them."""
    count, shared = len(table["descriptions"]), len(table["shared"])
    for fd, index, _ in table["fds"]:
        if fd >= table["limit"]:
            return f"has fd {fd} at or above its limit {table['limit']}"
        if index >= count:
            return f"has fd {fd} naming description {index} of {count}"
    watches: list[list[int]] = []
    for i, (kind, _, _, _, own) in enumerate(table["descriptions"]):
        named, held = FileDescription.registry[kind].referenced(own)
        for j in named:
            if j >= count:
                return f"has description {i} ({kind}) naming description {j} of {count}"
        for j in held:
            if j >= shared:
                return f"has description {i} ({kind}) naming shared object {j} of {shared}"
        watches.append(named)
    return _no_loop(watches)


def _no_loop(watches: list[list[int]]) -> str | None:
    """None unless following `watches` from some description leads back to it."""
    done: set[int] = set()
    for start in range(len(watches)):
        on_path: set[int] = set()
        stack = [(start, 0)]  # (description, index of its next watch to follow)
        while stack:
            node, k = stack.pop()
            if node in done:
                continue
            on_path.add(node)
            if k < len(watches[node]):
                stack.append((node, k + 1))
                watched = watches[node][k]
                if watched in on_path:
                    return f"has description {watched} watching itself"
                stack.append((watched, 0))
            else:
                on_path.discard(node)
                done.add(node)
    return None


def _waits_on_descriptions(files: dict[str, Any]) -> str | None:
    count = len(files["table"]["descriptions"])
    waits = files["waiting"]
    if files["version"] == 2:  # one task's call, or none
        waits = [] if waits is None else [[0, waits]]
    for _, wait in waits:
        for index, _ in wait[4]:
            if index >= count and index != CHILD_EVENTS:  # wait4's target is no description
                return f"has a blocked call waiting on description {index} of {count}"
    return None


def _known_mount(name: bytes) -> str | None:
    if name and name not in MOUNTS:
        return f"names mount {name!r}, which does not exist"
    return None


MAX_FDS = 1 << 20  # Linux's nr_open: no descriptor table is larger
TABLE_FDS = Where(ListOf(Row(Int(0, MAX_FDS - 1), Int(0, MAX_FDS), Bool()), max_len=MAX_FDS),
                  unique(lambda row: row[0], "fd"))
TABLE = Where(Record({  # FdTable.save()
    "descriptions": ListOf(SavedDescription(), max_len=MAX_FDS),
    "shared": ListOf(Pipe.STATE, max_len=MAX_FDS),  # the only shared objects: pipes
    "fds": TABLE_FDS,
    "limit": Int(0, MAX_FDS),
    "next_ino": Int(0, U64_MAX),
}), _table_references_exist)

WAITING = Row(  # waiters.wait_state(): [syscall, reason, deadline, progress, targets]
    Int(0, 1 << 16), Str(PATH_MAX + 64), Maybe(NS), Int(0, I64_MAX),  # reason: "read of <path>"
    ListOf(Row(Int(0, MAX_FDS), Int(0, 2**32 - 1)), max_len=MAX_FDS))

def _v1_fds_name_descriptions(files: dict[str, Any]) -> str | None:
    count = len(files["open"])
    for fd, index, _ in files["fds"]:
        if index >= count:
            return f"has fd {fd} naming description {index} of {count}"
    return None


FILES_V1 = Where(Record({  # before the descriptor table: disk files on fds >= 3 (upgraded)
    "version": OneOf(1),
    "open": ListOf(Row(Int(0, U64_MAX), Where(Int(0, 2**32 - 1), open_flags), Bytes(PATH_MAX),
                       Int(0, I64_MAX)), max_len=1 << 16),
    "fds": Where(ListOf(Row(Int(3, 2**31 - 1), Int(0, 1 << 16), Bool()), max_len=1 << 16),
                 unique(lambda row: row[0], "fd")),
}), _v1_fds_name_descriptions)

MAX_TID = 1 << 22  # Linux's PID_MAX_LIMIT
FILES_FIELDS_OWN = {  # syscalls.files.process_files_state(), less the calls and attributes
    "cwd": Row(Where(Bytes(64), _known_mount), Int(1, U64_MAX),  # Place.to_list()
               ListOf(Bytes(255), max_len=PATH_MAX // 2)),
    "umask": Int(0, 0o777),
}
FILES_FIELDS = {"table": TABLE, **FILES_FIELDS_OWN}  # syscalls.files.files_state()
TASK_WAITS = Where(ListOf(Row(Int(1, MAX_TID), WAITING), max_len=MAX_TID),  # [tid, call]
                   unique(lambda row: row[0], "task"))
FILES_V2 = Where(Record({**FILES_FIELDS, "version": OneOf(2),  # one task's blocked call
                         "waiting": Maybe(WAITING)}), _waits_on_descriptions)
# version 3: each task's blocked call, the task attributes (absent at first); no sockets
FILES_V3 = Where(Record({**FILES_FIELDS, "version": OneOf(3), "waiting": TASK_WAITS,
                         "attributes": TASK_ATTRIBUTES}), _waits_on_descriptions)
FILES_V3_NO_ATTRIBUTES = Where(Record({**FILES_FIELDS, "version": OneOf(3),
                                       "waiting": TASK_WAITS}), _waits_on_descriptions)


def _sockets_exist(files: dict[str, Any]) -> str | None:
    """Every socket description names a socket of the node's stack."""
    sids = {row[0] for row in files["net"]["sockets"]}
    for i, (kind, _, _, _, own) in enumerate(files["table"]["descriptions"]):
        if kind == SocketFile.kind and own not in sids:
            return f"has description {i} naming socket {own}, which the stack does not hold"
    return _waits_on_descriptions(files)



def _files_with_sockets(version: int, net: Check) -> Check:
    """files_state() of a version that has the socket stack."""
    return Where(Record({**FILES_FIELDS, "version": OneOf(version), "waiting": TASK_WAITS,
                         "attributes": TASK_ATTRIBUTES,  # TaskAttributes.to_state()
                         "net": net}), _sockets_exist)  # the node's socket stack


FILES_V4 = _files_with_sockets(4, NET_STATE_V4)  # TCP connections without keepalive
FILES_V5 = _files_with_sockets(FILES_STATE_VERSION, NET_STATE)


class _FilesOfItsVersion(Check):
    """files_state() as its version has it: load_files_state upgrades versions 1 to 4."""

    def describe(self) -> str:
        return FILES_V5.describe()

    def __call__(self, value: Any, path: str) -> None:
        if type(value) is dict and "version" in value:  # the version first: it decides
            OneOf(1, 2, 3, 4, FILES_STATE_VERSION)(value["version"], f"{path}.version")
        version = value.get("version") if type(value) is dict else None
        v3 = FILES_V3_NO_ATTRIBUTES if type(value) is dict and "attributes" not in value \
            else FILES_V3
        {1: FILES_V1, 2: FILES_V2, 3: v3, 4: FILES_V4}.get(version, FILES_V5)(value, path)


FILES = _FilesOfItsVersion()


def _page_aligned(address: int) -> str | None:
    return None if address % PAGE == 0 else f"is {address:#x}, not page-aligned"


def _site_fits(site: list[Any]) -> str | None:
    address, length, _, original = site[:4]
    if len(original) != length:
        return f"has {len(original)} original bytes for an instruction of {length}"
    if address + length > USER_VA_END:
        return f"at {address:#x} reaches past the user half"
    return None


def _increasing(what: str, key: Callable[[Any], Any] | None = None
                ) -> Callable[[list[Any]], str | None]:
    """A Where condition: the items (or their first fields, or their `key`) strictly
    increase, as saved."""
    def holds(items: list[Any]) -> str | None:
        keys = [key(item) if key is not None else
                item[0] if isinstance(item, list | tuple) else item for item in items]
        for i in range(1, len(keys)):
            if keys[i - 1] >= keys[i]:
                return f"item {i} is not after the one before (each {what} once, in order)"
        return None
    return holds


MAX_PAGES = 1 << 22  # 16 GiB of pages: more than any VM here maps
PAGE_VA = Where(Int(0, USER_VA_END - PAGE), _page_aligned)  # a page of the user half
PAGES = Where(ListOf(PAGE_VA, max_len=MAX_PAGES), _increasing("page"))
PAGE_OFFSETS = Where(ListOf(Row(PAGE_VA, Int(0, MAX_INSN - 1)), max_len=MAX_PAGES),
                     _increasing("page"))
SITE = Where(Row(  # [address, length, kind, original bytes, symbol, register, width]
    Int(0, USER_VA_END - 1), Int(1, MAX_INSN), OneOf(*(k.value for k in SiteKind)),
    Bytes(MAX_INSN), Str(4096), Maybe(OneOf(*REGISTERS_64)), OneOf(16, 32, 64)), _site_fits)
def _traps_apart(traps: list[list[Any]]) -> str | None:
    """Trap ranges are not empty, stay in the user half and do not overlap (in order)."""
    end = 0
    for start, original in traps:
        if not original:
            return f"has an empty trap at {start:#x}"
        if start < end:
            return f"has the trap at {start:#x} overlapping the one before"
        end = start + len(original)
        if end > USER_VA_END:
            return f"has the trap at {start:#x} reaching past the user half"
    return None


def _disarmed_are_traps(code: dict[str, Any]) -> str | None:
    """The traps whose bytes are back for one step are traps (each once)."""
    disarmed = code["disarmed"] or []
    starts = {start for start, _ in code["traps"]}
    if len(set(disarmed)) != len(disarmed) or not set(disarmed) <= starts:
        return f"has disarmed {[hex(a) for a in disarmed]}, not traps each named once"
    return None


TRAPS = Where(ListOf(Row(Int(0, USER_VA_END - 1), Bytes(TRAP_MAX)), max_len=MAX_PAGES),
              _traps_apart)  # [start, the bytes the int3 fill replaced]
CODE_PAGES = Where(Record({  # mm.code_pages.CodePages.to_state()
    "sites": Where(ListOf(SITE, max_len=MAX_PAGES), _increasing("address")),
    "code": PAGES, "guarded": PAGES,
    "overhang": PAGE_OFFSETS,  # page -> bytes its last instruction reaches into the next
    "decode_start": PAGE_OFFSETS,  # page -> where its decode began
    "blind_tail": PAGES, "stepping": PAGES,
    "write_step": Maybe(PAGE_VA),
    "traps": TRAPS,
    "disarmed": Maybe(ListOf(Int(0, USER_VA_END - 1), max_len=TRAP_MAX)),  # one step's
    "scans": Int(0, U64_MAX), "steps": Int(0, U64_MAX),
    "trap_hits": Int(0, U64_MAX), "trap_steps": Int(0, U64_MAX),
}), _disarmed_are_traps)
CHUNK_COUNT = USER_VA_END >> CHUNK_SHIFT
CHUNKS = Where(ListOf(Int(0, CHUNK_COUNT - 1), max_len=CHUNK_COUNT), _increasing("chunk"))

TASK = Row(  # process._task_state(): one thread
    Int(1, MAX_TID),
    Maybe(Where(Bytes(TaskContext.SIZE), lambda b: None if len(b) == TaskContext.SIZE
                else f"is not {TaskContext.SIZE} bytes")),  # saved CPU state (None: on CPU)
    signal_delivery.TASK_STATE,  # mask, pending, altstack, last fault, saved mask
    Int(0, USER_VA_END), Int(0, USER_VA_END), Int(0, 24),  # clear tid, robust list, length
    Maybe(NS),  # blocked until
    Maybe(Row(Int(0, USER_VA_END), Int(1, 2**32 - 1), Int(0, U64_MAX), Bool())),  # futex
    Int(I64_MIN, I64_MAX), NS, Bool(),  # priority, switched in at, in cr_recv
    Maybe(Int(0, 2**32 - 1)), Maybe(Int(-1, 2**32 - 1)),  # a sleep's call (SDK calls too),
    # the call a signal interrupted
    Int(0, U64_MAX))  # the set rt_sigtimedwait waits for


def _tasks_in_order(tasks: list[list[Any]]) -> str | None:
    """Tids strictly increasing; exactly the tasks off the vCPU have a saved context."""
    for before, after in itertools.pairwise(tasks):
        if after[0] <= before[0]:
            return f"lists task {after[0]} after task {before[0]}"
    if not tasks:
        return "has no task"
    if sum(row[1] is None for row in tasks) > 1:  # none: see _current_on_cpu
        return "does not have exactly one task on the vCPU"
    return None


def _current_on_cpu(state: dict[str, Any]) -> str | None:
    rows = {row[0]: row for row in state["tasks"]}
    row = rows.get(state["current_tid"])
    on_cpu = any(r[1] is None for r in state["tasks"])
    if row is None and not on_cpu:
        # The thread on the vCPU exited and every other one is blocked (a detached thread
        # that returned): none has been switched in yet, so none is on the vCPU.
        return None
    if row is None:
        return f"names current task {state['current_tid']}, which is not a task"
    if row[1] is not None:
        return (f"has current task {row[0]} with a saved context (it is on the vCPU)"
                if on_cpu else "does not have exactly one task on the vCPU")
    return None


def _current_task_on_cpu(state: dict[str, Any]) -> str | None:
    problem = _current_on_cpu(state)
    if problem is not None:
        return problem
    rows = {row[0]: row for row in state["tasks"]}
    if state["next_tid"] <= max(rows):
        return f"would hand out tid {state['next_tid']}, which is taken"
    waits = state["files"].get("waiting") if type(state["files"]) is dict else None
    if state["files"].get("version") in (4, FILES_STATE_VERSION) and waits:
        for tid, _ in waits:
            if tid not in rows:
                return f"has a blocked call of task {tid}, which is not a task"
    return None


KERNEL_FIELDS = {
    "vtime_ns": NS,
    "clock": Record({"anchor_ns": NS, "offset_ns": Int(I64_MIN, I64_MAX),
                     # the clock runs at (1e9 + rate_ppb) / 1e9: it must move forward
                     "rate_ppb": Int(-999_999_999, 10**12),
                     "realtime_offset_ns": Int(I64_MIN, I64_MAX)}),
    "incarnation": Int(0, 2**32),
    "status": OneOf(*(s.value for s in Status)),
    "exit_code": Maybe(Int(0, 255)),
    "wake_at_ns": Maybe(NS),
    "syscalls": Int(0, U64_MAX),
    "unknown_syscalls": ListOf(Row(Int(0, U64_MAX), Int(0, U64_MAX)), max_len=1 << 16),
    "unknown_syscalls_other": Int(0, U64_MAX),  # calls of numbers past that list's bound
    "stdout": Bytes(),
    "stderr": Bytes(),
    "output_dropped": Row(Int(0, U64_MAX), Int(0, U64_MAX)),  # stdout, stderr bytes dropped
    "signals": signal_delivery.GROUP_STATE,  # the actions and process-wide pending signals
    "itimer_real": Row(Maybe(NS), NS),  # ITIMER_REAL: next expiry (virtual), interval
    # timer_create's: [id, clock, notify, signal, thread, value, next expiry, interval, overrun]
    "posix_timers": Where(ListOf(Row(Int(0, 2**31 - 1), OneOf(0, 1, 2, 3, 7), OneOf(0, 1, 4),
                                     Int(0, 64), Int(0, 2**31 - 1), Int(0, U64_MAX), Maybe(NS),
                                     NS, Int(0, U64_MAX)), max_len=1 << 16),
                          unique(lambda row: row[0], "timer")),
    "next_timer_id": Int(0, 2**31),
    "tasks": Where(ListOf(TASK, max_len=MAX_TID), _tasks_in_order),
    "current_tid": Int(1, MAX_TID),
    "next_tid": Int(1, MAX_TID + 1),
    "futex_sequence": Int(0, U64_MAX),
    "scheduler": Row(Int(0, I64_MAX), Int(I64_MIN, 0)),  # stream position, lowest priority
    "random": Where(ListOf(Row(OneOf(*STREAMS), Int(0, I64_MAX)), max_len=len(STREAMS)),
                    unique(lambda row: row[0], "stream")),
    "rdrand": Int(0, I64_MAX),
    "rdseed": Int(0, I64_MAX),
    "vmas": Where(ListOf(VMA, max_len=1 << 16), _vmas_in_order),
    "code_pages": CODE_PAGES,
    "brk_start": Int(0, USER_VA_END),
    "brk": Int(0, USER_VA_END),
    "memory_limit": Maybe(Int(0, U64_MAX)),
    "framed_chunks": Maybe(CHUNKS),  # 2 MiB chunks with page tables (None: not tracked)
    "files": FILES,
    "comm": Bytes(15),  # the task name, TASK_COMM_LEN less its NUL
    # the SDK edge bitmap registered with CR_SYS_COVERAGE: (address, power-of-two size)
    "coverage_map": Maybe(Where(Row(Int(0, USER_VA_END), Int(1, CR_COVERAGE_MAP_MAX)),
                                _coverage_map_fits)),
}

# A node's other processes (ProcessTable.save()): each one's own state, descriptors naming
# the node's descriptions (those of the program's table) and blocked calls.
PROCESS_KEYS = ("status", "exit_code", "wake_at_ns", "syscalls", "unknown_syscalls",
                "unknown_syscalls_other", "signals", "itimer_real", "posix_timers",
                "next_timer_id", "tasks", "current_tid", "futex_sequence", "scheduler", "vmas",
                "code_pages", "brk_start", "brk", "memory_limit", "framed_chunks", "comm",
                "coverage_map")
PROCESS_STATE = Where(Record({k: KERNEL_FIELDS[k] for k in PROCESS_KEYS}, open=True),
                      lambda state: _brk_in_order(state) or _current_on_cpu(state))
PROCESS_FILES = Record({
    "fds": TABLE_FDS, "limit": Int(0, MAX_FDS), "next_ino": Int(0, U64_MAX),
    **FILES_FIELDS_OWN, "waiting": TASK_WAITS, "attributes": TASK_ATTRIBUTES})
ID = Int(1, MAX_TID)
PROCESS_IDS = {"pid": ID, "ppid": ID, "pgid": ID, "sid": ID, "exit_signal": Int(0, 64),
               "status": OneOf(*(s.value for s in Status)), "exit_code": Maybe(Int(0, 255)),
               # a killed one's Crash: signal, vector, rip, symbol, fault address, reason
               "crash": Maybe(Row(Int(0, 64), Int(0, 255), Int(0, U64_MAX), Str(1 << 12),
                                  Int(0, U64_MAX), Str(1 << 12)))}
LIVE_PROCESS = Record({**PROCESS_IDS, "process": PROCESS_STATE, "files": PROCESS_FILES})
ZOMBIE = Record(PROCESS_IDS)


class _ProcessRow(Check):
    """A live process (with its state) or a zombie (its ids and how it ended)."""

    def describe(self) -> str:
        return LIVE_PROCESS.describe()

    def __call__(self, value: Any, path: str) -> None:
        live = type(value) is dict and ("process" in value or "files" in value)
        (LIVE_PROCESS if live else ZOMBIE)(value, path)


MAX_PROCESSES = 1 << 16
PROCESSES = Record({
    "last_pid": ID, "freed_exits": Int(0, U64_MAX),
    "processes": Where(ListOf(_ProcessRow(), max_len=MAX_PROCESSES),
                       _increasing("process", key=lambda row: row["pid"])),
})


def _processes_fit(state: dict[str, Any]) -> str | None:
    """The other processes' descriptors and waits name the node's descriptions; each
    is live exactly when it runs, and its blocked calls are its own tasks'."""
    rows = state["processes"]["processes"]
    count = len(state["files"]["table"]["descriptions"])
    taken = {row[0] for row in state["tasks"]}
    for row in rows:
        pid, live = row["pid"], "process" in row
        if live != (row["status"] == Status.RUNNING.value):
            return f"has process {pid} {'with' if live else 'without'} state, {row['status']}"
        if pid in taken:
            return f"has process {pid}, whose id is taken"
        taken.add(pid)  # a zombie's pid too: no task may have it
        if not live:
            continue
        tids = {task[0] for task in row["process"]["tasks"]}
        if (tids - {pid}) & taken:
            return f"has process {pid} with a task whose id is taken"
        taken |= tids
        if pid not in tids:
            return f"has process {pid} without its main thread"
        for fd, index, _ in row["files"]["fds"]:
            if index >= count:
                return f"has process {pid} fd {fd} naming description {index} of {count}"
        for tid, wait in row["files"]["waiting"]:
            if tid not in tids:
                return f"has process {pid} with a blocked call of task {tid}, not its own"
            for index, _ in wait[4]:
                if index >= count and index != CHILD_EVENTS:
                    return f"has process {pid} waiting on description {index} of {count}"
    if max(taken) >= state["next_tid"]:
        return f"would hand out id {state['next_tid']}, which is taken"
    return None


def _mappings_name_descriptions(state: dict[str, Any]) -> str | None:
    """Every file mapping that names a description (its index in the node's table) names
    one that exists, and a shared one a file that can be shared (AddressSpace.adopt_files
    and kernel/mm/page_cache.py use them)."""
    descriptions = state["files"]["table"]["descriptions"]
    count = len(descriptions)
    rows = [("", state["vmas"])] + [
        (f"process {row['pid']} ", row["process"]["vmas"])
        for row in state.get("processes", {}).get("processes", []) if "process" in row]
    for who, vmas in rows:
        for start, _, _, _, *held in vmas:
            if len(held) != 3:
                continue
            index, shared = held[1], held[2]
            if index >= count:
                return f"has {who}mapping {start:#x} naming description {index} of {count}"
            kind = descriptions[index][0]
            if shared and not hasattr(FileDescription.registry[kind], "cache_read"):
                return f"has {who}shared mapping {start:#x} of description {index} ({kind}), " \
                       "which cannot be shared"
    return None


KERNEL_STATE = Where(Record(KERNEL_FIELDS, open=True),
                     lambda state: _brk_in_order(state) or _current_task_on_cpu(state))


def _disk_is_a_tree(snap: dict[str, Any]) -> str | None:
    """Inode numbers unique, every entry names an inode, and the directories (current and
    durable) form one tree under the root: crash recovery and lookups walk it recursively."""
    inodes = {}
    for node in snap["inodes"]:
        if node["ino"] in inodes:
            return f"names inode {node['ino']} twice"
        if node["dir"] and node["target"] is not None:
            return f"has inode {node['ino']} both a directory and a symbolic link"
        inodes[node["ino"]] = node
    root = inodes.get(ROOT_INO)
    if root is None or not root["dir"]:
        return f"has no root directory (inode {ROOT_INO})"
    for field in ("entries", "durable_entries"):
        seen, todo = {ROOT_INO}, [ROOT_INO]
        while todo:
            for name, ino in inodes[todo.pop()][field]:
                if ino == WHITEOUT:
                    continue  # hides a root entry: names no inode
                child = inodes.get(ino)
                if child is None:
                    return f"has a {field} entry {name!r} naming missing inode {ino}"
                if child["dir"]:
                    if ino in seen:
                        return f"has directory inode {ino} twice in its {field} tree"
                    seen.add(ino)
                    todo.append(ino)
    return None


ENTRY = Row(Bytes(255), Int(0, U64_MAX))  # 0: a whiteout
XATTRS = Where(ListOf(Row(Bytes(255), Bytes(XATTR_BLOCK)), max_len=XATTR_BLOCK // 20),
               unique(lambda row: bytes(row[0]), "attribute"))
TIME = Int(I64_MIN, I64_MAX)
INODE_FIELDS = {
    "ino": Int(1, U64_MAX), "dir": Bool(), "mode": Int(0, 0o7777), "data": Bytes(),
    "durable": Bytes(), "ops": ListOf(Row(Int(0, I64_MAX), Maybe(Bytes()))),
    "entries": ListOf(ENTRY), "durable_entries": ListOf(ENTRY),
    "parent": Int(1, U64_MAX), "links": Int(0, 2**32), "durable_links": Int(0, 2**32),
    "opens": Int(0, 2**32), "mtime": TIME, "ctime": TIME, "durable_mtime": TIME,
    "atime": TIME, "uid": Int(0, 2**32 - 1), "gid": Int(0, 2**32 - 1),
    "target": Maybe(Bytes(PATH_MAX - 1)),  # a symbolic link's target
    "xattrs": XATTRS, "durable_xattrs": XATTRS,
    "special": OneOf(0, 0o010000, 0o140000),  # mknod's FIFO or socket node (else 0)
}


class _InodeOfItsAge(Check):
    """One inode of the snapshot; those from before extended attributes have none."""

    CURRENT = Record(INODE_FIELDS)
    BEFORE_XATTRS = Record({k: v for k, v in INODE_FIELDS.items()
                            if k not in ("xattrs", "durable_xattrs", "special")})

    def describe(self) -> str:
        return self.CURRENT.describe()

    FROM_ROOT = Record({"data_root": OneOf(True), "durable_root": OneOf(True)}, partial=True)

    def __call__(self, value: Any, path: str) -> None:
        old = type(value) is dict and not {"xattrs", "durable_xattrs", "special"} & set(value)
        if type(value) is dict and {"data_root", "durable_root"} & set(value):
            # a copy-up whose content is still the root's names it instead of holding it
            self.FROM_ROOT({k: value[k] for k in ("data_root", "durable_root") if k in value},
                           path)
            value = {k: v for k, v in value.items() if k not in ("data_root", "durable_root")}
        (self.BEFORE_XATTRS if old else self.CURRENT)(value, path)


INODE = _InodeOfItsAge()

DISK_STATE = Where(Record({
    "version": OneOf(DISK_VERSION),
    "seed": Int(0, U64_MAX),
    "node": Int(0, 1 << 16),
    "capacity_bytes": Int(0, U64_MAX),
    "position": Int(0, I64_MAX),
    "next_ino": Int(1, U64_MAX),
    "faults": ListOf(Row(Str(256), OneOf(*FAULT_KINDS), Float(0.0, 1.0)), max_len=1 << 10),
    "inodes": ListOf(INODE, max_len=1 << 20),
}, open=True), lambda snap: _root_fields(snap) or _disk_is_a_tree(snap))

# With a root under the disk (kernel/fs/root_layer.py): its digest and the opens of its
# inodes not copied up; a disk without a root has neither field.
ROOT_FIELDS = Record({
    "root": Where(Str(64), lambda s: None if re.fullmatch(r"[0-9a-f]{64}", s)
                  else "is not a SHA-256 in hex"),
    "lower_opens": ListOf(Row(Int(1, U64_MAX), Int(1, 2**32)), max_len=1 << 20),
})


def _root_fields(snap: dict[str, Any]) -> str | None:
    """The root's two fields, both or neither, well formed."""
    given = {k: snap[k] for k in ("root", "lower_opens") if k in snap}
    if not given:
        return None
    try:
        validate(given, ROOT_FIELDS, "root reference")
    except SchemaError as exc:
        return f"has a malformed {str(exc).removeprefix('part ')}"
    return None


def check_disk_state(snap: Any, part: str) -> None:
    """Raise SchemaError (naming `part` and the field) unless snap fits DISK_STATE."""
    validate(snap, DISK_STATE, part)


ARGS = ListOf(Bytes(MAX_ARG_STRLEN), max_len=ARGS_MAX_BYTES // 9)
# The program an execve put in place of the booted one: its path, its inode on the node's
# disk (None: the booted program's own bytes, run again) and the SHA-256 of its bytes.
EXE = Maybe(Row(Bytes(PATH_MAX - 1), Maybe(Int(1, U64_MAX)),
                Where(Bytes(32), lambda b: None if len(b) == 32 else "is not a SHA-256"),
                ARGS, ARGS))  # and the argv and environment it was given


# A stopped process (or one with a stop or SIGCONT for wait to report): [stopped, signal]
STOP = Row(Bool(), Maybe(Int(1, 64)))
# Armed CPU-time interval timers: [which (ITIMER_VIRTUAL, ITIMER_PROF), expiry, interval]
ITIMER_CPU = Where(ListOf(Row(OneOf(1, 2), NS, NS), max_len=2),
                   _increasing("timer"))


def check_kernel_state(state: Any, part: str) -> None:
    """Raise SchemaError (naming `part` and the field) unless state fits KERNEL_STATE."""
    validate(state, KERNEL_STATE, part)
    if "exe" in state:  # absent in checkpoints from before execve
        validate(state["exe"], EXE, f"{part}.exe")
    if "stop" in state:  # only while stopped, or with a stop or continue to report
        validate(state["stop"], STOP, f"{part}.stop")
    if "itimer_cpu" in state:  # only while ITIMER_VIRTUAL or ITIMER_PROF is armed
        validate(state["itimer_cpu"], ITIMER_CPU, f"{part}.itimer_cpu")
    if "processes" in state:  # only while the node's program has children
        validate(state["processes"], PROCESSES, f"{part}.processes")
        for i, row in enumerate(state["processes"]["processes"]):
            for key, check in (("exe", EXE), ("stop", STOP), ("itimer_cpu", ITIMER_CPU)):
                if key in row.get("process", {}):
                    validate(row["process"][key], check,
                             f"{part}.processes.processes[{i}].{key}")
        validate(state, Where(Record({}, open=True), _processes_fit), part)
    validate(state, Where(Record({}, open=True), _mappings_name_descriptions), part)
