"""Shared file mappings (kernel/mm/page_cache.py) and the memory calls around them: a
program using MAP_SHARED, msync, mremap, madvise and mincore prints what it prints natively;
a crash keeps only what msync made durable; the mappings survive a checkpoint's save,
check and load; the byte merge of two mappings' stores."""

from __future__ import annotations

import subprocess
from pathlib import Path

import program_cache
import pytest
from simulate import scenario, simulate

from chaosreplay.kernel.fs.shmem import SharedMemory
from chaosreplay.kernel.mm.address_space import AddressSpace, Vma
from chaosreplay.kernel.mm.page_cache import _merge
from chaosreplay.kernel.process import GuestProcess, ProcessConfig, Status
from chaosreplay.kernel.state_check import check_kernel_state
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import packb
from chaosreplay.recording.schema import SchemaError
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import Prot, Vm

R, RW = int(Prot.READ), int(Prot.READ | Prot.WRITE)


def _built(flavour: str) -> Path:
    return program_cache.built("shared_mmap.c", flavour)


@pytest.mark.kvm
@pytest.mark.parametrize("checkpoint", [1, 4])
def test_a_run_resumed_from_a_checkpoint_continues_identically(guest_bin, tmp_path: Path,
                                                               checkpoint: int) -> None:
    """Checkpoints taken while shared mappings hold stores (some synced, some not, a
    restart between): resuming from one gives the recorded events, and replay agrees."""
    probe = guest_bin("musl", "probe")
    sc = scenario(probe, ["shmap", "9"], count=2, duration="1200ms", checkpoint_interval=150,
                  faults=[{"kind": "restart", "at": 420, "node": 1}])
    images = [load_program(probe)]
    path = tmp_path / "run.ccr"
    record_run(sc, images, path)
    with RecordingReader(path) as reader:
        recorded = [packb((e.tick, e.vtime_ns, e.node, e.kind, e.fields))
                    for e in reader.events()]
        ckpt = reader.load_checkpoint(checkpoint)
        resumed: list[bytes] = []
        sim = Simulation.resume(sc, images, ckpt.blobs, ckpt.pages,
                                sink=lambda *e: resumed.append(packb(e)))
        sim.run()
    assert resumed == recorded[ckpt.info.seq:]
    assert any(b"round 3 page cache d, C" in row for row in recorded)
    assert replay_run(path).identical


def _native(path: Path, cwd: Path) -> str:
    return subprocess.run([str(path)], cwd=cwd, capture_output=True, text=True, timeout=60,
                          check=True).stdout


@pytest.mark.kvm
@pytest.mark.parametrize("flavour", ["glibc", "musl"])
def test_shared_mappings_behave_as_natively(flavour: str, tmp_path: Path) -> None:
    """pwrite/write seen through the mapping, stores seen by read/pread, ftruncate growing
    and shrinking, two mappings of a file, msync, a fork child's stores, memfds, mremap of
    anonymous and file mappings, MADV_DONTNEED, mincore, MAP_SHARED|MAP_ANONYMOUS."""
    path = _built(flavour)
    native = _native(path, tmp_path)
    assert "shared anonymous across fork: c" in native and native.endswith("done\n")
    process = GuestProcess(load_program(path), ProcessConfig(argv=[b"shared_mmap"]))
    process.run_to_completion(hang_seconds=60)
    assert (process.status, process.exit_code) == (Status.EXITED, 0), process.crash
    assert bytes(process.stdout).decode() == native


@pytest.mark.kvm
def test_a_crash_loses_shared_stores_msync_did_not_make_durable(guest_bin) -> None:
    """The msync'ed page survives the restart; the page only stored (in the page cache,
    pread saw it) is gone, as the disk's durability model says."""
    probe = guest_bin("musl", "probe")
    run = simulate(scenario(probe, ["shmap", "8"], count=1, duration="1s", faults=[
        {"kind": "kill", "at": 200, "node": 0, "duration": 100}]))
    lines = [line.decode() for _, line in run.lines(0) if not line.startswith(b"round")]
    assert lines == ["shmap boot synced=- unsynced=-", "msync ok",
                     "pread ok page cache holds LOST",
                     "shmap boot synced=SYNCED unsynced=-"], lines


