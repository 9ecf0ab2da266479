"""Typed program state from DWARF: types, locations, values and the call stack, checked
against gdb on the same binary and on the same reconstructed state (an ELF core file)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.debugger.dwarf_expr import (
    Computed,
    InMemory,
    InRegister,
    Pieces,
    Unavailable,
    locate,
)
from chaosreplay.debugger.dwarf_program import DebugInfo
from chaosreplay.debugger.dwarf_types import ATE_SIGNED, ATE_SIGNED_CHAR, CType, Member
from chaosreplay.debugger.program_state import ProgramInspector
from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.symbols import Symbolizer
from chaosreplay.debugger.typed_values import Limits, Value, render
from chaosreplay.vm.elf import ProgramImage, load_program

DEMO = Path(__file__).resolve().parents[1] / "chaosreplay" / "_demo" / "raft"
GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed")
STRUCTS = ("struct entry", "struct msg", "struct disk_header", "struct timespec")
COMPARED_GLOBALS = ("current_term", "voted_for", "role", "last_index", "commit_index",
                    "last_applied", "votes", "next_index", "match_index", "dirty", "leaders",
                    "log_", "data_dir", "state_path", "BUG_NAMES", "bug", "me", "nodes",
                    "known_commit_index", "election_deadline", "rx")


def _gdb(*commands: str, core: Path | None = None, env: dict[str, str] | None = None) -> str:
    args = [GDB or "gdb", "-batch", "-nx", str(DEMO)]
    if core is not None:
        args.append(str(core))
    for command in commands:
        args += ["-ex", command]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120,
                            env={**os.environ, **(env or {})})
    return result.stdout


@pytest.fixture(scope="module")
def debug() -> DebugInfo:
    info = DebugInfo(load_program(DEMO))
    assert info.error is None
    return info


# -- types and layouts against gdb's ptype/sizeof/offsetof (no KVM) ------------------------


@needs_gdb
def test_struct_layouts_and_global_types_match_gdb(debug: DebugInfo) -> None:
    """Every member offset and size of the demo's structs, and the type of every global,
    is what gdb reads from the same binary."""
    commands, expected = [], []
    for name in STRUCTS:
        t = debug.named_types[name]
        commands.append(f"print sizeof({name})")
        expected.append(str(t.byte_size))
        for m in t.members:
            commands.append(f"print (long)&(({name} *)0)->{m.name}")
            expected.append(str(m.offset))
            commands.append(f"print sizeof((({name} *)0)->{m.name})")
            expected.append(str(m.type.byte_size))
            commands.append(f"whatis (({name} *)0)->{m.name}")
            expected.append(str(m.type))
    for name, variable in sorted(debug.globals.items()):
        commands.append(f"whatis {name}")
        expected.append(str(variable.type))
    commands.append("ptype enum role")
    role = debug.named_types["enum role"]
    expected.append("enum role {" + ", ".join(role.enumerators[i] for i in sorted(
        role.enumerators)) + "}")
    out = [re.sub(r"^(\$\d+|type) = ", "", line) for line in _gdb(*commands).splitlines()
           if re.match(r"^(\$\d+|type) = ", line)]
    assert len(out) == len(expected), out
    mismatches = [(c, e, g) for c, e, g in zip(commands, expected, out, strict=True) if e != g]
    assert not mismatches, mismatches
    assert len(debug.globals) >= 30 and len(commands) > 100


def test_scopes_at_a_pc_follow_inlined_calls(debug: DebugInfo) -> None:
    """At a pc inside an inlined call the chain is function → inlined call(s), each with its
    call site, and the variables are the inlined function's."""
    inlined = [(f, c) for f in debug.functions for c in f.children if c.kind == "inlined"]
    assert inlined, "the -O2 demo inlines static functions into main"
    function, call = inlined[0]
    pc = call.ranges[0][0]
    chain = debug.scopes_at(pc)
    assert chain[0] is function and call in chain
    assert call.call_site is not None and re.match(r".+\.[ch]:\d+$", call.call_site)


# -- location expressions and values (no KVM) ----------------------------------------------


class _Frame:
    pc = 0x1000
    bias = 0

    def __init__(self, registers: dict[int, int], memory: dict[int, bytes],
                 cfa: int | None = 0x7000) -> None:
        self.registers, self.memory, self._cfa = registers, memory, cfa

    def register(self, number: int) -> int | None:
        return self.registers.get(number)

    def read(self, address: int, size: int) -> bytes | None:
        for start, data in self.memory.items():
            if start <= address and address + size <= start + len(data):
                return data[address - start:address - start + size]
        return None

    def cfa(self) -> int | None:
        return self._cfa

    def frame_base(self) -> int | None:
        return self._cfa


