"""Descriptors, readiness and start-up files (kernel/fs/, kernel/syscalls/): the fds and
startup guests give the same output natively and under the VMM, on musl and glibc; the
waiter queues, blocking, deadlocks, SIGPIPE and checkpoints behave as documented."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.vm.elf import load_program

GuestBin = Callable[[str, str], Path]
LIBCS = ["musl", "glibc"]
ENV = {"STARTUP_MARK": "1"}
BUSYBOX = shutil.which("busybox")


def native(path: Path, *args: str, cwd: Path) -> str:
    """The program's stdout run on the host (fds 0-2 only, stdin at end of file)."""
    result = subprocess.run([str(path), *args], cwd=cwd, env=ENV, stdin=subprocess.DEVNULL,
                            capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    return result.stdout.decode()


def under_vmm(path: Path, *args: str, **config: Any) -> GuestProcess:
    argv = [str(path).encode(), *(a.encode() for a in args)]
    envp = [f"{k}={v}".encode() for k, v in ENV.items()]
    p = GuestProcess(load_program(path), ProcessConfig(argv=argv, envp=envp, **config))
    p.run_to_completion(hang_seconds=30)
    return p


def finished(p: GuestProcess) -> str:
    assert (p.status, p.exit_code) == (Status.EXITED, 0), (p.crash, bytes(p.stdout[-300:]))
    return p.stdout.decode()


@pytest.mark.kvm
@pytest.mark.parametrize("libc", LIBCS)
def test_fds_program_matches_linux(guest_bin: GuestBin, libc: str, tmp_path: Path) -> None:
    """pipes, dup2 onto stdio, fcntl, RLIMIT_NOFILE, poll/select, epoll LT/ET/ONESHOT,
    eventfd and timerfd print exactly what they print on Linux."""
    path = guest_bin(libc, "fds")
    expected = native(path, cwd=tmp_path)
    assert expected.endswith("fds: ok\n")
    p = under_vmm(path)
    assert finished(p) == expected
    assert p.unknown_syscalls == {} or set(p.unknown_syscalls) == {334}, p.unknown_syscalls


@pytest.mark.kvm
@pytest.mark.skipif(os.geteuid() != 0, reason="the native run changes owners (needs root)")
@pytest.mark.parametrize("libc", LIBCS)
def test_startup_program_matches_linux(guest_bin: GuestBin, libc: str, tmp_path: Path) -> None:
    """/proc/self, /proc, /dev, /etc, cwd, umask, symlinks, chmod/chown, utimensat,
    getrusage, sysinfo, prctl, getgroups and membarrier print what they print on Linux."""
    path = guest_bin(libc, "startup")
    expected = native(path, "second-arg", cwd=tmp_path)
    assert expected.endswith("startup: ok\n")
    assert finished(under_vmm(path, "second-arg")) == expected


@pytest.mark.kvm
def test_a_read_no_one_can_satisfy_is_reported_as_a_deadlock(guest_bin: GuestBin) -> None:
    """One task, an empty pipe, its write end open: Linux would block forever; we stop
    with a report that names the call instead of spinning."""
    p = under_vmm(guest_bin("musl", "fds"), "deadlock")
    assert p.status is Status.CRASHED and p.crash is not None
    assert p.crash.signal == 9
    assert "deadlock: read of pipe:[" in p.crash.reason, p.crash.reason


@pytest.mark.kvm
def test_write_to_a_pipe_without_readers_raises_sigpipe(guest_bin: GuestBin) -> None:
    p = under_vmm(guest_bin("glibc", "fds"), "sigpipe")
    assert p.status is Status.CRASHED and p.crash is not None and p.crash.signal == 13


@pytest.mark.kvm
@pytest.mark.parametrize("libc", LIBCS)
def test_checkpoint_while_blocked_on_a_timer_resumes_identically(guest_bin: GuestBin,
                                                                  libc: str) -> None:
    """A checkpoint taken while the program waits in a timerfd read (a pipe with data,
    an eventfd and an edge-triggered epoll set open) restores to the same end."""
    path = guest_bin(libc, "fds")
    reference = finished(under_vmm(path, "checkpoint"))
    assert reference == ("edge: 1\ntimer read: 8\nedge again: 0\npipe read: 4\nkept\n"
                         "eventfd 7\n")
    p = GuestProcess(load_program(path), ProcessConfig(argv=[b"fds", b"checkpoint"]))
    while p.waiting is None or "timerfd" not in p.waiting.reason:
        assert p.run() in (Status.RUNNING, Status.BLOCKED), p.crash
    checkpoint = p.checkpoint()
    state = p.kernel_state()
    assert state["files"]["waiting"] is not None
    first = finished(_completed(p))
    p.restore(checkpoint)
    assert p.kernel_state() == state
    assert finished(_completed(p)) == first == reference


def _completed(p: GuestProcess) -> GuestProcess:
    p.run_to_completion(hang_seconds=30)
    return p


@pytest.mark.kvm
@pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed (busybox-static)")
@pytest.mark.parametrize(("args", "wanted"), [
    (["cat", "/proc/self/status"], "Name:\tbusybox\n"),
    (["readlink", "/proc/self/exe"], "/chaosreplay/busybox\n"),
    (["ls", "-l", "/dev"], " 1,   3 Jan  1 00:00 null\n"),
    (["cat", "/etc/hosts"], "10.0.0.2\tbeta\n"),
    (["wc", "-c", "/etc/passwd"], "89 /etc/passwd\n"),
    (["sh", "-c", "echo hi > /dev/null; echo done"], "done\n"),
    (["sh", "-c", "echo saved > /tmp/f; read x < /tmp/f; echo got $x >&2"], ""),
    (["sh", "-c", "cd /proc/self/fd && pwd -P && ls"], "/proc/1000/fd\n0  1  2  3\n"),
    (["head", "-c", "5", "/dev/zero"], "\0" * 5),
])
def test_busybox_applets_see_the_synthetic_files(args: list[str], wanted: str) -> None:
    assert BUSYBOX is not None
    path = Path(BUSYBOX)
    p = GuestProcess(load_program(path), ProcessConfig(
        argv=[b"busybox", *(a.encode() for a in args)], node_names=("alpha", "beta")))
    p.run_to_completion(hang_seconds=30)
    out = finished(p)
    assert wanted in out, out
    if ">&2" in args[-1]:
        assert p.stderr == b"got saved\n", p.stderr  # redirections move stdio with dup2


@pytest.mark.kvm
@pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed (busybox-static)")
def test_etc_hosts_names_every_node_of_the_simulation() -> None:
    """The simulation hands the node names to each kernel (ProcessConfig.node_names)."""
    from simulate import scenario, simulate

    assert BUSYBOX is not None
    run = simulate(scenario(Path(BUSYBOX), ["cat", "/etc/hosts"], count=2, duration="50ms"))
    names = [node.spec.name for node in run.sim.nodes]
    assert len(set(names)) == 2, names
    for node in run.sim.nodes:
        out = node.process.stdout.decode()
        assert f"127.0.1.1\t{node.spec.name}\n" in out, out
        for index, name in enumerate(names):
            assert f"10.0.0.{index + 1}\t{name}\n" in out, out


@pytest.mark.kvm
def test_blocked_nodes_resume_from_every_checkpoint_and_pause_anywhere(
        guest_bin: GuestBin, tmp_path: Path) -> None:
    """Nodes that live in epoll_wait/poll/timerfd: a recorded run resumed from each
    checkpoint reaches the next checkpoint's digest, and pausing with run_to at many events
    changes nothing (blocked calls are retried across both)."""
    import hashlib
    import itertools
    import random

    from simulate import scenario

    from chaosreplay.recording import RecordingReader
    from chaosreplay.recording.format import packb
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.sim.simulation import Simulation

    path = guest_bin("musl", "fds")
    sc = scenario(path, ["loop", "40"], count=2, duration="120ms", checkpoint_interval=10)
    images = [load_program(path)]

    def fingerprint(sim: Simulation) -> tuple[str, int]:
        events = sim.run().events
        return stream.hexdigest(), events

    stream = hashlib.sha256()
    straight = fingerprint(Simulation(sc, images, sink=lambda *e: stream.update(packb(e))))
    stream = hashlib.sha256()
    paused = Simulation(sc, images, sink=lambda *e: stream.update(packb(e)))
    for seq in sorted(random.Random(5).sample(range(straight[1]), 60)):
        paused.run_to(seq)
    assert fingerprint(paused) == straight
    for node in paused.nodes:
        lines = node.process.stdout.decode().splitlines()
        assert len(lines) == 40 and lines[-1].startswith("round 39 ready "), lines[-3:]

    blocked: list[bool] = []
    probe = Simulation(sc, images, on_checkpoint=lambda c: blocked.extend(
        n.process.waiting is not None for n in probe.nodes))
    probe.run()
    assert any(blocked), "some checkpoint is taken while a node is blocked in a call"

    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        infos = reader.checkpoints
        assert len(infos) >= 3  # the run ends when both nodes have exited
        for info, following in itertools.pairwise(infos):
            loaded = reader.load_checkpoint(info.index)
            taken: list[Any] = []
            sim = Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                                    on_checkpoint=taken.append)
            while not taken and sim.stop_reason is None:
                sim.step()
            assert taken and taken[0].digest == following.digest, info.index
