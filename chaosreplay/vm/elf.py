"""Static ELF loading: turn a node program file into the image the VMM maps into a VM.

chaosreplay runs x86-64 Linux executables: ET_EXEC and ET_DYN, static or dynamically linked
(a PT_INTERP names the loader, which kernel/exec.py maps from the node's disk). Everything
else is refused with a GuestProgramError whose one-line message says what the file is and
how to fix it. The image is derived from the
file's bytes alone (a static-PIE's load bias is a fixed constant, as Linux does with ASLR
off), so loading the same file always yields the same image.
"""

from __future__ import annotations

import bisect
import enum
import hashlib
import io
import itertools
import struct
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elftools.common.exceptions import ELFError
from elftools.elf.dynamic import DynamicSegment
from elftools.elf.elffile import ELFFile
from elftools.elf.sections import SymbolTableSection

from chaosreplay.errors import GuestProgramError

ET_EXEC = 2
ET_DYN = 3
PAGE_SIZE = 4096

STATIC_PIE_BASE = 0x0000_5555_5555_4000
"""Where Linux puts an ET_DYN executable with ASLR off (2/3 of the 47-bit user half)."""

USER_HALF_END = 0x0000_8000_0000_0000
"""First address past the canonical lower half; guest programs live below it."""

MMAP_MIN_ADDR = 0x10000
"""Linux's default vm.mmap_min_addr: nothing is mapped below it, so NULL dereferences fault."""

_ELF_MAGIC = b"\x7fELF"
_ELFCLASS64 = 2
_ELFDATA2LSB = 1
_PHENT_SIZE = 56
_PF_X, _PF_W, _PF_R = 1, 2, 4

ProgramHeader = Mapping[str, Any]
"""One Elf64_Phdr as pyelftools parses it (p_type, p_vaddr, ...)."""


class Prot(enum.IntFlag):
    """Page protections, with mmap(2)'s PROT_* values."""

    NONE = 0
    READ = 1
    WRITE = 2
    EXEC = 4


@dataclass(frozen=True)
class Segment:
    """One PT_LOAD segment, at its final (biased) address."""

    vaddr: int
    memsz: int
    filesz: int
    data: bytes
    prot: Prot
    offset: int
    align: int

    @property
    def end(self) -> int:
        """First address past the segment's memory image."""
        return self.vaddr + self.memsz

    @property
    def executable(self) -> bool:
        """Whether the segment is mapped executable."""
        return bool(self.prot & Prot.EXEC)


@dataclass(frozen=True)
class TlsTemplate:
    """The PT_TLS initialisation image libc copies into each thread's TLS block."""

    vaddr: int
    filesz: int
    memsz: int
    align: int


@dataclass(frozen=True)
class Symbol:
    """A function or data object from .symtab, at its final (biased) address."""

    name: str
    address: int
    size: int
    is_function: bool

    @property
    def end(self) -> int:
        """First address past the symbol (equal to address for size-0 symbols)."""
        return self.address + self.size


class Symbols:
    """Address-ordered STT_FUNC/STT_OBJECT symbols, for naming addresses in reports."""

    def __init__(self, symbols: list[Symbol]) -> None:
        # Aliases share an address (malloc/__libc_malloc); the first after sorting is the
        # name shown, so the choice is deterministic and prefers readable global names.
        self._all = sorted(symbols, key=lambda s: (s.address, s.name.startswith("_"), s.name))
        self._starts: list[int] = []
        self._primary: list[Symbol] = []
        for sym in self._all:
            if self._starts and self._starts[-1] == sym.address:
                if sym.size > self._primary[-1].size:
                    self._primary[-1] = sym
                continue
            self._starts.append(sym.address)
            self._primary.append(sym)
        self._by_name = {s.name: s.address for s in reversed(self._all)}

    def __len__(self) -> int:
        return len(self._primary)

    def __iter__(self) -> Iterator[Symbol]:
        return iter(self._primary)

    def _extent_end(self, index: int) -> int:
        """End of the symbol at index; a size-0 symbol reaches to the next symbol."""
        sym = self._primary[index]
        if sym.size > 0:
            return sym.end
        if index + 1 < len(self._starts):
            return self._starts[index + 1]
        return sym.address + 1

    def lookup(self, address: int) -> tuple[str, int] | None:
        """The (name, offset) of the symbol containing address, or None."""
        index = bisect.bisect_right(self._starts, address) - 1
        if index < 0 or address >= self._extent_end(index):
            return None
        sym = self._primary[index]
        return sym.name, address - sym.address

    def describe(self, address: int) -> str:
        """`name+0xoff` for an address, or the bare hex address when no symbol covers it."""
        found = self.lookup(address)
        if found is None:
            return f"{address:#x}"
        name, offset = found
        return f"{name}+{offset:#x}" if offset else name

    def address_of(self, name: str) -> int | None:
        """The address of the named symbol, or None when the program has no such symbol."""
        return self._by_name.get(name)

    def function_ranges(self) -> list[tuple[int, int, str]]:
        """(start, end, name) of every function with a nonzero extent, in address order."""
        ranges = []
        for index, sym in enumerate(self._primary):
            if sym.is_function:
                end = self._extent_end(index)
                if end > sym.address:
                    ranges.append((sym.address, end, sym.name))
        return ranges


