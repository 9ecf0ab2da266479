"""The FPU state in a signal frame: the XSAVE image a handler finds, and what rt_sigreturn
may load back from one (arch/x86/kernel/fpu/signal.c, Intel SDM vol. 1 ch. 10.5 and 13).

The guest's XCR0 is x87|SSE, so a task's FPU state is the 512-byte FXSAVE legacy area and
the 64-byte XSAVE header: 576 bytes, the C core's `vmm_task_context.fpu`. In a frame the
kernel adds, in the legacy area's software bytes (464..511), `struct _fpx_sw_bytes`
(magic1, extended_size, xfeatures, xstate_size), and FP_XSTATE_MAGIC2 right after the
image; both tell a reader the image is an XSAVE one of that size.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

FXSAVE_SIZE = 512
XSAVE_HEADER_SIZE = 64
XSTATE_SIZE = FXSAVE_SIZE + XSAVE_HEADER_SIZE  # 576: the user XSAVE size with XCR0 = 3
XFEATURE_FP, XFEATURE_SSE = 1, 2
GUEST_XFEATURES = XFEATURE_FP | XFEATURE_SSE
FP_XSTATE_MAGIC1 = 0x46505853  # "SXPF"
FP_XSTATE_MAGIC2 = 0x46505845  # "EXPF"
MAGIC2_SIZE = 4
SW_BYTES_OFFSET = 464
_SW_BYTES = struct.Struct("<IIQI28x")  # magic1, extended_size, xfeatures, xstate_size
FPSTATE_ALIGN = 64  # XSAVE needs a 64-byte aligned buffer

FCW_OFFSET, FSW_OFFSET, FTW_OFFSET, MXCSR_OFFSET = 0, 2, 4, 24
ST_OFFSET, XMM_OFFSET, LEGACY_END = 32, 160, 416
FCW_DEFAULT, MXCSR_DEFAULT = 0x037F, 0x1F80  # Linux's (and the CPU's) initial values
MXCSR_VALID = 0xFFFF  # the bits the CPU accepts (MXCSR_MASK with DAZ); others raise #GP


def init_image() -> bytes:
    """The FPU state a handler starts with (fpu__clear_user_states): x87 and SSE at their
    initial values, both marked present in XSTATE_BV so loading it sets them."""
    image = bytearray(XSTATE_SIZE)
    struct.pack_into("<H", image, FCW_OFFSET, FCW_DEFAULT)
    struct.pack_into("<I", image, MXCSR_OFFSET, MXCSR_DEFAULT)
    struct.pack_into("<Q", image, FXSAVE_SIZE, GUEST_XFEATURES)
    return bytes(image)


INIT_IMAGE = init_image()


def sigframe_size(xstate_size: int = XSTATE_SIZE) -> int:
    """Bytes the FPU state takes in a frame: the image and MAGIC2 (xstate_sigframe_size)."""
    return xstate_size + MAGIC2_SIZE


def frame_image(fpu: bytes) -> bytes:
    """What the kernel writes at a frame's fpstate for a task whose state is `fpu` (576
    bytes): the image as XSAVE stores it (a cleared header whose XSTATE_BV always has
    x87|SSE, so a program that edits only the legacy area gets its edits back), the
    software bytes, and MAGIC2 after it."""
    if len(fpu) != XSTATE_SIZE:
        raise ValueError(f"an FPU image is {XSTATE_SIZE} bytes, not {len(fpu)}")
    image = bytearray(fpu)
    in_use = struct.unpack_from("<Q", image, FXSAVE_SIZE)[0] & GUEST_XFEATURES
    image[FXSAVE_SIZE:] = bytes(XSAVE_HEADER_SIZE)
    struct.pack_into("<Q", image, FXSAVE_SIZE, in_use | GUEST_XFEATURES)
    _SW_BYTES.pack_into(image, SW_BYTES_OFFSET, FP_XSTATE_MAGIC1, sigframe_size(),
                        GUEST_XFEATURES, XSTATE_SIZE)
    return bytes(image) + struct.pack("<I", FP_XSTATE_MAGIC2)


def _canonical(legacy: bytes, x87: bool, sse: bool, mxcsr: int) -> bytes:
    """A 576-byte image holding the x87 part of `legacy` (or its init state), the XMM part
    (or zeros) and `mxcsr`, with every reserved byte zero and both components present."""
    image = bytearray(INIT_IMAGE)
    if x87:
        image[0:4] = legacy[0:4]  # fcw, fsw
        image[FTW_OFFSET] = legacy[FTW_OFFSET]  # abridged tag; byte 5 is reserved
        image[6:MXCSR_OFFSET] = legacy[6:MXCSR_OFFSET]  # fop, fip, fdp
        for slot in range(8):  # 10-byte registers in 16-byte slots
            at = ST_OFFSET + 16 * slot
            image[at:at + 10] = legacy[at:at + 10]
    if sse:
        image[XMM_OFFSET:LEGACY_END] = legacy[XMM_OFFSET:LEGACY_END]
    struct.pack_into("<I", image, MXCSR_OFFSET, mxcsr)
    return bytes(image)


def restore(read: Callable[[int, int], bytes | None], buf: int) -> bytes | None:
    """The FPU state rt_sigreturn loads from a frame's fpstate pointer `buf`, or None when
    Linux would fail the frame (fault, or the #GP an XRSTOR/FXRSTOR of it raises).

    As fpu__restore_sig with XCR0 = x87|SSE: a null pointer gives the initial state; bad
    software bytes or a missing MAGIC2 mean a legacy (FXRSTOR) image; otherwise XRSTOR
    with the features the software bytes name, where a component not named, or named but
    absent from XSTATE_BV, comes back in its initial state (MXCSR is loaded whenever SSE
    is named). Stricter than the CPU in one place: any nonzero byte in the header past
    XSTATE_BV is refused, as the compacted form and future fields are not emulated."""
    if buf == 0:
        return INIT_IMAGE
    legacy = read(buf, FXSAVE_SIZE)
    if legacy is None:
        return None
    magic1, extended, xfeatures, xstate_size = _SW_BYTES.unpack_from(legacy, SW_BYTES_OFFSET)
    # check_xstate_in_sigframe: the size must be the task's own, within extended_size
    xsave = magic1 == FP_XSTATE_MAGIC1 and xstate_size == XSTATE_SIZE <= extended
    if xsave:
        magic2 = read(buf + xstate_size, MAGIC2_SIZE)
        if magic2 is None:
            return None
        xsave = struct.unpack("<I", magic2)[0] == FP_XSTATE_MAGIC2
    mxcsr = struct.unpack_from("<I", legacy, MXCSR_OFFSET)[0]
    if not xsave:  # FXRSTOR of the legacy area: x87, XMM and MXCSR from memory
        return None if mxcsr & ~MXCSR_VALID else _canonical(legacy, True, True, mxcsr)
    header = read(buf + FXSAVE_SIZE, XSAVE_HEADER_SIZE)
    if header is None:
        return None
    xstate_bv = struct.unpack_from("<Q", header)[0]
    if xstate_bv & ~GUEST_XFEATURES or any(header[8:]):
        return None  # XRSTOR #GP: a feature XCR0 lacks, or a reserved/compacted header
    requested = xfeatures & GUEST_XFEATURES
    if requested & XFEATURE_SSE:
        if mxcsr & ~MXCSR_VALID:
            return None
    else:
        mxcsr = MXCSR_DEFAULT
    present = requested & xstate_bv
    return _canonical(legacy, bool(present & XFEATURE_FP), bool(present & XFEATURE_SSE), mxcsr)
