"""chaosreplay.kernel.signals against the real x86-64 ABI of this machine.

tests/programs/signal_abi.c runs natively and prints struct offsets (glibc's view of the
kernel structures), the rt_sigframe bytes real handlers receive, the registers they start
with, the siginfo of faults, children and queued signals, and what rt_sigreturn did with
edited frames. Each test rebuilds the same thing with the modules and compares.
"""

from __future__ import annotations

import functools
import struct
import subprocess

import program_cache
import pytest
from signal_memory import FakeMemory

from chaosreplay.kernel.signals import actions, altstack, faults, fpstate, frame, siginfo
from chaosreplay.kernel.signals.actions import (
    SA_NODEFER,
    SA_ONSTACK,
    SA_RESTORER,
    SA_SIGINFO,
    SigAction,
    SignalActions,
)
from chaosreplay.kernel.signals.queue import SignalQueue
from chaosreplay.kernel.signals.registers import REGISTER_NAMES, RFLAGS_RF, Registers
from chaosreplay.kernel.signals.sigset import SIGKILL, SIGUSR1, SIGUSR2, sigmask

U64 = (1 << 64) - 1
SOURCE = "signal_abi.c"


@functools.cache
def native() -> dict[str, object]:
    """What the probe printed, by key (numbers as u64 where negative; frames as bytes)."""
    path = program_cache.built(SOURCE, "glibc")
    result = subprocess.run([str(path)], capture_output=True, text=True, timeout=60,
                            check=False)
    assert result.returncode == 0, result.stderr
    values: dict[str, object] = {"order": []}
    for line in result.stdout.splitlines():
        key, _, rest = line.rpartition(" ")  # keys may hold spaces ("struct sigcontext")
        if key.startswith("order "):
            values["order"].append(tuple(int(x) for x in line.split()[1:]))  # type: ignore[union-attr]
        elif key.endswith(".frame"):
            values[key] = bytes.fromhex(rest)
        else:
            values[key] = int(rest)
    return values


def n(key: str) -> int:
    """A printed number, as the u64 it was."""
    return int(native()[key]) & U64  # type: ignore[call-overload]


def offset(struct_field: str) -> int:
    return n(f"offsetof.{struct_field}")


def offsets(struct_name: str, *fields: str) -> list[int]:
    return [offset(f"{struct_name}.{field}") for field in fields]


def test_siginfo_fields_are_where_glibc_has_them() -> None:
    """Every SigInfo kind puts each field at glibc's offsetof, in a 128-byte siginfo_t."""
    assert n("sizeof.siginfo_t") == siginfo.SIGINFO_SIZE

    def at(info: siginfo.SigInfo, value: int, width: int) -> int:
        return info.pack().index(value.to_bytes(width, "little"))

    kill = siginfo.kill_info(10, 0x11223344, 0x55667788)
    assert at(kill, 0x11223344, 4) == offset("siginfo_t.si_pid")
    assert at(kill, 0x55667788, 4) == offset("siginfo_t.si_uid")
    assert struct.unpack_from("<iii", kill.pack()) == (10, 0, siginfo.SI_USER)
    assert offset("siginfo_t.si_errno") == 4 and offset("siginfo_t.si_code") == 8
    queued = siginfo.queue_info(40, 1, 2, 0x0102030405060708)
    assert at(queued, 0x0102030405060708, 8) == offset("siginfo_t.si_value")
    timer = siginfo.timer_info(34, 0x21212121, 0x31313131, 0x4141414141414141)
    assert at(timer, 0x21212121, 4) == offset("siginfo_t.si_timerid")
    assert at(timer, 0x31313131, 4) == offset("siginfo_t.si_overrun")
    assert at(timer, 0x4141414141414141, 8) == offset("siginfo_t.si_value")
    child = siginfo.child_info(1, 7, 8, 0x7A7A7A7A, 0x1234 * 10**7, 0x5678 * 10**7)
    assert at(child, 0x7A7A7A7A, 4) == offset("siginfo_t.si_status")
    assert at(child, 0x1234, 8) == offset("siginfo_t.si_utime")
    assert at(child, 0x5678, 8) == offset("siginfo_t.si_stime")
    fault = siginfo.fault_info(11, siginfo.SEGV_MAPERR, 0x0F0E0D0C0B0A0908)
    assert at(fault, 0x0F0E0D0C0B0A0908, 8) == offset("siginfo_t.si_addr")
    poll = siginfo.poll_info(29, siginfo.POLL_IN, 0x6161616161616161, 0x71717171)
    assert at(poll, 0x6161616161616161, 8) == offset("siginfo_t.si_band")
    assert at(poll, 0x71717171, 4) == offset("siginfo_t.si_fd")
    # the union's end: the last field the kernel keeps ends at 48, the rest is zero
    assert offset("siginfo_t.si_stime") + 8 == siginfo.KERNEL_SIGINFO_SIZE
    assert offset("siginfo_t.si_upper") + 8 == siginfo.KERNEL_SIGINFO_SIZE


