"""C types from DWARF: the type model the debugger renders values with.

`TypeTable.of(die)` turns a DW_TAG_*_type DIE into a `CType` (cached by DIE offset, so a
struct that points to itself is one object). Names are written the way gdb writes them
(`struct entry`, `uint64_t`, `const char *`, `struct entry [2049]`), because users compare
the two.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# DW_ATE_* base type encodings (DWARF 5, 7.8).
ATE_ADDRESS = 0x1
ATE_BOOLEAN = 0x2
ATE_FLOAT = 0x4
ATE_SIGNED = 0x5
ATE_SIGNED_CHAR = 0x6
ATE_UNSIGNED = 0x7
ATE_UNSIGNED_CHAR = 0x8
ATE_UTF = 0x10

# gcc names some base types the long way; gdb (and C programmers) write them short.
SHORT_NAMES = {"long int": "long", "long unsigned int": "unsigned long", "short int": "short",
               "short unsigned int": "unsigned short", "long long int": "long long",
               "long long unsigned int": "unsigned long long"}
QUALIFIERS = {"DW_TAG_const_type": "const", "DW_TAG_volatile_type": "volatile",
              "DW_TAG_restrict_type": "restrict", "DW_TAG_atomic_type": "_Atomic"}


@dataclass(eq=False)
class Member:
    """A field of a struct or union (bit_size set for bitfields)."""

    name: str
    offset: int  # bytes from the start of the aggregate
    type: CType
    bit_size: int | None = None
    bit_offset: int = 0  # bits from the start of the byte at `offset`, little-endian


@dataclass(eq=False)
class CType:
    """One C type: `kind` is base, pointer, struct, union, array, enum, typedef, qualifier,
    function or void."""

    kind: str
    name: str = ""  # the tag or typedef name, the base type's name; "" when anonymous
    size: int = 0
    encoding: int = 0  # base types and enums: DW_ATE_*
    target: CType | None = None  # pointee, element, typedef'd, qualified type
    count: int | None = None  # arrays: elements (None: unknown, e.g. `int x[]`)
    members: list[Member] = field(default_factory=list)
    enumerators: dict[int, str] = field(default_factory=dict)
    qualifier: str = ""  # const, volatile, ...
    declaration: bool = False  # an incomplete struct (no members known)

    def strip(self) -> CType:
        """The type under typedefs and qualifiers (what decides how a value looks)."""
        t = self
        while t.kind in ("typedef", "qualifier") and t.target is not None:
            t = t.target
        return t

    @property
    def byte_size(self) -> int:
        """Size in bytes, following typedefs, qualifiers and array counts."""
        t = self.strip()
        if t.kind == "array":
            element = t.target.byte_size if t.target is not None else 0
            return element * (t.count or 0)
        return t.size

    def is_char(self) -> bool:
        """Whether a value of this type is a character (arrays of it print as strings)."""
        t = self.strip()
        return t.kind == "base" and t.size == 1 and t.encoding in (
            ATE_SIGNED_CHAR, ATE_UNSIGNED_CHAR)

    def member(self, name: str) -> Member | None:
        """A field by name, looking into anonymous structs and unions as C does."""
        for m in self.strip().members:
            if m.name == name:
                return m
            if not m.name and m.type.strip().kind in ("struct", "union"):
                inner = m.type.member(name)
                if inner is not None:
                    return Member(inner.name, m.offset + inner.offset, inner.type,
                                  inner.bit_size, inner.bit_offset)
        return None

    def __str__(self) -> str:
        return type_name(self)


VOID = CType("void", "void")


def type_name(t: CType, inner: str = "") -> str:
    """A C declarator for `t` around `inner` (gdb's spelling: `char *`, `int [4]`)."""
    if t.kind in ("base", "typedef", "void"):
        return f"{t.name} {inner}".rstrip() if inner else t.name
    if t.kind in ("struct", "union", "enum"):
        base = f"{t.kind} {t.name}" if t.name else f"{t.kind} {{...}}"
        return f"{base} {inner}".rstrip() if inner else base
    if t.kind == "qualifier":
        target = t.target or VOID
        if target.kind == "array":  # C qualifies the elements; gcc marks them too
            return type_name(target, inner)
        if target.kind == "pointer":  # `char * const`, and gdb's `char * const[4]`
            return type_name(target, f" {t.qualifier}{inner}" if inner.startswith("[")
                             else f" {t.qualifier} {inner}".rstrip())
        return f"{t.qualifier} {type_name(target, inner)}"
    if t.kind == "pointer":
        target = t.target or VOID
        wrapped = f"*{inner}"
        if target.kind in ("array", "function"):
            wrapped = f"({wrapped})"
        return type_name(target, wrapped) if target.kind != "void" else f"void {wrapped}"
    if t.kind == "array":
        count = "" if t.count is None else str(t.count)
        return type_name(t.target or VOID, f"{inner}[{count}]" if inner else f"[{count}]")
    if t.kind == "function":
        return type_name(t.target or VOID, f"{inner}(...)" if inner else "(...)")
    return t.name or "?"


class TypeTable:
    """CTypes of one program's DWARF, built on demand from DIEs and cached by offset."""

    def __init__(self) -> None:
        self._types: dict[int, CType] = {}

    def of(self, die: Any | None) -> CType:
        """The CType of a type DIE (None: void)."""
        if die is None:
            return VOID
        known = self._types.get(die.offset)
        if known is not None:
            return known
        tag = die.tag
        attrs = die.attributes
        name = _name(die)
        t = CType("void", name)
        self._types[die.offset] = t  # before the members: recursive types end here
        size = attrs["DW_AT_byte_size"].value if "DW_AT_byte_size" in attrs else 0
        if tag == "DW_TAG_base_type":
            t.kind, t.size, t.name = "base", size, SHORT_NAMES.get(name, name)
            t.encoding = attrs["DW_AT_encoding"].value if "DW_AT_encoding" in attrs else 0
        elif tag == "DW_TAG_pointer_type" or tag == "DW_TAG_reference_type":
            t.kind, t.size, t.target = "pointer", size or 8, self._target(die)
        elif tag in ("DW_TAG_structure_type", "DW_TAG_union_type"):
            t.kind = "struct" if tag == "DW_TAG_structure_type" else "union"
            t.size = size
            t.declaration = "DW_AT_declaration" in attrs
            t.members = [self._member(child) for child in die.iter_children()
                         if child.tag == "DW_TAG_member"]
        elif tag == "DW_TAG_enumeration_type":
            t.kind, t.size = "enum", size
            underlying = self._target(die)
            t.encoding = underlying.strip().encoding if underlying.kind != "void" else ATE_UNSIGNED
            for child in die.iter_children():
                if child.tag == "DW_TAG_enumerator":
                    value = child.attributes["DW_AT_const_value"].value
                    t.enumerators.setdefault(value, _name(child))
        elif tag == "DW_TAG_typedef":
            t.kind, t.target = "typedef", self._target(die)
        elif tag in QUALIFIERS:
            t.kind, t.qualifier, t.target = "qualifier", QUALIFIERS[tag], self._target(die)
        elif tag == "DW_TAG_array_type":
            self._array(t, die)
        elif tag == "DW_TAG_subroutine_type":
            t.kind, t.target = "function", self._target(die)
        return t

    def _target(self, die: Any) -> CType:
        if "DW_AT_type" not in die.attributes:
            return VOID
        return self.of(die.get_DIE_from_attribute("DW_AT_type"))

    def _member(self, die: Any) -> Member:
        attrs = die.attributes
        offset = 0
        if "DW_AT_data_member_location" in attrs:
            value = attrs["DW_AT_data_member_location"].value
            offset = value if isinstance(value, int) else _constant_expr(value)
        bit_size = attrs["DW_AT_bit_size"].value if "DW_AT_bit_size" in attrs else None
        bit_offset = 0
        if "DW_AT_data_bit_offset" in attrs:  # DWARF 4+: bits from the aggregate's start
            bits = attrs["DW_AT_data_bit_offset"].value
            offset, bit_offset = bits // 8, bits % 8
        return Member(_name(die), offset, self._target(die), bit_size, bit_offset)

    def _array(self, t: CType, die: Any) -> None:
        """Arrays: one CType per dimension, outermost first (`int a[2][3]`)."""
        element = self._target(die)
        counts: list[int | None] = []
        for child in die.iter_children():
            if child.tag != "DW_TAG_subrange_type":
                continue
            attrs = child.attributes
            if "DW_AT_count" in attrs and isinstance(attrs["DW_AT_count"].value, int):
                counts.append(attrs["DW_AT_count"].value)
            elif "DW_AT_upper_bound" in attrs and isinstance(attrs["DW_AT_upper_bound"].value,
                                                              int):
                lower = attrs["DW_AT_lower_bound"].value if "DW_AT_lower_bound" in attrs else 0
                counts.append(attrs["DW_AT_upper_bound"].value - lower + 1)
            else:
                counts.append(None)
        counts = counts or [None]
        for count in reversed(counts[1:]):
            element = CType("array", target=element, count=count)
        t.kind, t.target, t.count = "array", element, counts[0]


def _name(die: Any) -> str:
    attr = die.attributes.get("DW_AT_name")
    if attr is None:
        return ""
    value = attr.value
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _constant_expr(block: list[int]) -> int:
    """DW_AT_data_member_location as an expression: DW_OP_plus_uconst N is the only common one."""
    if block and block[0] == 0x23:  # DW_OP_plus_uconst, ULEB128 operand
        value, shift = 0, 0
        for byte in block[1:]:
            value |= (byte & 0x7F) << shift
            shift += 7
            if byte < 0x80:
                break
        return value
    return 0
