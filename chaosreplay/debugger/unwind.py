"""The call stack from DWARF call frame information (.eh_frame and .debug_frame).

`Unwinder.unwind(registers, read)` walks from the innermost frame outwards: at each pc
the CFI row gives the canonical frame address (CFA) and where the caller's registers were
saved, which yields the caller's pc (the return address), rsp (= CFA) and its callee-saved
registers. Code without CFI (static musl's C library is built without unwind tables) is
crossed two ways, each marked on the frame: a prologue analysis of the function (pushes and
`sub rsp` from its start to pc), or, failing that, a stack scan for a return address whose
call instruction calls the function the frame is in. Caller-saved registers are not known in
outer frames; variables kept there are "not saved".
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import capstone
from elftools.common.exceptions import DWARFError, ELFError
from elftools.dwarf.callframe import FDE, RegisterRule
from elftools.elf.elffile import ELFFile

from chaosreplay.debugger.dwarf_expr import RIP, RSP, Unavailable, locate
from chaosreplay.vm.elf import ProgramImage
from chaosreplay.vm.vmm import PAGE_SIZE as VDSO_BYTES
from chaosreplay.vm.vmm import VDSO_ADDRESS

MAX_FRAMES = 32
SCAN_WORDS = 512
CALLEE_SAVED = (3, 6, 12, 13, 14, 15)  # rbx rbp r12..r15 (DWARF numbers)
_PUSH_REGS = {"rbx": 3, "rbp": 6, "r12": 12, "r13": 13, "r14": 14, "r15": 15, "rax": 0,
              "rcx": 2, "rdx": 1, "rsi": 4, "rdi": 5, "r8": 8, "r9": 9, "r10": 10, "r11": 11}

Reader = Callable[[int, int], bytes | None]


@dataclass(frozen=True)
class RawFrame:
    """One frame: its pc, the registers known in it (DWARF numbers) and its CFA."""

    pc: int
    registers: dict[int, int]
    cfa: int | None
    how: str  # "cfi", "prologue" or "scan": how this frame's caller was found
    found_by: str  # how this frame itself was found: "registers" (innermost), or the above


@dataclass
class _Fde:
    start: int
    end: int
    fde: Any
    rows: list[dict[str, Any]] | None = None


class Unwinder:
    """The CFI of one program and the walk over a stack (see the module docstring)."""

    def __init__(self, image: ProgramImage, function_start: Callable[[int], int | None],
                 is_code: Callable[[int], bool]) -> None:
        self.bias = image.load_bias
        self.function_start = function_start
        self.is_code = is_code
        self.error: str | None = None
        self._fdes: list[_Fde] = []
        try:
            elf = ELFFile(io.BytesIO(image.raw))
            dwarf = elf.get_dwarf_info(follow_links=False)
            entries: list[Any] = []
            if dwarf.has_EH_CFI():
                entries += dwarf.EH_CFI_entries()
            if dwarf.has_CFI():
                entries += dwarf.CFI_entries()
            for entry in entries:
                if isinstance(entry, FDE):
                    start = entry.header["initial_location"] + self.bias
                    self._fdes.append(_Fde(start, start + entry.header["address_range"],
                                           entry))
        except (ELFError, DWARFError, KeyError, ValueError, AttributeError) as exc:
            self.error = f"call frame information unreadable: {exc}"
        self._fdes.sort(key=lambda f: f.start)
        self._starts = [f.start for f in self._fdes]
        self._capstone = capstone.Cs(capstone.CS_ARCH_X86, capstone.CS_MODE_64)
        self._code = image

    def unwind(self, registers: dict[int, int], read: Reader,
               limit: int = MAX_FRAMES) -> list[RawFrame]:
        """Frames from the innermost (the registers given) outwards."""
        frames: list[RawFrame] = []
        regs = dict(registers)
        found_by = "registers"
        seen: set[tuple[int, int]] = set()
        while len(frames) < limit:
            pc = regs.get(RIP)
            if pc is not None and VDSO_ADDRESS <= pc < VDSO_ADDRESS + VDSO_BYTES:
                step, how = _step_vdso(regs, read), "vdso"
            elif pc is None or not self.is_code(pc):
                break
            else:
                lookup = pc if not frames else pc - 1  # a return address is after the call
                step, how = self._step_cfi(lookup, regs, read), "cfi"
            if step is None and how == "cfi":
                step, how = self._step_prologue(pc, regs, read), "prologue"
            if step is None and how == "prologue":
                step, how = self._step_scan(pc, regs, read), "scan"
            cfa = step[1] if step is not None else None
            frames.append(RawFrame(pc, regs, cfa, how if step is not None else "", found_by))
            if step is None:
                break
            caller, _ = step
            key = (caller.get(RIP, 0), caller.get(RSP, 0))
            if caller.get(RIP) in (None, 0) or key in seen:
                break
            seen.add(key)
            regs, found_by = caller, how
        return frames

    # -- one step outwards -----------------------------------------------------------------

    def _rows(self, pc: int) -> tuple[list[dict[str, Any]], int] | None:
        index = bisect.bisect_right(self._starts, pc) - 1
        if index < 0 or not self._fdes[index].start <= pc < self._fdes[index].end:
            return None
        entry = self._fdes[index]
        if entry.rows is None:
            try:
                entry.rows = entry.fde.get_decoded().table
            except (DWARFError, KeyError, ValueError, IndexError, AttributeError):
                entry.rows = []  # an FDE pyelftools cannot decode: as if there were none
        if not entry.rows:
            return None
        return entry.rows, entry.start

    def _step_cfi(self, pc: int, regs: dict[int, int],
                  read: Reader) -> tuple[dict[int, int], int] | None:
        found = self._rows(pc)
        if found is None:
            return None
        rows, _ = found
        row = None
        for candidate in rows:
            if candidate["pc"] + self.bias <= pc:
                row = candidate
            else:
                break
        if row is None:
            return None
        rule = row["cfa"]
        if rule.expr is not None:
            try:
                place = locate(bytes(rule.expr), _RegsOnly(pc, regs, read))
            except Unavailable:
                return None
            cfa = getattr(place, "address", None)
        else:
            base = regs.get(rule.reg)
            cfa = None if base is None else (base + rule.offset) & (1 << 64) - 1
        if cfa is None:
            return None
        caller = {n: regs[n] for n in CALLEE_SAVED if n in regs}  # unless a rule says
        for number, reg_rule in row.items():
            if not isinstance(number, int):
                continue
            value = (regs.get(number) if reg_rule.type == RegisterRule.SAME_VALUE
                     else _apply(reg_rule, cfa, regs, read))
            if value is None:
                caller.pop(number, None)
            else:
                caller[number] = value
        if RIP not in caller:
            return None  # the return address is undefined: the outermost frame
        caller[RSP] = cfa
        return caller, cfa

    def _step_prologue(self, pc: int, regs: dict[int, int],
                       read: Reader) -> tuple[dict[int, int], int] | None:
        """A function without CFI: replay the stack effect of its code from its start."""
        start = self.function_start(pc)
        rsp = regs.get(RSP)
        if start is None or rsp is None or pc - start > 4096:
            return None
        code = read(start, pc - start)
        if code is None:
            return None
        depth = 0  # bytes pushed below the return address
        saved: dict[int, int] = {}  # DWARF register -> depth it was pushed at
        prologue_depth: int | None = None
        decoded_to = start
        for insn in self._capstone.disasm(code, start):
            decoded_to = insn.address + insn.size
            m, ops = insn.mnemonic, insn.op_str
            if m == "push" and ops in _PUSH_REGS:
                depth += 8
                saved.setdefault(_PUSH_REGS[ops], depth)
            elif m == "pop" and ops in _PUSH_REGS:
                depth -= 8
            elif m in ("sub", "add") and ops.startswith("rsp, "):
                try:
                    amount = int(ops[5:], 0)
                except ValueError:
                    return None
                depth += amount if m == "sub" else -amount
            elif "rsp" in ops.split(",")[0] and m not in ("cmp", "test"):
                return None  # rsp set some other way: cannot follow
            elif prologue_depth is None:
                prologue_depth = depth
            if m in ("ret", "jmp") and prologue_depth is not None:
                depth = prologue_depth  # code after it is reached with the frame set up
        if decoded_to != pc or depth < 0:
            return None
        cfa = rsp + depth + 8
        ret = read(cfa - 8, 8)
        if ret is None or not self.is_code(int.from_bytes(ret, "little")):
            return None
        caller = {n: regs[n] for n in CALLEE_SAVED if n in regs}
        for number, at in saved.items():
            if depth >= at:
                value = read(rsp + depth - at, 8)
                if value is not None:
                    caller[number] = int.from_bytes(value, "little")
        caller[RIP] = int.from_bytes(ret, "little")
        caller[RSP] = cfa
        return caller, cfa

    def _step_scan(self, pc: int, regs: dict[int, int],
                   read: Reader) -> tuple[dict[int, int], int] | None:
        """The first word on the stack that returns after a call to this frame's function."""
        rsp = regs.get(RSP)
        if rsp is None:
            return None
        raw = b""
        while len(raw) < 8 * SCAN_WORDS:  # up to the end of what can be read (the stack's top)
            at = rsp + len(raw)
            chunk = read(at, min(8 * SCAN_WORDS - len(raw), 4096 - at % 4096) or 8)
            if chunk is None:
                chunk = read(at, 8)  # the last words below an unmapped page
                if chunk is None:
                    break
            raw += chunk
        here = self.function_start(pc)
        for offset in range(0, len(raw) - 7, 8):
            word = int.from_bytes(raw[offset:offset + 8], "little")
            if self.is_code(word) and self._calls(word, here, read):
                caller = {RIP: word, RSP: rsp + offset + 8}
                return caller, rsp + offset + 8
        return None

    def _calls(self, ret: int, target: int | None, read: Reader) -> bool:
        """Whether the instruction before `ret` is a call (to `target`, if it is direct)."""
        before = read(ret - 7, 7)
        if before is None:
            return False
        if before[2] == 0xE8:  # call rel32
            dest = (ret + int.from_bytes(before[3:], "little", signed=True)) & (1 << 64) - 1
            return target is None or dest == target
        # call r/m64 (FF /2) of 2, 3 or 7 bytes: an indirect call, target unknown
        for size in (2, 3, 6, 7):
            if before[7 - size] == 0xFF and (before[8 - size] >> 3) & 7 == 2:
                return True
        return False


