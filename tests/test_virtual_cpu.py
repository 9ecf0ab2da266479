"""The fixed virtual CPU model: a conservative x86-64-v2 Intel, the same on every host."""

from __future__ import annotations

import struct

from chaosreplay.vm import virtual_cpu
from chaosreplay.vm.virtual_cpu import MAX_BASIC_LEAF, MAX_EXTENDED_LEAF, cpuid, xgetbv

SSE4_2, POPCNT, XSAVE, OSXSAVE, AVX, RDRAND = 20, 23, 26, 27, 28, 30  # leaf 1 ECX bits


def test_vendor_and_signature() -> None:
    leaf0 = cpuid(0, 0)
    assert leaf0.eax == MAX_BASIC_LEAF
    assert struct.pack("<III", leaf0.ebx, leaf0.edx, leaf0.ecx) == b"GenuineIntel"
    eax = cpuid(1, 0).eax
    family, model = (eax >> 8) & 0xF, ((eax >> 16) & 0xF) << 4 | (eax >> 4) & 0xF
    assert (family, model) == (6, 0x1A)


def test_features_are_v2_without_avx_or_hardware_random() -> None:
    ecx = cpuid(1, 0).ecx
    assert all(ecx >> bit & 1 for bit in (SSE4_2, POPCNT, XSAVE, OSXSAVE))
    assert not ecx >> AVX & 1 and not ecx >> RDRAND & 1
    assert cpuid(7, 0) == virtual_cpu.ZERO  # no AVX2, BMI, RDSEED, ERMS...
    assert not cpuid(0x8000_0001, 0).edx >> 27 & 1  # no RDTSCP
    assert {"sse4_2", "popcnt", "cx16", "lahf_lm"} <= virtual_cpu.FEATURES


def test_xsave_state_matches_guest_xcr0() -> None:
    assert xgetbv(0) == virtual_cpu.GUEST_XCR0 == 3
    assert cpuid(0xD, 0).eax == 3 and cpuid(0xD, 0).ebx == 1664 + 1024  # room for any host
    assert xgetbv(1) is None and xgetbv(0x1_0000_0000) == 3  # only ECX's low 32 bits count


def test_cache_leaf_describes_one_core_with_four_caches() -> None:
    sizes = []
    for subleaf in range(5):
        r = cpuid(4, subleaf)
        if r.eax & 0x1F == 0:
            break
        ways, line, sets = (r.ebx >> 22) + 1, (r.ebx & 0xFFF) + 1, r.ecx + 1
        sizes.append((r.eax >> 5 & 7, ways * line * sets))
        assert r.eax >> 14 & 0xFFF == 0, "no cache is shared with another thread"
    assert sizes == [(1, 32768), (1, 32768), (2, 262144), (3, 8 << 20)]


def test_tsc_frequency_leaf_says_one_gigahertz() -> None:
    r = cpuid(0x15, 0)
    assert r.ecx * r.ebx // r.eax == virtual_cpu.TSC_HZ == 1_000_000_000
    assert cpuid(0x8000_0007, 0).edx >> 8 & 1, "invariant TSC"


def test_brand_string() -> None:
    regs = [reg for leaf in (0x8000_0002, 0x8000_0003, 0x8000_0004) for reg in cpuid(leaf, 0)]
    brand = struct.pack("<12I", *regs).rstrip(b"\0").decode()
    assert brand == virtual_cpu.BRAND


def test_out_of_range_leaves_return_the_highest_basic_leaf() -> None:
    """Intel SDM, CPUID: beyond the basic/extended maxima you get the highest basic leaf."""
    for subleaf in (0, 1, 2):
        top = cpuid(MAX_BASIC_LEAF, subleaf)
        assert cpuid(MAX_BASIC_LEAF + 1, subleaf) == top
        assert cpuid(0x4000_0000, subleaf) == top
        assert cpuid(MAX_EXTENDED_LEAF + 1, subleaf) == top
    assert cpuid(MAX_EXTENDED_LEAF, 0) != cpuid(MAX_BASIC_LEAF, 0)


def test_in_range_leaves_without_data_are_zero() -> None:
    assert cpuid(0xA, 0) == virtual_cpu.ZERO  # no PMU
    assert cpuid(0x8000_0005, 0) == virtual_cpu.ZERO


def test_all_values_are_32_bit() -> None:
    for leaf in [*range(MAX_BASIC_LEAF + 2), *range(0x8000_0000, MAX_EXTENDED_LEAF + 2)]:
        for subleaf in range(3):
            assert all(0 <= reg < 1 << 32 for reg in cpuid(leaf, subleaf)), hex(leaf)
