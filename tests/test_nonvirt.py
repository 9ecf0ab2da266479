"""Finding, patching and emulating the instructions this KVM cannot trap."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import capstone
import pytest
from hypothesis import given
from hypothesis import strategies as st

from chaosreplay.errors import GuestProgramError
from chaosreplay.vm import virtual_cpu
from chaosreplay.vm.elf import ET_EXEC, ProgramImage, Prot, Segment, Symbol, Symbols, load_program
from chaosreplay.vm.nonvirt import (
    GuestFault,
    Kind,
    NonVirtEmulator,
    Site,
    SpinYield,
    find_sites,
    patch_segments,
    scan_program,
    scan_sites,
    write_register,
)

GuestBin = Callable[[str, str], Path]
U64 = (1 << 64) - 1
MAIN_SEQUENCE = ["rdtsc", "rdtscp", "cpuid", "cpuid", "rdrand", "rdseed", "xgetbv", "rdpid"]
"""The order nonvirt.c executes its instructions in (see guest/src/nonvirt.c)."""


@dataclass
class Regs:
    """A register file with the field names of struct kvm_regs."""

    rax: int = 0
    rbx: int = 0
    rcx: int = 0
    rdx: int = 0
    rsi: int = 0
    rdi: int = 0
    rsp: int = 0
    rbp: int = 0
    r8: int = 0
    r9: int = 0
    r10: int = 0
    r11: int = 0
    r12: int = 0
    r13: int = 0
    r14: int = 0
    r15: int = 0
    rip: int = 0
    rflags: int = 0x2


def _image(
    code: bytes, functions: list[tuple[str, int, int]], base: int = 0x401000
) -> ProgramImage:
    """A one-segment executable image holding code, with the given (name, start, size)."""
    segment = Segment(base, len(code), len(code), code, Prot.READ | Prot.EXEC, 0x1000, 0x1000)
    symbols = Symbols([Symbol(name, start, size, True) for name, start, size in functions])
    return ProgramImage(
        path=Path("synthetic"),
        raw=code,
        sha256=hashlib.sha256(code).hexdigest(),
        e_type=ET_EXEC,
        entry=base,
        load_bias=0,
        segments=(segment,),
        phdr_address=base,
        phent=56,
        phnum=1,
        tls=None,
        symbols=symbols,
    )


def _site(kind: Kind, register: str | None = None, width: int = 64, length: int = 3) -> Site:
    return Site(0x401000, length, kind, b"\x90" * length, "main", register, width)


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_every_kind_is_found_in_the_nonvirt_guest(guest_bin: GuestBin, libc: str) -> None:
    sites = find_sites(load_program(guest_bin(libc, "nonvirt")))
    in_main = [s for s in sites if s.symbol == "main" or s.symbol.startswith("main+")]
    assert [s.kind.value for s in in_main] == MAIN_SEQUENCE, [s.text for s in in_main]
    for site in in_main:
        if site.kind in (Kind.RDRAND, Kind.RDSEED, Kind.RDPID):
            assert site.register is not None and site.width == 64, site
    assert all(s.problem is None for s in sites)


def test_static_glibc_has_startup_cpuid_and_one_rdtsc(guest_bin: GuestBin) -> None:
    """DESIGN §2: glibc's ifunc setup uses cpuid and xgetbv; its mutex spin uses rdtsc, and
    the spin-wait hint pause."""
    sites = find_sites(load_program(guest_bin("glibc", "hello")))
    kinds = Counter(s.kind for s in sites)
    assert set(kinds) == {Kind.CPUID, Kind.XGETBV, Kind.RDTSC, Kind.PAUSE}, kinds
    assert kinds[Kind.CPUID] >= 20 and kinds[Kind.RDTSC] == 1, kinds
    for kind in (Kind.RDTSC, Kind.PAUSE):
        (site,) = [s for s in sites if s.kind is kind]
        assert site.symbol.startswith("pthread_mutex_lock+"), site


def test_static_musl_hello_has_nothing_to_patch(guest_bin: GuestBin) -> None:
    assert find_sites(load_program(guest_bin("musl", "hello"))) == []


def test_stripped_program_yields_the_same_sites(guest_bin: GuestBin, tmp_path: Path) -> None:
    """Without symbols the linear sweep alone must find exactly the same instructions."""
    if shutil.which("strip") is None:
        pytest.skip("strip is not installed")
    source = guest_bin("glibc", "nonvirt")
    stripped = tmp_path / "nonvirt.stripped"
    subprocess.run(["strip", "-o", str(stripped), str(source)], check=True)
    image = load_program(stripped)
    assert len(image.symbols) == 0
    with_symbols = [(s.address, s.length, s.kind) for s in find_sites(load_program(source))]
    assert [(s.address, s.length, s.kind) for s in find_sites(image)] == with_symbols


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_patched_sites_decode_to_ud2_and_nothing_else_changes(
    guest_bin: GuestBin, libc: str
) -> None:
    image = load_program(guest_bin(libc, "nonvirt"))
    sites = find_sites(image)
    patched = patch_segments(image, sites)
    md = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
    checked = 0
    for seg, new in zip(image.segments, patched, strict=True):
        assert len(new) == len(seg.data)
        untouched = bytearray(new)
        for site in sites:
            offset = site.address - seg.vaddr
            if not 0 <= offset < len(new):
                continue
            first = next(md.disasm_lite(new[offset : offset + site.length], site.address))
            assert first[2] == "ud2", (hex(site.address), first)
            assert new[offset + 2 : offset + site.length] == b"\xcc" * (site.length - 2)
            untouched[offset : offset + site.length] = seg.data[offset : offset + site.length]
            checked += 1
        assert bytes(untouched) == seg.data, "bytes outside the sites changed"
    assert checked == len(sites) > 0


def test_patching_refuses_stale_or_unpatchable_sites() -> None:
    image = _image(b"\x0f\x31\xc3", [("f", 0x401000, 3)])
    (site,) = find_sites(image)
    stale = Site(site.address, site.length, site.kind, b"\x0f\xa2", site.symbol)
    with pytest.raises(ValueError, match="does not match"):
        patch_segments(image, [stale])
    bad = Site(site.address, site.length, site.kind, site.original, "f", problem="ambiguous")
    with pytest.raises(GuestProgramError, match="ambiguous"):
        patch_segments(image, [bad])


def test_pattern_inside_an_immediate_is_not_an_instruction() -> None:
    code = b"\xb8\x0f\x31\x00\x00\xc3"  # mov eax, 0x310f; ret
    assert scan_sites(_image(code, [("f", 0x401000, len(code))])) == []
    assert scan_sites(_image(code, [])) == []  # same verdict from the linear sweep


def test_site_straddling_a_function_boundary_is_unpatchable() -> None:
    code = b"\x90\x90\x90\x0f\x31\xc3"  # rdtsc at +3 runs into the next function at +4
    image = _image(code, [("f", 0x401000, 4), ("g", 0x401004, 2)])
    sites = scan_sites(image)
    assert [(s.address, s.kind) for s in sites] == [(0x401003, Kind.RDTSC)]
    assert sites[0].problem is not None and "straddles" in sites[0].problem
    with pytest.raises(GuestProgramError, match=r"0x401003 rdtsc in f\+0x3: straddles"):
        find_sites(image)


def test_site_right_after_undecodable_bytes_is_unpatchable() -> None:
    code = b"\x06\x06\x0f\x31\xc3"  # 0x06 (push es) does not exist in 64-bit mode
    sites = scan_sites(_image(code, []))
    assert len(sites) == 1 and sites[0].kind is Kind.RDTSC
    assert sites[0].problem is not None and "do not decode" in sites[0].problem


def test_site_far_after_undecodable_bytes_is_patchable() -> None:
    code = b"\x06" + b"\x90" * 64 + b"\x0f\xa2\xc3"
    (site,) = find_sites(_image(code, []))
    assert site.kind is Kind.CPUID and site.address == 0x401000 + 65


def test_overlapping_functions_that_disagree_are_unpatchable() -> None:
    code = b"\xb8\x0f\x31\x00\x00\xc3"  # mov from f's start, rdtsc from g's start at +1
    image = _image(code, [("f", 0x401000, 6), ("g", 0x401001, 5)])
    sites = scan_sites(image)
    assert [s.address for s in sites] == [0x401001]
    assert sites[0].problem is not None and "differently" in sites[0].problem
    with pytest.raises(GuestProgramError, match="cannot be patched safely"):
        find_sites(image)


def test_rdtsc_gives_virtual_time_and_zero_extends() -> None:
    regs = Regs(rax=U64, rdx=U64, rcx=0xDEAD)
    site = _site(Kind.RDTSC, length=2)
    assert NonVirtEmulator(1, 0, 1).emulate(site, regs, 0x1_2345_6789_ABCD) is None
    assert (regs.rax, regs.rdx, regs.rcx) == (0x6789_ABCD, 0x1_2345, 0xDEAD)
    assert regs.rip == site.address + 2


def test_rdtscp_reports_the_node_id_as_tsc_aux() -> None:
    regs = Regs(rcx=U64)
    NonVirtEmulator(1, 2, 3).emulate(_site(Kind.RDTSCP), regs, 5_000)
    assert (regs.rax, regs.rdx, regs.rcx, regs.rip) == (5_000, 0, 2, 0x401003)


def test_rdpid_gives_the_node_id() -> None:
    regs = Regs(r9=U64)
    NonVirtEmulator(1, 3, 4).emulate(_site(Kind.RDPID, "r9", 64, 5), regs, 0)
    assert regs.r9 == 3 and regs.rip == 0x401005


def test_cpuid_answers_from_the_virtual_model() -> None:
    regs = Regs(rax=(0xFFFF << 32) | 1, rbx=U64, rcx=U64, rdx=U64)
    NonVirtEmulator(1, 0, 1).emulate(_site(Kind.CPUID, length=2), regs, 0)
    assert (regs.rax, regs.rbx, regs.rcx, regs.rdx) == tuple(virtual_cpu.cpuid(1, 0))
    assert regs.rip == 0x401002


def test_xgetbv_reads_xcr0_and_faults_on_other_registers() -> None:
    regs = Regs(rax=U64, rdx=U64, rcx=0)
    assert NonVirtEmulator(1, 0, 1).emulate(_site(Kind.XGETBV), regs, 0) is None
    assert (regs.rax, regs.rdx) == (virtual_cpu.GUEST_XCR0, 0) == (3, 0)
    regs = Regs(rcx=1, rip=0x401000)
    fault = NonVirtEmulator(1, 0, 1).emulate(_site(Kind.XGETBV), regs, 0)
    assert fault == GuestFault(13, 11, "xgetbv of XCR1")
    assert regs.rip == 0x401000, "a faulting instruction must not advance rip"


@pytest.mark.parametrize(
    ("width", "before", "mask_kept"),
    [(64, U64, 0), (32, U64, 0), (16, U64, U64 ^ 0xFFFF)],
)
def test_rdrand_writes_its_operand_width_and_sets_only_cf(
    width: int, before: int, mask_kept: int
) -> None:
    interrupt_and_direction = (1 << 9) | (1 << 10)
    regs = Regs(rbx=before, rflags=0x2 | 0x8D5 | interrupt_and_direction)  # OF SF ZF AF PF CF
    emulator = NonVirtEmulator(7, 0, 1)
    emulator.emulate(_site(Kind.RDRAND, "rbx", width), regs, 0)
    drawn = regs.rbx & ((1 << width) - 1)
    assert regs.rbx == (before & mask_kept) | drawn
    assert regs.rflags == 0x2 | 0x1 | interrupt_and_direction
    assert emulator.rdrand.position == width // 8


def _draws(seed: int, node: int, kind: Kind, n: int = 4) -> list[int]:
    emulator = NonVirtEmulator(seed, node, 4)
    values = []
    for _ in range(n):
        regs = Regs()
        emulator.emulate(_site(kind, "rax"), regs, 0)
        values.append(regs.rax)
    return values


def test_rdrand_and_rdseed_are_seed_determined() -> None:
    assert _draws(1, 0, Kind.RDRAND) == _draws(1, 0, Kind.RDRAND)
    assert len(set(_draws(1, 0, Kind.RDRAND))) == 4
    assert _draws(2, 0, Kind.RDRAND) != _draws(1, 0, Kind.RDRAND)
    assert _draws(1, 1, Kind.RDRAND) != _draws(1, 0, Kind.RDRAND)
    assert _draws(1, 0, Kind.RDSEED) != _draws(1, 0, Kind.RDRAND)


def test_emulator_rejects_a_node_outside_the_cluster() -> None:
    with pytest.raises(ValueError, match="outside"):
        NonVirtEmulator(1, 3, 3)


@given(st.integers(0, U64), st.integers(0, U64), st.sampled_from([16, 32, 64]))
def test_register_writes_follow_x86_width_rules(before: int, value: int, width: int) -> None:
    regs = Regs(r12=before)
    write_register(regs, "r12", value, width)
    if width == 16:
        assert regs.r12 == (before & ~0xFFFF) | (value & 0xFFFF)
    else:
        assert regs.r12 == value & ((1 << width) - 1)


def test_glibc_cpuid_sites_all_emulate_to_the_fixed_model(guest_bin: GuestBin) -> None:
    """Whatever leaf a glibc startup cpuid asks for, the answer is the model's, not the host's."""
    sites = [s for s in find_sites(load_program(guest_bin("glibc", "hello")))
             if s.kind is Kind.CPUID]  # fmt: skip
    emulator = NonVirtEmulator(5, 0, 1)
    for site in sites:
        assert site.length == 2 and site.original == b"\x0f\xa2", site
        for leaf, subleaf in [(0, 0), (1, 0), (4, 1), (7, 0), (0xD, 0), (0x80000001, 0)]:
            regs = Regs(rax=leaf, rcx=subleaf, rip=site.address)
            assert emulator.emulate(site, regs, 0) is None
            assert (regs.rax, regs.rbx, regs.rcx, regs.rdx) == virtual_cpu.cpuid(leaf, subleaf)
            assert regs.rip == site.address + 2


def test_pause_advances_rip_and_asks_to_yield_changing_nothing_else() -> None:
    """The spin-wait hint's emulation: past the instruction, a SpinYield naming it (the
    kernel's switch point), every register and flag as it was."""
    regs = Regs(rax=7, rflags=0x246)
    outcome = NonVirtEmulator(1, 0, 1).emulate(_site(Kind.PAUSE, length=2), regs, 5_000)
    assert outcome == SpinYield(0x401000)
    assert regs == Regs(rax=7, rflags=0x246, rip=0x401002)


def test_pause_in_a_program_is_patched_but_an_unsure_one_refuses_nothing() -> None:
    """A decoded pause is a site; one in bytes that do not decode, or inside an immediate,
    is left alone (it runs natively, harmlessly) instead of refusing the program."""
    assert [s.kind for s in find_sites(_image(b"\xf3\x90\xc3", []))] == [Kind.PAUSE]
    assert find_sites(_image(b"\x06\x06\xf3\x90\xc3", [])) == []
    assert find_sites(_image(b"\xb8\xf3\x90\x00\x00\xc3", [])) == []
    assert scan_program(_image(b"\xb8\xf3\x90\x00\x00\xc3", []))[1] == []