def test_ucontext_and_sigcontext_offsets_are_glibcs() -> None:
    """The frame's ucontext and sigcontext fields sit where glibc's ucontext_t has them."""
    uc = offsets("ucontext_t", "uc_flags", "uc_link", "uc_stack", "uc_mcontext", "uc_sigmask")
    assert uc == [frame.UC_FLAGS, frame.UC_LINK, frame.UC_STACK, frame.UC_MCONTEXT,
                  frame.UC_SIGMASK]
    assert frame.UCONTEXT_SIZE == frame.UC_SIGMASK + 8  # the kernel's sigset_t: 8 bytes
    assert frame.SIGCONTEXT_SIZE == n("sizeof.struct sigcontext") == n("sizeof.mcontext_t")
    for i, name in enumerate(frame.SIGCONTEXT_REGISTERS):
        assert 8 * i == offset(f"struct sigcontext.{name}"), name
    assert frame.SC_EFLAGS == offset("struct sigcontext.eflags") == 8 * n("const.REG_EFL")
    assert offsets("struct sigcontext", "cs", "gs", "fs", "__pad0") == [
        frame.SC_CS, frame.SC_GS, frame.SC_FS, frame.SC_SS]
    assert offsets("struct sigcontext", "err", "trapno", "oldmask", "cr2", "fpstate",
                   "__reserved1") == [frame.SC_ERR, frame.SC_TRAPNO, frame.SC_OLDMASK,
                                      frame.SC_CR2, frame.SC_FPSTATE, frame.SC_RESERVED]
    assert offset("mcontext_t.fpregs") == frame.SC_FPSTATE
    assert [8 * n(f"const.REG_{r}") for r in ("R8", "RDI", "RSP", "RIP", "CSGSFS", "ERR",
                                               "TRAPNO", "OLDMASK", "CR2")] == [
        0, 64, 120, 128, frame.SC_CS, frame.SC_ERR, frame.SC_TRAPNO, frame.SC_OLDMASK,
        frame.SC_CR2]
    assert n("sizeof.stack_t") == altstack.STACK_T_SIZE
    assert [offset(f"stack_t.{f}") for f in ("ss_sp", "ss_flags", "ss_size")] == [0, 8, 16]


def test_fpstate_layout_is_the_fxsave_and_xsave_one() -> None:
    """The legacy area, the software bytes and the XSAVE header are where glibc says."""
    assert fpstate.FXSAVE_SIZE == n("sizeof.struct _libc_fpstate") == n("sizeof.struct _fpstate")
    assert offsets("struct _libc_fpstate", "cwd", "swd", "ftw", "mxcsr", "_st", "_xmm") == [
        fpstate.FCW_OFFSET, fpstate.FSW_OFFSET, fpstate.FTW_OFFSET, fpstate.MXCSR_OFFSET,
        fpstate.ST_OFFSET, fpstate.XMM_OFFSET]
    assert offset("struct _fpstate.__glibc_reserved1") == fpstate.LEGACY_END
    assert offset("struct _xstate.xstate_hdr") == fpstate.FXSAVE_SIZE
    assert n("sizeof.struct _xsave_hdr") == fpstate.XSAVE_HEADER_SIZE
    sw = fpstate._SW_BYTES
    assert sw.size == n("sizeof.struct _fpx_sw_bytes")
    assert fpstate.SW_BYTES_OFFSET + sw.size == fpstate.FXSAVE_SIZE
    assert [offset(f"struct _fpx_sw_bytes.{f}") for f in (
        "magic1", "extended_size", "xstate_bv", "xstate_size")] == [0, 4, 8, 16]
    assert fpstate.FP_XSTATE_MAGIC1 == n("const.FP_XSTATE_MAGIC1") == n("usr1.magic1")
    assert fpstate.FP_XSTATE_MAGIC2 == n("const.FP_XSTATE_MAGIC2") == n("usr1.magic2")


