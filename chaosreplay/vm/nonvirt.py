"""Non-virtualizable instructions: find them in a program, patch them to ud2, emulate them.

On this KVM (DESIGN §2) rdtsc, rdtscp, cpuid, rdrand, rdseed, rdpid and xgetbv run
natively at CPL3 and cannot be made to trap, so a guest executing them would see the host.
chaosreplay finds every one in the executable segments at load, replaces it with `ud2`
(0F 0B, padded with int3), and when the #UD arrives answers it from the run's state:

- rdtsc/rdtscp: a virtual TSC at TSC_HZ (1 GHz), i.e. tsc = the node's virtual ns;
  rdtscp's TSC_AUX (ecx) and rdpid give the node id;
- cpuid/xgetbv: the fixed model of chaosreplay.vm.virtual_cpu;
- rdrand/rdseed: values from the seeded streams "rdrand"/"rdseed" of the node, CF=1.

Finding. Every such instruction contains one of a few core byte patterns (`0F 31`,
`0F 01 F9`, `0F A2`, `0F 01 D0`, `0F C7` + a register ModRM with reg 6/7), so a raw byte
search yields a superset of the sites. Each code region holding a pattern is then
disassembled with capstone from a known instruction boundary: from each function symbol's
start to its end, and by linear sweep (skipdata) over executable bytes no function covers.
A pattern that falls inside another decoded instruction (an immediate, a displacement) is
not an instruction and is left alone.

Unpatchable. A site cannot be patched safely, and the program is refused, when:
- it straddles a region boundary (starts in one function and ends in the next, or runs
  past the end of the executable bytes): patching would corrupt the neighbour;
- two decodings of the same bytes disagree (overlapping function symbols decoding it
  as a site in one and as other instructions in another);
- it, or a pattern hit, lies in bytes capstone could not decode, or within
  RESYNC_WINDOW bytes after such bytes: decoding there is ambiguous (data in code, or a
  desynchronised sweep), so we can neither rule out a hidden instruction nor be sure a
  decoded one is real.

Strays. A pattern inside another decoded instruction is no instruction of the program,
but a jump into the middle of that instruction would run it. scan_program reports these;
`defuse` re-encodes the common shape away (a zeroing xor after a 0f byte); for the rest
`trap_range` names the instructions to fill with int3 so that reaching them traps, and
the W^X layer (kernel/mm/code_pages.py) traps them, or single-steps the pages where the
decode is too unsure to. scan_page does the same search, at every byte offset, for one
page of code written at run time.

pause. The spin-wait hint is patched too, though harmless natively: its emulation
answers SpinYield, the switch point a scheduler needs in spin loops. Being harmless, it
is patched only where the decode is sure, and never makes a stray or a refusal.
"""

from __future__ import annotations

import bisect
import dataclasses
import enum
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import capstone

from chaosreplay.errors import GuestProgramError
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import virtual_cpu
from chaosreplay.vm.elf import ProgramImage, Segment

UD2 = b"\x0f\x0b"
INT3 = 0xCC
TSC_HZ = virtual_cpu.TSC_HZ
RESYNC_WINDOW = 32
"""Bytes after undecodable bytes within which decoding is treated as ambiguous."""


class Kind(enum.Enum):
    """A non-virtualizable instruction, by capstone mnemonic."""

    RDTSC = "rdtsc"
    RDTSCP = "rdtscp"
    CPUID = "cpuid"
    RDRAND = "rdrand"
    RDSEED = "rdseed"
    RDPID = "rdpid"
    XGETBV = "xgetbv"
    PAUSE = "pause"
    """The spin-wait hint: harmless natively, patched so that spin loops become switch
    points (its emulation answers SpinYield); a hidden or unsure one is left alone."""


HARMLESS = frozenset({Kind.PAUSE})
"""Kinds that reveal nothing of the host when run natively: patched where the decode is
sure, but their hidden patterns are no strays and their unsure sites refuse nothing."""


