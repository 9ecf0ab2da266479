"""Private file mappings (syscalls/memory.py _map_file): a program mapping files prints
what it prints natively; the VMAs keep each piece's file offset through splits and merges
as Linux does, and a file mapping survives the kernel state's save, check and load."""

from __future__ import annotations

import subprocess
from pathlib import Path

import program_cache
import pytest

from chaosreplay.kernel.mm.address_space import Vma
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.state_check import check_kernel_state
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import Prot

R, RW = int(Prot.READ), int(Prot.READ | Prot.WRITE)


def _built(flavour: str) -> Path:
    return program_cache.built("file_mmap.c", flavour)


@pytest.mark.kvm
@pytest.mark.parametrize("flavour", ["glibc", "musl"])
def test_file_mappings_behave_as_natively(flavour: str, tmp_path: Path) -> None:
    """Contents at offsets, copy-on-write that never reaches the file, the zeroed tail, code
    run from a mapped file, /proc/self/maps with offsets, EACCES/EBADF/ENODEV/EINVAL."""
    path = _built(flavour)
    native = subprocess.run([str(path)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert "code mapped from a file: ok returns 42" in native
    process = GuestProcess(load_program(path), ProcessConfig(argv=[b"file_mmap"]))
    process.run_to_completion(hang_seconds=20)
    assert (process.status, process.exit_code) == (Status.EXITED, 0), process.crash
    assert bytes(process.stdout).decode() == native
    state = process.kernel_state()
    check_kernel_state(state, "kernel")
    files = [v for v in state["vmas"] if v[3].endswith("mapped.dat")]
    assert [v[4] for v in files] == [0x1000, 0, 0x2000]  # `none`, `cow`, `second`


def test_a_split_file_mapping_keeps_each_pieces_offset() -> None:
    """mprotect of the middle of a file mapping: three VMAs at offsets 0, 1 and 2 pages."""
    vma = Vma(0x10000, 0x13000, R, "/f", 0)
    assert [(p.start, p.offset) for p in (vma.piece(0x10000, 0x11000),
                                          vma.piece(0x11000, 0x12000, RW),
                                          vma.piece(0x12000, 0x13000))] == [
        (0x10000, 0), (0x11000, 0x1000), (0x12000, 0x2000)]
    assert vma.piece(0x11000, 0x12000, RW).prot == RW


def test_only_contiguous_pieces_of_one_file_merge() -> None:
    """Neighbours merge when they continue each other in the file (and never with anonymous
    memory), as Linux's vma_merge requires."""
    first = Vma(0x10000, 0x11000, R, "/f", 0)
    assert Vma(0x11000, 0x12000, R, "/f", 0x1000).continues(first)
    assert not Vma(0x11000, 0x12000, R, "/f", 0x3000).continues(first)
    assert not Vma(0x11000, 0x12000, R, "/f").continues(first)
    assert not Vma(0x11000, 0x12000, R, "/g", 0x1000).continues(first)
    assert Vma(0x11000, 0x12000, R, "[anon]").continues(Vma(0x10000, 0x11000, R, "[anon]"))
    assert first.saved() == [0x10000, 0x11000, R, "/f", 0]
    assert Vma(0, 0x1000, R, "[anon]").saved() == [0, 0x1000, R, "[anon]"]


@pytest.mark.kvm
def test_mapping_types_other_than_linux_has_are_einval_for_any_file() -> None:
    """Every value of flags & MAP_TYPE on an epoll descriptor and anonymously answers as
    Linux does (the fuzzer once mapped an epoll "shared" with type 0x5, and the page cache
    then asked it for its size). Type 0x8 is MAP_DROPPABLE, Linux 6.11's: refused here, as
    older kernels refuse it."""
    program = program_cache.built("mmap_types.c", "musl")
    native = subprocess.run([str(program)], capture_output=True, text=True, check=True)
    output = bytearray()
    process = GuestProcess(load_program(program), ProcessConfig(argv=[b"mmap_types"]),
                           on_output=lambda fd, data: output.extend(data))
    assert process.run_to_completion(10) is Status.EXITED, process.crash
    mine, theirs = output.decode().splitlines(), native.stdout.splitlines()
    assert len(mine) == len(theirs) == 16
    assert [m for m in mine if not m.startswith("type 0x8:")] == [
        t for t in theirs if not t.startswith("type 0x8:")]
    assert "type 0x5: epoll Invalid argument, anonymous refused" in mine
