"""Packet payloads as the debugger shows them: hex + text, and fields through a decoder.

The recording keeps the first `packet_payload_bytes` of each payload in its packet.sent and
packet.delivered events. A decoder turns those bytes into named fields:

- `struct NAME` (or any C type name) from the sending program's DWARF: the bytes are read
  as that type, each member printed as gdb prints it. A scenario may name one
  (`packet_decoder`), since it is only a type name;
- `FILE.py:FUNCTION`, a Python function `(payload: bytes, src: int, dst: int)` returning a
  mapping of field names to values (or a string). It runs the user's code, so it is taken
  from the command line only, never from a recording.

A payload the decoder cannot read (too short, a failing function) shows why in place of
the fields; nothing here raises for a bad payload.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from chaosreplay.debugger.dwarf_types import CType
from chaosreplay.debugger.program_state import ProgramInspector
from chaosreplay.debugger.typed_values import PANE_LIMITS, Limits, Value, render
from chaosreplay.errors import ChaosReplayError

MAX_FIELDS = 64  # fields shown per payload


class DecoderError(ChaosReplayError):
    """A decoder that cannot be used (bad spec, unknown type, unloadable file)."""


Fields = list[tuple[str, str]]


class PayloadDecoder:
    """One decoder, by its spec (see the module docstring)."""

    def __init__(self, spec: str, decode: Callable[[bytes, int, int], Fields | str]) -> None:
        self.spec = spec
        self._decode = decode

    def decode(self, payload: bytes, src: int, dst: int) -> Fields | str:
        """The payload's fields, or a sentence saying why there are none."""
        try:
            return self._decode(payload, src, dst)
        except Exception as exc:  # the user's function: whatever it raises is shown
            return f"decoder failed: {type(exc).__name__}: {exc}"


def struct_decoder(type_name: str, programs: list[ProgramInspector],
                   program_of_node: Callable[[int], int],
                   limits: Limits = PANE_LIMITS) -> PayloadDecoder:
    """A decoder reading payloads as a C type of the sender's program (DecoderError when no
    program defines it)."""
    types: dict[int, CType] = {}
    for index, program in enumerate(programs):
        found = program.debug.named_types.get(type_name)
        if found is not None and found.byte_size > 0:
            types[index] = found
    if not types:
        raise DecoderError(f"decoder {type_name!r}: no node's program defines that type in "
                           "its debug info")

    def decode(payload: bytes, src: int, dst: int) -> Fields | str:
        ctype = types.get(program_of_node(src))
        if ctype is None:
            return f"the sender's program has no {type_name}"
        size = ctype.byte_size
        if len(payload) < size:
            return f"{len(payload)} bytes kept, {type_name} needs {size}"
        value = Value(ctype, data=payload[:size])
        members = ctype.strip().members
        if not members:
            return [(type_name, render(value, _no_memory, limits))]
        return [(m.name or "<anonymous>", render(value.member(m), _no_memory, limits))
                for m in members[:MAX_FIELDS]]

    return PayloadDecoder(type_name, decode)


def python_decoder(spec: str) -> PayloadDecoder:
    """A decoder calling FUNCTION of the Python file FILE (spec `FILE.py:FUNCTION`)."""
    path_text, _, function_name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text.endswith(".py") or not function_name.isidentifier():
        raise DecoderError(f"decoder {spec!r}: expected FILE.py:FUNCTION or a C type name "
                           "such as 'struct msg'")
    if not path.is_file():
        raise DecoderError(f"decoder {spec!r}: no such file {path}")
    module_spec = importlib.util.spec_from_file_location(f"chaosreplay_decoder_{path.stem}",
                                                         path)
    if module_spec is None or module_spec.loader is None:
        raise DecoderError(f"decoder {spec!r}: cannot load {path}")
    module = importlib.util.module_from_spec(module_spec)
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        raise DecoderError(f"decoder {spec!r}: {path} failed to load: "
                           f"{type(exc).__name__}: {exc}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise DecoderError(f"decoder {spec!r}: {path} has no function {function_name}")

    def decode(payload: bytes, src: int, dst: int) -> Fields | str:
        result = function(payload, src, dst)
        if isinstance(result, str):
            return result
        if not isinstance(result, Mapping):
            return f"decoder returned {type(result).__name__}, not a mapping or a string"
        return [(str(k), _show(v)) for k, v in list(result.items())[:MAX_FIELDS]]

    return PayloadDecoder(spec, decode)


def make_decoder(spec: str, programs: list[ProgramInspector],
                 program_of_node: Callable[[int], int]) -> PayloadDecoder:
    """A decoder from its spec: `FILE.py:FUNCTION`, else a C type name."""
    if spec.rpartition(":")[0].endswith(".py"):
        return python_decoder(spec)
    return struct_decoder(spec.strip(), programs, program_of_node)


def _show(value: Any) -> str:
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _no_memory(address: int, size: int) -> bytes | None:
    return None  # a payload has no address space: pointers in it are not followed