@pytest.mark.kvm
def test_shared_mappings_survive_the_kernel_state(tmp_path: Path) -> None:
    """Saved mid-run with shared mappings: rows name their description and the shared
    flag, the state checks, and a load gives the same VMAs back with the files held."""
    path = _built("musl")
    process = GuestProcess(load_program(path), ProcessConfig(argv=[b"shared_mmap"]))
    seen: list[dict] = []

    def at_call(p: GuestProcess, r: object) -> int:
        if p.space.shares and not seen:
            seen.append(p.kernel_state())
        return original(p, r)

    from chaosreplay.kernel import process as process_module
    from chaosreplay.kernel.syscalls.numbers import NUMBERS

    number = NUMBERS["getppid"]  # made between the two-mapping checks: three mapped
    original = process_module.HANDLERS[number]
    process_module.HANDLERS[number] = at_call
    try:
        process.run_to_completion(hang_seconds=60)
    finally:
        process_module.HANDLERS[number] = original
    assert process.status is Status.EXITED, process.crash
    [state] = seen
    check_kernel_state(state, "kernel")
    shared = [v for v in state["vmas"] if len(v) == 7 and v[6]]
    assert [v[3].rsplit("/", 1)[-1] for v in shared] == ["shared.dat"] * 3, state["vmas"]
    descriptions = state["files"]["table"]["descriptions"]
    assert all(descriptions[v[5]][0] == "disk" for v in shared)
    # A shared row naming a pipe, or a description that does not exist, is refused.
    twin = GuestProcess(load_program(path), ProcessConfig(argv=[b"shared_mmap"]))
    twin.load_kernel_state(state)
    assert [v.saved(lambda d: 0)[:5] for v in twin.space.vmas()] == [
        v[:5] for v in state["vmas"]]
    assert sum(v.shared for v in twin.space.vmas()) == 3 and twin.space.shares
    held = {id(v.file) for v in twin.space.vmas() if v.shared}
    assert len(held) == 1 and next(v.file for v in twin.space.vmas() if v.shared).refs >= 2
    bad = {**state, "vmas": [[*v[:5], len(descriptions), 1] if len(v) == 7 and v[6] else v
                             for v in state["vmas"]]}
    with pytest.raises(SchemaError, match="naming description"):
        GuestProcess(load_program(path), ProcessConfig(argv=[b"x"])).load_kernel_state(bad)


def test_two_mappings_storing_into_one_page_both_win() -> None:
    """Bytes one mapping changed are taken from it; the others stay as the file has them."""
    base = bytes(8)
    mine = b"\x00AB\x00\x00\x00\x00\x00"
    current = b"\x00\x00\x00\x00\x00\x00YZ"  # another mapping's stores, already flushed
    assert _merge(base, mine, current) == b"\x00AB\x00\x00\x00YZ"


def test_pieces_of_one_file_merge_only_within_one_description_and_kind() -> None:
    """Two opens of a file, or a private and a shared mapping, never merge; the saved row
    names the description and the shared flag."""
    one, other = object(), object()
    first = Vma(0x10000, 0x11000, RW, "/f", 0, one, True)
    assert Vma(0x11000, 0x12000, RW, "/f", 0x1000, one, True).continues(first)
    assert not Vma(0x11000, 0x12000, RW, "/f", 0x1000, other, True).continues(first)
    assert not Vma(0x11000, 0x12000, RW, "/f", 0x1000, one, False).continues(first)
    assert first.piece(0x10000, 0x11000).file is one
    assert first.saved(lambda d: 7 if d is one else 0) == [
        0x10000, 0x11000, RW, "/f", 0, 7, 1]
    assert first.saved() == [0x10000, 0x11000, RW, "/f", 0]  # without an index: as before


class _Description:
    """Enough of a FileDescription for the holds: a reference count."""

    refs = 1


@pytest.mark.kvm
def test_a_mapping_holds_its_description_until_its_last_piece_goes() -> None:
    """Split by mprotect, unmapped piece by piece: one hold throughout, dropped once."""
    space = AddressSpace(Vm(16 << 20))
    dropped: list[_Description] = []

    def drop(d: _Description) -> None:
        d.refs -= 1
        dropped.append(d)

    space.drop_hold = drop
    d = _Description()
    assert space.map_fixed(0x100000, 0x3000, RW, "/f", eager=True, offset=0, file=d,
                           shared=True)
    assert (d.refs, space.shares) == (2, True)
    assert space.protect(0x101000, 0x1000, R) == 0 and len(space.vmas()) == 3
    assert space.unmap(0x100000, 0x2000) and d.refs == 2 and not dropped
    assert space.unmap(0x102000, 0x1000)
    assert (d.refs, dropped, space.shares) == (1, [d], False)


def test_shared_anonymous_memory_stores_only_pages_that_hold_bytes() -> None:
    """Zero pages are not stored, partial stores keep the rest of the page, and the saved
    state loads back to the same pages."""
    memory = SharedMemory(2, b"/dev/zero (deleted)", 1 << 40)
    memory.cache_write(None, 1 << 39, b"\x01" + bytes(4095))  # type: ignore[arg-type]
    memory.cache_write(None, 8192, bytes(4096))  # type: ignore[arg-type]
    assert sorted(memory.pages) == [(1 << 39) // 4096]
    memory.cache_write(None, 1 << 39, bytes(4096))  # type: ignore[arg-type]
    assert memory.pages == {}
    memory.cache_write(None, 4096, b"ab")  # type: ignore[arg-type]
    assert memory.cache_read(None, 4095, 4) == b"\x00ab\x00"  # type: ignore[arg-type]
    saved = memory.save(None)  # type: ignore[arg-type]
    SharedMemory.STATE(saved, "shmem")
    again = SharedMemory.load(2, b"x", saved, None)  # type: ignore[arg-type]
    assert isinstance(again, SharedMemory) and again.pages == memory.pages
    assert again.cache_extents(None) == [(4096, 8192)]  # type: ignore[arg-type]
