"""The x86-64 rt_sigframe: building it for a handler, and rt_sigreturn reading it back.

Layout (arch/x86/include/asm/sigframe.h, uapi asm/ucontext.h, asm/sigcontext.h), from
the handler's rsp:

    +0    pretcode     sa_restorer: the handler's return address
    +8    ucontext     uc_flags, uc_link, uc_stack (stack_t), uc_mcontext (sigcontext, 256
                       bytes), uc_sigmask (8 bytes): 304 bytes
    +312  siginfo      128 bytes (written only for SA_SIGINFO handlers)
    ...   fpstate      the XSAVE image + MAGIC2, 64-byte aligned, above the frame

Placement (get_sigframe, align_sigframe): below the 128-byte red zone of the interrupted
stack, or at the top of the sigaltstack for SA_ONSTACK when not already on it; the FPU
state 64-byte aligned below that, the frame below it so that (rsp + 8) % 16 == 0 at the
handler's entry, as after a call. A frame that would leave the altstack it is on is not
written (Linux then kills with SIGSEGV).

Guest memory is reached through `GuestMemory` (read/write that fail on any byte the
guest could not access), so this module runs without a VM.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from typing import Protocol

from chaosreplay.kernel.signals import fpstate
from chaosreplay.kernel.signals.actions import (
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESTORER,
    SA_SIGINFO,
    SigAction,
)
from chaosreplay.kernel.signals.altstack import STACK_T_SIZE, AltStack, sigaltstack
from chaosreplay.kernel.signals.faults import (
    GP,
    PF_INSTR,
    PF_USER,
    TASK_SIZE_MAX,
    USER_VA_END,
    TrapInfo,
    page_fault,
)
from chaosreplay.kernel.signals.registers import (
    RFLAGS_AC,
    RFLAGS_AF,
    RFLAGS_CF,
    RFLAGS_DF,
    RFLAGS_OF,
    RFLAGS_PF,
    RFLAGS_RF,
    RFLAGS_SF,
    RFLAGS_TF,
    RFLAGS_ZF,
    U64_MAX,
    Registers,
    user_rflags,
)
from chaosreplay.kernel.signals.siginfo import SIGINFO_SIZE, SigInfo, kernel_info
from chaosreplay.kernel.signals.sigset import SIGSEGV, blockable, sigmask
from chaosreplay.vm.vmm import VDSO_ADDRESS

FRAME_PRETCODE = 0
FRAME_UC = 8
UC_FLAGS, UC_LINK, UC_STACK, UC_MCONTEXT, UC_SIGMASK = 0, 8, 16, 40, 296
UCONTEXT_SIZE = 304
FRAME_INFO = FRAME_UC + UCONTEXT_SIZE
RT_SIGFRAME_SIZE = FRAME_INFO + SIGINFO_SIZE  # 440

# struct sigcontext (64-bit): 17 u64 registers, then the rest at these offsets.
SIGCONTEXT_REGISTERS = ("r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15", "rdi", "rsi",
                        "rbp", "rbx", "rdx", "rax", "rcx", "rsp", "rip")
SC_EFLAGS, SC_CS, SC_GS, SC_FS, SC_SS = 136, 144, 146, 148, 150
SC_ERR, SC_TRAPNO, SC_OLDMASK, SC_CR2, SC_FPSTATE, SC_RESERVED = 152, 160, 168, 176, 184, 192
SIGCONTEXT_SIZE = 256
SIGCONTEXT_COPY_SIZE = SC_RESERVED  # what rt_sigreturn reads (not reserved1)
_SC_REGISTERS = struct.Struct("<17Q")

UC_FP_XSTATE, UC_SIGCONTEXT_SS, UC_STRICT_RESTORE_SS = 0x1, 0x2, 0x4
# What Linux sets for a 64-bit task on a CPU with XSAVE (frame_uc_flags).
UC_FLAGS_64 = UC_FP_XSTATE | UC_SIGCONTEXT_SS | UC_STRICT_RESTORE_SS
USER_CS, USER_DS = 0x33, 0x2B  # the selectors of CPL3 code (the same in the C core's GDT)
REDZONE = 128
# The flags a frame may change (FIX_EFLAGS): the arithmetic ones, TF, DF, AC and RF; the
# others keep the values they had at the rt_sigreturn call.
FIX_EFLAGS = (RFLAGS_AC | RFLAGS_OF | RFLAGS_DF | RFLAGS_TF | RFLAGS_SF | RFLAGS_ZF
              | RFLAGS_AF | RFLAGS_PF | RFLAGS_CF | RFLAGS_RF)
_HANDLER_CLEARS = RFLAGS_DF | RFLAGS_RF | RFLAGS_TF
NO_TRAP = TrapInfo()  # a thread that never faulted


class GuestMemory(Protocol):
    """The task's address space as the kernel reaches user memory."""

    def read(self, addr: int, n: int) -> bytes | None:
        """The n bytes at addr, or None if the guest could not read all of them."""

    def write(self, addr: int, data: bytes) -> bool:
        """Store data at addr; False if the guest could not write all of it."""


