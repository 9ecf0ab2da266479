"""The Python mirror of the SDK ABI matches guest/include/chaosreplay.h, the source of truth."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from guests import compile_with_sdk

from chaosreplay.kernel import sdk_abi
from chaosreplay.kernel.sdk_abi import AssertKind, fnv1a64

HEADER = Path(__file__).resolve().parent.parent / "guest" / "include" / "chaosreplay.h"
_DEFINE = re.compile(r"^#define\s+(CR_[A-Z0-9_]+)\s+(.+?)\s*(?:/\*.*)?$")


def _header_constants() -> dict[str, int]:
    """Every object-like CR_ macro of the header whose value is an integer expression."""
    values: dict[str, int] = {}
    for line in HEADER.read_text().splitlines():
        match = _DEFINE.match(line)
        if match is None or "(" in match.group(1):
            continue
        name, expr = match.groups()
        expr = re.sub(r"(0x[0-9a-fA-F]+|\d+)U?L*L?", r"\1", expr)
        if not re.fullmatch(r"[\sA-Z0-9_x()+a-f]+", expr):
            continue  # a function-like or string macro, not an ABI number
        values[name] = eval(expr, {}, dict(values))  # operands are earlier CR_ constants
    return values


def test_header_defines_the_whole_abi() -> None:
    consts = _header_constants()
    syscalls = {k for k in consts if k.startswith("CR_SYS_") and k != "CR_SYS_BASE"}
    assert len(syscalls) == len(sdk_abi.SDK_SYSCALLS) == 9, sorted(consts)


def test_syscall_numbers_match_the_header() -> None:
    consts = _header_constants()
    for name, value in consts.items():
        if name.startswith("CR_SYS_"):
            assert getattr(sdk_abi, name) == value, f"{name}: header {value:#x}"
    assert sdk_abi.CR_SYS_BASE == 0x0C0DE000
    assert not sdk_abi.CR_SYS_BASE & (1 << 30), "bit 30 would make these x32 syscalls"


def test_assert_kinds_match_the_header() -> None:
    consts = _header_constants()
    kinds = {
        k.removeprefix("CR_ASSERT_"): v for k, v in consts.items() if k.startswith("CR_ASSERT_")
    }
    assert kinds == {kind.name: kind.value for kind in AssertKind}


def test_fnv_parameters_match_the_header() -> None:
    consts = _header_constants()
    assert consts["CR_FNV1A64_OFFSET"] == sdk_abi.FNV1A64_OFFSET
    assert consts["CR_FNV1A64_PRIME"] == sdk_abi.FNV1A64_PRIME


def test_coverage_map_limits_match_the_header() -> None:
    consts = _header_constants()
    assert consts["CR_COVERAGE_MAP_MAX"] == sdk_abi.CR_COVERAGE_MAP_MAX
    assert consts["CR_COVERAGE_MAP_DEFAULT"] == sdk_abi.CR_COVERAGE_MAP_DEFAULT


def test_fnv1a64_known_vectors() -> None:
    """Published FNV-1a 64 test vectors (empty string, "a", "foobar")."""
    assert fnv1a64(b"") == 0xCBF29CE484222325
    assert fnv1a64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a64(b"foobar") == 0x85944171F73967E8


def test_is_sdk_syscall_covers_exactly_the_range() -> None:
    assert sdk_abi.is_sdk_syscall(sdk_abi.CR_SYS_ASSERT)
    assert sdk_abi.is_sdk_syscall(sdk_abi.CR_SYS_RECV)
    assert sdk_abi.is_sdk_syscall(sdk_abi.CR_SYS_COVERAGE)
    assert not sdk_abi.is_sdk_syscall(sdk_abi.CR_SYS_COVERAGE + 1)
    assert not sdk_abi.is_sdk_syscall(39)  # getpid


def test_header_hash_equals_python_hash(tmp_path: Path) -> None:
    """cr_fnv1a64 in C and fnv1a64 in Python give the same assertion ids."""
    program = (
        '#include <inttypes.h>\n#include "chaosreplay.h"\n'
        "int main(int argc, char **argv) {\n"
        '    for (int i = 1; i < argc; i++) printf("%" PRIu64 "\\n", cr_fnv1a64(argv[i]));\n'
        "    return 0;\n}\n"
    )
    try:
        binary = compile_with_sdk(program, tmp_path, "hash")
    except FileNotFoundError:
        pytest.skip("gcc is not installed")
    messages = ["node id is within the node count", "", "ünïcode ✓"]
    out = subprocess.run([str(binary), *messages], capture_output=True, text=True, check=True)
    assert [int(x) for x in out.stdout.split()] == [fnv1a64(m.encode()) for m in messages]