_KINDS = {kind.value: kind for kind in Kind}
_MAX_INSN = 15  # the longest x86 instruction, in bytes
# A lookahead, so that overlapping hits (`0f c7 f3` then `f3 90`) are all found.
_CORE_PATTERN = re.compile(rb"(?=\x0f(?:\x31|\x01[\xf9\xd0]|\xa2|\xc7[\xf0-\xff])|\xf3\x90)",
                           re.DOTALL)

_REGISTERS_64 = ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi",
                 *(f"r{n}" for n in range(8, 16)))  # fmt: skip
_LEGACY_32 = {f"e{name[1:]}": name for name in _REGISTERS_64[:8]}
_LEGACY_16 = {name[1:]: name for name in _REGISTERS_64[:8]}


def register_operand(op_str: str) -> tuple[str, int]:
    """(64-bit register name, operand width in bits) of a capstone register operand."""
    name = op_str.strip()
    if name in _REGISTERS_64:
        return name, 64
    if name in _LEGACY_32:
        return _LEGACY_32[name], 32
    if name in _LEGACY_16:
        return _LEGACY_16[name], 16
    match = re.fullmatch(r"(r\d+)([dw])", name)
    if match and match.group(1) in _REGISTERS_64:
        return match.group(1), 32 if match.group(2) == "d" else 16
    raise ValueError(f"unexpected register operand {op_str!r}")


@dataclass(frozen=True)
class Site:
    """One non-virtualizable instruction in the program image."""

    address: int
    length: int
    kind: Kind
    original: bytes
    symbol: str
    register: str | None = None
    """Destination of rdrand/rdseed/rdpid, as its 64-bit name ("rax", "r8")."""
    width: int = 64
    """Operand size in bits of that destination (16, 32 or 64)."""
    problem: str | None = None
    """Why the site cannot be patched safely, or None when it can."""

    @property
    def text(self) -> str:
        """The instruction in assembler syntax."""
        if self.register is None:
            return self.kind.value
        name = self.register
        if self.width != 64:
            name = _narrow_register(name, self.width)
        return f"{self.kind.value} {name}"


def _narrow_register(name: str, width: int) -> str:
    for table in (_LEGACY_32, _LEGACY_16):
        for narrow, wide in table.items():
            if wide == name and len(narrow) == (3 if width == 32 else 2):
                return narrow
    return f"{name}{'d' if width == 32 else 'w'}"


@dataclass
class _Region:
    """A run of executable bytes decoded from a known instruction boundary."""

    start: int
    end: int
    segment: Segment
    starts: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    sites: dict[int, Site] = field(default_factory=dict)
    undecodable: list[int] = field(default_factory=list)

    def covering(self, address: int) -> int | None:
        """Start of the decoded instruction whose bytes include address, or None."""
        index = bisect.bisect_right(self.starts, address) - 1
        if index >= 0 and address < self.starts[index] + self.lengths[index]:
            return self.starts[index]
        return None

    def ambiguous_at(self, address: int) -> bool:
        """Whether address is at most RESYNC_WINDOW bytes after an undecodable byte."""
        index = bisect.bisect_right(self.undecodable, address) - 1
        return index >= 0 and address - self.undecodable[index] <= RESYNC_WINDOW


_ONE = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)  # one instruction, no skipdata


def _disassembler() -> capstone.Cs:
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    md.skipdata = True
    return md


_SWEEP = _disassembler()  # shared: creating a Cs costs more than decoding a JIT stub


def _regions(image: ProgramImage, segment: Segment) -> list[_Region]:
    """Function ranges inside the segment, plus the gaps between them (linear sweep)."""
    seg_end = segment.vaddr + segment.filesz
    regions: list[_Region] = []
    covered: list[tuple[int, int]] = []
    for start, end, _name in image.symbols.function_ranges():
        if segment.vaddr <= start < seg_end:
            regions.append(_Region(start, min(end, seg_end), segment))
            covered.append((start, min(end, seg_end)))
    cursor = segment.vaddr
    for start, end in sorted(covered):
        if start > cursor:
            regions.append(_Region(cursor, start, segment))
        cursor = max(cursor, end)
    if cursor < seg_end:
        regions.append(_Region(cursor, seg_end, segment))
    return regions


