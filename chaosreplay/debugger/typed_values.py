"""Typed values of guest memory, printed the way gdb prints them.

A `Value` is a C type and where its bytes are: at an address of guest memory, or bytes
already known (a register, a computed location). `render` writes it as gdb's `print` does
by default — `{term = 3, key = 1, value = 7, chain = 12}`, `LEADER`, `0x40c0a8 "/data"`,
runs of equal elements as `0 <repeats 16 times>`, at most `Limits.elements` elements of an
array (a run counts as 10, gdb's repeat threshold) — so values can be checked against gdb.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from dataclasses import dataclass

from chaosreplay.debugger.dwarf_expr import Unavailable
from chaosreplay.debugger.dwarf_types import (
    ATE_BOOLEAN,
    ATE_FLOAT,
    ATE_SIGNED,
    ATE_SIGNED_CHAR,
    CType,
    Member,
)

_SAME_BYTES = re.compile(rb"(.)\1*", re.DOTALL)  # a run of one byte value
REPEAT_THRESHOLD = 10  # gdb's `set print repeats`
ARRAY_READ_MAX = 1 << 20  # arrays up to this size are read at once
Reader = Callable[[int, int], bytes | None]


@dataclass(frozen=True)
class Limits:
    """How much of a value to print: array elements and string characters (gdb's `print
    elements` is both) and nesting."""

    elements: int = 200
    characters: int = 200
    depth: int = 20


GDB_LIMITS = Limits()
PANE_LIMITS = Limits(elements=8, characters=80, depth=4)


@dataclass(frozen=True)
class Value:
    """A typed object: in memory at `address`, or with its bytes in `data`."""

    type: CType
    address: int | None = None
    data: bytes | None = None
    bit_size: int | None = None  # a bitfield: bits at bit_offset of the bytes
    bit_offset: int = 0

    def raw(self, read: Reader, size: int | None = None) -> bytes:
        """The object's bytes (Unavailable when memory cannot be read)."""
        size = self.type.byte_size if size is None else size
        if self.data is not None:
            if len(self.data) < size:
                return self.data + bytes(size - len(self.data))
            return self.data[:size]
        if self.address is None:
            raise Unavailable("optimized out")
        data = read(self.address, size)
        if data is None:
            raise Unavailable(f"cannot access memory at address {self.address:#x}")
        return data

    def member(self, m: Member) -> Value:
        """A field of this struct or union."""
        if self.data is not None:
            return Value(m.type, None, self.data[m.offset:m.offset + m.type.byte_size + 8],
                         m.bit_size, m.bit_offset)
        address = None if self.address is None else self.address + m.offset
        return Value(m.type, address, None, m.bit_size, m.bit_offset)

    def element(self, index: int) -> Value:
        """Element `index` of this array (no bounds check, as in C)."""
        element = self.type.strip().target
        assert element is not None
        size = element.byte_size
        if self.data is not None:
            return Value(element, None, self.data[index * size:(index + 1) * size])
        if self.address is None:
            raise Unavailable("optimized out")
        return Value(element, self.address + index * size)

    def integer(self, read: Reader) -> int:
        """The value as an integer (integers, enums, bools, chars, pointers, bitfields)."""
        t = self.type.strip()
        if t.kind not in ("base", "enum", "pointer") or (
                t.kind == "base" and t.encoding == ATE_FLOAT):
            raise Unavailable(f"not an integer: {self.type}")
        signed = t.kind != "pointer" and t.encoding in (ATE_SIGNED, ATE_SIGNED_CHAR)
        if self.bit_size is not None:
            nbytes = (self.bit_offset + self.bit_size + 7) // 8
            bits = int.from_bytes(self.raw(read, nbytes), "little") >> self.bit_offset
            value = bits & ((1 << self.bit_size) - 1)
            if signed and value >> (self.bit_size - 1):
                value -= 1 << self.bit_size
            return value
        return int.from_bytes(self.raw(read, t.size), "little", signed=signed)


def render(value: Value, read: Reader, limits: Limits = GDB_LIMITS,
           describe_code: Callable[[int], str | None] = lambda _: None) -> str:
    """The value as gdb prints it (`<optimized out>`-style text when it cannot be read)."""
    try:
        return _Printer(read, limits, describe_code).value(value, 0)
    except Unavailable as exc:
        return f"<{exc.reason}>"


@dataclass
class _Printer:
    read: Reader
    limits: Limits
    describe_code: Callable[[int], str | None]

    def value(self, v: Value, depth: int) -> str:
        t = v.type.strip()
        if t.kind == "base":
            return self._base(v, t)
        if t.kind == "enum":
            number = v.integer(self.read)
            return t.enumerators.get(number, str(number))
        if t.kind == "pointer":
            return self._pointer(v, t)
        if t.kind in ("struct", "union"):
            if depth >= self.limits.depth:
                return "{...}"
            if t.declaration:
                return "<incomplete type>"
            parts = [f"{m.name} = {self.value(v.member(m), depth + 1)}" if m.name
                     else self.value(v.member(m), depth + 1) for m in t.members]
            return "{" + ", ".join(parts) + "}"
        if t.kind == "array":
            return self._array(v, t, depth)
        if t.kind == "function":
            return "{function}"
        return "void"

    def _base(self, v: Value, t: CType) -> str:
        if t.encoding == ATE_FLOAT:
            raw = v.raw(self.read, t.size)
            if t.size == 4:
                return f"{struct.unpack('<f', raw)[0]:.9g}"
            if t.size == 8:
                return f"{struct.unpack('<d', raw)[0]:.17g}"
            return f"<{t.size}-byte float>"
        number = v.integer(self.read)
        if t.encoding == ATE_BOOLEAN:
            return "true" if number == 1 else "false" if number == 0 else str(number)
        if v.type.is_char():
            return f"{number} {_char_literal(number & 0xFF)}"
        return str(number)

    def _pointer(self, v: Value, t: CType) -> str:
        address = v.integer(self.read)
        text = f"{address:#x}"
        if t.target is not None and t.target.is_char() and address:
            data = self.read(address, self.limits.characters + 1)
            if data is None:  # the string may end before a page that is not mapped
                data = b""
                for length in (64, 16, 1):
                    data = self.read(address, length) or b""
                    if data:
                        break
            if not data and self.read(address, 1) is None:
                return f"{text} <error: Cannot access memory at address {address:#x}>"
            end = data.find(b"\0")
            body = data if end < 0 else data[:end]
            more = "..." if end < 0 and len(body) > self.limits.characters else ""
            return f'{text} "{_escape(body[:self.limits.characters])}"{more}'
        where = self.describe_code(address) if address else None
        return f"{text} <{where}>" if where else text

    def _array(self, v: Value, t: CType, depth: int) -> str:
        count = t.count or 0
        element = t.target
        assert element is not None
        if count == 0:
            return "{}" if t.count == 0 else "0x0"
        size = element.byte_size
        limit = self.limits.elements
        if element.is_char():
            return self._chars(v.raw(self.read, size * count), self.limits.characters)
        blob = v.raw(self.read, size * count) if size * count <= ARRAY_READ_MAX else None
        parts: list[str] = []
        printed = 0
        i = 0
        while i < count and printed < limit:
            if blob is not None:
                element_value = Value(element, None, blob[i * size:(i + 1) * size])
                run = _run_length(blob, i, size, count)
            else:  # too big to read at once: element by element
                element_value = v.element(i)
                first = element_value.raw(self.read)
                run = 1
                while i + run < count and v.element(i + run).raw(self.read) == first:
                    run += 1
            text = self.value(element_value, depth + 1)
            if run >= REPEAT_THRESHOLD:
                parts.append(f"{text} <repeats {run} times>")
                i += run
                printed += REPEAT_THRESHOLD
            else:
                parts.append(text)
                i += 1
                printed += 1
        return "{" + ", ".join(parts) + ("..." if i < count else "") + "}"

    def _chars(self, data: bytes, limit: int) -> str:
        """A char array as gdb prints it: quoted runs, long runs of one char as repeats, one
        trailing NUL taken as the terminator."""
        if data.endswith(b"\0"):
            data = data[:-1]
        if not data:
            return '""'
        segments: list[str] = []
        literal = bytearray()
        printed = 0
        i = 0
        while i < len(data) and printed < limit:
            match = _SAME_BYTES.match(data, i)
            run = match.end() - i if match is not None else 1
            if run > REPEAT_THRESHOLD - 1:
                if literal:
                    segments.append(f'"{_escape(bytes(literal))}"')
                    literal.clear()
                segments.append(f"{_char_literal(data[i])} <repeats {run} times>")
                i += run
                printed += REPEAT_THRESHOLD
            else:
                literal.append(data[i])
                i += 1
                printed += 1
        if literal:
            segments.append(f'"{_escape(bytes(literal))}"')
        return ", ".join(segments) + ("..." if i < len(data) else "")


def _run_length(blob: bytes, index: int, size: int, count: int) -> int:
    """How many elements from `index` on equal element `index` (slices compared in C)."""
    if size == 0:
        return count - index
    first = blob[index * size:(index + 1) * size]
    run, step = 1, 1
    while index + run < count:  # doubling, then halving: few comparisons for long runs
        take = min(step, count - index - run)
        start = (index + run) * size
        if blob[start:start + take * size] == first * take:
            run += take
            step *= 2
        elif take == 1:
            break
        else:
            step = max(1, take // 2)
    return run


_ESCAPES = {7: "\\a", 8: "\\b", 9: "\\t", 10: "\\n", 11: "\\v", 12: "\\f", 13: "\\r",
            27: "\\033"}


def _escape(data: bytes, quote: str = '"') -> str:
    out = []
    for byte in data:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif byte == ord(quote) or byte == 0x5C:
            out.append("\\" + chr(byte))
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03o}")
    return "".join(out)


def _char_literal(byte: int) -> str:
    return f"'{_escape(bytes([byte]), quote=chr(39))}'"
