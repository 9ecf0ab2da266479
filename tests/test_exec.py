"""Loading program images (chaosreplay.kernel.exec): plans, the image cache, fresh and reset
address spaces."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chaosreplay.errors import GuestProgramError
from chaosreplay.kernel.exec import ImageCache, load_image, plan_load, reset_address_space
from chaosreplay.kernel.mm.address_space import AddressSpace
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.rng import DeterministicStream
from chaosreplay.vm import nonvirt
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import Vm

GuestBin = Callable[[str, str], Path]


def test_plan_patches_every_site_the_scan_finds(guest_bin: GuestBin) -> None:
    image = load_program(guest_bin("glibc", "hello"))
    plan = plan_load(image)
    sites, _ = nonvirt.scan_program(image)
    assert [s.address for s in plan.sites] == [s.address for s in sites] and sites
    for site in plan.sites:  # the patched bytes start with ud2 where the instruction was
        seg = image.segment_at(site.address)
        assert seg is not None
        index = image.segments.index(seg)
        offset = site.address - seg.vaddr
        assert plan.contents[index][offset:offset + 2] == b"\x0f\x0b", site


def test_plan_without_patching_refuses_a_program_that_needs_it(guest_bin: GuestBin) -> None:
    image = load_program(guest_bin("glibc", "hello"))
    with pytest.raises(GuestProgramError, match="uses non-virtualizable instructions"):
        plan_load(image, patch=False)


def test_image_cache_parses_a_binary_once_whatever_it_is_run_as(guest_bin: GuestBin) -> None:
    raw = guest_bin("musl", "echo_args").read_bytes()
    cache = ImageCache()
    first = cache.plan(raw, "/bin/sh")
    again = cache.plan(raw, "/bin/sh")
    as_ls = cache.plan(raw, "/bin/ls")
    assert cache.parses == 1
    assert again is first, "a hit under the same name is the same plan"
    assert (first.image.path, as_ls.image.path) == (Path("/bin/sh"), Path("/bin/ls"))
    assert as_ls.contents is first.contents and as_ls.sites is first.sites


def test_image_cache_evicts_the_least_recently_used(guest_bin: GuestBin) -> None:
    a = guest_bin("musl", "echo_args").read_bytes()
    b = guest_bin("musl", "hello").read_bytes()
    cache = ImageCache(entries=1)
    cache.plan(a, "a")
    cache.plan(b, "b")
    cache.plan(a, "a")
    assert cache.parses == 3


def test_image_cache_checks_patching_and_bad_binaries_on_every_call(
        guest_bin: GuestBin) -> None:
    cache = ImageCache()
    raw = guest_bin("glibc", "hello").read_bytes()
    cache.plan(raw, "/bin/hello")
    with pytest.raises(GuestProgramError, match="non-virtualizable"):
        cache.plan(raw, "/bin/hello", patch=False)
    with pytest.raises(GuestProgramError, match="/bin/junk"):
        cache.plan(b"#!/bin/sh\necho\n", "/bin/junk")
    assert cache.parses == 2


def _loaded_vm(plan_path: Path, argv: list[bytes]) -> tuple[Vm, AddressSpace]:
    vm = Vm(64 << 20)
    space = AddressSpace(vm)
    loaded = load_image(space, plan_load(load_program(plan_path)), argv, [],
                        DeterministicStream(0, "auxv", 0).read(16),
                        b"/chaosreplay/" + plan_path.name.encode())
    vm.start(loaded.entry, loaded.stack_pointer)
    return vm, space


@pytest.mark.kvm
@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_fresh_load_is_what_a_process_starts_with(libc: str, guest_bin: GuestBin) -> None:
    """load_image into a fresh space gives the VM GuestProcess builds, to the byte."""
    path = guest_bin(libc, "echo_args")
    argv = [b"echo_args", b"x"]
    process = GuestProcess(load_program(path), ProcessConfig(argv=argv, mem_size=64 << 20))
    vm, space = _loaded_vm(path, argv)
    assert vm.digest() == process.vm.digest()
    assert [(v.start, v.end, v.prot, v.name) for v in space.vmas()] == [
        (v.start, v.end, v.prot, v.name) for v in process.space.vmas()]
    assert space.code.code == process.space.code.code


@pytest.mark.kvm
@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_reset_space_loads_and_runs_another_program(libc: str, guest_bin: GuestBin) -> None:
    """execve's path: a process that ran a while, its space reset and another image loaded,
    runs the new program to its end with the output and exit status of a fresh start."""
    process = GuestProcess(load_program(guest_bin(libc, "malloc_heavy")),
                           ProcessConfig(argv=[b"malloc_heavy"]))
    assert process.run(deadline_ns=200_000) == Status.RUNNING  # mid-run, heap in use
    assert process.syscalls >= 10
    used_before = process.vm.stats().frames_used
    old = process.space.vmas()
    assert sum(process.vm.count_mapped(v.start, v.end - v.start) for v in old) > 0

    reset_address_space(process.space)
    assert process.space.vmas() == [] and process.space.code.code == set()
    assert process.space.code.sites == {} and process.space.brk == 0
    assert sum(process.vm.count_mapped(v.start, v.end - v.start) for v in old) == 0, \
        "no page of the old mappings keeps a frame"
    assert process.vm.stats().frames_used < used_before

    path = guest_bin(libc, "echo_args")
    image = load_program(path)
    loaded = load_image(process.space, plan_load(image), [b"echo_args", b"after", b"exec"],
                        [b"EXIT=3"], b"\x01" * 16, b"/bin/echo_args")
    _, fresh_space = _loaded_vm(path, [b"echo_args"])
    assert [(v.start, v.end, v.prot) for v in process.space.vmas()] == [
        (v.start, v.end, v.prot) for v in fresh_space.vmas()], "the layout of a fresh load"
    assert process.space.code.code == fresh_space.code.code
    process.image, process.sites = image, process.space.code.sites
    process.vm.fs_base = 0
    process.vm.start(loaded.entry, loaded.stack_pointer)
    assert process.run_to_completion(hang_seconds=20) == Status.EXITED, process.crash
    assert bytes(process.stdout) == b"[after]\n[exec]\n"
    assert process.exit_code == 3


def test_pause_alone_does_not_need_patching(guest_bin: GuestBin) -> None:
    """`pause` is a spin hint, harmless natively: --no-patch runs a program whose only
    sites are pauses, leaving them as they are."""
    image = load_program(guest_bin("musl", "spin_pause"))
    kinds = {site.kind for site in nonvirt.scan_program(image)[0]}
    assert kinds == {nonvirt.Kind.PAUSE}
    assert plan_load(image, patch=False).sites == ()
    p = GuestProcess(image, ProcessConfig(argv=[b"spin_pause", b"10"], patch=False))
    assert p.run_to_completion(hang_seconds=20) is Status.EXITED and p.exit_code == 0
    # natively run, the pauses cost no virtual time (patched, each would be an exit: 2 µs)
    assert bytes(p.stdout) == b"paused 10\nelapsed 1000\n"
