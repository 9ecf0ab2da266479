"""rt_sigframe set-up and rt_sigreturn (chaosreplay.kernel.signals.frame and fpstate):
round trips, placement rules, failures, and hostile frames that must never give a task
kernel-mode or non-canonical state."""

from __future__ import annotations

import struct
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st
from signal_memory import FakeMemory

from chaosreplay.kernel.signals import fpstate, frame
from chaosreplay.kernel.signals.actions import (
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESTORER,
    SA_SIGINFO,
    SigAction,
)
from chaosreplay.kernel.signals.altstack import DISABLED, SS_AUTODISARM, AltStack
from chaosreplay.kernel.signals.faults import PF, TrapInfo
from chaosreplay.kernel.signals.registers import (
    REGISTER_NAMES,
    RFLAGS_USER_ALWAYS,
    RFLAGS_USER_MASK,
    Registers,
)
from chaosreplay.kernel.signals.siginfo import SI_KERNEL, kill_info
from chaosreplay.kernel.signals.sigset import (
    SIGSEGV,
    SIGUSR1,
    SIGUSR2,
    UNBLOCKABLE,
    sigmask,
)

STACK_TOP = 0x7FFF_0000
STACK = (STACK_TOP - 0x20000, 0x20000)
HANDLER, RESTORER = 0x401000, 0x402000
ACTION = SigAction(HANDLER, SA_SIGINFO | SA_RESTORER, RESTORER, sigmask(SIGUSR2))
U64 = st.integers(0, 2**64 - 1)
USER_ADDR = st.integers(0, (1 << 47) - 1)


def memory() -> FakeMemory:
    mem = FakeMemory()
    mem.add(*STACK)
    return mem


def fpu_image(xmm: bytes, mxcsr: int = 0x1F80, fcw: int = 0x37F, st0: bytes = bytes(10)) -> bytes:
    """A canonical FPU image with the given XMM bytes (256), MXCSR, FCW and ST0."""
    image = bytearray(fpstate.INIT_IMAGE)
    image[fpstate.XMM_OFFSET:fpstate.LEGACY_END] = xmm
    struct.pack_into("<I", image, fpstate.MXCSR_OFFSET, mxcsr)
    struct.pack_into("<H", image, fpstate.FCW_OFFSET, fcw)
    image[fpstate.ST_OFFSET:fpstate.ST_OFFSET + 10] = st0
    return bytes(image)


registers = st.builds(
    Registers, **{name: U64 for name in REGISTER_NAMES if name not in ("rsp", "rip", "rflags")},
    rsp=st.integers(STACK[0] + 0x4000, STACK_TOP), rip=USER_ADDR,
    rflags=U64.map(lambda f: (f & RFLAGS_USER_MASK) | RFLAGS_USER_ALWAYS))
fpus = st.builds(fpu_image, st.binary(min_size=256, max_size=256),
                 st.integers(0, 0xFFFF), st.integers(0, 0xFFFF),
                 st.binary(min_size=10, max_size=10))
masks = st.integers(0, 2**64 - 1)


def deliver(mem: FakeMemory, regs: Registers, fpu: bytes, blocked: int = 0,
            action: SigAction = ACTION, stack: AltStack = DISABLED) -> frame.Delivery:
    delivery = frame.setup_frame(mem, regs, fpu, SIGUSR1, action,
                                 kill_info(SIGUSR1, 1000, 0), blocked, stack)
    assert delivery is not None
    return delivery


@settings(max_examples=300, deadline=None)
@given(registers, fpus, masks)
def test_sigreturn_gives_back_what_the_frame_saved(regs: Registers, fpu: bytes,
                                                   blocked: int) -> None:
    """Build a frame, return from the handler: registers, mask (never SIGKILL/SIGSTOP), FPU
    and altstack are what they were before the signal. (NT and ID come from the flags at
    the rt_sigreturn call, as on Linux: a handler that leaves them alone gets them back.)"""
    mem = memory()
    delivery = deliver(mem, regs, fpu, blocked & ~UNBLOCKABLE)
    assert delivery.fault is None
    back = frame.sigreturn(mem, Registers(rsp=delivery.frame + 8, rflags=regs.rflags),
                           delivery.fpu, delivery.blocked, delivery.altstack)
    assert back.fault is None
    assert back.regs == regs, (back.regs, regs)
    assert back.blocked == blocked & ~UNBLOCKABLE
    assert back.fpu == fpu
    assert back.altstack == DISABLED


