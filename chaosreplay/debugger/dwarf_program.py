"""A program's variables and scopes from DWARF: globals, functions, inlined calls, blocks.

`DebugInfo(image)` reads .debug_info once (pyelftools) into plain records: every global
variable with its address and type, and per function a tree of `Scope`s (the function,
the inlined calls in it, lexical blocks) with their pc ranges and variables. `scopes_at(pc)`
is the chain a debugger needs at a pc: outermost function first, innermost block last.
Location expressions stay undecoded bytes here; dwarf_expr.py evaluates them.
"""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass, field
from typing import Any

from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.locationlists import (
    BaseAddressEntry,
    LocationEntry,
    LocationExpr,
    LocationParser,
)
from elftools.dwarf.ranges import BaseAddressEntry as RangeBase
from elftools.elf.elffile import ELFFile

from chaosreplay.debugger.dwarf_types import CType, TypeTable
from chaosreplay.debugger.symbols import line_program_files
from chaosreplay.vm.elf import ProgramImage

# A location: one expression for the variable's whole life, or (start, end, expression)
# ranges of pcs (a location list); None when the compiler left no location at all.
Location = bytes | list[tuple[int, int, bytes]] | None
NAMED_TYPE_TAGS = ("DW_TAG_structure_type", "DW_TAG_union_type", "DW_TAG_enumeration_type",
                   "DW_TAG_typedef", "DW_TAG_base_type")


@dataclass(eq=False)
class Variable:
    """A variable or parameter, with where it lives."""

    name: str
    type: CType
    location: Location
    is_parameter: bool = False
    const_value: int | bytes | None = None  # DW_AT_const_value: no storage, a known value

    def expression_at(self, pc: int) -> bytes | None:
        """The location expression that holds at pc (None: optimized out there)."""
        if self.location is None or isinstance(self.location, bytes):
            return self.location
        for start, end, expr in self.location:
            if start <= pc < end:
                return expr
        return None


@dataclass(eq=False)
class Scope:
    """A function, an inlined call of one, or a lexical block."""

    kind: str  # "function", "inlined" or "block"
    name: str  # the function's name (blocks: "")
    ranges: list[tuple[int, int]]
    variables: list[Variable] = field(default_factory=list)
    children: list[Scope] = field(default_factory=list)
    call_site: str | None = None  # inlined: "file:line" of the call in the caller
    frame_base: bytes | None = None  # functions: DW_AT_frame_base

    def covers(self, pc: int) -> bool:
        """Whether pc lies in one of the scope's ranges."""
        return any(start <= pc < end for start, end in self.ranges)


class DebugInfo:
    """The variables and scopes of one program image (see the module docstring)."""

    def __init__(self, image: ProgramImage) -> None:
        self.bias = image.load_bias
        self.types = TypeTable()
        self.globals: dict[str, Variable] = {}
        self.named_types: dict[str, CType] = {}  # "struct entry", "uint64_t", "enum role"
        self.functions: list[Scope] = []
        self.error: str | None = None  # why debug info could not be read (None: it could)
        try:
            elf = ELFFile(io.BytesIO(image.raw))
            if elf.has_dwarf_info():
                self._read(elf.get_dwarf_info())
        except (ELFError, DWARFError, KeyError, ValueError, IndexError, AttributeError,
                NotImplementedError) as exc:
            self.error = f"debug info unreadable: {exc}"
            self.globals, self.functions = {}, []
        self.functions.sort(key=lambda f: f.ranges[0][0])
        self._starts = [f.ranges[0][0] for f in self.functions]

    def function_at(self, pc: int) -> Scope | None:
        """The (out-of-line) function whose code holds pc."""
        index = bisect.bisect_right(self._starts, pc) - 1
        for function in self.functions[max(0, index - 8):index + 1][::-1]:
            if function.covers(pc):
                return function
        return next((f for f in self.functions if f.covers(pc)), None)  # split ranges

    def scopes_at(self, pc: int) -> list[Scope]:
        """The function holding pc and every inlined call and block in it that holds pc,
        outermost first."""
        function = self.function_at(pc)
        if function is None:
            return []
        chain = [function]
        while True:
            inner = next((s for s in chain[-1].children if s.covers(pc)), None)
            if inner is None:
                return chain
            chain.append(inner)

    # -- reading ---------------------------------------------------------------------------

    def _read(self, dwarf: Any) -> None:
        locations = LocationParser(dwarf.location_lists())
        ranges = dwarf.range_lists()
        for cu in dwarf.iter_CUs():
            top = cu.get_top_DIE()
            files = {}
            program = dwarf.line_program_for_CU(cu)
            if program is not None:
                files = line_program_files(program)
            reader = _CuReader(self, cu, locations, ranges, files,
                               _attr(top, "DW_AT_low_pc", 0))
            for die in top.iter_children():
                if die.tag == "DW_TAG_variable":
                    variable = reader.variable(die)
                    if variable is not None and isinstance(variable.location, bytes):
                        self.globals.setdefault(variable.name, variable)
                elif die.tag == "DW_TAG_subprogram":
                    scope = reader.scope(die, "function")
                    if scope is not None and scope.ranges:
                        self.functions.append(scope)
                elif die.tag in NAMED_TYPE_TAGS and "DW_AT_name" in die.attributes:
                    t = self.types.of(die)
                    self.named_types.setdefault(str(t), t)


