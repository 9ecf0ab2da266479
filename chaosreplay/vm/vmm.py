"""Thin bindings over the C core (chaosreplay._vmm): return codes become exceptions.

Everything here maps 1:1 onto a `vmm_*` function; policy (what a syscall does, where a
program is loaded) lives in the runtime modules above this one.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import os
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from typing import Any

from chaosreplay.errors import KvmUnavailableError

try:
    from chaosreplay._vmm import ffi, lib
except ImportError as exc:  # pragma: no cover - only without a build
    raise ImportError(
        "chaosreplay's C core is not built; install the package with `pip install .`"
    ) from exc

PAGE_SIZE = 4096
DEFAULT_MEM_SIZE = 256 << 20
MAX_MEM_SIZE = 16 << 30  # the C core's direct map covers at most 16 GiB (DIRECT_MAX_GIB)


class Prot(IntFlag):
    """Page protections, the same bits as Linux PROT_*."""

    NONE = 0
    READ = lib.VMM_PROT_READ
    WRITE = lib.VMM_PROT_WRITE
    EXEC = lib.VMM_PROT_EXEC


class ExitReason(IntEnum):
    """Why a run returned to Python."""

    SYSCALL = lib.VMM_EXIT_SYSCALL
    EXCEPTION = lib.VMM_EXIT_EXCEPTION
    INTERRUPTED = lib.VMM_EXIT_INTERRUPTED
    FAILED = lib.VMM_EXIT_FAILED


class VmmError(OSError):
    """A C core call failed; carries the errno it returned."""


def _check(rc: int, what: str) -> int:
    if rc < 0:
        raise VmmError(-rc, f"{what}: {os.strerror(-rc)}")
    return rc


@dataclass(frozen=True, slots=True)
class VmStats:
    """Counters kept by the C core since the VM was created."""

    exits: int
    syscalls: int
    exceptions: int
    pte_fixups: int
    pte_ops: int
    frames_used: int
    frames_high: int
    vdso_resumes: int


class Vm:
    """One KVM VM with one vCPU, its memory and its exit loop."""

    def __init__(self, mem_size: int = DEFAULT_MEM_SIZE, *, probe: bool = False) -> None:
        config = ffi.new("struct vmm_config *", {"mem_size": mem_size})
        out = ffi.new("struct vmm_vm **")
        rc = lib.vmm_vm_create(config, out)
        if rc < 0:
            raise _kvm_error(-rc)
        self._adopt(out[0], mem_size)
        if not probe:  # decided by the host before the guest runs, never by the guest
            _check(lib.vmm_vm_set_syscall_mode(self._vm, int(syscall_enters_cpl0())),
                   "set syscall mode")

    def _adopt(self, handle: object, mem_size: int) -> None:
        """Own a C VM handle (freed with this object) and bind its register view."""
        self._vm = ffi.gc(handle, lib.vmm_vm_destroy)
        self.mem_size = mem_size
        self.regs = lib.vmm_vcpu_regs(self._vm)
        self._exit = ffi.new("struct vmm_exit *")
        self.exit = self._exit

    def clone(self) -> Vm:
        """A new VM with a copy of this one's memory and vCPU state (fork without CLONE_VM).

        Both resume where this VM would; each has its own memory, dirty log and snapshots.
        Raises VmmError(ENOEXEC) before the VM started or after an interrupted run.
        """
        out = ffi.new("struct vmm_vm **")
        rc = lib.vmm_vm_clone(self._vm, out)
        if rc < 0:
            raise _kvm_error(-rc) if rc != -errno.ENOEXEC else VmmError(
                errno.ENOEXEC, "clone: the VM has no resume point (not started or interrupted)")
        child = Vm.__new__(Vm)
        child._adopt(out[0], self.mem_size)
        return child

    # -- vCPU -----------------------------------------------------------------------------
    def start(self, rip: int, rsp: int) -> None:
        """Point the vCPU at a program's entry with a clean register file."""
        _check(lib.vmm_vcpu_start_user(self._vm, rip, rsp), "start")

    def run(self) -> int:
        """Run until the guest needs policy; returns an ExitReason value (see .exit)."""
        rc = lib.vmm_vcpu_run(self._vm, self._exit)
        if rc < 0:
            raise VmmError(-rc, f"KVM_RUN: {os.strerror(-rc)}")
        return self._exit.reason

    def set_fastpath(self, on: bool) -> None:
        """Let the guest answer the fast path's calls itself (vmm.h, kernel/fastpath.py)."""
        _check(lib.vmm_vm_set_fastpath(self._vm, int(on)), "set fast path")

    def set_vdso(self, on: bool) -> None:
        """Map the vDSO at VDSO_ADDRESS (and the data page it reads)."""
        _check(lib.vmm_vm_set_vdso(self._vm, int(on)), "set vDSO")

    @property
    def fastpath(self) -> Any:  # a cffi struct vmm_fastpath * into guest memory
        return lib.vmm_vm_fastpath(self._vm)

    def run_bench_loop(self, max_syscalls: int) -> int:
        """Benchmark baseline: the C loop answers every syscall with 0 by itself."""
        n = ffi.new("uint64_t *")
        _check(lib.vmm_vcpu_run_bench_loop(self._vm, max_syscalls, n), "bench loop")
        return n[0]

    @property
    def fs_base(self) -> int:
        out = ffi.new("uint64_t *")
        _check(lib.vmm_vcpu_get_fs_base(self._vm, out), "get fs base")
        return out[0]

    @fs_base.setter
    def fs_base(self, value: int) -> None:
        _check(lib.vmm_vcpu_set_fs_base(self._vm, value), "set fs base")

    def set_gs_base(self, value: int) -> None:
        _check(lib.vmm_vcpu_set_gs_base(self._vm, value), "set gs base")

    def save_context(self, context: TaskContext) -> None:
        """Copy the vCPU's user state (registers, FS/GS bases, x87/SSE) into context."""
        _check(lib.vmm_vcpu_save_context(self._vm, context.raw), "save context")

    def load_context(self, context: TaskContext) -> None:
        """Put a saved user state on the vCPU (a task switch); VmmError if the CPU would
        refuse it (a base outside the user half, reserved MXCSR bits...)."""
        _check(lib.vmm_vcpu_load_context(self._vm, context.raw), "load context")

    def stats(self) -> VmStats:
        s = ffi.new("struct vmm_stats *")
        _check(lib.vmm_vm_stats(self._vm, s), "stats")
        return VmStats(s.exits, s.syscalls, s.exceptions, s.pte_fixups, s.pte_ops,
                       s.frames_used, s.frames_high, s.vdso_resumes)

    # -- memory ---------------------------------------------------------------------------
    def map(self, va: int, length: int, prot: int) -> None:
        """Map [va, va+length) with zeroed pages; pages already mapped keep their data."""
        _check(lib.vmm_mem_map(self._vm, va, length, prot), f"map {va:#x}+{length:#x}")

    def unmap(self, va: int, length: int) -> None:
        _check(lib.vmm_mem_unmap(self._vm, va, length), f"unmap {va:#x}+{length:#x}")

    def protect(self, va: int, length: int, prot: int) -> None:
        _check(lib.vmm_mem_protect(self._vm, va, length, prot), f"protect {va:#x}+{length:#x}")

    def count_mapped(self, va: int, length: int) -> int:
        return _check(lib.vmm_mem_count_mapped(self._vm, va, length), "count mapped")

    def read(self, va: int, length: int) -> bytes:
        """Guest bytes at va; raises VmmError(EFAULT) on an unmapped page."""
        buf = ffi.new("uint8_t[]", length)
        _check(lib.vmm_mem_read(self._vm, va, buf, length), f"read {va:#x}")
        return ffi.buffer(buf, length)[:]

    def write(self, va: int, data: bytes) -> None:
        _check(lib.vmm_mem_write(self._vm, va, data, len(data)), f"write {va:#x}")

    def read_cstring(self, va: int, limit: int = 4096) -> bytes:
        """The NUL-terminated string at va (at most limit bytes)."""
        n = _check(lib.vmm_mem_strnlen(self._vm, va, limit), f"string at {va:#x}")
        return self.read(va, n) if n else b""

    def query(self, va: int) -> int | None:
        """Protection of the page holding va, or None when it is unmapped."""
        rc = lib.vmm_mem_query(self._vm, va)
        return None if rc < 0 else rc

    # -- state ----------------------------------------------------------------------------
    def export_state(self) -> bytes:
        """Canonical bytes of the vCPU and frame-allocator state (host-independent)."""
        size = lib.vmm_vm_state_size(self._vm)
        buf = ffi.new("uint8_t[]", size)
        _check(lib.vmm_vm_export_state(self._vm, buf, size), "export state")
        return ffi.buffer(buf, size)[:]

    def memory_view(self) -> memoryview:
        """Guest physical memory up to the highest frame ever used (zero-copy)."""
        used = ffi.new("uint64_t *")
        ptr = lib.vmm_vm_memory(self._vm, used)
        return memoryview(ffi.buffer(ptr, used[0]))

    def digest(self) -> bytes:
        """SHA-256 over the canonical vCPU state and guest memory (minus VMM scratch)."""
        return state_digest(self.export_state(), self.memory_view())

    def snapshot(self) -> Snapshot:
        """A reusable snapshot buffer bound to this VM (empty until taken)."""
        return Snapshot(self)


