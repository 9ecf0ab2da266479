"""A reconstructed node as an ELF core file, so gdb (or any ELF tool) can read its state.

The layout is Linux's for x86-64 (see the ELF gABI and <linux/elfcore.h>): an ET_CORE
header, one PT_NOTE segment holding NT_PRSTATUS (the general registers as
`struct user_regs_struct`) and, when given, NT_AUXV (gdb finds the vDSO, its symbols and
its unwind tables, through AT_SYSINFO_EHDR there), then one PT_LOAD segment per mapping
with its bytes. gdb opened
on the program and this file shows the node's registers, memory, backtrace and variables —
which the tests use to check the debugger's own views against gdb's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ELF_HEADER = 64
PROGRAM_HEADER = 56
PT_LOAD, PT_NOTE = 1, 4
NT_PRSTATUS, NT_AUXV = 1, 6
PF_X, PF_W, PF_R = 1, 2, 4
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
# struct user_regs_struct, in order (arch/x86/include/asm/user_64.h).
USER_REGS = ("r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx",
             "rdx", "rsi", "rdi", "orig_rax", "rip", "cs", "rflags", "rsp", "ss", "fs_base",
             "gs_base", "ds", "es", "fs", "gs")
PRSTATUS_REGS_OFFSET = 112  # pr_reg in struct elf_prstatus (signal info, pids, times first)
PRSTATUS_SIZE = 336
USER_CS, USER_SS = 0x33, 0x2B  # Linux's user code and stack selectors


@dataclass(frozen=True)
class Region:
    """A mapping: its addresses, protection (PROT_*) and bytes."""

    start: int
    prot: int
    data: bytes


def _note(name: bytes, kind: int, desc: bytes) -> bytes:
    name += b"\0"
    pad = lambda b: b + bytes(-len(b) % 4)  # noqa: E731 - notes align to 4 bytes
    return struct.pack("<III", len(name), len(desc), kind) + pad(name) + pad(desc)


def prstatus(registers: dict[str, int], pid: int = 1, signal: int = 0) -> bytes:
    """NT_PRSTATUS's descriptor: `struct elf_prstatus` with the registers given."""
    regs = {"cs": USER_CS, "ss": USER_SS, "orig_rax": (1 << 64) - 1, **registers}
    out = bytearray(PRSTATUS_SIZE)
    struct.pack_into("<i", out, 0, signal)  # si_signo
    struct.pack_into("<h", out, 12, signal)  # pr_cursig
    struct.pack_into("<i", out, 32, pid)  # pr_pid
    struct.pack_into(f"<{len(USER_REGS)}Q", out, PRSTATUS_REGS_OFFSET,
                     *(regs.get(name, 0) & (1 << 64) - 1 for name in USER_REGS))
    return bytes(out)


def write_core(path: str | Path, registers: dict[str, int], regions: Iterable[Region],
               auxv: Iterable[tuple[int, int]] = ()) -> None:
    """Write an x86-64 Linux core file of one thread with these registers and mappings
    (and auxiliary vector entries, AT_NULL added)."""
    regions = list(regions)
    notes = _note(b"CORE", NT_PRSTATUS, prstatus(registers))
    entries = [*auxv, (0, 0)]
    if len(entries) > 1:
        notes += _note(b"CORE", NT_AUXV, b"".join(struct.pack("<QQ", k, v) for k, v in entries))
    count = 1 + len(regions)
    offset = ELF_HEADER + PROGRAM_HEADER * count
    headers = [struct.pack("<IIQQQQQQ", PT_NOTE, 0, offset, 0, 0, len(notes), 0, 4)]
    offset += len(notes)
    for region in regions:
        offset += -offset % 4096
        flags = ((PF_R if region.prot & PROT_READ else 0) | (PF_W if region.prot & PROT_WRITE
                 else 0) | (PF_X if region.prot & PROT_EXEC else 0))
        headers.append(struct.pack("<IIQQQQQQ", PT_LOAD, flags, offset, region.start, 0,
                                   len(region.data), len(region.data), 4096))
        offset += len(region.data)
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)  # 64-bit, little-endian, SysV
    header = ident + struct.pack("<HHIQQQIHHHHHH", 4, 62, 1, 0, ELF_HEADER, 0, 0, ELF_HEADER,
                                 PROGRAM_HEADER, count, 64, 0, 0)  # ET_CORE, EM_X86_64
    with open(path, "wb") as out:
        out.write(header)
        out.write(b"".join(headers))
        out.write(notes)
        for region in regions:
            out.write(bytes(-out.tell() % 4096))
            out.write(region.data)