def test_constants_match_the_c_headers() -> None:
    """SA_*, SS_*, SI_* and the fault/child codes have the values the headers give them."""
    for name in ("SA_SIGINFO", "SA_ONSTACK", "SA_RESTART", "SA_NODEFER", "SA_RESETHAND",
                 "SA_NOCLDSTOP", "SA_NOCLDWAIT"):
        assert getattr(actions, name) == n(f"const.{name}"), name
    assert [n("const.SS_ONSTACK"), n("const.SS_DISABLE")] == [altstack.SS_ONSTACK,
                                                              altstack.SS_DISABLE]
    for name in ("SI_USER", "SI_KERNEL", "SI_QUEUE", "SI_TIMER", "SI_TKILL", "SEGV_MAPERR",
                 "SEGV_ACCERR", "BUS_ADRERR", "ILL_ILLOPN", "FPE_INTDIV", "TRAP_BRKPT",
                 "CLD_EXITED", "CLD_KILLED", "CLD_DUMPED"):
        assert getattr(siginfo, name) & U64 == n(f"const.{name}"), name


def test_rt_sigaction_keeps_and_reports_what_linux_does() -> None:
    """An unknown flag (SA_UNSUPPORTED) is dropped, SIGKILL leaves sa_mask, SIGKILL's action
    can be read but not set."""
    table = SignalActions()
    mask = sigmask(SIGUSR2) | sigmask(SIGKILL)
    table.sigaction(SIGUSR1, SigAction(0x401000, SA_SIGINFO | actions.SA_UNSUPPORTED
                                       | SA_RESTORER, 0x402000, mask))
    reported = table.sigaction(SIGUSR1, None)
    assert isinstance(reported, actions.ActionChange)
    assert reported.old.flags == n("ksigaction.flags")
    assert reported.old.mask == n("ksigaction.mask")
    assert isinstance(table.sigaction(SIGKILL, None), actions.ActionChange)
    assert n("ksigaction.kill_read") == 0
    assert table.sigaction(SIGKILL, SigAction(0x401000)) == -22
    assert n("ksigaction.kill_set") == U64  # -1 (EINVAL)


def native_regs(key: str) -> tuple[Registers, dict[str, object]]:
    """The interrupted registers a native frame saved, and all its fields."""
    memory = FakeMemory()
    memory.regions.append((0x1000, bytearray(native()[f"{key}.frame"]), False))  # type: ignore[arg-type]
    fields = frame.read_frame(memory, 0x1000)
    assert fields is not None
    values = {name: int(fields[name]) for name in REGISTER_NAMES  # type: ignore[call-overload]
              if name not in ("rflags",)}
    return Registers(**values, rflags=int(fields["eflags"])), fields  # type: ignore[call-overload]


