"""A node's program as its source sees it: frames with file:line, arguments, locals, globals.

`ProgramInspector` joins the DWARF of one program (dwarf_program.py), its unwinder
(unwind.py) and the value printer (typed_values.py). Given a stopped node's registers and a
memory reader it lists the call stack as gdb's `bt` does — one frame per inlined call too —
and reads any variable in scope as a typed `Value`.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from chaosreplay.debugger.dwarf_expr import (
    DWARF_REGISTERS,
    Computed,
    InMemory,
    InRegister,
    Pieces,
    Unavailable,
    locate,
)
from chaosreplay.debugger.dwarf_program import DebugInfo, Scope, Variable
from chaosreplay.debugger.dwarf_types import CType
from chaosreplay.debugger.symbols import Symbolizer
from chaosreplay.debugger.typed_values import PANE_LIMITS, Limits, Value, render
from chaosreplay.debugger.unwind import RawFrame, Unwinder
from chaosreplay.vm.vmm import PAGE_SIZE, VDSO_ADDRESS

Reader = Callable[[int, int], bytes | None]
_BIND_RANK = {"STB_WEAK": 2, "STB_GLOBAL": 1}
FRAME_VARIABLES = 6  # frames whose arguments and locals a captured state keeps
RENDERED_CACHE = 4096  # global texts remembered by their bytes


@dataclass(frozen=True)
class VariableView:
    """A variable as shown: name, C type, value as gdb prints it."""

    name: str
    type: str
    value: str
    kind: str  # "argument", "local" or "global"


@dataclass(frozen=True)
class FrameView:
    """One frame of the call stack (gdb's `bt` line) with its variables."""

    level: int
    pc: int
    function: str
    location: str | None  # file:line
    found_by: str  # registers (innermost), cfi, prologue, scan, inlined
    arguments: list[VariableView]
    locals: list[VariableView]

    def line(self) -> str:
        """`#1 0x401a2b in step (src/raft.c:412)`, with how the frame was found when it
        was not by CFI."""
        where = f" ({self.location})" if self.location else ""
        how = "" if self.found_by in ("registers", "cfi", "inlined") else f" [{self.found_by}]"
        return f"#{self.level} {self.pc:#x} in {self.function}{where}{how}"


class Frame:
    """One logical frame, live: registers and memory, for evaluating locations."""

    def __init__(self, level: int, raw: RawFrame, scope: Scope | None, function: Scope | None,
                 blocks: list[Scope], name: str, location: str | None, found_by: str,
                 read: Reader) -> None:
        self.level = level
        self.raw = raw
        self.pc = raw.pc
        self.lookup_pc = raw.pc if raw.found_by == "registers" else raw.pc - 1
        self.scope = scope  # the function or inlined call this frame is
        self.function = function  # the out-of-line function (its frame base)
        self.blocks = blocks  # scopes whose variables are visible, outermost first
        self.name = name
        self.location = location
        self.found_by = found_by
        self._read = read
        self.bias = 0  # the program's load bias (DW_OP_addr), set by the inspector

    # FrameContext (dwarf_expr.py)
    def register(self, number: int) -> int | None:
        """A DWARF register's value in this frame."""
        return self.raw.registers.get(number)

    def read(self, address: int, size: int) -> bytes | None:
        """Guest memory."""
        return self._read(address, size)

    def cfa(self) -> int | None:
        """The canonical frame address."""
        return self.raw.cfa

    def frame_base(self) -> int | None:
        """DW_AT_frame_base of the function, evaluated here."""
        if self.function is None or self.function.frame_base is None:
            return None
        place = locate(self.function.frame_base, self)
        if isinstance(place, InMemory):
            return place.address
        if isinstance(place, InRegister):
            return self.register(place.number)
        return None

    def variables(self) -> list[Variable]:
        """Every variable visible here, innermost scope first (shadowing order)."""
        out: list[Variable] = []
        for scope in reversed(self.blocks):
            out += scope.variables
        return out

    def lookup(self, name: str) -> Variable | None:
        """The variable a name means here (None: not in scope)."""
        return next((v for v in self.variables() if v.name == name), None)

    def value(self, variable: Variable) -> Value:
        """A variable's value in this frame (Unavailable: optimized out, not saved)."""
        if variable.const_value is not None:
            data = variable.const_value
            if isinstance(data, int):
                data = (data & ((1 << 64) - 1)).to_bytes(8, "little")
            return Value(variable.type, None, data)
        expr = variable.expression_at(self.lookup_pc)
        if expr is None:
            raise Unavailable("optimized out")
        return place_value(variable.type.byte_size, variable, locate(expr, self), self)


def place_value(size: int, variable: Variable, place: object, frame: Frame) -> Value:
    """A Value for a located variable."""
    if isinstance(place, InMemory):
        return Value(variable.type, place.address)
    if isinstance(place, InRegister):
        value = frame.register(place.number)
        if value is None:
            raise Unavailable("not saved" if frame.level else "optimized out")
        return Value(variable.type, None, value.to_bytes(8, "little"))
    if isinstance(place, Computed):
        return Value(variable.type, None, place.data)
    if isinstance(place, Pieces):
        data = b""
        for part, part_size in place.parts:
            if part is None:
                raise Unavailable("optimized out")
            piece = place_value(part_size, variable, part, frame)
            data += piece.raw(frame.read, part_size)
        return Value(variable.type, None, data)
    raise Unavailable("optimized out")


def vdso_function(read: Reader, pc: int) -> str | None:
    """The vDSO function (its exported symbol) an address lies in, read from the image in
    the node's memory, as gdb reads it from AT_SYSINFO_EHDR."""
    image = read(VDSO_ADDRESS, PAGE_SIZE)
    if image is None:
        return None
    for name, start, size in _vdso_symbols(bytes(image)):
        if start <= pc - VDSO_ADDRESS < start + size:
            return name
    return None


@functools.lru_cache(maxsize=4)
def _vdso_symbols(image: bytes) -> tuple[tuple[str, int, int], ...]:
    try:
        dynsym = ELFFile(io.BytesIO(image)).get_section_by_name(".dynsym")
        return tuple((sym.name, sym["st_value"], sym["st_size"])
                     for sym in (dynsym.iter_symbols() if dynsym is not None else ())
                     if sym["st_info"]["type"] == "STT_FUNC")
    except (ELFError, ValueError, KeyError, struct.error):
        return ()


class ProgramInspector:
    """Frames and variables of one program image (see the module docstring)."""

    def __init__(self, symbolizer: Symbolizer) -> None:
        self.symbolizer = symbolizer
        self._addresses: dict[int, int] = {}  # id(global Variable) -> its address
        self._rendered: dict[tuple[int, Limits, bytes], str] = {}

    @cached_property
    def debug(self) -> DebugInfo:
        """The program's DWARF variables and scopes (read on first use)."""
        return DebugInfo(self.symbolizer.image)

    @cached_property
    def unwinder(self) -> Unwinder:
        """The program's CFI (read on first use)."""
        symbols = self.symbolizer.image.symbols

        def function_start(pc: int) -> int | None:
            function = self.debug.function_at(pc)
            if function is not None:
                return min(start for start, _ in function.ranges)
            name = symbols.describe(pc)
            base = name.split("+")[0]
            return symbols.address_of(base) if not base.startswith("0x") else None

        return Unwinder(self.symbolizer.image, function_start, self.symbolizer.is_code)

    def frames(self, registers: dict[str, int], read: Reader) -> list[Frame]:
        """The call stack, innermost first, one frame per inlined call as gdb shows it."""
        regs = {i: registers[name] for i, name in enumerate(DWARF_REGISTERS) if name in registers}
        out: list[Frame] = []
        for raw in self.unwinder.unwind(regs, read):
            lookup = raw.pc if raw.found_by == "registers" else raw.pc - 1
            scopes = self.debug.scopes_at(lookup)
            line = self.symbolizer.source_line(lookup)
            if not scopes:
                in_vdso = VDSO_ADDRESS <= raw.pc < VDSO_ADDRESS + PAGE_SIZE
                name = (vdso_function(read, raw.pc) if in_vdso
                        else self.function_name(lookup)) or f"{raw.pc:#x}"
                out.append(Frame(len(out), raw, None, None, [], name, line, raw.found_by,
                                 read))
                continue
            # Split the scope chain at inlined calls: innermost inlined call first.
            groups: list[list[Scope]] = [[]]
            for scope in scopes:
                if scope.kind == "inlined":
                    groups.append([])
                groups[-1].append(scope)
            function = scopes[0]
            for depth in range(len(groups) - 1, -1, -1):
                group = groups[depth]
                out.append(Frame(len(out), raw, group[0], function, group, group[0].name,
                                 line, raw.found_by if depth == 0 else "inlined", read))
                out[-1].bias = self.debug.bias
                line = group[0].call_site  # the caller's line is where the inline was called
        return out

    @cached_property
    def _code_symbols(self) -> tuple[list[int], list[tuple[int, str]]]:
        """Function symbols by address: (starts, (end or 0, name)), one per address."""
        best: dict[int, tuple[tuple[int, int], int, str]] = {}
        try:
            elf = ELFFile(io.BytesIO(self.symbolizer.image.raw))
            table = elf.get_section_by_name(".symtab")
            symbols = list(table.iter_symbols()) if table is not None else []
        except (ELFError, AttributeError):
            symbols = []
        bias = self.symbolizer.image.load_bias
        for index, symbol in enumerate(symbols):
            if symbol["st_info"]["type"] not in ("STT_FUNC", "STT_NOTYPE") or not symbol.name \
                    or symbol["st_shndx"] in ("SHN_UNDEF", "SHN_ABS"):
                continue
            address = symbol["st_value"] + bias
            if not self.symbolizer.is_code(address):
                continue
            # Among aliases (musl: open64 = open, clock_gettime = __clock_gettime) the name
            # gdb 13 shows: the weak one (the public name), then global, then local.
            rank = (_BIND_RANK.get(symbol["st_info"]["bind"], 0), index)
            if address not in best or rank > best[address][0]:
                best[address] = (rank, symbol["st_size"], symbol.name)
        starts = sorted(best)
        return starts, [(best[a][1], best[a][2]) for a in starts]

    def function_name(self, pc: int) -> str | None:
        """The name gdb gives the function at pc when there is no debug info for it: the
        closest function symbol at or before pc."""
        starts, rows = self._code_symbols
        index = bisect.bisect_right(starts, pc) - 1
        if index < 0:
            return None
        size, name = rows[index]
        return name if not size or pc < starts[index] + size else None

    @cached_property
    def _sorted_globals(self) -> list[tuple[str, Variable]]:
        return sorted(self.debug.globals.items())

    def global_variable(self, name: str) -> Variable | None:
        """A global by name."""
        return self.debug.globals.get(name)

    def global_value(self, variable: Variable) -> Value:
        """A global's value (globals live at fixed addresses)."""
        address = self._addresses.get(id(variable))
        if address is None:
            assert isinstance(variable.location, bytes)
            place = locate(variable.location, _Static(self.debug.bias))
            if not isinstance(place, InMemory):
                raise Unavailable("optimized out")
            address = self._addresses[id(variable)] = place.address
        return Value(variable.type, address)

    def describe_code(self, address: int) -> str | None:
        """`main+28` for an address a symbol covers (pointers print it, as gdb does)."""
        found = self.symbolizer.image.symbols.lookup(address)
        if found is None:
            return None
        name, offset = found
        return f"{name}+{offset}" if offset else name

    def frame_views(self, frames: list[Frame], limits: Limits = PANE_LIMITS,
                    with_variables: int = FRAME_VARIABLES) -> list[FrameView]:
        """Frames as plain data; the innermost `with_variables` with their variables."""
        out = []
        for frame in frames:
            arguments: list[VariableView] = []
            local: list[VariableView] = []
            if frame.level < with_variables:
                # gdb's order: arguments as declared; locals innermost block first
                for scope in reversed(frame.blocks):
                    for variable in scope.variables:
                        view = self.variable_view(frame, variable, limits)
                        (arguments if variable.is_parameter else local).append(view)
            out.append(FrameView(frame.level, frame.pc, frame.name, frame.location,
                                 frame.found_by, arguments, local))
        return out

    def variable_view(self, frame: Frame, variable: Variable,
                      limits: Limits = PANE_LIMITS) -> VariableView:
        """One variable of a frame, rendered."""
        try:
            text = render(frame.value(variable), frame.read, limits, self.describe_code)
        except Unavailable as exc:
            text = f"<{exc.reason}>"
        return VariableView(variable.name, str(variable.type), text,
                            "argument" if variable.is_parameter else "local")

    def global_views(self, read: Reader, limits: Limits = PANE_LIMITS) -> list[VariableView]:
        """Every global of the program with its value, by name."""
        out = []
        for name, variable in self._sorted_globals:
            try:
                text = self._render_global(variable, read, limits)
            except Unavailable as exc:
                text = f"<{exc.reason}>"
            out.append(VariableView(name, str(variable.type), text, "global"))
        return out

    def _render_global(self, variable: Variable, read: Reader, limits: Limits) -> str:
        """A global's text; remembered by its bytes when it holds no pointer (its text then
        depends on nothing else), so stepping does not print unchanged globals again."""
        value = self.global_value(variable)
        if _has_pointer(variable.type):
            return render(value, read, limits, self.describe_code)
        data = value.raw(read)
        key = (id(variable), limits, hashlib.blake2b(data, digest_size=16).digest())
        text = self._rendered.get(key)
        if text is None:
            text = render(Value(variable.type, None, data), read, limits, self.describe_code)
            self._rendered[key] = text
            if len(self._rendered) > RENDERED_CACHE:
                self._rendered.pop(next(iter(self._rendered)))
        return text


def _has_pointer(t: CType, depth: int = 0) -> bool:
    """Whether a value of the type contains a pointer (its text reads other memory)."""
    t = t.strip()
    if t.kind == "pointer" or depth > 16:
        return True
    if t.kind == "array":
        return t.target is not None and _has_pointer(t.target, depth + 1)
    return any(_has_pointer(m.type, depth + 1) for m in t.members)


class _Static:
    """A frame context for static locations (DW_OP_addr): nothing but constants."""

    pc = 0

    def __init__(self, bias: int) -> None:
        self.bias = bias

    def register(self, number: int) -> int | None:
        return None

    def read(self, address: int, size: int) -> bytes | None:
        return None

    def cfa(self) -> int | None:
        return None

    def frame_base(self) -> int | None:
        return None
