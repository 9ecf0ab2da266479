"""The fixed virtual CPU every node sees through cpuid and xgetbv, on every host.

Static glibc picks its string/memory routines (ifuncs) and its copy thresholds from cpuid
at startup. On this KVM cpuid cannot be trapped, so chaosreplay patches each cpuid to ud2
and answers from this table instead; a recording made on one host then replays on any
other, and the guest's choices never depend on the host.

The model is a conservative x86-64-v2 Intel CPU ("GenuineIntel", family 6 model 0x1A,
a Nehalem signature, whose feature set is exactly v2):

- SSE, SSE2, SSE3, SSSE3, SSE4.1, SSE4.2, POPCNT, CMPXCHG16B, LAHF/SAHF, CMOV, CX8,
  FXSR, MMX, CLFLUSH, TSC, SYSCALL, NX, long mode. Every x86-64 host that can run KVM
  has these, so code that believes the model also runs natively on the host.
- XSAVE and OSXSAVE are advertised with XCR0 = x87|SSE (GUEST_XCR0 = 3). AVX is not
  advertised, and on hardware KVM the real XCR0 is set to 3, so an AVX instruction raises
  #UD. On this host's nested PVM the real XCR0 cannot be set (guest user code runs under
  the host's): AVX instructions a program runs without asking cpuid work there, and an
  XSAVE writes the host's components (see XSAVE_AREA_BYTES). Programs that follow cpuid
  (every libc and runtime) never go there.
- RDRAND, RDSEED, RDTSCP, RDPID are *not* advertised. chaosreplay still emulates them when
  a program executes them (every site is patched), but well-behaved libraries then fall
  back to getrandom(2) and clock_gettime(2), which the VMM sees as ordinary system calls.
- Invariant TSC at 1 GHz (leaf 0x80000007, leaves 0x15/0x16), matching the virtual TSC of
  chaosreplay.vm.nonvirt (tsc = virtual ns).
- One core, one thread: leaves 4 (32 KiB L1d/L1i, 256 KiB L2, 8 MiB L3), 0xB and 0x1F.
  Leaf 2 says "see leaf 4" (descriptor 0xFF), which is how glibc finds cache sizes.
- No PMU (leaf 0xA is zero), as on this host.

Leaves up to MAX_BASIC_LEAF and from 0x80000000 to MAX_EXTENDED_LEAF are answered from
the table (zero when the model has nothing to say). Any other leaf is out of range and,
as the Intel SDM specifies for CPUID, returns the data of the highest basic leaf.
"""

from __future__ import annotations

from typing import NamedTuple


class CpuidResult(NamedTuple):
    """The four 32-bit registers one cpuid returns."""

    eax: int
    ebx: int
    ecx: int
    edx: int


ZERO = CpuidResult(0, 0, 0, 0)

GUEST_XCR0 = 0x3
"""XCR0 the model reports and the VMM must load into the vCPU: x87 (bit 0) | SSE (bit 1)."""

GUEST_CR4_FPU_BITS = (1 << 9) | (1 << 10) | (1 << 18)
"""CR4 bits the VMM must set for the model: OSFXSR, OSXMMEXCPT (SSE usable) and OSXSAVE
(xgetbv/xsave usable, so XCR0 can be set to GUEST_XCR0). FSGSBASE stays clear."""

TSC_HZ = 1_000_000_000
"""Rate of the virtual TSC: 1 GHz, so the TSC equals the node's virtual time in ns."""

MAX_BASIC_LEAF = 0x1F
MAX_EXTENDED_LEAF = 0x8000_0008
_EXTENDED_BASE = 0x8000_0000

VENDOR = "GenuineIntel"
BRAND = "chaosreplay virtual CPU @ 1.00GHz"
FAMILY, MODEL, STEPPING = 6, 0x1A, 5

# Leaf 1 feature bits.
_ECX1 = {"sse3": 0, "ssse3": 9, "cx16": 13, "sse4_1": 19, "sse4_2": 20, "popcnt": 23,
         "xsave": 26, "osxsave": 27}  # fmt: skip
_EDX1 = {"fpu": 0, "tsc": 4, "cx8": 8, "cmov": 15, "clflush": 19, "mmx": 23, "fxsr": 24,
         "sse": 25, "sse2": 26}  # fmt: skip
# Leaf 0x80000001 feature bits.
_ECX_EXT1 = {"lahf_lm": 0}
_EDX_EXT1 = {"syscall": 11, "nx": 20, "lm": 29}

FEATURES = frozenset([*_ECX1, *_EDX1, *_ECX_EXT1, *_EDX_EXT1])
"""Names (as in /proc/cpuinfo) of every feature the model advertises."""

_CACHE_LINE = 64
# (type: 1 data, 2 instruction, 3 unified; level; size in bytes; ways) for leaf 4.
_CACHES = (
    (1, 1, 32 * 1024, 8),
    (2, 1, 32 * 1024, 8),
    (3, 2, 256 * 1024, 8),
    (3, 3, 8 * 1024 * 1024, 16),
)


def _bits(table: dict[str, int]) -> int:
    value = 0
    for bit in table.values():
        value |= 1 << bit
    return value


def _string_regs(text: str, width: int) -> list[int]:
    """A string as little-endian 32-bit register values, zero-padded to width bytes."""
    data = text.encode("ascii").ljust(width, b"\0")
    return [int.from_bytes(data[i : i + 4], "little") for i in range(0, width, 4)]


