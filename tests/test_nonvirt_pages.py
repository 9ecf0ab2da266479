"""Scanning code at every byte offset: pages written at run time, and hidden patterns in a
program (chaosreplay.vm.nonvirt.scan_page, scan_strays, defuse, decode_instruction)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from chaosreplay.vm.elf import ET_EXEC, ProgramImage, Prot, Segment, Symbol, Symbols, load_program
from chaosreplay.vm.nonvirt import (
    PAGE_SIZE,
    Kind,
    apply_rewrites,
    decode_instruction,
    defuse,
    patch_bytes,
    scan_page,
    scan_strays,
    trap_range,
)

GuestBin = Callable[[str, str], Path]
PAGE = 0x7F00_0000_0000
NOPS = b"\x90" * 64


def _page(code: bytes, fill: bytes = b"\x90") -> bytes:
    return code + fill * (PAGE_SIZE - len(code))


def test_instruction_on_a_decoded_boundary_is_patched() -> None:
    result = scan_page(PAGE, _page(NOPS + b"\x0f\x31\xc3" + b"\x48\x0f\xc7\xf0\xc3"), 0, True,
                       "jit")
    assert [(s.address - PAGE, s.kind, s.length) for s in result.sites] == [
        (64, Kind.RDTSC, 2), (67, Kind.RDRAND, 4)]
    assert result.sites[1].register == "rax" and result.strays == []
    assert patch_bytes(result.sites[1]) == b"\x0f\x0b\xcc\xcc"


def test_pattern_inside_an_immediate_is_a_stray_not_a_site() -> None:
    """mov eax, 0x90c3310f hides rdtsc; ret at +1: unpatchable, so the page is stepped."""
    result = scan_page(PAGE, _page(NOPS + b"\xb8\x0f\x31\xc3\x90\xc3"), 0, True, "jit")
    assert result.sites == []
    [stray] = result.strays
    assert (stray.address - PAGE, stray.kind, stray.inside - PAGE) == (65, Kind.RDTSC, 64)
    assert stray.why == "inside another instruction"


def test_every_byte_offset_is_searched_not_only_the_decode() -> None:
    """cpuid hidden in a displacement, rdseed in a movabs immediate: both found."""
    code = NOPS + b"\x8b\x80\x0f\xa2\x00\x00" + b"\x48\xb8\x0f\xc7\xf8" + b"\x90" * 5
    kinds = sorted(s.kind.value for s in scan_page(PAGE, _page(code), 0, True, "x").strays)
    assert kinds == ["cpuid", "rdseed"]


def test_site_straddling_into_the_next_page_is_a_stray() -> None:
    code = b"\x90" * (PAGE_SIZE - 1) + b"\x0f" + b"\x31\xc3"  # rdtsc split over the pages
    result = scan_page(PAGE, code, 0, True, "jit")
    assert result.sites == [] and [s.why for s in result.strays] == [
        "straddles into the next page"]
    assert result.overhang == 1


def test_hits_where_the_previous_page_may_reach_are_strays_unless_trusted() -> None:
    code = _page(b"\x90\x0f\x31\xc3")
    assert [s.why for s in scan_page(PAGE, code, 0, False, "x").strays] == [
        "where the previous page's last instruction may end"]
    assert len(scan_page(PAGE, code, 0, True, "x").sites) == 1
    # The previous page's last instruction ends 2 bytes in: the hit at +1 lies inside it.
    assert [s.why for s in scan_page(PAGE, code, 2, True, "x").strays] == [
        "inside the previous page's last instruction"]


def test_patterns_after_undecodable_bytes_are_strays() -> None:
    result = scan_page(PAGE, _page(NOPS + b"\x06\x06\x0f\x31\xc3"), 0, True, "x")
    assert result.sites == [] and "do not decode" in result.strays[0].why


def test_decode_instruction_reports_sites_and_other_instructions() -> None:
    mnemonic, _, size, site = decode_instruction(0x1000, b"\x0f\xc7\xf1\x90")
    assert (mnemonic, size) == ("rdrand", 3) and site is not None and site.register == "rcx"
    assert site.width == 32
    assert decode_instruction(0x1000, b"\x9d")[:3] == ("popfq", "", 1)
    assert decode_instruction(0x1000, b"\x0f\x05")[3] is None


def test_strays_of_the_hidden_instruction_guest(guest_bin: GuestBin) -> None:
    """hidden_insn's rdtsc, cpuid and rdrand lie inside movabs immediates."""
    image = load_program(guest_bin("musl", "hidden_insn"))
    strays = scan_strays(image)
    by_function = {s.symbol.split("+")[0]: s for s in strays if s.symbol.startswith("hide_")}
    assert {name: s.kind for name, s in by_function.items()} == {
        "hide_rdtsc": Kind.RDTSC, "hide_cpuid": Kind.CPUID, "hide_rdrand": Kind.RDRAND}
    [text] = image.executable_segments()
    for stray in by_function.values():
        offset = stray.inside - text.vaddr
        mnemonic = decode_instruction(stray.inside, text.data[offset : offset + 15])[0]
        assert mnemonic == "movabs" and stray.inside < stray.address, stray