class TaskContext:
    """The user-visible CPU state of one guest thread while it is off the vCPU."""

    SIZE = ffi.sizeof("struct vmm_task_context")

    __slots__ = ("raw",)

    def __init__(self, data: bytes | None = None) -> None:
        self.raw = ffi.new("struct vmm_task_context *")
        if data is not None:
            if len(data) != self.SIZE:
                raise VmmError(errno.EINVAL, f"task context: {len(data)} bytes, not {self.SIZE}")
            ffi.memmove(self.raw, data, self.SIZE)

    @property
    def regs(self) -> Any:  # a cffi struct kvm_regs *, as Vm.regs
        return ffi.addressof(self.raw, "regs")

    @property
    def fs_base(self) -> int:
        return int(self.raw.fs_base)

    @fs_base.setter
    def fs_base(self, value: int) -> None:
        self.raw.fs_base = value

    @property
    def fpu(self) -> bytes:
        """The x87/SSE XSAVE image (legacy area + header)."""
        return bytes(ffi.buffer(self.raw.fpu))

    def copy(self) -> TaskContext:
        return TaskContext(self.to_bytes())

    def to_bytes(self) -> bytes:
        """The canonical bytes (plain values, no host addresses) for checkpoints."""
        return bytes(ffi.buffer(self.raw, self.SIZE))


