"""Programs nobody wrote for chaosreplay (C pthreads, fork+exec, C++ threads, Go, Rust).

Each is compiled once per source digest (tests/program_cache.py) and first run natively:
its output is deterministic and pinned here, which checks the program and the cache. Under
chaosreplay each must print the same. Those that need parts of the kernel not built yet
(fork/exec, signal delivery) are strict xfails naming what they wait for, so the first
one that starts to pass fails the suite and its marker has to go.
"""

from __future__ import annotations

import subprocess

import program_cache
import pytest
from program_cache import built

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.sim.host_root import host_closure
from chaosreplay.vm.elf import load_program

FUTEX_OPS = """\
wait on a changed value: EAGAIN
wait with a timeout: ETIMEDOUT
wake with nobody waiting: 0
misaligned wait: EINVAL
bitset wait with bitset 0: EINVAL
absolute bitset wait: ETIMEDOUT
cmp_requeue with a stale value: EAGAIN
cmp_requeue moved: 2
woken on A 1, on B 2, sleepers done 3
wake_op: 0, B is now 5
wake of bit 0x1: 0
wake of bit 0x2: 1
thread tid differs from pid: yes
main tid is the pid: yes
lock after the owner died: EOWNERDEAD
clone thread without sighand: EINVAL
clone sighand without vm: EINVAL
cpu 0 allowed: yes, getcpu in range: yes
"""
SIGNALS = """\
kill: signal 10, code SI_USER yes, pid ours yes
raise: signal 10, code SI_TKILL yes
blocked: delivered 0, pending 1
unblocked: delivered 10
sigtimedwait: 10, value 42, code SI_QUEUE yes, handler ran 0
sigtimedwait with nothing pending: -1 EAGAIN
read interrupted: -1 EINTR, alarms 1
read restarted: 1 'r', alarms 1
itimer: at least 5 alarms yes, interval kept 20000 us
sigsuspend: -1 EINTR, alarms 1, mask back yes
ppoll: -1 EINTR, alarms 1, SIGALRM blocked again yes
segv: signal 11, SEGV_MAPERR yes, address right yes, on altstack yes
pthread_kill: handled on the thread yes
sigpipe: write -1 EPIPE, handler ran 1
"""
SIGNALFD = """\
empty: -1 EAGAIN
short buffer: -1 EINVAL
read 384 bytes = 3 signals
  signo USR1, code SI_USER, pid ours yes, int 0
  signo RTMIN+2, code SI_QUEUE, pid ours yes, int 1234
  signo RTMIN+2, code SI_QUEUE, pid ours yes, int 1234
epoll: 1 ready (tag 7), then SIGALRM by the kernel
narrowed: 1
SIGALRM outside the mask: -1 EAGAIN
still pending: 1
"""
POSIX_TIMERS = """\
create: 0
expiry 0: SIGRTMIN, SI_TIMER yes, value 99
expiry 1: SIGRTMIN, SI_TIMER yes, value 99
expiry 2: SIGRTMIN, SI_TIMER yes, value 99
overrun at least 3: yes
disarmed: 0 0
delete: 0, again fails: yes
SIGEV_NONE: about 5 s left
thread timer: 0
callback ran: 1
"""
PROCESSES = """\
WNOHANG before exit: 0
waited the right child: yes
exit status 42, SIGCHLD seen yes
killed by signal 15
orphan re-parented: yes
child leads its group: yes
waitid: CLD_KILLED yes, signal 9, pid right yes
no children left: yes
stopped by 19
continued: yes
then killed by 15
exec missing: ENOENT
exec non-executable: EACCES
exec text: ENOEXEC
exec directory: EACCES
write to a running program: ETXTBSY
once it ended: allowed
interpreted script
script exit 0
"""
CPU_ITIMERS = ("ITIMER_VIRTUAL: armed yes, 3 signals, then 0 0\n"
               "ITIMER_PROF: armed yes, 3 signals, then 0 0\n")