def _decode(md: capstone.Cs, image: ProgramImage, region: _Region) -> None:
    """Disassemble a region, recording instruction starts, sites and undecodable bytes."""
    seg = region.segment
    seg_end = seg.vaddr + seg.filesz
    # Slice to the region (plus one maximal instruction, to see one straddling its end):
    # capstone decodes its whole input buffer before yielding the first instruction.
    offset = region.start - seg.vaddr
    code = seg.data[offset : offset + (region.end - region.start) + _MAX_INSN]
    for address, size, mnemonic, op_str in md.disasm_lite(code, region.start):
        if address >= region.end:
            break
        region.starts.append(address)
        region.lengths.append(size)
        if mnemonic == ".byte":
            region.undecodable.append(address)
            continue
        if mnemonic not in _KINDS:  # the hot path: one lookup per decoded instruction
            continue
        original = seg.data[address - seg.vaddr : address - seg.vaddr + size]
        site = _site_from(address, size, mnemonic, op_str, original,
                          image.symbols.describe(address))
        assert site is not None
        problem = None
        if address + size > region.end:
            problem = f"straddles the end of its code region at {region.end:#x}"
        if address + size > seg_end:
            problem = "runs past the end of the executable segment"
        region.sites[address] = dataclasses.replace(site, problem=problem)


def _judge(image: ProgramImage, hit: int, regions: list[_Region]) -> list[Site]:
    """Sites for one pattern hit, marked unpatchable where the decodings are unsure."""
    verdicts: set[int | None] = set()
    found: list[Site] = []
    ambiguous = False
    for region in regions:
        start = region.covering(hit)
        verdicts.add(start if start is not None and start in region.sites else None)
        site = region.sites.get(start) if start is not None else None
        if site is not None:
            found.append(site)
        if start is None or start in region.undecodable or region.ambiguous_at(hit):
            ambiguous = True
    if _kind_of_pattern(_raw_at(image, hit)) in HARMLESS:  # unsure: leave it native
        sure = len(verdicts) == 1 and not ambiguous
        return [site for site in found if site.problem is None] if sure else []
    if len(verdicts) > 1:
        reason = "decodes differently in overlapping functions"
    elif ambiguous:
        reason = "lies in or just after bytes that do not decode (data in code?)"
    else:
        return found
    if found:
        return [_with_problem(site, reason) for site in found]
    kind = _guess_kind(image, hit)
    return [
        Site(
            address=hit,
            length=len(kind[1]),
            kind=kind[0],
            original=kind[1],
            symbol=image.symbols.describe(hit),
            problem=f"byte pattern of {kind[0].value} {reason}",
        )
    ]


def _with_problem(site: Site, reason: str) -> Site:
    if site.problem is not None:
        return site
    return dataclasses.replace(site, problem=reason)


def _raw_at(image: ProgramImage, hit: int) -> bytes:
    seg = image.segment_at(hit)
    assert seg is not None
    return seg.data[hit - seg.vaddr : hit - seg.vaddr + 3]


def _guess_kind(image: ProgramImage, hit: int) -> tuple[Kind, bytes]:
    """The instruction a raw pattern would be, for reporting an undecoded hit."""
    raw = _raw_at(image, hit)
    kind = _kind_of_pattern(raw)
    return kind, raw[:2] if kind in (Kind.RDTSC, Kind.CPUID, Kind.PAUSE) else raw[:3]


def scan_sites(image: ProgramImage) -> list[Site]:
    """Every non-virtualizable instruction (or suspicious pattern), patchable or not."""
    return scan_program(image)[0]