def test_clean_musl_program_has_no_strays(guest_bin: GuestBin) -> None:
    assert scan_strays(load_program(guest_bin("musl", "hello"))) == []


def _jcc_then_xor(modrm: int) -> ProgramImage:
    code = NOPS + b"\x74\x0f" + bytes([0x31, modrm]) + b"\xc3"  # je +15; xor; ret
    segment = Segment(0x401000, len(code), len(code), code, Prot.READ | Prot.EXEC, 0, 0x1000)
    return ProgramImage(path=Path("synthetic"), raw=code, sha256="0" * 64, e_type=ET_EXEC,
                        entry=0x401000, load_bias=0, segments=(segment,),
                        phdr_address=0x401000, phent=56, phnum=1, tls=None,
                        symbols=Symbols([Symbol("f", 0x401000, len(code), True)]))


def test_zeroing_xor_after_a_0f_byte_is_reencoded_as_sub() -> None:
    """je +15 followed by xor eax, eax hides 0f 31; sub eax, eax does not (0f 29: movaps)."""
    image = _jcc_then_xor(0xC0)
    [stray] = scan_strays(image)
    rewrite = defuse(image, stray)
    assert rewrite is not None
    assert (rewrite.address, rewrite.original, rewrite.replacement) == (
        stray.address + 1, b"\x31\xc0", b"\x29\xc0")
    [patched] = apply_rewrites(image, [image.segments[0].data], [rewrite])
    offset = stray.address - 0x401000
    assert decode_instruction(stray.address, patched[offset:])[0] == "movaps"
    assert decode_instruction(stray.address + 1, patched[offset + 1 :])[:2] == ("sub", "eax, eax")
    assert scan_strays(_with_segments(image, [patched])) == []


def test_xor_of_two_registers_is_not_reencoded() -> None:
    image = _jcc_then_xor(0xC8)  # xor eax, ecx: swapping operands would give 0f 33 (rdpmc)
    [stray] = scan_strays(image)
    assert defuse(image, stray) is None


def _with_segments(image: ProgramImage, contents: list[bytes]) -> ProgramImage:
    segments = tuple(dataclasses.replace(seg, data=data)
                     for seg, data in zip(image.segments, contents, strict=True))
    return dataclasses.replace(image, segments=segments)


def test_every_stray_of_static_glibc_is_defused(guest_bin: GuestBin) -> None:
    """Measured: glibc's hidden 0f 31 all come from a zeroing xor after a 0f byte."""
    image = load_program(guest_bin("glibc", "hello"))
    strays = scan_strays(image)
    rewrites = [defuse(image, s) for s in strays]
    assert len(strays) >= 5 and None not in rewrites, strays
    contents = apply_rewrites(image, [seg.data for seg in image.segments],
                              [r for r in rewrites if r is not None])
    changed = sum(a != b for old, new in zip(image.segments, contents, strict=True)
                  for a, b in zip(old.data, new, strict=True))
    assert changed == len(strays)  # one byte each
    assert scan_strays(_with_segments(image, contents)) == []


def test_hidden_instruction_guest_is_not_defusable(guest_bin: GuestBin) -> None:
    image = load_program(guest_bin("musl", "hidden_insn"))
    assert [defuse(image, s) for s in scan_strays(image)] == [None, None, None]