@dataclass(frozen=True)
class FrameLayout:
    """Where a frame goes: the rt_sigframe (the handler's rsp) and its FPU state."""

    frame: int
    fpstate: int


@dataclass(frozen=True)
class Delivery:
    """The task's state once a handler is entered.

    `fault` is set when entering the handler itself faults (its address is not in user
    space): the caller then forces that signal with these registers as the interrupted
    state, and never loads them."""

    regs: Registers
    fpu: bytes
    blocked: int
    altstack: AltStack
    frame: int
    fault: SigInfo | None = None
    trap: TrapInfo | None = None  # the thread's new trap record when `fault` is set


@dataclass(frozen=True)
class Sigreturn:
    """The task's state after rt_sigreturn.

    With `fault` set (a frame Linux refuses, or registers user mode cannot run with), the
    caller forces that signal (SIGSEGV) with `regs` as the interrupted state and never
    loads them; otherwise every field is safe to load as it is."""

    regs: Registers
    fpu: bytes
    blocked: int
    altstack: AltStack
    fault: SigInfo | None = None
    trap: TrapInfo | None = None  # the thread's new trap record, when the fault sets one


def _access_ok(addr: int, size: int) -> bool:
    """Linux's access_ok: the whole range lies below TASK_SIZE_MAX."""
    return addr >= 0 and addr + size <= TASK_SIZE_MAX


def frame_layout(sp: int, sa_flags: int, altstack: AltStack,
                 xstate_size: int = fpstate.XSTATE_SIZE) -> FrameLayout | None:
    """Where Linux puts the frame for a signal interrupting a task at `sp`, or None if it
    would overflow the altstack. `xstate_size` is the CPU's XSAVE size (576 in the VM;
    other values only to compare with a host)."""
    nested = altstack.is_on(sp)
    entering = False
    sp = (sp - REDZONE) & U64_MAX
    if sa_flags & SA_ONSTACK and altstack.status(sp) == 0:
        sp = (altstack.sp + altstack.size) & U64_MAX
        entering = True
    buf = ((sp - fpstate.sigframe_size(xstate_size)) & U64_MAX) & ~(fpstate.FPSTATE_ALIGN - 1)
    frame = ((((buf - RT_SIGFRAME_SIZE) & U64_MAX) & ~15) - 8) & U64_MAX
    if (nested or entering) and not altstack.contains(frame):
        return None
    return FrameLayout(frame, buf)


def _sigcontext(regs: Registers, trap: TrapInfo, mask: int, fpstate_addr: int) -> bytes:
    """The sigcontext Linux saves (__unsafe_setup_sigcontext), up to reserved1."""
    sc = bytearray(SIGCONTEXT_COPY_SIZE)
    _SC_REGISTERS.pack_into(sc, 0, *(getattr(regs, name) for name in SIGCONTEXT_REGISTERS))
    struct.pack_into("<QHHHHQQQQQ", sc, SC_EFLAGS, regs.rflags, USER_CS, 0, 0, USER_DS,
                     trap.error_code, trap.trapno, mask, trap.cr2, fpstate_addr)
    return bytes(sc)