def scan_program(image: ProgramImage) -> tuple[list[Site], list[Stray]]:
    """scan_sites and scan_strays in one decoding pass."""
    md = _disassembler()
    sites: dict[int, Site] = {}
    strays: list[Stray] = []
    for segment in image.executable_segments():
        data = segment.data
        hits = [segment.vaddr + m.start() for m in _CORE_PATTERN.finditer(data)]
        if not hits:
            continue
        regions = _regions(image, segment)
        decoded: set[int] = set()
        for hit in hits:
            holding = [r for r in regions if r.start <= hit < r.end]
            for region in holding:
                if id(region) not in decoded:
                    _decode(md, image, region)
                    decoded.add(id(region))
            for site in _judge(image, hit, holding):
                if site.address not in sites or site.problem is not None:
                    sites[site.address] = site
            stray = _stray_at(image, hit, holding)
            if stray is not None:
                strays.append(stray)
    marked = _mark_overlaps(sorted(sites.values(), key=lambda s: s.address))
    return [s for s in marked if s.kind not in HARMLESS or s.problem is None], strays


def _stray_at(image: ProgramImage, hit: int, holding: list[_Region]) -> Stray | None:
    """The hit as a stray when a decoding has it inside another, decodable instruction."""
    kind = _guess_kind(image, hit)[0]
    if kind in HARMLESS:
        return None
    inside: int | None = None
    for region in holding:
        start = region.covering(hit)
        if (start is not None and start != hit and start not in region.sites
                and start not in region.undecodable):
            inside = start
    if inside is None:
        return None
    traps = {_region_trap(region, hit) for region in holding}
    trap = traps.pop() if len(traps) == 1 else None
    return Stray(hit, kind, inside, image.symbols.describe(hit), trap=trap)


def _region_trap(region: _Region, hit: int) -> tuple[int, int] | None:
    """The trap range of a stray at hit in a decoded region (see trap_range), or None."""
    seg = region.segment
    found = trap_range(region.starts, region.lengths, hit,
                       lambda address: seg.data[address - seg.vaddr], region.start)
    if found is None or found[1] > region.end:
        return None
    start, end = found
    index = bisect.bisect_left(region.starts, start)
    while index < len(region.starts) and region.starts[index] < end:
        at = region.starts[index]
        if at in region.sites or at in region.undecodable or region.ambiguous_at(at):
            return None
        index += 1
    return found


_PREFIXES = frozenset(b"\x26\x2e\x36\x3e\x64\x65\x66\x67\xf0\xf2\xf3" + bytes(range(0x40, 0x50)))
TRAP_MAX = 64
"""The longest trap range: up to 13 prefixes before a pattern, each end in an instruction."""


def trap_range(starts: list[int], lengths: list[int], hit: int, byte_at: Callable[[int], int],
               lowest: int, closed: bool = False) -> tuple[int, int] | None:
    """[start, end) of the decoded instructions any hidden instruction at hit begins in.

    A hidden instruction begins at the pattern or up to 13 prefix bytes before it (15
    bytes at most, the pattern at least 2). Filled with int3, these whole instructions trap
    whenever execution reaches them, at their start (the normal flow) or a jump into their
    middle, and never change an instruction outside them. None when the prefixes reach
    `lowest`, the first decoded byte, and bytes before it could be prefixes too (unless
    `closed`: nothing executable lies before it), or when the decode has a gap there.
    """
    first = hit
    while hit - first < _MAX_INSN - 2 and first > lowest and byte_at(first - 1) in _PREFIXES:
        first -= 1
    if first == lowest and hit - first < _MAX_INSN - 2 and not closed:
        return None
    index = bisect.bisect_right(starts, first) - 1
    if index < 0 or first >= starts[index] + lengths[index]:
        return None
    start = end = starts[index]
    while index < len(starts) and starts[index] <= hit:
        if starts[index] != end:
            return None
        end = starts[index] + lengths[index]
        index += 1
    if end <= hit or end - start > TRAP_MAX:
        return None
    return start, end


def _mark_overlaps(sites: list[Site]) -> list[Site]:
    """Sites whose bytes overlap another site's come from conflicting decodings."""
    out = list(sites)
    for i in range(1, len(out)):
        if out[i].address < out[i - 1].address + out[i - 1].length:
            reason = f"overlaps the site at {out[i - 1].address:#x}"
            out[i] = _with_problem(out[i], reason)
            out[i - 1] = _with_problem(out[i - 1], f"overlaps the site at {out[i].address:#x}")
    return out