def test_a_handler_starts_as_on_linux() -> None:
    """Handler entry: rsp+8 16-aligned, pretcode = sa_restorer, uc at +8, siginfo at +312,
    rdi/rsi/rdx/rax, DF cleared, a fresh FPU (the saved one had MXCSR/FCW changed), the
    registers saved where sigcontext has them, uc_flags 7, the 64-bit selectors."""
    rsp = n("usr1.entry_rsp")
    assert rsp % 16 == 8
    assert n("usr1.pretcode") == n("user.restorer")
    assert n("usr1.entry_rdx") - rsp == frame.FRAME_UC
    assert n("usr1.entry_rsi") - rsp == frame.FRAME_INFO
    assert (n("usr1.entry_rdi"), n("usr1.entry_rax")) == (SIGUSR1, 0)
    assert n("usr1.uc_flags") == frame.UC_FLAGS_64
    assert n("usr1.csgsfs") == frame.USER_CS | frame.USER_DS << 48  # gs = fs = 0
    assert (n("usr1.entry_mxcsr"), n("usr1.entry_fcw")) == (fpstate.MXCSR_DEFAULT,
                                                           fpstate.FCW_DEFAULT)
    assert (n("usr1.saved_mxcsr"), n("usr1.saved_fcw")) == (0x9F80, 0x027F)
    assert n("usr1.header_bv") & fpstate.GUEST_XFEATURES == fpstate.GUEST_XFEATURES
    assert n("usr1.extended_size") == fpstate.sigframe_size(n("usr1.xstate_size"))
    assert n("usr1.fpstate") % fpstate.FPSTATE_ALIGN == 0
    regs, _ = native_regs("usr1")
    assert regs.rip == n("user.kill_marked_after")
    assert [getattr(regs, r) for r in ("r8", "r9", "r10", "r12", "r13", "r14", "r15", "rbx",
                                       "rdx", "rbp")] == [
        0x0808080808080808, 0x0909090909090909, 0x1010101010101010, 0x1212121212121212,
        0x1313131313131313, 0x1414141414141414, 0x1515151515151515, 0x0B0B0B0B0B0B0B0B,
        0x0D0D0D0D0D0D0D0D, 0x0E0E0E0E0E0E0E0E]
    assert n("usr1.eflags") & 0x400 and not n("usr1.entry_rflags") & 0x400  # DF
    # the mask in the handler: its own signal (no SA_NODEFER) and sa_mask's SIGUSR2
    assert (n("usr1.blocked_usr1"), n("usr1.blocked_usr2")) == (1, 1)


def _rebuild(key: str, action: SigAction, info: siginfo.SigInfo, stack: altstack.AltStack,
             trap: faults.TrapInfo, regs: Registers | None = None,
             extra: tuple[int, int] | None = None) -> tuple[frame.Delivery, bytes]:
    """setup_frame for the native frame `key`'s interrupted state, into memory that holds
    the native frame's bytes where ours goes (so what Linux leaves alone matches)."""
    native_frame: bytes = native()[f"{key}.frame"]  # type: ignore[assignment]
    saved, fields = native_regs(key)
    regs = regs or saved
    layout = frame.frame_layout(regs.rsp, action.flags, stack)
    assert layout is not None
    memory = FakeMemory()
    memory.add(regs.rsp - 16384, 16384)
    if extra:
        memory.add(*extra)
    assert memory.write(layout.frame, native_frame)
    delivery = frame.setup_frame(memory, regs, bytes(fpstate.INIT_IMAGE), int(info.signo),
                                 action, info, int(fields["oldmask"]), stack, trap)  # type: ignore[call-overload]
    assert delivery is not None and delivery.frame == layout.frame
    ours = memory.read(layout.frame, frame.RT_SIGFRAME_SIZE)
    assert ours is not None
    return delivery, ours


def _same_but_fpstate(ours: bytes, theirs: bytes) -> None:
    at = frame.FRAME_UC + frame.UC_MCONTEXT + frame.SC_FPSTATE
    diffs = [i for i in range(frame.RT_SIGFRAME_SIZE)
             if ours[i] != theirs[i] and not at <= i < at + 8]
    assert not diffs, f"frame bytes differ at {diffs[:8]}: ours {ours.hex()} linux {theirs.hex()}"


