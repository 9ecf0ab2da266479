"""/proc: the process (as `self` and as its pid) and the machine, from kernel state.

Every number comes from the virtual machine: CPU facts from the virtual CPU model
(vm.virtual_cpu), memory from the VM's size and the address space's mappings, times from
the node's virtual clock. Only the one process of today's node exists (pid 1000).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from chaosreplay.kernel.fs.synthetic import PROC_DEV, SynthNode, directory, link, text
from chaosreplay.vm import virtual_cpu

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

USER_HZ = 100
PAGE = 4096
PROCESS_FILES = (b"cmdline", b"comm", b"cwd", b"environ", b"exe", b"fd", b"maps", b"stat",
                 b"status")
MACHINE_FILES = (b"cpuinfo", b"loadavg", b"meminfo", b"stat", b"uptime", b"version")
KERNEL_VERSION = "6.1.0-chaosreplay"


def _kib(n: int) -> int:
    return n // 1024


def _memory(p: GuestProcess) -> tuple[int, int]:
    """(total, used) bytes of the VM's memory: its size, and what the program has mapped."""
    total = p.config.mem_size
    used = sum(v.end - v.start for v in p.space.vmas())
    return total, min(used, total)


def cpuinfo() -> str:
    flags = " ".join(sorted(virtual_cpu.FEATURES))
    lines = [("processor", "0"), ("vendor_id", virtual_cpu.VENDOR),
             ("cpu family", str(virtual_cpu.FAMILY)), ("model", str(virtual_cpu.MODEL)),
             ("model name", virtual_cpu.BRAND), ("stepping", str(virtual_cpu.STEPPING)),
             ("cpu MHz", "1000.000"), ("cache size", "8192 KB"), ("physical id", "0"),
             ("siblings", "1"), ("core id", "0"), ("cpu cores", "1"), ("apicid", "0"),
             ("fpu", "yes"), ("fpu_exception", "yes"), ("cpuid level", "31"), ("wp", "yes"),
             ("flags", flags), ("bogomips", "2000.00"), ("clflush size", "64"),
             ("cache_alignment", "64"), ("address sizes", "39 bits physical, 48 bits virtual"),
             ("power management", "")]
    return "".join(f"{k}{chr(9) * (2 if len(k) < 8 else 1)}: {v}\n" for k, v in lines) + "\n"


def meminfo(p: GuestProcess) -> str:
    total, used = _memory(p)
    free = total - used
    rows = [("MemTotal", total), ("MemFree", free), ("MemAvailable", free), ("Buffers", 0),
            ("Cached", 0), ("SwapCached", 0), ("Active", used), ("Inactive", 0),
            ("SwapTotal", 0), ("SwapFree", 0), ("Dirty", 0), ("AnonPages", used),
            ("Mapped", 0), ("Shmem", 0), ("CommitLimit", total), ("Committed_AS", used)]
    return "".join(f"{k + ':':<16}{_kib(v):>8} kB\n" for k, v in rows)


def uptime_seconds_ns(p: GuestProcess) -> int:
    from chaosreplay.kernel.syscalls.clock import BOOT_OFFSET_NS

    return BOOT_OFFSET_NS + p.guest_time_ns()