def _signature() -> int:
    """Leaf 1 EAX: stepping, model (low 4 bits + extended model), family."""
    return STEPPING | (MODEL & 0xF) << 4 | FAMILY << 8 | (MODEL >> 4) << 16


def _cache_leaf(subleaf: int) -> CpuidResult:
    """Leaf 4, deterministic cache parameters; one core, so nothing is shared."""
    if subleaf >= len(_CACHES):
        return ZERO  # cache type 0: no more caches
    kind, level, size, ways = _CACHES[subleaf]
    sets = size // (ways * _CACHE_LINE)
    eax = kind | level << 5 | 1 << 8  # self-initialising; sharing/core fields 0 = one
    ebx = (ways - 1) << 22 | (_CACHE_LINE - 1)
    return CpuidResult(eax, ebx, sets - 1, 0)


def _topology_leaf(subleaf: int) -> CpuidResult:
    """Leaves 0xB and 0x1F: one thread (SMT level) in one core (core level), x2APIC id 0."""
    if subleaf == 0:
        return CpuidResult(0, 1, 1 << 8, 0)
    if subleaf == 1:
        return CpuidResult(0, 1, 1 | 2 << 8, 0)
    return CpuidResult(0, 0, subleaf & 0xFF, 0)


XSAVE_AREA_BYTES = 2688
"""What leaf 0xD reports as the XSAVE area's size: where the standard layout's AVX-512
components end (Hi16_ZMM: offset 1664 + 1024), not the 576 bytes x87|SSE need. Where the
real XCR0 cannot be set (this host's PVM runs guest user code under the host's XCR0), an
XSAVE writes every host-enabled component the mask asks for; glibc's lazy-binding
trampoline sizes its stack buffer from this leaf and saves with mask 0xee, so a buffer of
576 bytes would be overrun. Reporting the room of the largest such save keeps every host
and hardware KVM (XCR0 = 3, 576 bytes written) safe with one fixed answer."""


def _xsave_leaf(subleaf: int) -> CpuidResult:
    """Leaf 0xD: XCR0 = x87|SSE, an XSAVE area reported as XSAVE_AREA_BYTES."""
    if subleaf == 0:
        return CpuidResult(GUEST_XCR0, XSAVE_AREA_BYTES, XSAVE_AREA_BYTES, 0)
    return ZERO  # subleaf 1: no XSAVEOPT/XSAVEC/XGETBV1/XSAVES; no further components


_VENDOR_REGS = _string_regs(VENDOR, 12)
_BRAND_REGS = _string_regs(BRAND, 48)

_FIXED: dict[int, CpuidResult] = {
    0: CpuidResult(MAX_BASIC_LEAF, _VENDOR_REGS[0], _VENDOR_REGS[2], _VENDOR_REGS[1]),
    1: CpuidResult(_signature(), (_CACHE_LINE // 8) << 8 | 1 << 16, _bits(_ECX1), _bits(_EDX1)),
    2: CpuidResult(0x0000_FF01, 0, 0, 0),  # one iteration; descriptor 0xFF: use leaf 4
    0x15: CpuidResult(1, 40, 25_000_000, 0),  # TSC = 25 MHz crystal x 40 / 1 = 1 GHz
    0x16: CpuidResult(1000, 1000, 100, 0),  # base/max MHz, bus MHz
    _EXTENDED_BASE: CpuidResult(MAX_EXTENDED_LEAF, 0, 0, 0),
    _EXTENDED_BASE + 1: CpuidResult(0, 0, _bits(_ECX_EXT1), _bits(_EDX_EXT1)),
    _EXTENDED_BASE + 2: CpuidResult(*_BRAND_REGS[0:4]),
    _EXTENDED_BASE + 3: CpuidResult(*_BRAND_REGS[4:8]),
    _EXTENDED_BASE + 4: CpuidResult(*_BRAND_REGS[8:12]),
    _EXTENDED_BASE + 6: CpuidResult(0, 0, (256 << 16) | (6 << 12) | _CACHE_LINE, 0),
    _EXTENDED_BASE + 7: CpuidResult(0, 0, 0, 1 << 8),  # invariant TSC
    _EXTENDED_BASE + 8: CpuidResult(48 << 8 | 39, 0, 0, 0),  # 48-bit virtual, 39-bit physical
}

_BY_SUBLEAF = {4: _cache_leaf, 0xB: _topology_leaf, 0xD: _xsave_leaf, 0x1F: _topology_leaf}


def _in_range(leaf: int) -> bool:
    return leaf <= MAX_BASIC_LEAF or _EXTENDED_BASE <= leaf <= MAX_EXTENDED_LEAF


def cpuid(leaf: int, subleaf: int) -> CpuidResult:
    """What cpuid returns on the virtual CPU for EAX=leaf, ECX=subleaf (both 32-bit)."""
    leaf &= 0xFFFF_FFFF
    subleaf &= 0xFFFF_FFFF
    if not _in_range(leaf):
        leaf = MAX_BASIC_LEAF  # Intel SDM: out-of-range leaves return the highest basic leaf
    if leaf in _BY_SUBLEAF:
        return _BY_SUBLEAF[leaf](subleaf)
    return _FIXED.get(leaf, ZERO)


def xgetbv(index: int) -> int | None:
    """XCR[index] of the virtual CPU, or None where real hardware raises #GP."""
    # Only XCR0 exists: XCR1 (XINUSE) needs XGETBV1, which leaf 0xD does not advertise.
    return GUEST_XCR0 if index & 0xFFFF_FFFF == 0 else None
