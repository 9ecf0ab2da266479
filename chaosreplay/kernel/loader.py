"""Loading a static ELF into a fresh VM: segments (patched), stack, argv, envp and auxv."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from chaosreplay.kernel.mm.address_space import STACK_EAGER, STACK_LIMIT, STACK_TOP, AddressSpace
from chaosreplay.vm import virtual_cpu
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.elf import Prot as ElfProt
from chaosreplay.vm.vmm import PAGE_SIZE, Prot

AT_NULL, AT_PHDR, AT_PHENT, AT_PHNUM, AT_PAGESZ, AT_BASE, AT_FLAGS = 0, 3, 4, 5, 6, 7, 8
AT_ENTRY = 9
AT_UID, AT_EUID, AT_GID, AT_EGID, AT_PLATFORM, AT_HWCAP, AT_CLKTCK = 11, 12, 13, 14, 15, 16, 17
AT_SECURE, AT_RANDOM, AT_HWCAP2, AT_EXECFN, AT_SYSINFO_EHDR = 23, 25, 26, 31, 33


@dataclass(frozen=True, slots=True)
class LoadedProgram:
    """Where a program landed: its entry point and initial stack pointer."""

    entry: int
    stack_pointer: int


def _vm_prot(prot: ElfProt) -> int:
    out = 0
    if prot & ElfProt.READ:
        out |= Prot.READ
    if prot & ElfProt.WRITE:
        out |= Prot.WRITE
    if prot & ElfProt.EXEC:
        out |= Prot.EXEC
    return out


def map_interpreter(space: AddressSpace, interpreter: ProgramImage) -> tuple[int, int]:
    """Map a dynamic loader as Linux's load_elf_interp does: its segments together at the
    highest free range below the mmap top, each a private mapping of its file (code is
    scanned when it first runs, like a library's). Returns (load bias, entry point)."""
    low = min(seg.vaddr for seg in interpreter.segments) & ~(PAGE_SIZE - 1)
    high = max(seg.end for seg in interpreter.segments)
    span = (high - low + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
    base = space.find_free(span)
    if base is None:
        raise MemoryError("no room for the interpreter")
    shift = base - low
    name = str(interpreter.path)
    raw = interpreter.raw
    for seg in interpreter.segments:
        start = (seg.vaddr + shift) & ~(PAGE_SIZE - 1)
        file_start = seg.offset - (seg.vaddr + shift - start)  # the page's file offset
        end = (seg.vaddr + shift + seg.memsz + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)
        if not space.map_fixed(start, end - start, _vm_prot(seg.prot) | Prot.READ, name,
                               eager=True, offset=file_start):
            raise MemoryError("too many mappings for the interpreter")
        space.fill(start, raw[file_start : seg.offset + seg.filesz])  # past filesz: zeros
    return interpreter.load_bias + shift, interpreter.entry + shift


def map_segments(space: AddressSpace, image: ProgramImage, contents: list[bytes]) -> None:
    """Map each PT_LOAD with its protection (pages shared by two segments get the union)."""
    page_prot: dict[int, int] = {}
    for seg in image.segments:
        for page in range(seg.vaddr & ~(PAGE_SIZE - 1), seg.end, PAGE_SIZE):
            page_prot[page] = page_prot.get(page, 0) | _vm_prot(seg.prot)
    for page in sorted(page_prot):
        space.map_fixed(page, PAGE_SIZE, page_prot[page], "[program]", eager=True)
    for seg, data in zip(image.segments, contents, strict=True):
        space.vm.write(seg.vaddr, data[: seg.filesz])
    space.set_brk_start(max(seg.end for seg in image.segments))


def build_stack(space: AddressSpace, image: ProgramImage, argv: list[bytes], envp: list[bytes],
                at_random: bytes, exe_name: bytes, interpreter_base: int = 0,
                vdso: int = 0) -> int:
    """Lay out the initial stack the way Linux does; returns the stack pointer (at argc).
    interpreter_base is AT_BASE: where the dynamic loader was mapped (0: none); vdso is
    AT_SYSINFO_EHDR (0: no vDSO, and no such entry)."""
    space.map_fixed(STACK_TOP - STACK_LIMIT, STACK_LIMIT - STACK_EAGER, Prot.READ | Prot.WRITE,
                    "[stack]", eager=False)
    space.map_fixed(STACK_TOP - STACK_EAGER, STACK_EAGER, Prot.READ | Prot.WRITE, "[stack]",
                    eager=True)
    blob = bytearray()
    offsets: dict[str, int] = {}

    def place(key: str, data: bytes) -> None:
        offsets[key] = len(blob)
        blob.extend(data)

    place("random", at_random)
    place("platform", b"x86_64\0")
    place("execfn", exe_name + b"\0")
    for i, arg in enumerate(argv):
        place(f"argv{i}", arg + b"\0")
    for i, env in enumerate(envp):
        place(f"envp{i}", env + b"\0")
    strings_at = (STACK_TOP - 16 - len(blob)) & ~15
    space.vm.write(strings_at, bytes(blob))

    def addr(key: str) -> int:
        return strings_at + offsets[key]

    auxv = [
        (AT_PHDR, image.phdr_address), (AT_PHENT, image.phent), (AT_PHNUM, image.phnum),
        (AT_PAGESZ, PAGE_SIZE), (AT_BASE, interpreter_base), (AT_FLAGS, 0), (AT_ENTRY, image.entry),
        (AT_UID, 0), (AT_EUID, 0), (AT_GID, 0), (AT_EGID, 0), (AT_SECURE, 0),
        (AT_HWCAP, virtual_cpu.cpuid(1, 0).edx), (AT_HWCAP2, 0), (AT_CLKTCK, 100),
        (AT_PLATFORM, addr("platform")), (AT_RANDOM, addr("random")),
        (AT_EXECFN, addr("execfn")),
    ]
    if vdso:
        auxv.append((AT_SYSINFO_EHDR, vdso))
    auxv.append((AT_NULL, 0))
    words = [len(argv)]
    words += [addr(f"argv{i}") for i in range(len(argv))] + [0]
    words += [addr(f"envp{i}") for i in range(len(envp))] + [0]
    for key, value in auxv:
        words += [key, value]
    table = struct.pack(f"<{len(words)}Q", *words)
    sp = (strings_at - len(table)) & ~15
    space.vm.write(sp, table)
    return sp


MAX_ARG_STRLEN = 32 * PAGE_SIZE
"""Linux's limit on one argument or environment string, its NUL included (E2BIG past it)."""
ARGS_MAX_BYTES = 120 << 10
"""Arguments and environment together, strings and pointers: what the part of a node's
initial stack mapped before the program starts holds (Linux allows ARG_MAX, a quarter of
the stack limit; chaosreplay's loader places them in the first 128 KiB of the stack)."""


def exec_arguments_problem(argv: list[bytes], envp: list[bytes]) -> str | None:
    """Why execve would refuse these arguments (E2BIG), or None when they fit."""
    for text in (*argv, *envp):
        if len(text) + 1 > MAX_ARG_STRLEN:
            return (f"an argument or variable of {len(text):,} bytes is longer than Linux "
                    f"allows one to be ({MAX_ARG_STRLEN:,} bytes with its NUL)")
    total = sum(len(t) + 1 + 8 for t in (*argv, *envp))
    if total > ARGS_MAX_BYTES:
        return (f"arguments and environment take {total:,} bytes, more than the "
                f"{ARGS_MAX_BYTES:,} a node's initial stack holds")
    return None