def test_nt_and_id_are_not_taken_from_the_frame() -> None:
    """FIX_EFLAGS: a frame's NT and ID bits are ignored, the call's are kept."""
    mem = memory()
    regs = Registers(rsp=STACK_TOP - 0x100, rflags=0x204202)  # ID NT IF
    delivery = deliver(mem, regs, fpstate.INIT_IMAGE)
    back = frame.sigreturn(mem, Registers(rsp=delivery.frame + 8), delivery.fpu,
                           delivery.blocked, delivery.altstack)
    assert back.regs.rflags == 0x202


def test_the_handler_starts_with_its_arguments_a_fresh_fpu_and_its_mask() -> None:
    """rdi/rsi/rdx/rax/rip/rsp as Linux sets them, the other registers kept, DF/TF/RF
    cleared, the initial FPU state; the mask gains sa_mask and the signal itself."""
    regs = Registers(rbx=7, r12=9, rsp=STACK_TOP - 0x100, rip=0x400500,
                     rflags=0x10746)  # RF TF DF set
    delivery = deliver(memory(), regs, fpu_image(b"\x11" * 256), blocked=sigmask(3))
    h = delivery.regs
    assert (h.rdi, h.rsi, h.rdx, h.rax, h.rip, h.rsp) == (
        SIGUSR1, delivery.frame + frame.FRAME_INFO, delivery.frame + frame.FRAME_UC, 0,
        HANDLER, delivery.frame)
    assert (h.rbx, h.r12) == (7, 9)
    assert h.rflags == 0x246
    assert delivery.fpu == fpstate.INIT_IMAGE
    assert delivery.blocked == sigmask(3) | sigmask(SIGUSR2) | sigmask(SIGUSR1)
    assert (delivery.frame + 8) % 16 == 0
    nodefer = deliver(memory(), regs, fpstate.INIT_IMAGE,
                      action=replace(ACTION, flags=ACTION.flags | SA_NODEFER))
    assert nodefer.blocked == sigmask(SIGUSR2)


def test_the_frame_holds_linuxs_fields() -> None:
    """pretcode, uc_flags, the saved mask (sigsuspend's saved_mask when given), the trap
    record, the fpstate with both magics, and the siginfo only for SA_SIGINFO."""
    mem = memory()
    regs = Registers(rsp=STACK_TOP - 0x100, rip=0x400500)
    trap = TrapInfo(PF, 6, 0xDEAD000)
    delivery = frame.setup_frame(mem, regs, fpstate.INIT_IMAGE, SIGUSR1, ACTION,
                                 kill_info(SIGUSR1, 1000, 5), 0b1010, DISABLED, trap,
                                 saved_mask=0b100)
    assert delivery is not None
    fields = frame.read_frame(mem, delivery.frame)
    assert fields is not None
    assert (fields["pretcode"], fields["uc_flags"], fields["uc_sigmask"], fields["oldmask"]) == (
        RESTORER, 7, 0b100, 0b100)
    assert (fields["trapno"], fields["err"], fields["cr2"]) == (PF, 6, 0xDEAD000)
    assert (fields["cs"], fields["ss"], fields["gs"], fields["fs"]) == (0x33, 0x2B, 0, 0)
    assert fields["siginfo"] == kill_info(SIGUSR1, 1000, 5).pack()
    fp = int(fields["fpstate"])  # type: ignore[call-overload]
    assert fp % 64 == 0 and delivery.frame + frame.RT_SIGFRAME_SIZE <= fp
    assert fp + fpstate.sigframe_size() <= regs.rsp - frame.REDZONE
    sw = mem.read(fp + fpstate.SW_BYTES_OFFSET, 20) or b""
    assert struct.unpack("<IIQI", sw) == (fpstate.FP_XSTATE_MAGIC1, 580, 3, 576)
    assert mem.read(fp + 576, 4) == struct.pack("<I", fpstate.FP_XSTATE_MAGIC2)
    assert delivery.blocked == 0b1010 | sigmask(SIGUSR2) | sigmask(SIGUSR1)

    mem2 = FakeMemory()
    mem2.add(*STACK, fill=0xCC)  # without SA_SIGINFO the siginfo bytes are left alone
    plain = replace(ACTION, flags=SA_RESTORER)
    d2 = frame.setup_frame(mem2, regs, fpstate.INIT_IMAGE, SIGUSR1, plain,
                           kill_info(SIGUSR1, 1000, 5), 0, DISABLED)
    assert d2 is not None
    assert mem2.read(d2.frame + frame.FRAME_INFO, 128) == b"\xcc" * 128