def test_frames_are_byte_for_byte_linuxs() -> None:
    """For a kill, an SA_ONSTACK delivery and two faults, setup_frame writes exactly the
    bytes Linux wrote (the FPU state's address aside: the host's XSAVE area is larger)."""
    pid, uid = n("user.pid"), n("user.uid")
    restorer = n("user.restorer")
    flags = SA_SIGINFO | SA_RESTORER
    delivery, ours = _rebuild("usr1", SigAction(0x401000, flags, restorer, sigmask(SIGUSR2)),
                              siginfo.kill_info(SIGUSR1, pid, uid), altstack.AltStack(),
                              faults.TrapInfo())
    _same_but_fpstate(ours, native()["usr1.frame"])  # type: ignore[arg-type]
    assert delivery.regs.rflags == n("usr1.entry_rflags")
    assert (delivery.regs.rdi, delivery.regs.rsi - delivery.frame,
            delivery.regs.rdx - delivery.frame, delivery.regs.rax) == (
        SIGUSR1, n("usr1.entry_rsi") - n("usr1.entry_rsp"),
        n("usr1.entry_rdx") - n("usr1.entry_rsp"), 0)

    alt = altstack.AltStack(n("alt.sp"), n("alt.size"), altstack.SS_AUTODISARM)
    _, ours = _rebuild("onstack", SigAction(0x401000, flags | SA_ONSTACK, restorer, 0),
                       siginfo.kill_info(SIGUSR2, pid, uid), alt, faults.TrapInfo(),
                       extra=(alt.sp, alt.size))
    _same_but_fpstate(ours, native()["onstack.frame"])  # type: ignore[arg-type]

    saved, _ = native_regs("segv_null")
    info, trap = faults.exception_signal(faults.PF, faults.PF_USER, saved.rip, 16,
                                         fpstate.INIT_IMAGE, faults.TrapInfo())
    assert info is not None
    plain = Registers(**{**saved.__dict__, "rflags": saved.rflags & ~RFLAGS_RF})
    regs = Registers(**{**plain.__dict__,
                        "rflags": faults.exception_rflags(faults.PF, plain.rflags)})
    delivery, ours = _rebuild("segv_null", SigAction(0x401000, flags | SA_NODEFER, restorer),
                              info, altstack.DISABLED, trap, regs)
    _same_but_fpstate(ours, native()["segv_null.frame"])  # type: ignore[arg-type]
    assert delivery.regs.rflags == n("trap.entry_rflags")  # RF cleared for the handler

    saved, _ = native_regs("fpe")
    info, trap = faults.exception_signal(faults.DE, 0, saved.rip, 0, fpstate.INIT_IMAGE,
                                         faults.TrapInfo(13, 0, n("fpe.cr2")))
    assert info is not None
    _, ours = _rebuild("fpe", SigAction(0x401000, flags | SA_NODEFER, restorer), info,
                       altstack.DISABLED, trap)
    _same_but_fpstate(ours, native()["fpe.frame"])  # type: ignore[arg-type]


def test_frames_are_placed_as_linux_places_them() -> None:
    """With the host's XSAVE size, frame_layout finds the handler's rsp and fpstate that
    Linux chose, below the red zone and at the altstack's top."""
    size = n("usr1.xstate_size")
    layout = frame.frame_layout(n("usr1.rsp"), SA_SIGINFO, altstack.AltStack(), size)
    assert layout == frame.FrameLayout(n("usr1.entry_rsp"), n("usr1.fpstate"))
    alt = altstack.AltStack(n("alt.sp"), n("alt.size"), altstack.SS_AUTODISARM)
    layout = frame.frame_layout(n("onstack.rsp"), SA_SIGINFO | SA_ONSTACK, alt, size)
    assert layout == frame.FrameLayout(n("onstack.entry_rsp"), n("onstack.fpstate"))


def test_altstack_flags_are_saved_and_restored_as_on_linux() -> None:
    """A process that never set an altstack saves flags 0; SS_AUTODISARM is saved as set,
    the stack is gone inside the handler and back after rt_sigreturn."""
    assert struct.unpack("<QI4xQ", altstack.AltStack().saved()) == (
        n("usr1.ss_sp"), n("usr1.ss_flags"), n("usr1.ss_size"))
    alt = altstack.AltStack(n("alt.sp"), n("alt.size"), altstack.SS_AUTODISARM)
    assert struct.unpack("<QI4xQ", alt.saved()) == (n("onstack.ss_sp"), n("onstack.ss_flags"),
                                                    n("onstack.ss_size"))
    inside = alt.after_delivery()
    assert inside.status(n("onstack.entry_rsp")) == n("onstack.now_ss_flags")
    restored = altstack.sigaltstack(inside, alt.saved(), n("onstack.rsp"))
    assert restored == altstack.AltStack(n("alt.after_sp"), n("alt.after_size"),
                                         n("alt.after_flags"))