PROBE_MEM_SIZE = 2 << 20
PROBE_PAGE = 0x400000


@functools.cache
def syscall_enters_cpl0() -> bool:
    """Whether `syscall` from CPL3 reaches CPL0 here (hardware KVM) or stays at CPL3 (PVM).

    Learned once per process from a probe VM that runs one `syscall` of the VMM's own:
    the entry page's `out` is open to CPL3, so a guest could otherwise make its own first
    exit look like either kind (vmm.h, vmm_vm_syscall_mode).
    """
    probe = Vm(PROBE_MEM_SIZE, probe=True)
    probe.map(PROBE_PAGE, PAGE_SIZE, Prot.READ | Prot.WRITE | Prot.EXEC)
    probe.write(PROBE_PAGE, b"\x0f\x05")  # syscall
    probe.start(PROBE_PAGE, PROBE_PAGE + PAGE_SIZE)
    reason = probe.run()
    if reason != ExitReason.SYSCALL:
        raise VmmError(errno.EIO, f"syscall probe: expected a syscall exit, got {reason}")
    return _check(lib.vmm_vm_syscall_mode(probe._vm), "syscall mode") == 1


def _scratch_range() -> tuple[int, int]:
    start, end = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    lib.vmm_vm_scratch_range(start, end)
    return start[0], end[0]


SCRATCH_START, SCRATCH_END = _scratch_range()


def _digest_mask() -> tuple[int, int]:
    gpa, length = ffi.new("uint64_t *"), ffi.new("uint64_t *")
    lib.vmm_vm_digest_mask(gpa, length)
    return gpa[0], length[0]


MASK_START, MASK_LEN = _digest_mask()
VDSO_ADDRESS = lib.vmm_vdso_address()
MASK_PFN = MASK_START // 4096
_MASK_ZEROS = bytes(MASK_LEN)


def masked_page(pfn: int, page: bytes | memoryview) -> bytes | memoryview:
    """A page as digests see it: the fast path's page-table slots read as zero, so a VM
    with it on and one without (or a recording from before it) hash alike."""
    if pfn != MASK_PFN:
        return page
    at = MASK_START % 4096
    return bytes(page[:at]) + _MASK_ZEROS + bytes(page[at + MASK_LEN:])


