"""Naming guest addresses: symbol+offset from the ELF symbol table, file:line from DWARF,
and a few instructions of disassembly (capstone) at an address."""

from __future__ import annotations

import bisect
import io
from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import capstone
from elftools.common.exceptions import ELFError
from elftools.elf.elffile import ELFFile

from chaosreplay.vm.elf import ProgramImage


@dataclass(frozen=True)
class Instruction:
    """One disassembled instruction."""

    address: int
    hex: str
    text: str


class Symbolizer:
    """Names addresses of one program image (its load bias applied)."""

    def __init__(self, image: ProgramImage) -> None:
        self.image = image

    def symbol(self, address: int) -> str:
        """`name+0xoff`, or the hex address when no symbol covers it."""
        return self.image.symbols.describe(address)

    def address_of(self, name: str) -> int | None:
        """The address of a symbol by name (None when there is none)."""
        return self.image.symbols.address_of(name)

    def source_line(self, address: int) -> str | None:
        """`file:line` from the program's DWARF line table, None without debug info."""
        starts, rows = self._lines
        index = bisect.bisect_right(starts, address) - 1
        if index < 0:
            return None
        end, where = rows[index]
        return where if address < end else None

    def describe(self, address: int) -> str:
        """Symbol, and file:line when known: `main+0x1c (src/raft.c:412)`."""
        line = self.source_line(address)
        return f"{self.symbol(address)} ({line})" if line else self.symbol(address)

    def is_code(self, address: int) -> bool:
        """Whether an address lies in an executable segment (a plausible return address)."""
        segment = self.image.segment_at(address)
        return segment is not None and segment.executable

    def disassemble(self, code: bytes, address: int, count: int) -> list[Instruction]:
        """Up to `count` instructions decoded from `code` loaded at `address`."""
        out = []
        for insn in self._capstone.disasm(code, address, count):
            out.append(Instruction(insn.address, insn.bytes.hex(),
                                   f"{insn.mnemonic} {insn.op_str}".strip()))
        return out

    @cached_property
    def _capstone(self) -> capstone.Cs:
        return capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)

    @cached_property
    def _lines(self) -> tuple[list[int], list[tuple[int, str]]]:
        """Address ranges of the line table: starts, and (end, "file:line") per start."""
        bias = self.image.load_bias
        entries: list[tuple[int, str]] = []
        ranges: list[tuple[int, int, str]] = []
        try:
            elf = ELFFile(io.BytesIO(self.image.raw))
            if not elf.has_dwarf_info():
                return [], []
            dwarf = elf.get_dwarf_info()
            for unit in dwarf.iter_CUs():
                program = dwarf.line_program_for_CU(unit)
                if program is None:
                    continue
                names = line_program_files(program)
                entries.clear()
                stmt_at: dict[int, bool] = {}
                for entry in program.get_entries():
                    state = entry.state
                    if state is None:
                        continue
                    if state.end_sequence:
                        entries.append((state.address + bias, ""))
                        ranges.extend(_spans(entries))
                        entries.clear()
                    else:
                        name = names.get(state.file, "?")
                        address = state.address + bias
                        where = f"{name}:{state.line}"
                        if entries and entries[-1][0] == address:
                            # Rows at one address: the last, unless it is not a statement
                            # and an earlier one is (gdb's choice, for lines that agree).
                            if state.is_stmt or not stmt_at.get(address, False):
                                entries[-1] = (address, where)
                        else:
                            entries.append((address, where))
                        stmt_at = {address: stmt_at.get(address, False) or state.is_stmt}
        except (ELFError, KeyError, ValueError, IndexError, AttributeError):
            return [], []  # damaged or unusual debug info: no lines rather than a crash
        ranges.sort()
        return [r[0] for r in ranges], [(r[1], r[2]) for r in ranges]


def line_program_files(program: object) -> dict[int, str]:
    """File index -> "dir/name" of a line program (DWARF 5 numbers from 0, earlier from 1)."""
    header = program.header  # type: ignore[attr-defined]
    version = header["version"]
    dirs = [_text(d) for d in header["include_directory"]]
    if version < 5:
        dirs.insert(0, "")  # directory 0 is the compilation directory
    names = {}
    for i, entry in enumerate(header["file_entry"]):
        name = _text(entry.name)
        folder = dirs[entry.dir_index] if entry.dir_index < len(dirs) else ""
        if folder not in ("", ".") and not name.startswith("/"):
            name = f"{folder.removeprefix('./')}/{name}"
        names[i if version >= 5 else i + 1] = name
    return names


def _text(value: object) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _spans(entries: list[tuple[int, str]]) -> list[tuple[int, int, str]]:
    """Consecutive line-table rows of one sequence as (start, end, where) spans."""
    return [(start, end, where) for (start, where), (end, _) in pairwise(entries)
            if end > start and where]