@dataclass(frozen=True)
class Stray:
    """A byte pattern of a non-virtualizable instruction that is no decoded instruction.

    It lies inside another instruction (an immediate, a displacement, a jump offset running
    into the next opcode), so patching it would break that instruction; yet a jump into the
    middle of the instruction would execute it natively. Pages holding one run single-stepped.
    """

    address: int
    kind: Kind
    inside: int
    """Start of the decoded instruction whose bytes hold the pattern."""
    symbol: str
    why: str = "inside another instruction"
    trap: tuple[int, int] | None = None
    """[start, end) of the decoded instructions to fill with int3 so that running the
    hidden instruction traps first (code_pages); None: its page runs single-stepped."""


def scan_strays(image: ProgramImage) -> list[Stray]:
    """Pattern hits in the executable segments that lie inside other decoded instructions."""
    return scan_program(image)[1]


PAGE_SIZE = 4096


@dataclass(frozen=True)
class PageScan:
    """What scanning one page of run-time code found (see scan_page)."""

    sites: list[Site]
    """Instructions to patch: decoded, wholly inside the page, from a trusted boundary."""
    strays: list[Stray]
    """Pattern hits that cannot be patched: the page must run single-stepped."""
    overhang: int | None
    """Bytes by which the page's last decoded instruction reaches into the next page, or
    None when the page held no pattern and so was not decoded at all."""


def _site_from(address: int, size: int, mnemonic: str, op_str: str, original: bytes,
               symbol: str) -> Site | None:
    kind = _KINDS.get(mnemonic)
    if kind is None:
        return None
    register, width = (None, 64)
    if kind in (Kind.RDRAND, Kind.RDSEED, Kind.RDPID):
        register, width = register_operand(op_str)
    return Site(address, size, kind, original, symbol, register, width)


def scan_page(page: int, code: bytes, start: int, trusted: bool, symbol: str) -> PageScan:
    """Scan one page of code written at run time, at every byte offset.

    `code` is the page followed by the first bytes (up to 14) of the next page when that one
    is executable too. Decoding starts `start` bytes in (where the previous page's last
    instruction ends); when `trusted` is false nobody knows where that is, so hits in the
    first 15 bytes count as strays. A hit is patchable only when the linear decode has an
    instruction of its kind starting at or just before it (prefixes) and ending inside the
    page; everything else (inside another instruction, straddling into the next page, in
    or just after undecodable bytes) is a stray.
    """
    hits = [m.start() for m in _CORE_PATTERN.finditer(code) if m.start() < PAGE_SIZE]
    if not hits:
        return PageScan([], [], None)  # the common case: nothing to decode
    md = _SWEEP
    starts: list[int] = []
    lengths: list[int] = []
    found: dict[int, Site] = {}
    undecodable: list[int] = []
    overhang: int | None = 0
    # Decoding costs ~1 µs an instruction: stop past the last hit (the overhang is then
    # unknown, and the next page's decode start untrusted).
    stop = hits[-1] + _MAX_INSN
    # Sliced: capstone decodes its whole input before yielding the first instruction.
    window = code[start : stop + _MAX_INSN + 1]
    for address, size, mnemonic, op_str in md.disasm_lite(window, page + start):
        offset = address - page
        if offset >= PAGE_SIZE:
            break
        if offset > stop:
            overhang = None
            break
        starts.append(offset)
        lengths.append(size)
        overhang = max(0, offset + size - PAGE_SIZE)
        if mnemonic == ".byte":
            undecodable.append(offset)
        elif mnemonic in _KINDS:
            site = _site_from(address, size, mnemonic, op_str, code[offset : offset + size],
                              symbol)
            if site is not None:
                found[offset] = site
    sites: list[Site] = []
    strays: list[Stray] = []
    for hit in hits:
        index = bisect.bisect_right(starts, hit) - 1
        inside = starts[index] if index >= 0 and hit < starts[index] + lengths[index] else None
        near = bisect.bisect_right(undecodable, hit) - 1
        why = None
        if hit < start or inside is None:
            why = "inside the previous page's last instruction"
        elif near >= 0 and hit - undecodable[near] <= RESYNC_WINDOW:
            why = "in or just after bytes that do not decode"
        elif not trusted and hit < _MAX_INSN:
            why = "where the previous page's last instruction may end"
        elif inside not in found:
            why = "inside another instruction"
        elif inside + found[inside].length > PAGE_SIZE:
            why = "straddles into the next page"
        if why is None:
            site = found[inside]
            if not sites or sites[-1].address != site.address:
                sites.append(site)
            continue
        kind = _kind_of_pattern(code[hit : hit + 3])
        if kind in HARMLESS:
            continue  # a pause the decode is unsure of runs natively: no stray
        trap = None
        if why == "inside another instruction":
            trap = _page_trap(starts, lengths, hit, code, start, trusted, found, undecodable)
        strays.append(Stray(page + hit, kind, page + (inside or 0), symbol, why,
                            None if trap is None else (page + trap[0], page + trap[1])))
    return PageScan(sites, strays, overhang)


