"""Watch expressions: a small C expression language over a node's variables.

`current_term`, `log_[commit_index]`, `leaders[3].term`, `m->term`, `*src`, `log_[last_index
- 1].term`: names (a local of the innermost frame, else a global), `.field`, `->field`,
`[index]` with any integer expression inside, unary `*` and `-`, integers, `+ - * / %` on
integers (as C computes them) and parentheses. `parse` checks the syntax once; an
`Evaluator` reads the value in a stopped node, as a typed Value the printer can show and
the change search can compare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from chaosreplay.debugger.dwarf_expr import Unavailable
from chaosreplay.debugger.dwarf_types import ATE_SIGNED, CType
from chaosreplay.debugger.program_state import Frame, ProgramInspector, Reader
from chaosreplay.debugger.typed_values import PANE_LIMITS, Limits, Value, render

_TOKEN = re.compile(r"\s*(?:(0x[0-9a-fA-F]+|\d+)|([A-Za-z_]\w*)|(->|[-+*/%.\[\]()]))")
LONG = CType("base", "long", 8, ATE_SIGNED)


class WatchError(ValueError):
    """An expression that cannot be parsed (its syntax; evaluation errors are values)."""


@dataclass(frozen=True)
class Node:
    """One node of a parsed expression: op is name, int, member, arrow, index, deref, neg,
    or a binary operator; args are sub-nodes (or the name, the number, the field)."""

    op: str
    args: tuple[object, ...]


@dataclass(frozen=True)
class WatchView:
    """A watch as shown: the expression, its type and value (or why there is none)."""

    expression: str
    type: str
    value: str


def parse(text: str) -> Node:
    """The syntax tree of an expression (WatchError names what is wrong)."""
    tokens = _tokens(text)
    parser = _Parser(tokens, text)
    node = parser.additive()
    if parser.at < len(tokens):
        raise WatchError(f"watch {text!r}: unexpected {tokens[parser.at]!r}")
    return node


def _tokens(text: str) -> list[str]:
    out, at = [], 0
    while at < len(text):
        if text[at:].strip() == "":
            break
        match = _TOKEN.match(text, at)
        if match is None or match.end() == at:
            raise WatchError(f"watch {text!r}: cannot read {text[at:].strip()!r}")
        out.append(next(g for g in match.groups() if g is not None))
        at = match.end()
    if not out:
        raise WatchError("watch: empty expression")
    return out


class _Parser:
    def __init__(self, tokens: list[str], text: str) -> None:
        self.tokens, self.text, self.at = tokens, text, 0

    def peek(self) -> str | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            want = f"{expected!r}" if expected else "more"
            raise WatchError(f"watch {self.text!r}: expected {want}"
                             + (f", got {token!r}" if token else " at the end"))
        self.at += 1
        return token

    def additive(self) -> Node:
        node = self.multiplicative()
        while self.peek() in ("+", "-"):
            op = self.take()
            node = Node(op, (node, self.multiplicative()))
        return node

    def multiplicative(self) -> Node:
        node = self.unary()
        while self.peek() in ("*", "/", "%"):
            op = self.take()
            node = Node(op, (node, self.unary()))
        return node

    def unary(self) -> Node:
        if self.peek() == "*":
            self.take()
            return Node("deref", (self.unary(),))
        if self.peek() == "-":
            self.take()
            return Node("neg", (self.unary(),))
        return self.postfix()

    def postfix(self) -> Node:
        node = self.primary()
        while self.peek() in (".", "->", "["):
            op = self.take()
            if op == "[":
                index = self.additive()
                self.take("]")
                node = Node("index", (node, index))
            else:
                field = self.take()
                if not re.fullmatch(r"[A-Za-z_]\w*", field):
                    raise WatchError(f"watch {self.text!r}: {field!r} is not a field name")
                node = Node("member" if op == "." else "arrow", (node, field))
        return node

    def primary(self) -> Node:
        token = self.take()
        if token == "(":
            node = self.additive()
            self.take(")")
            return node
        if token[0].isdigit():
            return Node("int", (int(token, 0),))
        if re.fullmatch(r"[A-Za-z_]\w*", token):
            return Node("name", (token,))
        raise WatchError(f"watch {self.text!r}: unexpected {token!r}")


class Evaluator:
    """Evaluates parsed expressions in one stopped node: its innermost frame and globals."""

    def __init__(self, program: ProgramInspector, frames: list[Frame], read: Reader) -> None:
        self.program, self.frames, self.read = program, frames, read

    def value(self, node: Node) -> Value:
        """The expression's value (Unavailable: a name not in scope, memory not readable)."""
        op, args = node.op, node.args
        if op == "name":
            return self._name(str(args[0]))
        if op == "int":
            return Value(LONG, None, (int(args[0]) & (1 << 64) - 1).to_bytes(8, "little"))  # type: ignore[call-overload]
        if op in ("member", "arrow"):
            base = self.value(args[0])  # type: ignore[arg-type]
            if op == "arrow":
                base = self._deref(base)
            kind = base.type.strip().kind
            if kind not in ("struct", "union"):
                raise Unavailable(f"{base.type} has no fields")
            member = base.type.member(str(args[1]))
            if member is None:
                raise Unavailable(f"{base.type} has no field {args[1]!r}")
            return base.member(member)
        if op == "index":
            base = self.value(args[0])  # type: ignore[arg-type]
            index = self.integer(args[1])  # type: ignore[arg-type]
            t = base.type.strip()
            if t.kind == "pointer":
                base = Value(_array_of(t.target), base.integer(self.read))
            elif t.kind != "array":
                raise Unavailable(f"{base.type} cannot be indexed")
            return base.element(index)
        if op == "deref":
            return self._deref(self.value(args[0]))  # type: ignore[arg-type]
        if op == "neg":
            return _long(-self.integer(args[0]))  # type: ignore[arg-type]
        a, b = self.integer(args[0]), self.integer(args[1])  # type: ignore[arg-type]
        if op in ("/", "%") and b == 0:
            raise Unavailable("division by zero")
        if op == "/":
            return _long(abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1))  # C truncates
        if op == "%":
            return _long(a - b * (abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)))
        return _long(a + b if op == "+" else a - b if op == "-" else a * b)

    def integer(self, node: Node) -> int:
        """An expression that must be an integer (an index)."""
        return self.value(node).integer(self.read)

    def _name(self, name: str) -> Value:
        if self.frames:
            frame = self.frames[0]
            variable = frame.lookup(name)
            if variable is not None:
                return frame.value(variable)
        variable = self.program.global_variable(name)
        if variable is None:
            raise Unavailable(f"no symbol {name!r} in the current context")
        return self.program.global_value(variable)

    def _deref(self, value: Value) -> Value:
        t = value.type.strip()
        if t.kind == "array":  # an array decays to a pointer to its first element
            return value.element(0)
        if t.kind != "pointer" or t.target is None:
            raise Unavailable(f"{value.type} is not a pointer")
        return Value(t.target, value.integer(self.read))


def _array_of(element: CType | None) -> CType:
    return CType("array", target=element, count=None)


def _long(number: int) -> Value:
    return Value(LONG, None, (number & (1 << 64) - 1).to_bytes(8, "little"))


def watch_view(evaluator: Evaluator, text: str, limits: Limits = PANE_LIMITS) -> WatchView:
    """One watch rendered (a value it cannot have is shown as `<why>`, never raised)."""
    try:
        value = evaluator.value(parse(text))
    except WatchError as exc:
        return WatchView(text, "", f"<{exc}>")
    except Unavailable as exc:
        return WatchView(text, "", f"<{exc.reason}>")
    return WatchView(text, str(value.type), render(value, evaluator.read, limits,
                                                   evaluator.program.describe_code))


def watch_key(evaluator: Evaluator, tree: Node) -> bytes | str:
    """What the change search compares: the value's bytes, or why there is no value."""
    try:
        value = evaluator.value(tree)
        return value.raw(evaluator.read)
    except Unavailable as exc:
        return exc.reason
