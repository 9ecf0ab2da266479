"""Evaluating DWARF location expressions against a frame's registers and memory.

`locate(expr, frame)` runs the stack machine of DWARF 5 section 2.5/2.6 and says where a
variable is: in memory at an address, in a register, a value computed by the expression
(DW_OP_stack_value), a literal (DW_OP_implicit_value), or pieces of those. What the
expression needs and the frame does not know (a register the callee did not save, an
entry value) makes the variable "optimized out", as gdb says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Protocol

from elftools.dwarf.dwarf_expr import DWARFExprParser
from elftools.dwarf.structs import DWARFStructs

MASK = (1 << 64) - 1
# DWARF register numbers of x86-64 (System V psABI, figure 3.36).
DWARF_REGISTERS = ("rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp",
                   "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rip")
RIP = 16
RSP = 7


class Unavailable(Exception):
    """The value cannot be had: `reason` is what the debugger prints (`optimized out`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class FrameContext(Protocol):
    """What an expression may ask of the frame it is evaluated in."""

    pc: int  # (a context may also have `bias`, the program's load bias, for DW_OP_addr)

    def register(self, number: int) -> int | None:
        """A DWARF register's value in this frame (None: not known here)."""

    def read(self, address: int, size: int) -> bytes | None:
        """Guest memory (None: not mapped)."""

    def cfa(self) -> int | None:
        """The frame's canonical frame address (from CFI)."""

    def frame_base(self) -> int | None:
        """The function's DW_AT_frame_base evaluated in this frame."""


@dataclass(frozen=True)
class InMemory:
    """The object is in memory at `address`."""

    address: int


@dataclass(frozen=True)
class InRegister:
    """The object is in DWARF register `number`."""

    number: int


@dataclass(frozen=True)
class Computed:
    """The object's value is `data` (stack values and implicit values have no storage)."""

    data: bytes


@dataclass(frozen=True)
class Pieces:
    """The object is split: (part, size in bytes) in order."""

    parts: tuple[tuple[InMemory | InRegister | Computed | None, int], ...]


Place = InMemory | InRegister | Computed | Pieces

_STRUCTS = DWARFStructs(little_endian=True, dwarf_format=32, address_size=8)


@lru_cache(maxsize=4096)
def _parse(expr: bytes) -> tuple[tuple[str, tuple[object, ...], int], ...]:
    ops = DWARFExprParser(_STRUCTS).parse_expr(list(expr))
    return tuple((op.op_name, tuple(op.args), op.offset) for op in ops)


def _signed(value: int) -> int:
    value &= MASK
    return value - (1 << 64) if value >> 63 else value


def locate(expr: bytes, frame: FrameContext) -> Place:
    """Where the object described by `expr` is in `frame` (Unavailable if it cannot be had)."""
    ops = _parse(expr)
    at_offset = {offset: i for i, (_, _, offset) in enumerate(ops)}
    stack: list[int] = []
    pieces: list[tuple[InMemory | InRegister | Computed | None, int]] = []
    pending: InMemory | InRegister | Computed | None = None  # the place a piece closes
    i = 0

    def need(value: int | None, what: str) -> int:
        if value is None:
            raise Unavailable("optimized out" if what == "register" else f"no {what}")
        return value

    def binary(fn: Callable[[int, int], int]) -> None:
        b, a = stack.pop(), stack.pop()
        stack.append(fn(a, b) & MASK)

    while i < len(ops):
        name, args, offset = ops[i]
        i += 1
        op = name.removeprefix("DW_OP_")
        if op.startswith("lit"):
            stack.append(int(op[3:]))
        elif op == "addr":  # a link-time address: moved by the load bias (PIE)
            stack.append((int(args[0]) + getattr(frame, "bias", 0)) & MASK)  # type: ignore[call-overload]
        elif (op.startswith("const") and op[5:6].isdigit()) or op in ("constu", "consts"):
            stack.append(int(args[0]) & MASK)  # type: ignore[call-overload]
        elif op.startswith("breg") and op != "bregx":
            value = need(frame.register(int(op[4:])), "register")
            stack.append((value + int(args[0])) & MASK)  # type: ignore[call-overload]
        elif op == "bregx":
            value = need(frame.register(int(args[0])), "register")  # type: ignore[call-overload]
            stack.append((value + int(args[1])) & MASK)  # type: ignore[call-overload]
        elif op.startswith("reg") and op != "regx":
            pending = InRegister(int(op[3:]))
        elif op == "regx":
            pending = InRegister(int(args[0]))  # type: ignore[call-overload]
        elif op == "fbreg":
            base = need(frame.frame_base(), "frame base")
            stack.append((base + int(args[0])) & MASK)  # type: ignore[call-overload]
        elif op == "call_frame_cfa":
            stack.append(need(frame.cfa(), "call frame (CFA)"))
        elif op in ("deref", "deref_size"):
            size = 8 if op == "deref" else int(args[0])  # type: ignore[call-overload]
            data = frame.read(stack.pop(), size)
            if data is None:
                raise Unavailable("cannot access memory")
            stack.append(int.from_bytes(data, "little"))
        elif op == "dup":
            stack.append(stack[-1])
        elif op == "drop":
            stack.pop()
        elif op == "over":
            stack.append(stack[-2])
        elif op == "pick":
            stack.append(stack[-1 - int(args[0])])  # type: ignore[call-overload]
        elif op == "swap":
            stack[-1], stack[-2] = stack[-2], stack[-1]
        elif op == "rot":
            stack[-1], stack[-2], stack[-3] = stack[-2], stack[-3], stack[-1]
        elif op == "plus_uconst":
            stack.append((stack.pop() + int(args[0])) & MASK)  # type: ignore[call-overload]
        elif op in _BINARY:
            binary(_BINARY[op])
        elif op == "neg":
            stack.append(-_signed(stack.pop()) & MASK)
        elif op == "not":
            stack.append(~stack.pop() & MASK)
        elif op == "abs":
            stack.append(abs(_signed(stack.pop())) & MASK)
        elif op == "skip" or op == "bra":
            target = offset + 3 + int(args[0])  # type: ignore[call-overload]
            if op == "skip" or stack.pop() != 0:
                if target not in at_offset and target != len(expr):
                    raise Unavailable("bad branch in location expression")
                i = at_offset.get(target, len(ops))
        elif op == "nop":
            pass
        elif op == "stack_value":
            pending = Computed(stack.pop().to_bytes(8, "little"))
        elif op == "implicit_value":
            pending = Computed(bytes(args[1]))  # type: ignore[arg-type]
        elif op == "piece":
            size = int(args[0])  # type: ignore[call-overload]
            if pending is None and stack:
                pending = InMemory(stack.pop())
            pieces.append((pending, size))
            pending = None
            stack.clear()
        elif op in ("entry_value", "GNU_entry_value", "GNU_parameter_ref"):
            raise Unavailable("optimized out")  # the caller's value at the call: not kept
        else:
            raise Unavailable(f"unsupported {name}")
    if pieces:
        return Pieces(tuple(pieces))
    if pending is not None:
        return pending
    if not stack:
        raise Unavailable("optimized out")  # an empty expression: no location here
    return InMemory(stack.pop())


def _compare(fn: Callable[[int, int], bool]) -> Callable[[int, int], int]:
    return lambda a, b: int(fn(_signed(a), _signed(b)))


def _div(a: int, b: int) -> int:
    if b == 0:
        raise Unavailable("division by zero in location expression")
    q = abs(_signed(a)) // abs(_signed(b))
    return q if (_signed(a) < 0) == (_signed(b) < 0) else -q


def _mod(a: int, b: int) -> int:
    if b == 0:
        raise Unavailable("division by zero in location expression")
    return a % b


_BINARY: dict[str, Callable[[int, int], int]] = {
    "plus": lambda a, b: a + b, "minus": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "and": lambda a, b: a & b, "or": lambda a, b: a | b, "xor": lambda a, b: a ^ b,
    "shl": lambda a, b: a << b if b < 64 else 0, "shr": lambda a, b: a >> b,
    "shra": lambda a, b: _signed(a) >> min(b, 63), "div": _div, "mod": _mod,
    "eq": _compare(lambda a, b: a == b), "ne": _compare(lambda a, b: a != b),
    "lt": _compare(lambda a, b: a < b), "gt": _compare(lambda a, b: a > b),
    "le": _compare(lambda a, b: a <= b), "ge": _compare(lambda a, b: a >= b),
}