def state_digest(state: bytes, memory: memoryview) -> bytes:
    """The digest of a VM state: canonical vCPU bytes + memory outside the VMM's scratch."""
    h = hashlib.sha256()
    h.update(state)
    h.update(memory[:SCRATCH_START])
    h.update(memory[SCRATCH_END:MASK_START])
    h.update(_MASK_ZEROS)
    h.update(memory[MASK_START + MASK_LEN:])
    return h.digest()


class Snapshot:
    """Complete vCPU state + a memory image, reused across takes (full or incremental)."""

    def __init__(self, vm: Vm) -> None:
        out = ffi.new("struct vmm_snapshot **")
        _check(lib.vmm_snapshot_create(vm._vm, out), "snapshot create")
        self._vm = vm
        self._snap = ffi.gc(out[0], lib.vmm_snapshot_destroy)

    def _check_refusal(self, rc: int, what: str) -> int:
        """Like _check, with the core's reason when it refused a snapshot from a file."""
        if rc < 0:
            problem = ffi.string(lib.vmm_snapshot_problem(self._snap)).decode()
            raise VmmError(-rc, f"{what}: {problem or os.strerror(-rc)}")
        return rc

    def take(self, incremental: bool = True) -> int:
        """Capture the VM; returns the number of pages copied."""
        return _check(lib.vmm_snapshot_take(self._vm._vm, self._snap, int(incremental)), "take")

    def restore(self) -> int:
        """Put the VM back to this snapshot; returns the number of pages copied back."""
        return self._check_refusal(lib.vmm_snapshot_restore(self._vm._vm, self._snap),
                                   "restore")

    def last_pages(self) -> list[int]:
        """Frame numbers copied by the last take (the delta for a recording)."""
        ptr = ffi.new("uint32_t **")
        n = _check(lib.vmm_snapshot_last_pages(self._snap, ptr), "last pages")
        return list(ptr[0][0:n])

    def memory_view(self) -> memoryview:
        used = ffi.new("uint64_t *")
        ptr = lib.vmm_snapshot_memory(self._snap, used)
        return memoryview(ffi.buffer(ptr, used[0]))

    def state(self) -> bytes:
        size = _check(lib.vmm_snapshot_state_size(self._snap), "state size")
        buf = ffi.new("uint8_t[]", size)
        _check(lib.vmm_snapshot_export_state(self._snap, buf, size), "export")
        return ffi.buffer(buf, size)[:]

    def load(self, state: bytes, pages: dict[int, bytes]) -> None:
        """Rebuild this snapshot from saved state bytes and memory pages (a checkpoint).

        The core refuses state a VMM would never produce (VmmError naming the field); the
        memory is checked in full by the first restore() (system area, page tables).
        """
        if not isinstance(state, bytes):
            raise VmmError(errno.EINVAL, f"import state: not bytes ({type(state).__name__})")
        self._check_refusal(lib.vmm_snapshot_import_state(self._snap, state, len(state)),
                            "import state")
        for pfn in sorted(pages):
            page = pages[pfn]
            if not isinstance(pfn, int) or not 0 <= pfn < 1 << 32:
                raise VmmError(errno.EINVAL, f"import page: frame {pfn!r} is not a frame number")
            if not isinstance(page, bytes) or len(page) != PAGE_SIZE:
                raise VmmError(errno.EINVAL, f"import page {pfn:#x}: not {PAGE_SIZE} bytes")
            self._check_refusal(lib.vmm_snapshot_import_page(self._snap, pfn, page),
                                f"import page {pfn:#x}")

    def digest(self) -> bytes:
        return state_digest(self.state(), self.memory_view())


def _kvm_error(err: int) -> KvmUnavailableError | VmmError:
    if err == errno.ENOENT:
        return KvmUnavailableError("/dev/kvm does not exist: this host has no KVM")
    if err in (errno.EACCES, errno.EPERM):
        return KvmUnavailableError(
            "/dev/kvm is not accessible to this user (add it to the kvm group)"
        )
    if err in (errno.EOPNOTSUPP, errno.EPROTO):
        return KvmUnavailableError("/dev/kvm lacks features chaosreplay needs (sync regs, API 12)")
    return VmmError(err, f"cannot create a VM: {os.strerror(err)}")