def test_location_expressions() -> None:
    """The DW_OP forms -O2 code uses: fbreg, breg, reg, call_frame_cfa, stack_value, pieces,
    deref; entry values and unknown registers are 'optimized out'."""
    frame = _Frame({7: 0x6000, 3: 0x42}, {0x6ff0: (0x1234).to_bytes(8, "little")})
    assert locate(bytes([0x91, 0x70]), frame) == InMemory(0x7000 - 16)  # fbreg -16
    assert locate(bytes([0x77, 0x08]), frame) == InMemory(0x6008)  # breg7 (rsp) +8
    assert locate(bytes([0x53]), frame) == InRegister(3)  # reg3 (rbx)
    assert locate(bytes([0x9C]), frame) == InMemory(0x7000)  # call_frame_cfa
    assert locate(bytes([0x73, 0x05, 0x9F]), frame) == Computed((0x47).to_bytes(8, "little"))
    # fbreg -16; deref; stack_value: the value stored at cfa-16
    assert locate(bytes([0x91, 0x70, 0x06, 0x9F]), frame) == Computed(
        (0x1234).to_bytes(8, "little"))
    assert locate(bytes([0x50, 0x93, 0x04, 0x53, 0x93, 0x04]), frame) == Pieces(
        ((InRegister(0), 4), (InRegister(3), 4)))
    addr = bytes([0x03]) + (0x4000).to_bytes(8, "little")  # DW_OP_addr: moved by the bias
    assert locate(addr, frame) == InMemory(0x4000)
    frame.bias = 0x555555554000  # a PIE's load bias
    assert locate(addr, frame) == InMemory(0x555555558000)
    for expr in (bytes([0x7C, 0x00]),  # breg12: r12 not known in this frame
                 bytes([0xA3, 0x01, 0x55, 0x9F]),  # entry_value(reg5)
                 b""):
        with pytest.raises(Unavailable, match="optimized out"):
            locate(expr, frame)


def test_values_print_as_gdb_prints_them() -> None:
    """Runs of equal elements as repeats, the element limit, char arrays as strings with one
    terminator dropped, signed chars, bitfields, enums by name, pointers to symbols."""
    int32 = CType("base", "int", 4, ATE_SIGNED)
    char = CType("base", "char", 1, ATE_SIGNED_CHAR)
    enum = CType("enum", "role", 4, enumerators={0: "FOLLOWER", 2: "LEADER"})
    array = CType("array", target=int32, count=16)
    data = b"".join(v.to_bytes(4, "little", signed=True) for v in [7, -1] + [0] * 14)
    assert render(Value(array, None, data), lambda a, s: None) == "{7, -1, 0 <repeats 14 times>}"
    short = Limits(elements=3)
    data = b"".join(v.to_bytes(4, "little") for v in range(16))
    assert render(Value(array, None, data), lambda a, s: None, short) == "{0, 1, 2...}"
    chars = CType("array", target=char, count=16)
    assert render(Value(chars, None, b"/data" + bytes(11)), lambda a, s: None) == (
        "\"/data\", '\\000' <repeats 10 times>")
    assert render(Value(char, None, b"\xff"), lambda a, s: None) == "-1 '\\377'"
    flags = CType("struct", "f", 4, members=[Member("a", 0, int32, 3, 0),
                                             Member("b", 0, int32, 5, 3),
                                             Member("r", 1, enum)])
    raw = bytes([0b10101_011, 2, 0, 0])
    assert render(Value(flags, None, raw), lambda a, s: None) == "{a = 3, b = -11, r = LEADER}"
    pointer = CType("pointer", size=8, target=int32)
    assert render(Value(pointer, None, (0x40d490).to_bytes(8, "little")), lambda a, s: None,
                  describe_code=lambda a: "rx+16" if a == 0x40d490 else None) == (
        "0x40d490 <rx+16>")
    unreadable = Value(int32, 0x9000)
    assert render(unreadable, lambda a, s: None) == "<cannot access memory at address 0x9000>"


# -- the reconstructed state against gdb on a core file of it (KVM) -------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("dwarf") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "3s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


def _gdb_state(core: Path) -> dict:
    out = _gdb(f"source {Path(__file__).with_name('gdb_state.py')}", core=core,
               env={"GDB_GLOBALS": ",".join(COMPARED_GLOBALS), "LC_ALL": "C"})  # octal escapes
    line = next((x for x in out.splitlines() if x.startswith("JSON:")), None)
    assert line is not None, out
    return json.loads(line[5:])