EXPECTED = {
    ("pthreads.c", "glibc"): "counter 8000\nring" + " 0 1 2 3 4 5 6 7" * 3 + "\njoined 280\n",
    ("pthreads.c", "musl"): "counter 8000\nring" + " 0 1 2 3 4 5 6 7" * 3 + "\njoined 280\n",
    ("futex_ops.c", "glibc"): FUTEX_OPS,
    ("futex_ops.c", "musl"): FUTEX_OPS,
    ("signals.c", "glibc"): SIGNALS,
    ("signals.c", "musl"): SIGNALS,
    ("signalfd.c", "glibc"): SIGNALFD,
    ("signalfd.c", "musl"): SIGNALFD,
    ("posix_timers.c", "glibc"): POSIX_TIMERS,
    ("posix_timers.c", "musl"): POSIX_TIMERS,
    ("session.c", "musl"): "getpgrp is pid: yes\ngetpgid(0) is pid: yes\ngetsid(0) is pid: "
                           "yes\nsetsid: EPERM\nsetpgid(0, 0): EPERM\nsetpgid(0, -1): EINVAL\n"
                           "getsid of no process: ESRCH\n",
    ("fork_exec.c", "musl"): "parent read: child says hello\nchild exited 7\n",
    ("fork_exec.c", "glibc"): "parent read: child says hello\nchild exited 7\n",
    ("processes.c", "musl"): PROCESSES,
    ("cpu_itimers.c", "musl"): CPU_ITIMERS,
    ("cpu_itimers.c", "glibc"): CPU_ITIMERS,
    ("spawn.c", "musl"): "spawned with an argument\nposix_spawn 0, exit 4\n"
                         "missing program: No such file or directory\n",
    ("go_exec.go", None): 'output "child got hello\\n" err exit status 5\n',
    ("processes.c", "glibc"): PROCESSES,
    ("cxx_thread.cpp", None): "total 7998000 from 4 threads\n",
    ("goroutines.go", None): "sum of squares 30\ntimed out as expected\n"
                             "recovered: runtime error: invalid memory address or nil pointer "
                             "dereference\n",
    ("rust_threads.rs", None): "hello from rust\ntotal 7998000 from [0, 1, 2, 3]\n",
    # dynamically linked: ld.so, libc.so.6 (and libstdc++...) on the node's disk
    ("pthreads.c", "dynamic"): "counter 8000\nring" + " 0 1 2 3 4 5 6 7" * 3 + "\njoined 280\n",
    ("futex_ops.c", "dynamic"): FUTEX_OPS,
    ("signals.c", "dynamic"): SIGNALS,
    ("posix_timers.c", "dynamic"): POSIX_TIMERS,
    ("fork_exec.c", "dynamic"): "parent read: child says hello\nchild exited 7\n",
    ("processes.c", "dynamic"): PROCESSES,
    ("cxx_thread.cpp", "dynamic"): "total 7998000 from 4 threads\n",
}
CASES = [pytest.param(source, flavour, id=f"{source}-{flavour or 'default'}")
         for source, flavour in EXPECTED]
WAITING_FOR: dict[tuple[str, str | None], str] = {}  # what a program still needs of issue 12
UNDER_CHAOSREPLAY = [
    pytest.param(source, flavour, id=f"{source}-{flavour or 'default'}",
                 marks=[pytest.mark.xfail(strict=True, reason=f"needs {WAITING_FOR[key]}")]
                 if (key := (source, flavour)) in WAITING_FOR else [])
    for source, flavour in EXPECTED]


@pytest.mark.parametrize(("source", "flavour"), CASES)
def test_program_prints_its_expected_output_natively(source: str, flavour: str | None) -> None:
    """The cached build runs natively and prints the pinned output."""
    # In a session of its own, as a node's program is (the leader of its group and session).
    result = subprocess.run([str(built(source, flavour))], capture_output=True, text=True,
                            timeout=60, check=False, start_new_session=True)
    assert (result.returncode, result.stdout) == (0, EXPECTED[(source, flavour)]), result.stderr


def test_a_cached_program_is_not_built_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A second build of the same source and toolchain returns the cached file untouched."""
    first = built("pthreads.c", "glibc")
    mtime = first.stat().st_mtime_ns

    def no_compiler(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"compiler invoked again: {args}")

    real_run = subprocess.run
    monkeypatch.setattr(program_cache.subprocess, "run",
                        lambda cmd, *a, **k: real_run(cmd, *a, **k)
                        if "--version" in cmd or "version" in cmd else no_compiler(cmd))
    again = program_cache.build_program("pthreads.c", "glibc")
    assert again == first and again.stat().st_mtime_ns == mtime


@pytest.mark.kvm
@pytest.mark.parametrize(("source", "flavour"), UNDER_CHAOSREPLAY)
def test_program_prints_the_same_under_chaosreplay(source: str, flavour: str | None) -> None:
    """Under the VMM the program prints what it prints natively and exits 0."""
    path = built(source, flavour)
    process = GuestProcess(load_program(path), ProcessConfig(argv=[str(path).encode()]),
                           files=host_closure([path]))  # none for a static program
    process.run_to_completion(hang_seconds=20)
    assert (process.status, process.exit_code) == (Status.EXITED, 0), process.crash
    assert bytes(process.stdout).decode() == EXPECTED[(source, flavour)]
