"""Loading a program image into an address space: the work of execve after the file is read.

A load has two halves. The *plan* depends only on the binary: the non-virtualizable sites
to patch, the stray patterns to defuse or single-step, and the segment bytes with both
applied. The *load* puts a plan into one address space: segments, W^X state of the code
pages, and the initial stack. Plans are pure functions of the file's bytes, so one plan
serves every execve of the same binary (busybox runs as sh, ls, cat...: ImageCache).

execve replaces the whole address space; reset_address_space drops every mapping and all
code-page state first, so loading into a reset space is loading into a fresh one.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from chaosreplay.errors import GuestProgramError
from chaosreplay.kernel.loader import build_stack, map_interpreter, map_segments
from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.mm.code_pages import CodePages
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import ProgramImage, parse_program
from chaosreplay.vm.nonvirt import Site, Stray

IMAGE_CACHE_ENTRIES = 32  # distinct binaries kept parsed and planned per cache


@dataclass(frozen=True, slots=True)
class LoadPlan:
    """A binary ready to load: its image, the sites it patches and its patched bytes."""

    image: ProgramImage
    sites: tuple[Site, ...]     # non-virtualizable instructions patched to ud2
    strays: tuple[Stray, ...]   # hidden patterns that could not be defused: single-stepped
    contents: tuple[bytes, ...]  # each segment's file bytes, patched and defused


@dataclass(frozen=True, slots=True)
class LoadedImage:
    """Where a load left the program: the entry point and the initial stack pointer."""

    entry: int
    stack_pointer: int


def plan_load(image: ProgramImage, patch: bool = True) -> LoadPlan:
    """The patch plan of image; GuestProgramError when it needs patching and patch is off."""
    sites, all_strays = nonvirt.scan_program(image)
    sites = nonvirt.refuse_unpatchable(image, sites)
    check_patchable(image, sites, patch)
    if not patch:  # only pause sites are left: they keep their bytes
        sites = []
    strays, rewrites = [], []
    for stray in all_strays:  # hidden patterns: defuse, else single-step
        rewrite = nonvirt.defuse(image, stray)
        (strays if rewrite is None else rewrites).append(rewrite or stray)
    contents = nonvirt.apply_rewrites(image, nonvirt.patch_segments(image, sites), rewrites)
    return LoadPlan(image, tuple(sites), tuple(strays), tuple(contents))


def check_patchable(image: ProgramImage, sites: tuple[Site, ...] | list[Site],
                    patch: bool) -> None:
    """Refuse a program with non-virtualizable instructions when patching is off (`pause`
    is only a spin hint: with patching off it runs natively, as a plain pause)."""
    sites = [s for s in sites if s.kind is not nonvirt.Kind.PAUSE]
    if sites and not patch:
        listed = ", ".join(f"{s.text} at {s.address:#x} ({s.symbol})" for s in sites[:5])
        more = f" and {len(sites) - 5} more" if len(sites) > 5 else ""
        raise GuestProgramError(
            f"{image.path}: uses non-virtualizable instructions ({listed}{more}); "
            "run without --no-patch to emulate them"
        )


def load_image(space: AddressSpace, plan: LoadPlan, argv: list[bytes], envp: list[bytes],
               at_random: bytes, exe_name: bytes,
               interpreter: ProgramImage | None = None, vdso: int = 0) -> LoadedImage:
    """Map plan's segments into space (empty: fresh or reset), adopt its code pages, map
    the dynamic loader a dynamically linked program names (read by the caller: see
    parse_interpreter) and build the initial stack. The caller starts the vCPU at (entry,
    stack_pointer): the loader's entry when there is one, else the program's."""
    image = plan.image
    map_segments(space, image, list(plan.contents))
    space.code.describe = image.symbols.describe
    space.code.adopt_image(image, list(plan.sites), list(plan.strays))
    base, entry = 0, image.entry
    if interpreter is not None:
        base, entry = map_interpreter(space, interpreter)
    sp = build_stack(space, image, argv, envp, at_random, exe_name, base, vdso)
    return LoadedImage(entry, sp)


def parse_interpreter(raw: bytes, path: str) -> ProgramImage:
    """The dynamic loader a program names, parsed; GuestProgramError unless it is a
    self-contained ET_DYN (Linux: ELIBBAD)."""
    interpreter = parse_program(raw, path)
    if interpreter.interpreter is not None or not interpreter.is_pie:
        raise GuestProgramError(f"{path}: cannot be an interpreter (it is not a "
                                "self-contained shared object)")
    return interpreter


def reset_address_space(space: AddressSpace) -> None:
    """Empty space for execve: every mapping unmapped, brk and code-page state forgotten.

    The VM's frames go back to its allocator; the fresh CodePages knows no site, so the
    caller rebinds anything that held the old one's `sites`.
    """
    for vma in space.vmas():  # one by one: only mapped ranges are walked for frames
        if not space.unmap(vma.start, vma.end - vma.start):
            raise RuntimeError(f"execve: cannot unmap {vma.start:#x}-{vma.end:#x}")
    space.code = CodePages(space)
    space.brk_start = space.brk = 0


class ImageCache:
    """Parsed images and their plans by the binary's SHA-256 (least recently used out).

    The plan is a pure function of the bytes, so a hit is what a parse would give; only
    the path (the name the program was run by) differs between hits of one binary.
    """

    def __init__(self, entries: int = IMAGE_CACHE_ENTRIES) -> None:
        self.entries = entries
        self._plans: OrderedDict[str, LoadPlan] = OrderedDict()
        self._interpreters: OrderedDict[str, ProgramImage] = OrderedDict()
        self.parses = 0  # cache misses: binaries parsed and planned

    def interpreter(self, raw: bytes, path: str) -> ProgramImage:
        """The dynamic loader raw, parsed (parse_interpreter; nothing to plan: its code is
        scanned as it runs)."""
        digest = hashlib.sha256(raw).hexdigest()
        cached = self._interpreters.get(digest)
        if cached is None:
            cached = self._interpreters[digest] = parse_interpreter(raw, path)
            while len(self._interpreters) > self.entries:
                self._interpreters.popitem(last=False)
        self._interpreters.move_to_end(digest)
        return cached if str(cached.path) == path else dataclasses.replace(cached, path=Path(path))

    def plan(self, raw: bytes, path: str | Path, patch: bool = True) -> LoadPlan:
        """The plan of the binary raw, run as path (GuestProgramError for a bad binary)."""
        digest = hashlib.sha256(raw).hexdigest()
        cached = self._plans.get(digest)
        if cached is None:
            self.parses += 1
            cached = plan_load(parse_program(raw, path), patch=True)
            self._plans[digest] = cached
            while len(self._plans) > self.entries:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(digest)
        check_patchable(cached.image, cached.sites, patch)
        if cached.image.path != Path(path):
            image = dataclasses.replace(cached.image, path=Path(path))
            cached = dataclasses.replace(cached, image=image)
        return cached