@pytest.mark.parametrize(("key", "vector", "hw_error", "cr2", "mapped"), [
    ("segv_null", faults.PF, faults.PF_USER, 16, False),
    ("segv_ro", faults.PF, faults.PF_USER | faults.PF_WRITE, None, True),  # never touched
    ("segv_kernel", faults.PF, faults.PF_USER, 0xFFFFFFFF81000000, False),
    ("segv_noncanonical", faults.GP, 0, None, False),
    ("ill", faults.UD, 0, None, False),
    ("trap", faults.BP, 0, None, False),
    ("gp", faults.GP, 0, None, False),
    ("fpe", faults.DE, 0, None, False),
])
def test_faults_send_what_linux_sends(key: str, vector: int, hw_error: int, cr2: int | None,
                                      mapped: bool) -> None:
    """signo, si_code, si_addr and the trap record of each fault are Linux's; cr2 survives
    exceptions other than #PF."""
    saved, _ = native_regs(key)
    if cr2 is None and key == "segv_ro":
        cr2 = n("user.ro_page") + 8
    last = faults.TrapInfo(14, 0, 0xFFFFFFFF81000000)  # the kernel-address fault came before
    info, trap = faults.exception_signal(vector, hw_error, saved.rip, cr2 or 0,
                                         fpstate.INIT_IMAGE, last, mapped=mapped)
    assert info is not None
    assert (info.signo, info.code & U64, info.addr) == (
        n(f"{key}.sig"), n(f"{key}.code"), n(f"{key}.addr")), key
    expected_cr2 = n(f"{key}.cr2")
    assert (trap.trapno, trap.error_code, trap.cr2) == (n(f"{key}.trapno"), n(f"{key}.err"),
                                                        expected_cr2), key
    has_rf = bool(n(f"{key}.eflags") & RFLAGS_RF)
    assert bool(faults.exception_rflags(vector, 0x246) & RFLAGS_RF) == has_rf, key


def test_child_signals_are_linuxs() -> None:
    """SIGCHLD for an exit(3) and a SIGKILL: CLD_EXITED/3 and CLD_KILLED/9 from the child."""
    exited = siginfo.child_exit_info(n("child.exited_pid"), 0, 3 << 8, 0, 0)
    killed = siginfo.child_exit_info(n("child.killed_pid"), 0, SIGKILL, 0, 0)
    assert (exited.code, exited.pid, exited.status) == (
        n("chld_exit.code"), n("chld_exit.pid"), n("chld_exit.status"))
    assert (killed.code, killed.pid, killed.status) == (
        n("chld_kill.code"), n("chld_kill.pid"), n("chld_kill.status"))


def test_queued_signals_come_out_in_linuxs_order() -> None:
    """Sent blocked (RT 36, RT 35 twice, USR2, USR1 twice by sigqueue), then unblocked: USR1
    once, USR2, the two RT 35 in order, RT 36; the last one's siginfo is SI_QUEUE's."""
    pid, uid = n("user.pid"), n("user.uid")
    queue = SignalQueue()
    for signo, value in ((36, 1), (35, 2), (35, 3), (SIGUSR2, 4), (SIGUSR1, 5), (SIGUSR1, 6)):
        queue.enqueue(siginfo.queue_info(signo, pid, uid, value))
    order = []
    while (info := queue.dequeue(0)) is not None:
        order.append((info.signo, info.value))
    assert order == native()["order"]
    last = siginfo.queue_info(36, pid, uid, 1)
    assert (last.code & U64, last.pid, last.value) == (
        n("queue_last.code"), n("queue_last.pid"), n("queue_last.value"))


