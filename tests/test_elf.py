"""Static ELF loading: real guests load correctly; every kind of bad file gets a clear refusal."""

from __future__ import annotations

import hashlib
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from chaosreplay.errors import GuestProgramError
from chaosreplay.vm.elf import (
    ET_DYN,
    ET_EXEC,
    STATIC_PIE_BASE,
    Prot,
    Symbol,
    Symbols,
    load_program,
    parse_shared_object,
)
from chaosreplay.vm.nonvirt import scan_sites

GuestBin = Callable[[str, str], Path]

_PT_LOAD = 1
_PHDR_FIELDS = {"p_type": (0, "<I"), "p_flags": (4, "<I"), "p_vaddr": (16, "<Q"),
                "p_memsz": (40, "<Q"), "p_filesz": (32, "<Q")}  # fmt: skip


def _phdrs(raw: bytes) -> list[tuple[int, int]]:
    """(file offset, p_type) of every program header of a 64-bit ELF."""
    (phoff,) = struct.unpack_from("<Q", raw, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", raw, 0x36)
    return [
        (phoff + i * phentsize, struct.unpack_from("<I", raw, phoff + i * phentsize)[0])
        for i in range(phnum)
    ]


def _set_phdr(raw: bytearray, index: int, name: str, value: int) -> None:
    """Overwrite one field of the index-th PT_LOAD header."""
    offset = [off for off, kind in _phdrs(bytes(raw)) if kind == _PT_LOAD][index]
    delta, fmt = _PHDR_FIELDS[name]
    struct.pack_into(fmt, raw, offset + delta, value)


def _variant(tmp_path: Path, source: Path, edit: Callable[[bytearray], None]) -> Path:
    """A copy of source with edit applied to its bytes."""
    raw = bytearray(source.read_bytes())
    edit(raw)
    out = tmp_path / f"{source.name}.edited"
    out.write_bytes(bytes(raw))
    return out


def _refusal(path: Path) -> str:
    with pytest.raises(GuestProgramError) as info:
        load_program(path)
    message = str(info.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    return message


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_static_executable_loads_as_on_linux(guest_bin: GuestBin, libc: str) -> None:
    path = guest_bin(libc, "hello")
    raw = path.read_bytes()
    image = load_program(path)
    assert image.e_type == ET_EXEC and image.load_bias == 0 and not image.is_pie
    assert image.entry == struct.unpack_from("<Q", raw, 0x18)[0]
    assert image.sha256 == hashlib.sha256(raw).hexdigest() and image.raw == raw
    assert image.phent == 56 and image.phnum == len(_phdrs(raw))
    # Both toolchains put the program headers right after the ELF header in the first page.
    assert image.phdr_address == image.segments[0].vaddr + 64
    text = image.segment_at(image.entry)
    assert text is not None and text.prot == Prot.READ | Prot.EXEC
    assert image.executable_segments() == [text]
    for seg in image.segments:
        assert seg.data == raw[seg.offset : seg.offset + seg.filesz]
        assert seg.filesz <= seg.memsz
    assert [s.vaddr for s in image.segments] == sorted(s.vaddr for s in image.segments)
    assert any(seg.prot == Prot.READ | Prot.WRITE for seg in image.segments)


def test_static_pie_is_loaded_at_the_linux_no_aslr_base(guest_bin: GuestBin) -> None:
    pie = load_program(guest_bin("glibc", "hello_pie"))
    assert pie.e_type == ET_DYN and pie.is_pie
    assert pie.load_bias == STATIC_PIE_BASE == 0x555555554000
    e_entry = struct.unpack_from("<Q", pie.raw, 0x18)[0]
    assert pie.entry == STATIC_PIE_BASE + e_entry
    assert pie.segments[0].vaddr == STATIC_PIE_BASE
    main = pie.symbols.address_of("main")
    assert main is not None and main > STATIC_PIE_BASE
    assert pie.symbols.lookup(main) == ("main", 0)
    assert pie.phdr_address == STATIC_PIE_BASE + 64


def test_glibc_tls_template_is_reported(guest_bin: GuestBin) -> None:
    image = load_program(guest_bin("glibc", "hello"))
    assert image.tls is not None
    assert image.tls.filesz <= image.tls.memsz and image.tls.align >= 8
    assert image.segment_at(image.tls.vaddr) is not None


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_symbols_name_addresses_inside_functions(guest_bin: GuestBin, libc: str) -> None:
    image = load_program(guest_bin(libc, "hello"))
    main = image.symbols.address_of("main")
    assert main is not None
    assert image.symbols.lookup(main + 1) == ("main", 1)
    assert image.symbols.describe(main + 4) == "main+0x4"
    assert image.symbols.address_of("no_such_symbol_anywhere") is None
    assert image.symbols.lookup(0x1000) is None
    assert image.symbols.describe(0x1000) == "0x1000"


def test_symbols_prefer_readable_aliases_and_extend_sizeless_ones() -> None:
    symbols = Symbols(
        [
            Symbol("__libc_malloc", 0x1000, 0x40, True),
            Symbol("malloc", 0x1000, 0x40, True),
            Symbol("asm_helper", 0x1080, 0, True),
            Symbol("table", 0x1100, 0x10, False),
        ]
    )
    assert symbols.lookup(0x1010) == ("malloc", 0x10)
    assert symbols.address_of("__libc_malloc") == 0x1000
    assert symbols.lookup(0x1050) is None  # past malloc's size, before the next symbol
    assert symbols.lookup(0x10FF) == ("asm_helper", 0x7F)  # size 0 reaches the next symbol
    assert symbols.lookup(0x110F) == ("table", 0xF)
    assert symbols.lookup(0x1110) is None
    assert symbols.function_ranges() == [(0x1000, 0x1040, "malloc"), (0x1080, 0x1100, "asm_helper")]
    assert len(symbols) == 3


def test_missing_file_and_directory_are_refused(tmp_path: Path) -> None:
    assert "no such file" in _refusal(tmp_path / "absent")
    assert "is a directory" in _refusal(tmp_path)


def test_shell_script_is_not_elf(tmp_path: Path) -> None:
    script = tmp_path / "run.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert "not an ELF file (magic 23 21 2f 62)" in _refusal(script)
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert "not an ELF file (magic empty file)" in _refusal(empty)


@pytest.mark.parametrize("length", [20, 64, 400, 5000])
def test_truncated_elf_is_refused(guest_bin: GuestBin, tmp_path: Path, length: int) -> None:
    source = guest_bin("musl", "hello")
    cut = tmp_path / "cut"
    cut.write_bytes(source.read_bytes()[:length])
    assert "truncated" in _refusal(cut)


def test_a_dynamically_linked_program_names_its_interpreter() -> None:
    """A PT_INTERP program parses; the loader it names is mapped from the node's disk at
    execve (kernel/exec.py), and its absence is refused there (tests/test_run_command)."""
    true = shutil.which("true")
    if true is None:
        pytest.skip("no `true` executable on this host")
    image = load_program(Path(true).resolve())
    assert image.interpreter == "/lib64/ld-linux-x86-64.so.2"
    assert image.is_pie and image.entry > image.load_bias


def test_32_bit_and_foreign_architectures_are_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    source = guest_bin("musl", "hello")

    def to_32_bit(raw: bytearray) -> None:
        raw[4] = 1

    def to_aarch64(raw: bytearray) -> None:
        struct.pack_into("<H", raw, 0x12, 183)

    assert "is a 32-bit ELF file" in _refusal(_variant(tmp_path, source, to_32_bit))
    message = _refusal(_variant(tmp_path, source, to_aarch64))
    assert message.endswith("is aarch64, chaosreplay runs x86-64"), message


def test_object_files_and_core_dumps_are_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    source = tmp_path / "unit.c"
    source.write_text("int f(int x) { return x + 1; }\n")
    obj = tmp_path / "unit.o"
    try:
        subprocess.run(["gcc", "-c", "-o", str(obj), str(source)], check=True)
    except FileNotFoundError:
        pytest.skip("gcc is not installed")
    assert "relocatable object file (.o)" in _refusal(obj)

    def to_core(raw: bytearray) -> None:
        struct.pack_into("<H", raw, 0x10, 4)

    assert "is a core dump" in _refusal(_variant(tmp_path, guest_bin("musl", "hello"), to_core))


def test_program_without_loadable_segments_is_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    def drop_loads(raw: bytearray) -> None:
        for offset, kind in _phdrs(bytes(raw)):
            if kind == _PT_LOAD:
                struct.pack_into("<I", raw, offset, 0)  # PT_NULL

    message = _refusal(_variant(tmp_path, guest_bin("musl", "hello"), drop_loads))
    assert "has no loadable (PT_LOAD) segments" in message


def test_overlapping_segments_are_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    source = guest_bin("musl", "hello")
    text_start = load_program(source).segments[1].vaddr

    def overlap(raw: bytearray) -> None:
        _set_phdr(raw, 2, "p_vaddr", text_start + 0x10)

    assert "overlap" in _refusal(_variant(tmp_path, source, overlap))


@pytest.mark.parametrize("vaddr", [0x0000_7FFF_FFFF_FC00, 0xFFFF_8000_0000_0000, 0x1000])
def test_segments_outside_the_user_range_are_refused(
    guest_bin: GuestBin, tmp_path: Path, vaddr: int
) -> None:
    def move(raw: bytearray) -> None:
        _set_phdr(raw, 3, "p_vaddr", vaddr)  # data: memsz 0x7f8 crosses the end

    message = _refusal(_variant(tmp_path, guest_bin("musl", "hello"), move))
    assert "outside the user address range" in message, message


def test_entry_outside_executable_code_is_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    source = guest_bin("musl", "hello")
    data_start = load_program(source).segments[-1].vaddr

    def bad_entry(raw: bytearray) -> None:
        struct.pack_into("<Q", raw, 0x18, data_start)

    assert "is not inside an executable segment" in _refusal(_variant(tmp_path, source, bad_entry))


def test_file_bytes_larger_than_memory_are_refused(guest_bin: GuestBin, tmp_path: Path) -> None:
    def grow_filesz(raw: bytearray) -> None:
        _set_phdr(raw, 0, "p_memsz", 0x10)

    message = _refusal(_variant(tmp_path, guest_bin("musl", "hello"), grow_filesz))
    assert "more file bytes than memory" in message


def test_a_shared_library_without_an_entry_point_parses_for_scanning(tmp_path: Path) -> None:
    """parse_shared_object (lint --root): e_entry 0 and DT_NEEDED without PT_INTERP are a
    library's normal state, not a refusal; load_program still refuses it."""
    source = tmp_path / "lib.c"
    source.write_text("unsigned long t(void) { return __builtin_ia32_rdtsc(); }\n")
    lib = tmp_path / "lib.so"
    try:
        subprocess.run(["gcc", "-shared", "-fPIC", "-nostartfiles", "-o", str(lib),
                        str(source)], check=True)
    except FileNotFoundError:
        pytest.skip("gcc is not installed")
    image = parse_shared_object(lib.read_bytes(), "/lib/lib.so")
    assert image.interpreter is None and image.executable_segments()
    assert [s.text for s in scan_sites(image)] == ["rdtsc"]
    with pytest.raises(GuestProgramError, match=r"no entry point|names no interpreter"):
        load_program(lib)