@pytest.mark.kvm
@needs_gdb
def test_frames_and_values_match_gdb_on_the_same_state(demo: Path, tmp_path: Path) -> None:
    """At several events of every node, the debugger's call stack (function, file:line per
    frame, inlined calls included), its arguments and locals, and the typed globals are
    what gdb shows for an ELF core file of the same reconstructed state."""
    compared_variables = 0
    compared_frames = 0
    with DebugSession(demo) as session:
        rec = session.reconstructor
        assert rec is not None
        count = session.event_count
        for seq in (count // 7, count // 3, count // 2, (4 * count) // 5, count - 1):
            state = session.state(seq)
            for node in state.nodes:
                if not node.frames:
                    continue
                core = tmp_path / f"core-{seq}-{node.index}"
                rec.core_file(seq, node.index, core)
                gdb = _gdb_state(core)
                ours = node.frames
                context = f"event {seq} node {node.index}"
                assert len(gdb["frames"]) >= 2, (context, gdb)
                for theirs, mine in zip(gdb["frames"], ours, strict=False):
                    if theirs["function"] is None:
                        # gdb lost the stack: its prologue analyzer stops at a libc function
                        # built without CFI that pushes more than rbp; ours replayed it.
                        physical = next(f for f in ours[mine.level:] if f.found_by != "inlined")
                        assert mine.level >= 1 and physical.pc == mine.pc, (mine, physical)
                        assert physical.found_by in ("prologue", "scan"), physical
                        break
                    assert (mine.function, mine.location, mine.pc) == (
                        theirs["function"], theirs["where"], theirs["pc"]), (context, mine,
                                                                            theirs)
                    compared_frames += 1
                    if mine.level >= 6:  # variables are kept for the innermost frames
                        continue
                    for kind, views in (("args", mine.arguments), ("locals", mine.locals)):
                        expected = theirs[kind]
                        assert [v.name for v in views] == [n for n, _ in expected], (
                            context, kind, views, expected)
                        for view, (_, value) in zip(views, expected, strict=True):
                            if "<optimized out>" in (value, view.value) or (
                                    mine.level and "<not saved>" in view.value):
                                continue  # gdb may resolve entry values we do not
                            assert view.value == value, (context, mine.function, view, value)
                            compared_variables += 1
                full = {v.name: v for v in rec.programs[0].global_views(
                    lambda a, s, n=node.index, q=seq: rec.memory(q, n, a, s), Limits())}
                for name in COMPARED_GLOBALS:
                    assert full[name].value == gdb["globals"][name], (context, name)
                    compared_variables += 1
    assert compared_frames >= 20 and compared_variables >= 100, (compared_frames,
                                                                compared_variables)


def test_unwinding_through_libc_code_without_cfi() -> None:
    """Static musl has no CFI: in clock_gettime (push rbp; push rbx; sub rsp, 8 before its
    syscall) the unwinder replays the prologue to find the return address and the saved
    rbx/rbp, then continues by CFI in the caller; with the pushes unknown it falls back to
    a scan that only accepts a return address after a call to the function."""
    image = load_program(DEMO)
    program = ProgramInspector(Symbolizer(image))
    start = image.symbols.address_of("__clock_gettime")
    assert start is not None
    syscall = next(i.address + 2 for i in program.symbolizer.disassemble(
        image.segment_at(start).data[start - image.segment_at(start).vaddr:][:64], start, 20)
        if i.text == "syscall")
    call_site = next(a for a in range(0x401000, 0x404100)  # now_ns calls clock_gettime
                     if _code(image, a, 5)[:1] == b"\xe8" and a + 5 + int.from_bytes(
                         _code(image, a + 1, 4), "little", signed=True) == start)
    ret = call_site + 5
    rsp = 0x7FFF0000
    stack = bytearray(64)
    stack[0:8] = (0x1111).to_bytes(8, "little")  # sub rsp, 8: padding
    stack[8:16] = (0xB0B).to_bytes(8, "little")  # pushed rbx
    stack[16:24] = (0xBEEF).to_bytes(8, "little")  # pushed rbp
    stack[24:32] = ret.to_bytes(8, "little")

    def read(address: int, size: int) -> bytes | None:
        if rsp <= address and address + size <= rsp + len(stack):
            return bytes(stack[address - rsp:address - rsp + size])
        segment = image.segment_at(address)
        if segment is None or address + size > segment.vaddr + segment.filesz:
            return None
        return segment.data[address - segment.vaddr:address - segment.vaddr + size]

    registers = {"rip": syscall, "rsp": rsp, "rbx": 1, "rbp": 2, "rax": 0}
    frames = program.frames(registers, read)
    assert frames[0].name == "clock_gettime" and frames[0].raw.how == "prologue"
    assert frames[1].pc == ret and frames[1].found_by == "prologue"
    assert frames[1].raw.registers[3] == 0xB0B and frames[1].raw.registers[6] == 0xBEEF
    assert frames[1].raw.registers[7] == rsp + 32  # the caller's rsp: the CFA
    assert frames[1].name == "now_ns" and (frames[1].location or "").startswith("src/raft.c")
    # Without the prologue (pc at the function's first byte after two pushes it has not
    # made), the scan finds the same return address further up: it calls clock_gettime.
    stack[0:8] = (program.symbolizer.image.entry).to_bytes(8, "little")  # not after a call
    scanned = program.unwinder._step_scan(start, {16: start, 7: rsp}, read)
    assert scanned is not None and scanned[0][16] == ret and scanned[1] == rsp + 32


def _code(image: ProgramImage, address: int, size: int) -> bytes:
    segment = image.segment_at(address)
    assert segment is not None
    return segment.data[address - segment.vaddr:address - segment.vaddr + size]
