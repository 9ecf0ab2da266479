"""The guest SDK's syscall ABI, mirrored from guest/include/chaosreplay.h.

The C header is the one source of truth; tests/test_sdk_abi.py parses it and checks every
value here, so a change on one side without the other fails the tests.
"""

from __future__ import annotations

import enum

CR_SYS_BASE = 0x0C0DE000
"""First reserved syscall number: well above Linux's, with bit 30 (the x32 ABI bit) clear."""

CR_SYS_ASSERT = CR_SYS_BASE + 0
CR_SYS_SETUP_COMPLETE = CR_SYS_BASE + 1
CR_SYS_SEND_EVENT = CR_SYS_BASE + 2
CR_SYS_RANDOM = CR_SYS_BASE + 3
CR_SYS_NODE_ID = CR_SYS_BASE + 4
CR_SYS_NODE_COUNT = CR_SYS_BASE + 5
CR_SYS_SEND = CR_SYS_BASE + 6
CR_SYS_RECV = CR_SYS_BASE + 7
CR_SYS_COVERAGE = CR_SYS_BASE + 8

CR_COVERAGE_MAP_MAX = 1 << 20
"""Largest edge-coverage bitmap CR_SYS_COVERAGE accepts."""
CR_COVERAGE_MAP_DEFAULT = 1 << 14
"""The bitmap size the SDK uses unless the program sets CR_COVERAGE_MAP_SIZE."""

SDK_SYSCALLS: dict[int, str] = {
    CR_SYS_ASSERT: "assert",
    CR_SYS_SETUP_COMPLETE: "setup_complete",
    CR_SYS_SEND_EVENT: "send_event",
    CR_SYS_RANDOM: "random",
    CR_SYS_NODE_ID: "node_id",
    CR_SYS_NODE_COUNT: "node_count",
    CR_SYS_SEND: "send",
    CR_SYS_RECV: "recv",
    CR_SYS_COVERAGE: "coverage",
}
"""Each SDK syscall number and its short name (for traces and reports)."""


class AssertKind(enum.IntEnum):
    """The kind of an SDK assertion (rdi of CR_SYS_ASSERT)."""

    ALWAYS = 0
    SOMETIMES = 1
    REACHABLE = 2
    UNREACHABLE = 3


FNV1A64_OFFSET = 0xCBF29CE484222325
FNV1A64_PRIME = 0x100000001B3
_U64 = (1 << 64) - 1


def is_sdk_syscall(number: int) -> bool:
    """Whether a syscall number lies in the SDK's reserved range."""
    return CR_SYS_BASE <= number < CR_SYS_BASE + len(SDK_SYSCALLS)


def fnv1a64(data: bytes) -> int:
    """FNV-1a 64-bit hash: the id the SDK gives an assertion from its message bytes."""
    value = FNV1A64_OFFSET
    for byte in data:
        value = ((value ^ byte) * FNV1A64_PRIME) & _U64
    return value