@dataclass(frozen=True)
class ProgramImage:
    """A loadable executable: its segments, entry, interpreter and the facts auxv needs."""

    path: Path
    raw: bytes = field(repr=False)
    sha256: str
    e_type: int
    entry: int
    load_bias: int
    segments: tuple[Segment, ...]
    phdr_address: int
    phent: int
    phnum: int
    tls: TlsTemplate | None
    symbols: Symbols = field(repr=False)
    interpreter: str | None = None  # PT_INTERP: the dynamic loader execve maps with it

    @property
    def is_pie(self) -> bool:
        """Whether this is a static-PIE (ET_DYN) executable."""
        return self.e_type == ET_DYN

    def executable_segments(self) -> list[Segment]:
        """The segments mapped executable, in address order."""
        return [s for s in self.segments if s.executable]

    def segment_at(self, address: int) -> Segment | None:
        """The segment whose memory image contains address, or None."""
        for seg in self.segments:
            if seg.vaddr <= address < seg.end:
                return seg
        return None


def _fail(path: Path, problem: str) -> GuestProgramError:
    return GuestProgramError(f"{path}: {problem}")


def _read_file(path: Path) -> bytes:
    """The whole file, or a GuestProgramError naming why it cannot be read."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except IsADirectoryError:
        raise _fail(path, "is a directory, not a program") from None
    except PermissionError:
        raise _fail(path, "permission denied") from None
    except OSError as exc:
        raise _fail(path, f"cannot be read ({exc.strerror})") from None


def _check_ident(path: Path, raw: bytes) -> None:
    """Refuse anything that is not a little-endian 64-bit ELF, before pyelftools parses it."""
    if raw[:4] != _ELF_MAGIC:
        magic = " ".join(f"{b:02x}" for b in raw[:4]) or "empty file"
        raise _fail(path, f"not an ELF file (magic {magic})")
    if len(raw) < 64:
        raise _fail(path, f"truncated ELF file ({len(raw)} bytes, shorter than its header)")
    if raw[4] != _ELFCLASS64:
        raise _fail(path, "is a 32-bit ELF file, chaosreplay runs 64-bit x86-64 programs")
    if raw[5] != _ELFDATA2LSB:
        raise _fail(path, "is a big-endian ELF file, chaosreplay runs x86-64 programs")


def _machine_name(value: object) -> str:
    """A readable name for e_machine ('EM_AARCH64' -> 'aarch64', 183 -> 'machine 183')."""
    if isinstance(value, str):
        return value.removeprefix("EM_").lower()
    return f"machine {value}"


def _interpreter(path: Path, elf: ELFFile) -> str | None:
    """PT_INTERP's path (a dynamically linked program), or None for a static one; shared
    libraries needed without an interpreter to load them are refused."""
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_INTERP":
            return str(seg.get_interp_name())
    for seg in elf.iter_segments():
        if isinstance(seg, DynamicSegment):
            needed = [tag.needed for tag in seg.iter_tags("DT_NEEDED")]
            if needed:
                raise _fail(
                    path,
                    f"needs shared libraries ({', '.join(needed)}) but names no interpreter "
                    "(PT_INTERP) to load them",
                )
    return None


def _load_bias(e_type: int, loads: list[ProgramHeader]) -> int:
    """0 for ET_EXEC; Linux's no-ASLR base for ET_DYN, raised to the largest p_align."""
    if e_type == ET_EXEC:
        return 0
    align = max([PAGE_SIZE] + [int(ph["p_align"]) for ph in loads])
    if align & (align - 1):
        align = PAGE_SIZE  # not a power of two: Linux falls back to page alignment too
    return (STATIC_PIE_BASE + align - 1) & ~(align - 1)