def entry_fault(regs: Registers, trap: TrapInfo) -> tuple[SigInfo, TrapInfo] | None:
    """The fault returning to user mode with `regs` raises, or None. A rip outside user
    space faults on its first fetch (a #PF in the canonical upper half, a #GP if not
    canonical); an rsp outside it is refused at once with a #GP-like SIGSEGV (Linux would
    fault on the first stack access: a register set the C core cannot load either)."""
    if regs.rip >= USER_VA_END and not VDSO_ADDRESS <= regs.rip < VDSO_ADDRESS + 4096:
        # (the vDSO's page is the user's, like Linux's: a handler may interrupt a call
        # made from it; without a vDSO the page is not mapped and the fetch faults)
        if regs.rip >= (1 << 64) - USER_VA_END:  # canonical: a page the user cannot fetch
            return page_fault(regs.rip, PF_USER | PF_INSTR, mapped=False)
        return kernel_info(SIGSEGV), TrapInfo(GP, 0, trap.cr2)
    if regs.rsp >= USER_VA_END:
        return kernel_info(SIGSEGV), TrapInfo(GP, 0, trap.cr2)
    return None


def setup_frame(memory: GuestMemory, regs: Registers, fpu: bytes, signo: int,
                action: SigAction, info: SigInfo, blocked: int, altstack: AltStack,
                trap: TrapInfo = NO_TRAP, saved_mask: int | None = None) -> Delivery | None:
    """Write the frame for running `action`'s handler for `signo` and return the state
    the handler starts in, or None when Linux cannot set it up (no SA_RESTORER, altstack
    overflow, memory the task cannot write): the caller then forces SIGSEGV
    (SignalActions.force, fatal when `signo` is SIGSEGV itself).

    `regs`/`fpu`: the interrupted state (after the syscall-restart adjustment); `blocked`:
    the mask now; `saved_mask`: the one sigreturn restores if not `blocked` (sigsuspend,
    ppoll and pselect save the mask from before their temporary one); `trap`: the thread's
    last fault record. The new mask adds sa_mask and, without SA_NODEFER, the signal."""
    if not action.flags & SA_RESTORER:
        return None  # x86-64 Linux has no default restorer
    layout = frame_layout(regs.rsp, action.flags, altstack)
    if layout is None or not _access_ok(layout.fpstate, fpstate.sigframe_size()):
        return None
    if not _access_ok(layout.frame, RT_SIGFRAME_SIZE):
        return None
    if not memory.write(layout.fpstate, fpstate.frame_image(fpu)):
        return None
    old = memory.read(layout.frame, RT_SIGFRAME_SIZE)
    if old is None:
        return None
    mask = blocked if saved_mask is None else saved_mask
    frame = bytearray(old)  # Linux leaves padding, reserved1 and (without SA_SIGINFO)
    uc = FRAME_UC           # the siginfo as they were on the stack
    struct.pack_into("<Q", frame, FRAME_PRETCODE, action.restorer)
    struct.pack_into("<QQ", frame, uc + UC_FLAGS, UC_FLAGS_64, 0)
    struct.pack_into("<Q", frame, uc + UC_STACK, altstack.sp)
    struct.pack_into("<I", frame, uc + UC_STACK + 8, altstack.flags)
    struct.pack_into("<Q", frame, uc + UC_STACK + 16, altstack.size)
    sc = uc + UC_MCONTEXT
    frame[sc:sc + SIGCONTEXT_COPY_SIZE] = _sigcontext(regs, trap, mask, layout.fpstate)
    struct.pack_into("<Q", frame, uc + UC_SIGMASK, mask)
    if action.flags & SA_SIGINFO:
        frame[FRAME_INFO:RT_SIGFRAME_SIZE] = info.pack()
    if not memory.write(layout.frame, bytes(frame)):
        return None
    handler_regs = replace(regs, rdi=signo, rsi=layout.frame + FRAME_INFO,
                           rdx=layout.frame + FRAME_UC, rax=0, rip=action.handler,
                           rsp=layout.frame, rflags=regs.rflags & ~_HANDLER_CLEARS)
    new_blocked = blocked | action.mask
    if not action.flags & SA_NODEFER:
        new_blocked |= sigmask(signo)
    delivery = Delivery(handler_regs, fpstate.INIT_IMAGE, blockable(new_blocked),
                        altstack.after_delivery(), layout.frame)
    fault = entry_fault(handler_regs, trap)
    return replace(delivery, fault=fault[0], trap=fault[1]) if fault else delivery


def _bad_frame(regs: Registers, fpu: bytes, blocked: int, altstack: AltStack) -> Sigreturn:
    """A frame rt_sigreturn refuses: SIGSEGV (signal_fault), the call returning 0."""
    return Sigreturn(replace(regs, rax=0), fpu, blocked, altstack, kernel_info(SIGSEGV))