def test_signals_that_cannot_get_a_frame_are_refused() -> None:
    """No SA_RESTORER, a stack the task cannot write, or an altstack the frame would leave:
    no frame (the caller forces SIGSEGV)."""
    regs = Registers(rsp=STACK_TOP - 0x100)
    no_restorer = replace(ACTION, flags=SA_SIGINFO)
    assert frame.setup_frame(memory(), regs, fpstate.INIT_IMAGE, SIGUSR1, no_restorer,
                             kill_info(SIGUSR1, 1, 0), 0, DISABLED) is None
    ro = FakeMemory()
    ro.add(*STACK, writable=False)
    assert frame.setup_frame(ro, regs, fpstate.INIT_IMAGE, SIGUSR1, ACTION,
                             kill_info(SIGUSR1, 1, 0), 0, DISABLED) is None
    assert frame.setup_frame(memory(), Registers(rsp=0x40), fpstate.INIT_IMAGE, SIGUSR1,
                             ACTION, kill_info(SIGUSR1, 1, 0), 0, DISABLED) is None
    small = AltStack(0x6000_0000, 768, 0)  # less than a frame and its FPU state
    mem = memory()
    mem.add(small.sp, small.size)
    onstack = replace(ACTION, flags=ACTION.flags | SA_ONSTACK)
    assert frame.frame_layout(regs.rsp, onstack.flags, small) is None
    assert frame.setup_frame(mem, regs, fpstate.INIT_IMAGE, SIGUSR1, onstack,
                             kill_info(SIGUSR1, 1, 0), 0, small) is None


def test_altstack_placement_nesting_and_autodisarm() -> None:
    """SA_ONSTACK switches to the top of the altstack; a signal arriving while on it nests
    below the current rsp (red zone included); SS_AUTODISARM drops the stack for the
    handler and rt_sigreturn brings it back; without SA_ONSTACK the stack is not used."""
    alt = AltStack(0x6000_0000, 0x10000, 0)
    mem = memory()
    mem.add(alt.sp, alt.size)
    onstack = replace(ACTION, flags=ACTION.flags | SA_ONSTACK)
    regs = Registers(rsp=STACK_TOP - 0x100)
    first = deliver(mem, regs, fpstate.INIT_IMAGE, action=onstack, stack=alt)
    top = alt.sp + alt.size
    assert top - 0x500 < first.frame < top and alt.contains(first.frame)
    nested = deliver(mem, first.regs, fpstate.INIT_IMAGE, action=onstack, stack=alt)
    assert nested.frame < first.frame - frame.REDZONE - fpstate.sigframe_size()
    assert alt.contains(nested.frame)
    normal = deliver(mem, regs, fpstate.INIT_IMAGE, stack=alt)
    assert STACK[0] < normal.frame < regs.rsp

    armed = replace(alt, flags=SS_AUTODISARM)
    d = deliver(mem, regs, fpstate.INIT_IMAGE, action=onstack, stack=armed)
    assert d.altstack == DISABLED
    back = frame.sigreturn(mem, Registers(rsp=d.frame + 8), d.fpu, d.blocked, d.altstack)
    assert back.fault is None and back.altstack == armed


def test_a_handler_outside_user_space_is_a_fault_not_a_register_set() -> None:
    """A handler address in the kernel half gives a Delivery with a SIGSEGV to force."""
    action = replace(ACTION, handler=0xFFFF_FFFF_8100_0000)
    delivery = frame.setup_frame(memory(), Registers(rsp=STACK_TOP - 0x100),
                                 fpstate.INIT_IMAGE, SIGUSR1, action,
                                 kill_info(SIGUSR1, 1, 0), 0, DISABLED)
    assert delivery is not None and delivery.fault is not None
    assert delivery.fault.signo == SIGSEGV and delivery.trap is not None
    assert delivery.trap.cr2 == 0xFFFF_FFFF_8100_0000


def test_a_frame_that_cannot_be_read_is_a_sigsegv_returning_zero() -> None:
    """rt_sigreturn with rsp pointing nowhere: SIGSEGV (SI_KERNEL), nothing restored, rax 0."""
    regs = Registers(rax=5, rsp=0x1000, rip=0x400000)
    back = frame.sigreturn(memory(), regs, fpstate.INIT_IMAGE, 0b11, DISABLED)
    assert back.fault is not None and (back.fault.signo, back.fault.code) == (SIGSEGV, SI_KERNEL)
    assert back.regs == replace(regs, rax=0) and back.blocked == 0b11


