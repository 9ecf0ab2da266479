"""`chaosreplay run PROGRAM [ARGS...]`: run one node program alone, to completion."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from chaosreplay.errors import GuestProgramError
from chaosreplay.events import EventKind
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.scheduler import POLICIES, SchedulerConfig
from chaosreplay.kernel.sdk_abi import AssertKind
from chaosreplay.sim.programs import read_program
from chaosreplay.sim.scenario import exec_arguments_problem


def _stream(fd: int, data: bytes) -> None:
    out = sys.stdout.buffer if fd == 1 else sys.stderr.buffer
    out.write(data)
    out.flush()


def _duration(ns: int) -> str:
    return f"{ns / 1e9:.6f}s" if ns < 10**9 else f"{ns / 1e9:.3f}s"


# Everything after PROGRAM is the program's, options that look like ours (--seed, -h)
# included: click stops parsing options at the first argument.
@click.command(context_settings={"ignore_unknown_options": True,
                                 "allow_interspersed_args": False})
@click.argument("program", type=click.Path(path_type=Path))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed for all the program observes (AT_RANDOM, getrandom, rdrand...).")
@click.option("--env", "env", multiple=True, metavar="KEY=VALUE",
              help="An environment variable for the program (repeatable); none of the host's.")
@click.option("--mem", "mem_mib", type=click.IntRange(min=8, max=16384), default=256,
              show_default=True, help="Guest memory in MiB (rounded up to 2 MiB).")
@click.option("--no-patch", is_flag=True,
              help="Refuse programs containing rdtsc/cpuid/rdrand & co instead of emulating them.")
@click.option("--hang-timeout", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Wall seconds without a VM exit before the guest counts as hung (0: never).")
@click.option("--schedule", type=click.Choice(POLICIES), default=POLICIES[0],
              show_default=True,
              help="How threads share the one vCPU: time slices in tid order, or a seeded "
                   "random interleaving (another --seed, another interleaving).")
@click.option("--fast-path/--no-fast-path", default=True, show_default=True,
              help="Let the guest answer clock reads and id calls without a VM exit "
                   "(the same run, call for call, only faster; docs/architecture.md).")
@click.option("--vdso/--no-vdso", default=True, show_default=True,
              help="Give the program a vDSO (AT_SYSINFO_EHDR), as Linux does: libcs and Go "
                   "read the clock through it.")
def run(program: Path, args: tuple[str, ...], seed: int, env: tuple[str, ...], mem_mib: int,
        no_patch: bool, hang_timeout: float, schedule: str, fast_path: bool,
        vdso: bool) -> None:
    """Run one static x86-64 Linux PROGRAM in a VM and mirror its exit status.

    Everything after PROGRAM is passed to it (options of run go before PROGRAM).
    """
    for item in env:
        if "=" not in item:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--env")
    argv = [str(program).encode()] + [os.fsencode(a) for a in args]
    envp = [os.fsencode(e) for e in env]
    problem = exec_arguments_problem(argv, envp)
    if problem:
        raise GuestProgramError(f"{program}: cannot start it: {problem}")
    image = read_program(program)
    failed_asserts: list[str] = []

    def on_event(process: GuestProcess, kind: EventKind, fields: dict) -> None:
        if kind is EventKind.ASSERT:
            broken = (fields["assert_kind"] == AssertKind.ALWAYS and not fields["condition"]) or (
                fields["assert_kind"] == AssertKind.UNREACHABLE)
            if broken:
                failed_asserts.append(f"{fields['message']} ({fields['file']}:{fields['line']})")

    config = ProcessConfig(
        argv=argv,
        envp=envp,
        seed=seed,
        mem_size=(mem_mib + 1) // 2 * 2 << 20,
        patch=not no_patch,
        scheduler=SchedulerConfig(policy=schedule),
        fast_path=fast_path,
        vdso=vdso,
    )
    started = time.perf_counter()
    process = GuestProcess(image, config, on_event=on_event, on_output=_stream)
    process.trace_syscalls = False  # only assertions matter here; keep the hot path lean
    status = process.run_to_completion(hang_timeout)
    wall = time.perf_counter() - started
    stats = process.vm.stats()

    for text in failed_asserts:
        click.echo(f"chaosreplay: assertion failed: {text}", err=True)
    for number, count in sorted(process.unknown_syscalls.items()):
        click.echo(f"chaosreplay: unsupported syscall {number} called {count}x (got ENOSYS)",
                   err=True)
    if status is Status.EXITED:
        outcome, code = f"exited {process.exit_code}", process.exit_code or 0
    elif status is Status.CRASHED and process.crash is not None:
        outcome, code = f"crashed: {process.crash.describe()}", 128 + process.crash.signal
    else:
        outcome = f"hung: no VM exit for {hang_timeout:g}s of wall time (a loop without syscalls?)"
        code = 124
    click.echo(
        f"chaosreplay: {outcome} · virtual {_duration(process.vtime_ns)} · "
        f"{process.syscalls} syscalls · {stats.exits} VM exits · wall {wall * 1000:.1f} ms",
        err=True,
    )
    sys.exit(code)