class _RegsOnly:
    """A frame context for CFA expressions: registers and memory, nothing else."""

    def __init__(self, pc: int, regs: dict[int, int], read: Reader) -> None:
        self.pc, self._regs, self._read = pc, regs, read

    def register(self, number: int) -> int | None:
        return self._regs.get(number)

    def read(self, address: int, size: int) -> bytes | None:
        return self._read(address, size)

    def cfa(self) -> int | None:
        return None

    def frame_base(self) -> int | None:
        return None


def _step_vdso(regs: dict[int, int], read: Reader) -> tuple[dict[int, int], int] | None:
    """Out of the vDSO (fastpath/vdso.S): its functions push nothing and touch no
    callee-saved register, so the return address is at rsp, as at a function's entry."""
    rsp = regs.get(RSP)
    raw = read(rsp, 8) if rsp is not None else None
    if raw is None or len(raw) != 8:
        return None
    caller = {k: v for k, v in regs.items() if k in CALLEE_SAVED}
    caller[RIP], caller[RSP] = int.from_bytes(raw, "little"), rsp + 8
    return caller, rsp + 8


def _apply(rule: RegisterRule, cfa: int, regs: dict[int, int], read: Reader) -> int | None:
    """A caller's register under one CFI rule (None: undefined or unreadable)."""
    kind = rule.type
    if kind == RegisterRule.OFFSET:
        data = read(cfa + rule.arg, 8)
        return None if data is None else int.from_bytes(data, "little")
    if kind == RegisterRule.VAL_OFFSET:
        return cfa + rule.arg
    if kind == RegisterRule.REGISTER:
        return regs.get(rule.arg)
    return None  # UNDEFINED, expressions (not emitted for x86-64 C code)