# -- trap ranges: the instructions a hidden one could begin in ----------------------------

def test_a_stray_inside_an_immediate_traps_that_whole_instruction() -> None:
    [stray] = scan_page(PAGE, _page(NOPS + b"\xb8\x0f\x31\xc3\x90\xc3"), 0, True, "x").strays
    assert stray.trap == (PAGE + 64, PAGE + 69)


def test_a_trap_reaches_back_over_prefix_bytes_into_the_instruction_before() -> None:
    """A hidden instruction may begin at prefix bytes before its pattern (`48 48 0f 31` is
    rdtsc too), even ones ending the instruction before: the range covers both."""
    code = b"\xb8\x00\x00\x00\x48" + b"\x48\x0f\x31\x90\x90"  # a decode of [0,5) [5,10)
    assert trap_range([0, 5], [5, 5], 6, code.__getitem__, 0) == (0, 10)
    code = b"\xb8\x00\x00\x00\x00" + b"\x48\x0f\x31\x90\x90"
    assert trap_range([0, 5], [5, 5], 6, code.__getitem__, 0) == (5, 10)


def test_strays_the_decode_is_unsure_of_have_no_trap() -> None:
    """Near the page start when the previous page is unscanned, after undecodable bytes, or
    straddling into the next page: the page is single-stepped instead."""
    unsure = scan_page(PAGE, _page(b"\xb8\x0f\x31\x90\x90" + NOPS), 0, False, "x")
    undecodable = scan_page(PAGE, _page(NOPS + b"\x06" + b"\xb8\x0f\x31\x90\x90"), 0, True, "x")
    straddle = scan_page(PAGE, b"\x90" * (PAGE_SIZE - 3) + b"\xb8\x0f\x31\x90\x90", 0, True,
                         "x")
    for result in (unsure, undecodable, straddle):
        assert result.strays and [s.trap for s in result.strays] == [None], result


def test_trap_range_refuses_prefixes_reaching_the_first_decoded_byte() -> None:
    """Bytes before the decode's first one could be more prefixes: no range from there."""
    starts, lengths = [0, 5], [5, 5]
    code = b"\x48" * 5 + b"\x0f\x31\x90\x90\x90"
    assert trap_range(starts, lengths, 5, code.__getitem__, 0) is None
    assert trap_range(starts, lengths, 5, code.__getitem__, 0, closed=True) == (0, 10)
    gap = b"\xb8\x00\x00\x00\x48" + b"\x48" + b"\x0f\x31\x90\x90\x90"
    assert trap_range([0, 6], [5, 5], 6, gap.__getitem__, 0) is None  # nothing decoded at 5


# -- pause: the spin-wait hint -----------------------------------------------------------

def test_a_decoded_pause_is_a_site_and_a_hidden_one_is_no_stray() -> None:
    """pause runs harmlessly natively: patched where decoded (a switch point), but f3 90 in
    an immediate, or where the decode is unsure, changes nothing."""
    code = NOPS + b"\xf3\x90" + b"\xb8\xf3\x90\x00\x00"
    result = scan_page(PAGE, _page(code), 0, True, "x")
    assert [(s.address - PAGE, s.kind, s.length) for s in result.sites] == [
        (64, Kind.PAUSE, 2)]
    assert result.strays == []
    unsure = scan_page(PAGE, _page(b"\xf3\x90" + NOPS), 0, False, "x")
    assert (unsure.sites, unsure.strays) == ([], [])


def test_a_pause_right_after_an_overlapping_pattern_is_still_found() -> None:
    """`0f c7 f3` (a hidden rdrand) and `f3 90` overlap at f3: both hits are searched."""
    code = NOPS + b"\xb8\x00\x00\x0f\xc7" + b"\xf3\x90" + NOPS
    result = scan_page(PAGE, _page(code), 0, True, "x")
    assert [(s.address - PAGE, s.kind) for s in result.sites] == [(69, Kind.PAUSE)]
    assert [(s.address - PAGE, s.kind) for s in result.strays] == [(67, Kind.RDRAND)]