def _round_trip(edit: object, xmm: int = 0x1122334455667788,
                rflags: int = 0x246) -> frame.Sigreturn:
    """A SIGUSR1 frame for a task with XMM0 = xmm, edited by `edit`, then rt_sigreturn."""
    image = bytearray(fpstate.INIT_IMAGE)
    image[fpstate.XMM_OFFSET:fpstate.XMM_OFFSET + 16] = xmm.to_bytes(8, "little") * 2
    memory = FakeMemory()
    memory.add(0x7000_0000, 0x10000)
    regs = Registers(rsp=0x7000_F000, rip=0x401000, rflags=rflags)
    delivery = frame.setup_frame(memory, regs, bytes(image), SIGUSR1,
                                 SigAction(0x402000, SA_SIGINFO | SA_RESTORER, 0x403000),
                                 siginfo.kill_info(SIGUSR1, 1, 0), 0, altstack.AltStack())
    assert delivery is not None
    fields = frame.read_frame(memory, delivery.frame)
    assert fields is not None
    edit(memory, delivery.frame, int(fields["fpstate"]))  # type: ignore[operator, call-overload]
    return frame.sigreturn(memory, Registers(rsp=delivery.frame + 8, rflags=rflags),
                           delivery.fpu, delivery.blocked, delivery.altstack)


def test_sigreturn_does_what_linux_did_with_edited_frames() -> None:
    """AC from the frame is restored but IOPL, NT and VM are not; XMM0 comes back as saved,
    from the legacy area when the magic is gone, zero when SSE leaves XSTATE_BV; a reserved
    MXCSR bit makes the frame a SIGSEGV (SI_KERNEL) with the FPU reset."""
    eflags_at = frame.FRAME_UC + frame.UC_MCONTEXT + frame.SC_EFLAGS

    def flags(memory: FakeMemory, at: int, fp: int) -> None:
        value = struct.unpack("<Q", memory.read(at + eflags_at, 8) or b"")[0]
        memory.write(at + eflags_at, struct.pack("<Q", value | 0x40000 | 0x3000 | 0x4000
                                                 | 0x20000))

    native_flags = n("sigreturn.flags_after")
    result = _round_trip(flags)
    assert result.fault is None
    for bit in (0x40000, 0x3000, 0x4000, 0x20000):
        assert bool(result.regs.rflags & bit) == bool(native_flags & bit), hex(bit)

    def xmm0(result: frame.Sigreturn) -> int:
        return int.from_bytes(result.fpu[fpstate.XMM_OFFSET:fpstate.XMM_OFFSET + 8], "little")

    assert xmm0(_round_trip(lambda m, a, fp: None)) == n("sigreturn.xmm_kept")

    def legacy(memory: FakeMemory, at: int, fp: int) -> None:
        memory.write(fp + fpstate.SW_BYTES_OFFSET, bytes(4))
        memory.write(fp + fpstate.XMM_OFFSET, b"\x5a" * 16)

    assert xmm0(_round_trip(legacy)) == n("sigreturn.xmm_legacy")

    def drop_sse(memory: FakeMemory, at: int, fp: int) -> None:
        bv = (memory.read(fp + fpstate.FXSAVE_SIZE, 1) or b"")[0]
        memory.write(fp + fpstate.FXSAVE_SIZE, bytes([bv & ~fpstate.XFEATURE_SSE]))

    assert xmm0(_round_trip(drop_sse)) == n("sigreturn.xmm_dropped")

    def bad_mxcsr(memory: FakeMemory, at: int, fp: int) -> None:
        memory.write(fp + fpstate.MXCSR_OFFSET + 2, b"\x01")

    result = _round_trip(bad_mxcsr)
    assert result.fault is not None
    assert (result.fault.signo, result.fault.code) == (n("bad_mxcsr.sig"), n("bad_mxcsr.code"))
    assert struct.unpack_from("<I", result.fpu, fpstate.MXCSR_OFFSET)[0] == n(
        "bad_mxcsr.saved_mxcsr")