def _page_trap(starts: list[int], lengths: list[int], hit: int, code: bytes, start: int,
               trusted: bool, found: dict[int, Site],
               undecodable: list[int]) -> tuple[int, int] | None:
    """The trap range (page offsets) of a stray in a scanned page, or None: it must be
    wholly inside the page and where the decode is as sure as it is for a patched site."""
    trap = trap_range(starts, lengths, hit, code.__getitem__, start)
    if trap is None or trap[1] > PAGE_SIZE or (not trusted and trap[0] < _MAX_INSN):
        return None
    near = bisect.bisect_right(undecodable, trap[1]) - 1
    if near >= 0 and trap[0] - undecodable[near] <= RESYNC_WINDOW:
        return None
    first = bisect.bisect_left(starts, trap[0])
    if any(at in found for at in starts[first : bisect.bisect_left(starts, trap[1])]):
        return None
    return trap


def _kind_of_pattern(raw: bytes) -> Kind:
    if raw[0] == 0xF3:
        return Kind.PAUSE
    if raw[1] == 0x31:
        return Kind.RDTSC
    if raw[1] == 0xA2:
        return Kind.CPUID
    if raw[1] == 0x01:
        return Kind.RDTSCP if raw[2] == 0xF9 else Kind.XGETBV
    return Kind.RDRAND if raw[2] < 0xF8 else Kind.RDSEED


def decode_instruction(address: int, code: bytes) -> tuple[str, str, int, Site | None]:
    """(mnemonic, operands, length, the Site if non-virtualizable) of the instruction at code[0]."""
    for _address, size, mnemonic, op_str in _ONE.disasm_lite(code[:_MAX_INSN], address):
        return mnemonic, op_str, size, _site_from(address, size, mnemonic, op_str,
                                                  code[:size], "")
    return "(bad)", "", 0, None


def patch_bytes(site: Site) -> bytes:
    """What a patched site holds: ud2, then int3 padding (never executed)."""
    return UD2 + bytes([INT3]) * (site.length - len(UD2))


@dataclass(frozen=True)
class Rewrite:
    """An instruction re-encoded as an equivalent one, so that a stray pattern vanishes."""

    address: int
    original: bytes
    replacement: bytes
    why: str


_XOR_RM_R = 0x31
_SUB_RM_R = 0x29