def _prot(p_flags: int) -> Prot:
    prot = Prot.NONE
    if p_flags & _PF_R:
        prot |= Prot.READ
    if p_flags & _PF_W:
        prot |= Prot.WRITE
    if p_flags & _PF_X:
        prot |= Prot.EXEC
    return prot


def _segments(path: Path, raw: bytes, loads: list[ProgramHeader], bias: int) -> tuple[Segment, ...]:
    """Validate the PT_LOAD headers and cut each segment's file bytes."""
    segments = []
    for ph in loads:
        vaddr, memsz, filesz, offset = (
            bias + ph["p_vaddr"],
            ph["p_memsz"],
            ph["p_filesz"],
            ph["p_offset"],
        )
        if filesz > memsz:
            raise _fail(path, f"segment at {vaddr:#x} has more file bytes than memory")
        if offset + filesz > len(raw):
            raise _fail(path, f"truncated: segment at {vaddr:#x} extends past the end of file")
        if vaddr < MMAP_MIN_ADDR or vaddr + memsz > USER_HALF_END:
            raise _fail(
                path,
                f"segment {vaddr:#x}-{vaddr + memsz:#x} lies outside the user address range "
                f"{MMAP_MIN_ADDR:#x}-{USER_HALF_END:#x}",
            )
        segments.append(
            Segment(
                vaddr=vaddr,
                memsz=memsz,
                filesz=filesz,
                data=raw[offset : offset + filesz],
                prot=_prot(ph["p_flags"]),
                offset=offset,
                align=ph["p_align"],
            )
        )
    segments.sort(key=lambda s: s.vaddr)
    for before, after in itertools.pairwise(segments):
        if after.vaddr < before.end:
            raise _fail(
                path,
                f"segments {before.vaddr:#x}-{before.end:#x} and "
                f"{after.vaddr:#x}-{after.end:#x} overlap",
            )
    return tuple(segments)


def _phdr_address(path: Path, elf: ELFFile, loads: list[ProgramHeader], bias: int) -> int:
    """AT_PHDR: PT_PHDR's address, else where the first PT_LOAD covering e_phoff maps it."""
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_PHDR":
            return int(bias + seg["p_vaddr"])
    phoff = elf["e_phoff"]
    table_end = phoff + elf["e_phnum"] * elf["e_phentsize"]
    for ph in loads:
        if ph["p_offset"] <= phoff and table_end <= ph["p_offset"] + ph["p_filesz"]:
            return int(bias + ph["p_vaddr"] + (phoff - ph["p_offset"]))
    raise _fail(path, "its program headers are not inside any loadable segment (no AT_PHDR)")


_SYM = struct.Struct("<IBBHQQ")  # Elf64_Sym: name, info, other, shndx, value, size
_STT_OBJECT, _STT_FUNC = 1, 2


def _symbols(elf: ELFFile, raw: bytes, bias: int) -> Symbols:
    """STT_FUNC and STT_OBJECT symbols of .symtab (empty for stripped programs).

    The table is decoded with struct rather than pyelftools' per-symbol objects: glibc
    has thousands of symbols and this runs for every node a simulation starts.
    """
    found: list[Symbol] = []
    for section in elf.iter_sections():
        if not isinstance(section, SymbolTableSection) or section["sh_type"] != "SHT_SYMTAB":
            continue
        strtab = elf.get_section(section["sh_link"])
        str_start = strtab["sh_offset"]
        str_end = str_start + strtab["sh_size"]
        start, size = section["sh_offset"], section["sh_size"]
        if start + size > len(raw) or str_end > len(raw):
            continue  # a truncated table names nothing rather than failing the load
        table = raw[start : start + size - size % _SYM.size]
        for name_off, info, _other, shndx, value, sym_size in _SYM.iter_unpack(table):
            kind = info & 0xF
            if kind not in (_STT_OBJECT, _STT_FUNC) or shndx == 0 or value == 0 or not name_off:
                continue
            name_at = str_start + name_off
            name_end = raw.find(b"\0", name_at, str_end)
            if name_at >= str_end or name_end < 0:
                continue
            found.append(Symbol(name=raw[name_at:name_end].decode("utf-8", "replace"),
                                address=bias + value, size=sym_size,
                                is_function=kind == _STT_FUNC))
    return Symbols(found)