@dataclass
class _CuReader:
    """Reads the DIEs of one compilation unit."""

    info: DebugInfo
    cu: Any
    locations: LocationParser
    range_lists: Any
    files: dict[int, str]
    base: int

    def scope(self, die: Any, kind: str) -> Scope | None:
        """A function, inlined call or block with everything nested in it."""
        ranges = self._ranges(die)
        if kind == "function" and not ranges:
            return None  # a declaration or an inline-only function: no code of its own
        call_site = None
        if kind == "inlined" and "DW_AT_call_line" in die.attributes:
            file = self.files.get(_attr(die, "DW_AT_call_file", 0), "?")
            call_site = f"{file}:{die.attributes['DW_AT_call_line'].value}"
        frame_base = None
        if "DW_AT_frame_base" in die.attributes:
            value = die.attributes["DW_AT_frame_base"].value
            frame_base = bytes(value) if isinstance(value, list) else None
        scope = Scope(kind, _origin_name(die) if kind != "block" else "", ranges,
                      call_site=call_site, frame_base=frame_base)
        for child in die.iter_children():
            tag = child.tag
            if tag in ("DW_TAG_formal_parameter", "DW_TAG_variable"):
                variable = self.variable(child)
                if variable is not None:
                    scope.variables.append(variable)
            elif tag == "DW_TAG_inlined_subroutine":
                inner = self.scope(child, "inlined")
                if inner is not None and inner.ranges:
                    scope.children.append(inner)
            elif tag == "DW_TAG_lexical_block":
                inner = self.scope(child, "block")
                if inner is not None:
                    if inner.ranges:
                        scope.children.append(inner)
                    else:  # a block without ranges: its variables belong to the parent
                        scope.variables += inner.variables
                        scope.children += inner.children
        return scope

    def variable(self, die: Any) -> Variable | None:
        """A variable or parameter DIE (its name and type through abstract origins)."""
        origin = _origin(die)
        name = _text(origin.attributes.get("DW_AT_name"))
        if not name:
            return None
        type_die = origin.get_DIE_from_attribute("DW_AT_type") \
            if "DW_AT_type" in origin.attributes else None
        variable = Variable(name, self.info.types.of(type_die), None,
                            die.tag == "DW_TAG_formal_parameter")
        attrs = die.attributes
        if "DW_AT_const_value" in attrs:
            value = attrs["DW_AT_const_value"].value
            variable.const_value = bytes(value) if isinstance(value, list) else value
        elif "DW_AT_location" in attrs:
            variable.location = self._location(attrs["DW_AT_location"], die)
        return variable

    def _location(self, attr: Any, die: Any) -> Location:
        parsed = self.locations.parse_from_attribute(attr, self.cu["version"], die)
        if isinstance(parsed, LocationExpr):
            return bytes(parsed.loc_expr)
        out, base = [], self.base
        for entry in parsed:
            if isinstance(entry, BaseAddressEntry):
                base = entry.base_address
            elif isinstance(entry, LocationEntry):
                offset = 0 if entry.is_absolute else base
                out.append((entry.begin_offset + offset + self.info.bias,
                            entry.end_offset + offset + self.info.bias, bytes(entry.loc_expr)))
        return out

    def _ranges(self, die: Any) -> list[tuple[int, int]]:
        attrs = die.attributes
        bias = self.info.bias
        if "DW_AT_low_pc" in attrs and "DW_AT_high_pc" in attrs:
            low = attrs["DW_AT_low_pc"].value
            high = attrs["DW_AT_high_pc"]
            end = high.value if high.form == "DW_FORM_addr" else low + high.value
            return [(low + bias, end + bias)] if end > low else []
        if "DW_AT_ranges" in attrs and self.range_lists is not None:
            out, base = [], self.base
            for entry in self.range_lists.get_range_list_at_offset(attrs["DW_AT_ranges"].value,
                                                                    cu=self.cu):
                if isinstance(entry, RangeBase):
                    base = entry.base_address
                else:
                    offset = 0 if entry.is_absolute else base
                    if entry.end_offset > entry.begin_offset:
                        out.append((entry.begin_offset + offset + bias,
                                    entry.end_offset + offset + bias))
            return out
        return []


def _origin(die: Any) -> Any:
    """The DIE that names and types this one (abstract origin or specification, followed)."""
    for _ in range(8):
        for name in ("DW_AT_abstract_origin", "DW_AT_specification"):
            if name in die.attributes:
                die = die.get_DIE_from_attribute(name)
                break
        else:
            return die
    return die


def _origin_name(die: Any) -> str:
    return _text(_origin(die).attributes.get("DW_AT_name")) or "??"


def _attr(die: Any, name: str, default: int) -> int:
    attr = die.attributes.get(name)
    return attr.value if attr is not None and isinstance(attr.value, int) else default


def _text(attr: Any) -> str:
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