def defuse(image: ProgramImage, stray: Stray) -> Rewrite | None:
    """A rewrite removing the stray, or None when it has to be single-stepped.

    Measured in static glibc, busybox and Go binaries, nearly every stray is `0f 31` where
    0f is the last byte of one instruction (a jcc rel8 of +15, an immediate) and 31 starts
    the next: `xor r32, r32`, the zeroing idiom. `sub r32, r32` (29 /r) computes the same
    zero and the same flags (xor leaves AF undefined, sub clears it) and turns the hidden
    bytes into `0f 29 /r`, movaps xmm, xmm: harmless when a jump enters there.
    """
    seg = image.segment_at(stray.address)
    if stray.kind is not Kind.RDTSC or seg is None:
        return None
    offset = stray.address - seg.vaddr
    inside = stray.inside - seg.vaddr
    if inside < 0 or offset + 3 > seg.filesz:
        return None
    _, _, size, _ = decode_instruction(stray.inside, seg.data[inside : inside + _MAX_INSN])
    xor = seg.data[offset + 1 : offset + 3]
    modrm = xor[1]
    if (stray.inside + size != stray.address + 1 or xor[0] != _XOR_RM_R or modrm >> 6 != 3
            or (modrm >> 3) & 7 != modrm & 7):
        return None
    if decode_instruction(stray.address + 1, xor)[:3] != ("xor", _same(modrm), 2):
        return None
    return Rewrite(stray.address + 1, bytes(xor), bytes([_SUB_RM_R, modrm]),
                   "xor r32, r32 re-encoded as sub r32, r32")


def _same(modrm: int) -> str:
    name = ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")[modrm & 7]
    return f"{name}, {name}"


def apply_rewrites(image: ProgramImage, contents: list[bytes],
                   rewrites: list[Rewrite]) -> list[bytes]:
    """contents (the segments' bytes) with each rewrite applied."""
    out = [bytearray(c) for c in contents]
    for rewrite in rewrites:
        for index, seg in enumerate(image.segments):
            offset = rewrite.address - seg.vaddr
            if offset >= 0 and offset + len(rewrite.original) <= seg.filesz:
                if bytes(out[index][offset : offset + len(rewrite.original)]) != rewrite.original:
                    raise ValueError(f"rewrite at {rewrite.address:#x} does not match the image")
                out[index][offset : offset + len(rewrite.replacement)] = rewrite.replacement
                break
    return [bytes(b) for b in out]


def find_sites(image: ProgramImage) -> list[Site]:
    """The sites to patch; GuestProgramError listing them if any cannot be patched safely."""
    return refuse_unpatchable(image, scan_sites(image))


def refuse_unpatchable(image: ProgramImage, sites: list[Site]) -> list[Site]:
    """sites, or GuestProgramError listing those that cannot be patched safely."""
    bad = [s for s in sites if s.problem is not None]
    if bad:
        listed = "; ".join(f"{s.address:#x} {s.text} in {s.symbol}: {s.problem}" for s in bad)
        raise GuestProgramError(
            f"{image.path}: {len(bad)} non-virtualizable instruction(s) cannot be patched "
            f"safely: {listed}"
        )
    return sites


def patch_segments(image: ProgramImage, sites: list[Site]) -> list[bytes]:
    """Each segment's file bytes with every site replaced by ud2 and int3 padding."""
    patched = [bytearray(seg.data) for seg in image.segments]
    for site in sites:
        if site.problem is not None:
            raise GuestProgramError(f"{image.path}: site {site.address:#x}: {site.problem}")
        for index, seg in enumerate(image.segments):
            offset = site.address - seg.vaddr
            if offset >= 0 and offset + site.length <= seg.filesz:
                if bytes(patched[index][offset : offset + site.length]) != site.original:
                    raise ValueError(f"site {site.address:#x} does not match the image bytes")
                # int3 padding is never executed: emulation resumes at address + length.
                patched[index][offset : offset + site.length] = patch_bytes(site)
                break
        else:
            raise ValueError(f"site {site.address:#x} is not inside any segment's file bytes")
    return [bytes(p) for p in patched]


class Registers(Protocol):
    """The general registers the emulator reads and writes, named as in struct kvm_regs."""

    rax: int
    rbx: int
    rcx: int
    rdx: int
    rsi: int
    rdi: int
    rsp: int
    rbp: int
    r8: int
    r9: int
    r10: int
    r11: int
    r12: int
    r13: int
    r14: int
    r15: int
    rip: int
    rflags: int


@dataclass(frozen=True)
class GuestFault:
    """An exception the emulated instruction raises instead of completing (deliver it)."""

    vector: int
    signal: int
    reason: str