def sigreturn(memory: GuestMemory, regs: Registers, fpu: bytes, blocked: int,
              altstack: AltStack, trap: TrapInfo = NO_TRAP) -> Sigreturn:
    """rt_sigreturn for a task whose registers at the call are `regs`: the frame is at
    rsp - 8 (the handler's `ret` popped pretcode). In Linux's order: the mask (never
    SIGKILL/SIGSTOP), the registers (rflags only where FIX_EFLAGS allows, within the user
    bits; cs/ss stay the CPL3 selectors), the FPU state (sanitized, see fpstate.restore),
    the altstack (errors ignored, as Linux squashes them); rax comes from the frame. What
    was applied before a failing step stays applied, as on Linux."""
    frame = (regs.rsp - 8) & U64_MAX
    uc = frame + FRAME_UC
    if not _access_ok(frame, RT_SIGFRAME_SIZE):
        return _bad_frame(regs, fpu, blocked, altstack)
    raw_mask = memory.read(uc + UC_SIGMASK, 8)
    raw_flags = memory.read(uc + UC_FLAGS, 8)
    if raw_mask is None or raw_flags is None:
        return _bad_frame(regs, fpu, blocked, altstack)
    blocked = blockable(struct.unpack("<Q", raw_mask)[0])
    sc = memory.read(uc + UC_MCONTEXT, SIGCONTEXT_COPY_SIZE)
    if sc is None:
        return _bad_frame(regs, fpu, blocked, altstack)
    values = dict(zip(SIGCONTEXT_REGISTERS, _SC_REGISTERS.unpack_from(sc), strict=True))
    flags = struct.unpack_from("<Q", sc, SC_EFLAGS)[0]
    values["rflags"] = user_rflags((regs.rflags & ~FIX_EFLAGS) | (flags & FIX_EFLAGS))
    restored = Registers(**values)
    buf = struct.unpack_from("<Q", sc, SC_FPSTATE)[0]
    image = None
    if buf == 0 or _access_ok(buf, fpstate.sigframe_size()):
        image = fpstate.restore(memory.read, buf)
    if image is None:  # fpu__restore_sig failed: the FPU is reset, the frame refused
        return _bad_frame(restored, fpstate.INIT_IMAGE, blocked, altstack)
    raw_stack = memory.read(uc + UC_STACK, STACK_T_SIZE)
    if raw_stack is None:
        return _bad_frame(restored, image, blocked, altstack)
    new_stack = sigaltstack(altstack, raw_stack, restored.rsp)
    if isinstance(new_stack, AltStack):
        altstack = new_stack
    result = Sigreturn(restored, image, blocked, altstack)
    fault = entry_fault(restored, trap)
    return replace(result, fault=fault[0], trap=fault[1]) if fault else result


def read_frame(memory: GuestMemory, frame: int) -> dict[str, object] | None:
    """The fields of the rt_sigframe at `frame` (the handler's rsp), for tests and the
    debugger: pretcode, uc_flags, uc_link, uc_stack, registers, eflags, selectors,
    err/trapno/oldmask/cr2, fpstate, uc_sigmask and the siginfo bytes."""
    data = memory.read(frame, RT_SIGFRAME_SIZE)
    if data is None:
        return None
    uc, sc = FRAME_UC, FRAME_UC + UC_MCONTEXT
    fields: dict[str, object] = dict(zip(SIGCONTEXT_REGISTERS,
                                         _SC_REGISTERS.unpack_from(data, sc), strict=True))
    (fields["eflags"], fields["cs"], fields["gs"], fields["fs"], fields["ss"],
     fields["err"], fields["trapno"], fields["oldmask"], fields["cr2"],
     fields["fpstate"]) = struct.unpack_from("<QHHHHQQQQQ", data, sc + SC_EFLAGS)
    fields["pretcode"] = struct.unpack_from("<Q", data, FRAME_PRETCODE)[0]
    fields["uc_flags"], fields["uc_link"] = struct.unpack_from("<QQ", data, uc + UC_FLAGS)
    fields["uc_stack"] = struct.unpack_from("<QI4xQ", data, uc + UC_STACK)
    fields["uc_sigmask"] = struct.unpack_from("<Q", data, uc + UC_SIGMASK)[0]
    fields["siginfo"] = bytes(data[FRAME_INFO:RT_SIGFRAME_SIZE])
    return fields