def _tls(elf: ELFFile, bias: int) -> TlsTemplate | None:
    for seg in elf.iter_segments():
        if seg["p_type"] == "PT_TLS":
            return TlsTemplate(
                vaddr=bias + seg["p_vaddr"],
                filesz=seg["p_filesz"],
                memsz=seg["p_memsz"],
                align=max(1, seg["p_align"]),
            )
    return None


def load_program(path: str | Path) -> ProgramImage:
    """Parse and validate a static x86-64 executable; GuestProgramError explains a refusal."""
    path = Path(path)
    return parse_program(_read_file(path), path)


def parse_program(raw: bytes, path: str | Path) -> ProgramImage:
    """Parse an executable's bytes (e.g. embedded in a recording); `path` names it."""
    path = Path(path)
    _check_ident(path, raw)
    try:
        return _parse(path, raw)
    except ELFError as exc:
        raise _fail(path, f"truncated or malformed ELF file ({exc})") from None


def parse_shared_object(raw: bytes, path: str | Path) -> ProgramImage:
    """Parse an ELF shared object (a library, the loader, or a PIE) for scanning its code:
    an entry point is not required and no interpreter is looked for; its segments sit at
    `load_bias` + their own addresses, as an ET_DYN program's would."""
    path = Path(path)
    _check_ident(path, raw)
    try:
        return _parse(path, raw, shared_object=True)
    except ELFError as exc:
        raise _fail(path, f"truncated or malformed ELF file ({exc})") from None


def _parse(path: Path, raw: bytes, shared_object: bool = False) -> ProgramImage:
    elf = ELFFile(io.BytesIO(raw))
    if elf["e_machine"] != "EM_X86_64":
        raise _fail(path, f"is {_machine_name(elf['e_machine'])}, chaosreplay runs x86-64")
    e_type = {"ET_EXEC": ET_EXEC, "ET_DYN": ET_DYN}.get(elf["e_type"])
    if e_type is None:
        what = {
            "ET_REL": "a relocatable object file (.o), not an executable; link it with -static",
            "ET_CORE": "a core dump, not an executable",
        }.get(elf["e_type"], f"of ELF type {elf['e_type']}, not an executable")
        raise _fail(path, f"is {what}")
    if elf["e_phentsize"] != _PHENT_SIZE:
        raise _fail(path, f"has program headers of {elf['e_phentsize']} bytes, expected 56")
    # a library names no interpreter of its own: the program's loads it
    interpreter = None if shared_object else _interpreter(path, elf)
    loads = [ph.header for ph in elf.iter_segments() if ph["p_type"] == "PT_LOAD"]
    if not loads:
        raise _fail(path, "has no loadable (PT_LOAD) segments")
    if e_type == ET_DYN and elf["e_entry"] == 0 and not shared_object:
        raise _fail(path, "has no entry point (a shared library, not an executable)")
    bias = _load_bias(e_type, loads)
    segments = _segments(path, raw, loads, bias)
    entry = bias + elf["e_entry"]
    if not shared_object and not any(s.executable and s.vaddr <= entry < s.end
                                     for s in segments):
        raise _fail(path, f"entry point {entry:#x} is not inside an executable segment")
    return ProgramImage(
        path=path,
        raw=raw,
        sha256=hashlib.sha256(raw).hexdigest(),
        e_type=e_type,
        entry=entry,
        load_bias=bias,
        segments=segments,
        phdr_address=_phdr_address(path, elf, loads, bias),
        phent=elf["e_phentsize"],
        phnum=elf["e_phnum"],
        tls=_tls(elf, bias),
        symbols=_symbols(elf, raw, bias),
        interpreter=interpreter,
    )