@dataclass(frozen=True)
class SpinYield:
    """What emulating `pause` answers: the task is spin-waiting for another task.

    A deterministic switch point for the scheduler (issue 12): the kernel may run another
    task here. With one task it just continues, the instruction already emulated.
    """

    address: int


Emulated = GuestFault | SpinYield | None
"""The outcome of emulating one instruction: fault, switch point, or done."""

_MASK64 = (1 << 64) - 1
_MASK32 = 0xFFFF_FFFF
_CF, _PF, _AF, _ZF, _SF, _OF = 1 << 0, 1 << 2, 1 << 4, 1 << 6, 1 << 7, 1 << 11
_GP_VECTOR, _SIGSEGV = 13, 11


def write_register(regs: Registers, name: str, value: int, width: int) -> None:
    """Write like the CPU: 32-bit writes zero-extend, 16-bit writes keep the upper bits."""
    if width == 64:
        setattr(regs, name, value & _MASK64)
    elif width == 32:
        setattr(regs, name, value & _MASK32)
    elif width == 16:
        setattr(regs, name, (getattr(regs, name) & ~0xFFFF & _MASK64) | (value & 0xFFFF))
    else:
        raise ValueError(f"unsupported register width {width}")


class NonVirtEmulator:
    """Answers patched instructions for one node from its seed, id and virtual clock."""

    def __init__(self, seed: int, node_id: int, node_count: int) -> None:
        if not 0 <= node_id < node_count:
            raise ValueError(f"node id {node_id} outside 0..{node_count - 1}")
        self.seed = seed
        self.node_id = node_id
        self.node_count = node_count
        self.reseed(0)

    def reseed(self, incarnation: int) -> None:
        """Fresh rdrand/rdseed streams for a new life of the node (0: the first)."""
        suffix = f"#{incarnation}" if incarnation else ""
        self.rdrand = DeterministicStream(self.seed, "rdrand" + suffix, self.node_id)
        self.rdseed = DeterministicStream(self.seed, "rdseed" + suffix, self.node_id)

    def emulate(self, site: Site, regs: Registers,
                vtime_ns: int) -> GuestFault | SpinYield | None:
        """Perform site's instruction on regs; a GuestFault when it must fault instead, a
        SpinYield when it was the spin-wait hint (the task would let another one run)."""
        kind = site.kind
        if kind is Kind.PAUSE:
            # Nothing to compute: the exit itself is the point. Its virtual time is the
            # exception exit's cost, which every trapped instruction is charged.
            regs.rip = (site.address + site.length) & _MASK64
            return SpinYield(site.address)
        if kind in (Kind.RDTSC, Kind.RDTSCP):
            tsc = (vtime_ns * TSC_HZ // 1_000_000_000) & _MASK64
            write_register(regs, "rax", tsc, 32)
            write_register(regs, "rdx", tsc >> 32, 32)
            if kind is Kind.RDTSCP:
                write_register(regs, "rcx", self.node_id, 32)
        elif kind is Kind.CPUID:
            result = virtual_cpu.cpuid(regs.rax, regs.rcx)
            for name, value in zip(("rax", "rbx", "rcx", "rdx"), result, strict=True):
                write_register(regs, name, value, 32)
        elif kind is Kind.XGETBV:
            value = virtual_cpu.xgetbv(regs.rcx)
            if value is None:
                return GuestFault(_GP_VECTOR, _SIGSEGV, f"xgetbv of XCR{regs.rcx & _MASK32}")
            write_register(regs, "rax", value, 32)
            write_register(regs, "rdx", value >> 32, 32)
        elif kind in (Kind.RDRAND, Kind.RDSEED):
            stream = self.rdrand if kind is Kind.RDRAND else self.rdseed
            value = int.from_bytes(stream.read(site.width // 8), "little")
            assert site.register is not None
            write_register(regs, site.register, value, site.width)
            regs.rflags = (regs.rflags & ~(_OF | _SF | _ZF | _AF | _PF)) | _CF
        elif kind is Kind.RDPID:
            assert site.register is not None
            write_register(regs, site.register, self.node_id, site.width)
        regs.rip = (site.address + site.length) & _MASK64
        return None