def test_legacy_and_null_fpstate_frames_restore_as_linux() -> None:
    """A null fpstate pointer gives the initial FPU state; an image without the software
    bytes is restored as FXSAVE; XSTATE_BV without x87 gives the x87 initial state;
    features beyond x87|SSE or a reserved header byte refuse the frame."""
    mem = memory()
    regs = Registers(rsp=STACK_TOP - 0x100, rip=0x400500)
    fpu = fpu_image(b"\x33" * 256, mxcsr=0x9F80, fcw=0x27F, st0=b"\x77" * 10)
    d = deliver(mem, regs, fpu)
    fields = frame.read_frame(mem, d.frame)
    assert fields is not None
    fp = int(fields["fpstate"])  # type: ignore[call-overload]
    sc_fp = d.frame + frame.FRAME_UC + frame.UC_MCONTEXT + frame.SC_FPSTATE
    snapshot = mem.read(fp, 580) or b""

    def back() -> frame.Sigreturn:
        return frame.sigreturn(mem, Registers(rsp=d.frame + 8), d.fpu, d.blocked, d.altstack)

    def reset() -> None:
        mem.write(fp, snapshot)
        mem.write(sc_fp, struct.pack("<Q", fp))

    mem.write(sc_fp, bytes(8))
    assert back().fpu == fpstate.INIT_IMAGE
    reset()
    mem.write(fp + fpstate.SW_BYTES_OFFSET, bytes(4))  # no magic1: FXRSTOR
    assert back().fpu == fpu
    reset()
    mem.write(fp + 576, bytes(4))  # no magic2: FXRSTOR too
    assert back().fpu == fpu
    reset()
    mem.write(fp + 512, struct.pack("<Q", 2))  # x87 not in XSTATE_BV: its initial state
    restored = back().fpu
    assert restored[fpstate.XMM_OFFSET:fpstate.LEGACY_END] == b"\x33" * 256
    assert restored[fpstate.ST_OFFSET:fpstate.ST_OFFSET + 10] == bytes(10)
    assert struct.unpack_from("<H", restored)[0] == fpstate.FCW_DEFAULT
    reset()
    mem.write(fp + fpstate.SW_BYTES_OFFSET + 8, struct.pack("<Q", 1))  # SSE not requested
    restored = back().fpu
    assert restored[fpstate.XMM_OFFSET:fpstate.LEGACY_END] == bytes(256)
    assert struct.unpack_from("<I", restored, fpstate.MXCSR_OFFSET)[0] == 0x1F80
    for at, value in ((512, struct.pack("<Q", 7)), (520, b"\x01"), (560, b"\x01")):
        reset()
        mem.write(fp + at, value)
        result = back()
        assert result.fault is not None and result.fpu == fpstate.INIT_IMAGE, at


REGION = frame.RT_SIGFRAME_SIZE + 640  # the frame and its FPU state above it


@settings(max_examples=400, deadline=None)
@given(registers, fpus, st.lists(st.tuples(st.integers(0, REGION - 8), U64), max_size=12),
       st.integers(0, 2**64 - 1))
def test_a_corrupted_frame_never_yields_kernel_or_noncanonical_state(
        regs: Registers, fpu: bytes, edits: list[tuple[int, int]], at_call: int) -> None:
    """Whatever a handler writes over its frame, rt_sigreturn gives either a fault to
    force, or registers user mode can hold: rip and rsp in the user half, rflags within
    the user bits with IF and bit 1 set, an FPU image with a valid MXCSR and only x87|SSE,
    and a mask without SIGKILL/SIGSTOP."""
    mem = memory()
    delivery = deliver(mem, regs, fpu)
    for offset, value in edits:
        mem.write(delivery.frame + offset, struct.pack("<Q", value))
    call_flags = (at_call & RFLAGS_USER_MASK) | RFLAGS_USER_ALWAYS
    back = frame.sigreturn(mem, Registers(rsp=delivery.frame + 8, rflags=call_flags),
                           delivery.fpu, delivery.blocked, delivery.altstack)
    assert back.regs.rflags & ~(RFLAGS_USER_MASK | RFLAGS_USER_ALWAYS) == 0
    assert back.regs.rflags & RFLAGS_USER_ALWAYS == RFLAGS_USER_ALWAYS
    assert back.blocked & UNBLOCKABLE == 0
    assert len(back.fpu) == fpstate.XSTATE_SIZE
    assert struct.unpack_from("<I", back.fpu, fpstate.MXCSR_OFFSET)[0] <= fpstate.MXCSR_VALID
    assert struct.unpack_from("<Q", back.fpu, 512)[0] == fpstate.GUEST_XFEATURES
    assert not any(back.fpu[520:])
    if back.fault is None:
        assert back.regs.rip < 1 << 47 and back.regs.rsp < 1 << 47
    else:  # the forced SIGSEGV's own frame is sane (or cannot be built: a fatal SIGSEGV)
        segv = frame.setup_frame(mem, back.regs, back.fpu, SIGSEGV, ACTION, back.fault,
                                 back.blocked, back.altstack)
        if segv is not None:
            assert segv.fault is None and segv.regs.rip == HANDLER
            assert segv.regs.rsp < 1 << 47