def machine_stat(p: GuestProcess) -> str:
    from chaosreplay.kernel.syscalls.clock import REALTIME_EPOCH_NS

    busy = p.vtime_ns * USER_HZ // 1_000_000_000
    idle = max(0, uptime_seconds_ns(p) * USER_HZ // 1_000_000_000 - busy)
    cpu = f"{busy} 0 0 {idle} 0 0 0 0 0 0"
    return (f"cpu  {cpu}\ncpu0 {cpu}\nintr 0\nctxt {p.syscalls}\n"
            f"btime {REALTIME_EPOCH_NS // 1_000_000_000}\nprocesses 1\nprocs_running 1\n"
            "procs_blocked 0\nsoftirq 0\n")


def uptime(p: GuestProcess) -> str:
    up = uptime_seconds_ns(p)
    idle = max(0, up - p.vtime_ns)
    return f"{up // 10**9}.{up % 10**9 // 10**7:02d} {idle // 10**9}.{idle % 10**9 // 10**7:02d}\n"


def maps(p: GuestProcess) -> str:
    lines = []
    for v in p.space.vmas():
        perms = "".join(c if v.prot & bit else "-" for c, bit in (("r", 1), ("w", 2), ("x", 4)))
        name = "" if v.name == "[anon]" else (
            p.exe_name.decode(errors="replace") if v.name == "[program]" else v.name)
        kind = "s" if v.shared else "p"
        line = f"{v.start:08x}-{v.end:08x} {perms}{kind} {v.offset or 0:08x} 00:00 0"
        lines.append(f"{line:<73}{name}".rstrip() + "\n")
    return "".join(lines)


def _signal_sets(p: GuestProcess) -> tuple[int, int]:
    """(ignored, caught) signal masks from the registered actions."""
    ignored = caught = 0
    for signo in range(1, 65):
        handler = p.signals.actions.get(signo).handler
        if handler == 1:
            ignored |= 1 << (signo - 1)
        elif handler > 1:
            caught |= 1 << (signo - 1)
    return ignored, caught


def status(p: GuestProcess) -> str:
    used = _memory(p)[1]
    ignored, caught = _signal_sets(p)
    rows = [("Name", p.comm.decode(errors="replace")), ("Umask", f"{p.umask:04o}"),
            ("State", "R (running)"), ("Tgid", p.pid), ("Ngid", 0), ("Pid", p.pid),
            ("PPid", p.ppid), ("TracerPid", 0), ("Uid", "0\t0\t0\t0"), ("Gid", "0\t0\t0\t0"),
            ("FDSize", max(64, p.files.limit // 16)), ("Groups", ""),
            ("VmPeak", f"{_kib(used):8} kB"), ("VmSize", f"{_kib(used):8} kB"),
            ("VmRSS", f"{_kib(used):8} kB"), ("Threads", len(p.tasks)),
            ("SigQ", "0/7823"), ("SigPnd", f"{0:016x}"), ("ShdPnd", f"{0:016x}"),
            ("SigBlk", f"{p.signal_mask:016x}"), ("SigIgn", f"{ignored:016x}"),
            ("SigCgt", f"{caught:016x}"), ("CapInh", f"{0:016x}"),
            ("CapPrm", f"{(1 << 41) - 1:016x}"), ("CapEff", f"{(1 << 41) - 1:016x}"),
            ("Seccomp", 0), ("Cpus_allowed", "1"), ("Cpus_allowed_list", "0"),
            ("voluntary_ctxt_switches", 0), ("nonvoluntary_ctxt_switches", 0)]
    return "".join(f"{k}:\t{v}\n" for k, v in rows)


def process_stat(p: GuestProcess) -> str:
    used = _memory(p)[1]
    ticks = p.vtime_ns * USER_HZ // 1_000_000_000
    fields = [p.pid, f"({p.comm.decode(errors='replace')})", "R", p.ppid, p.pgid, p.sid, 0,
              -1, 0x400000,
              0, 0, 0, 0, ticks, 0, 0, 0, 20, 0, 1, 0, 0, used, used // PAGE,
              (1 << 64) - 1, 0, 0, 0, 0, 0, 0, p.signal_mask, 0, 0, 0, 0, 0, 17, 0, 0, 0, 0,
              0, 0, 0, 0, 0, 0, 0, 0, 0]
    return " ".join(str(f) for f in fields) + "\n"


def _nul_joined(items: list[bytes]) -> bytes:
    return b"".join(item + b"\0" for item in items)


def _process(p: GuestProcess, rest: tuple[bytes, ...]) -> SynthNode | None:
    from chaosreplay.kernel.fs.paths import path_of

    if not rest:
        return directory(*PROCESS_FILES)
    head, tail = rest[0], rest[1:]
    if head == b"fd":
        fds = [str(fd).encode() for fd, _ in p.files.items()]
        if not tail:
            return directory(*fds, mode=0o500)
        if len(tail) == 1 and tail[0] in fds:
            return link(p.files.get(int(tail[0])).path)  # type: ignore[union-attr]
        return None
    if tail:
        return None
    files = {
        b"cmdline": lambda: text(_nul_joined(p.argv)),
        b"environ": lambda: text(_nul_joined(p.envp), 0o400),
        b"comm": lambda: text(p.comm + b"\n", 0o644),
        b"exe": lambda: link(p.exe_name),
        b"cwd": lambda: link(path_of(p, p.cwd)),
        b"maps": lambda: text(maps(p)),
        b"status": lambda: text(status(p)),
        b"stat": lambda: text(process_stat(p)),
    }
    make = files.get(head)
    return make() if make is not None else None


class ProcFs:
    """The /proc mount."""

    name = b"proc"
    dev = PROC_DEV

    def lookup(self, p: GuestProcess, parts: tuple[bytes, ...]) -> SynthNode | None:
        pid = str(p.pid).encode()
        # every live process of the node has its directory (the node is its pid namespace)
        procs = {str(q.pid).encode(): q for q in
                 (p.table.live() if getattr(p, "table", None) is not None else [p])}
        procs[pid] = p
        if not parts:
            return directory(*sorted(procs, key=int), b"self", b"thread-self",
                             *MACHINE_FILES)
        head, rest = parts[0], parts[1:]
        if head == b"self":
            return link(pid) if not rest else None
        if head == b"thread-self":
            return link(pid + b"/task/" + pid) if not rest else None
        if head in procs:
            q = procs[head]
            if rest[:1] == (b"task",):  # one thread: task/<pid> is the process itself
                if len(rest) == 1:
                    return directory(head)
                return _process(q, rest[2:]) if rest[1] == head else None
            return _process(q, rest)
        if rest:
            return None
        machine = {
            b"cpuinfo": lambda: text(cpuinfo()),
            b"meminfo": lambda: text(meminfo(p)),
            b"stat": lambda: text(machine_stat(p)),
            b"uptime": lambda: text(uptime(p)),
            b"loadavg": lambda: text("0.00 0.00 0.00 1/1 1000\n"),
            b"version": lambda: text(f"Linux version {KERNEL_VERSION} (chaosreplay) #1 SMP\n"),
        }
        make = machine.get(head)
        return make() if make is not None else None
