"""A recording is untrusted input: a corpus of hostile checkpoints and manifests.

Each case takes a real recording (probe nodes under faults), rewrites one checkpoint part or
the manifest the way an attacker would, with every digest recomputed (plain SHA-256, the
attacker can), and writes a well-formed .ccr of it. `state`, `replay`, `debug` and `triage`
must answer with one clear line and exit 2, and the process must stay sane: the honest
recording still reconstructs afterwards in the same process (no host memory outside a VM
was touched, which would have crashed or corrupted it).
"""

from __future__ import annotations

import copy
import hashlib
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from simulate import scenario
from test_vmm_bounds import (
    FIXED,
    OFF_ALLOC,
    OFF_KGS,
    OFF_MXCSR,
    OFF_RFLAGS,
    OFF_RIP,
    put64,
    u64,
)

from chaosreplay.cli import main
from chaosreplay.debugger.session import DebugSession
from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.recording.format import packb, unpackb
from chaosreplay.runs.record_replay import record_run
from chaosreplay.sim.checkpoint import parts_digest, rewrite_blob, stored_parts
from chaosreplay.vm.elf import load_program
from chaosreplay.vm.vmm import PAGE_SIZE, SCRATCH_END, SCRATCH_START

pytestmark = pytest.mark.kvm

TARGET = 1  # the checkpoint every case rewrites
PML4 = 0x20
ADDR = 0x000FFFFFFFFFF000
Blobs = dict[str, bytes]
Pages = dict[str, dict[int, bytes]]


@pytest.fixture(scope="module")
def honest(guest_bin, tmp_path_factory) -> Path:
    probe = guest_bin("musl", "probe")
    sc = scenario(probe, ["ring", "60"], seed=5, duration="700ms", checkpoint_interval=200,
                  network={"jitter_ns": "1ms"},
                  faults=[{"kind": "partition", "at": 100, "duration": 150,
                           "sides": [[0], [1, 2]]},
                          {"kind": "kill", "at": 250, "node": 1, "duration": 300}])
    path = tmp_path_factory.mktemp("hostile") / "run.ccr"
    record_run(sc, [load_program(probe)], path)
    return path


def _memory_part(pages: dict[int, bytes], high: int) -> bytes:
    """sim.checkpoint's memory digest of a region, as an attacker recomputes it."""
    zero = hashlib.sha256(bytes(PAGE_SIZE)).digest()
    scratch = range(SCRATCH_START // PAGE_SIZE, SCRATCH_END // PAGE_SIZE)
    return hashlib.sha256(b"".join(
        hashlib.sha256(pages[pfn]).digest() if pfn in pages else zero
        for pfn in range(high) if pfn not in scratch)).digest()


def rewrite(src: Path, dst: Path, *, blobs: Callable[[Blobs], Blobs] | None = None,
            pages: Callable[[Blobs, Pages], Pages] | None = None,
            manifest: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> Path:
    """A copy of src with checkpoint TARGET's blobs/pages or the manifest edited, every
    checkpoint stored in full and every digest consistent with what it holds."""
    with RecordingReader(src) as reader:
        man = copy.deepcopy(reader.manifest)
        writer = RecordingWriter(dst, manifest(man) if manifest else man)
        infos = list(reader.checkpoints)
        for seq, row in enumerate([*reader.rows(), None]):
            while infos and infos[0].seq == seq:
                info = infos.pop(0)
                loaded = reader.load_checkpoint(info.index)
                b = dict(loaded.blobs)
                p = {region: loaded.pages(region) for region in loaded.regions}
                digest = info.digest
                if info.index == TARGET and (blobs or pages):
                    if blobs:
                        b = blobs(b)
                    if pages:
                        p = pages(b, p)
                        parts = stored_parts(b)
                        for region, region_pages in p.items():
                            high = struct.unpack_from("<I", b[f"{region}.vcpu"], OFF_ALLOC)[0]
                            parts[f"{region}.memory"] = _memory_part(region_pages, high)
                        b = {**b, "parts": packb(dict(sorted(parts.items())))}
                    digest = parts_digest(stored_parts(b))
                writer.add_checkpoint(info.tick, info.seq, digest, b, p)
            if row is not None:
                writer.append(*row)
        writer.close(reader.summary)
    return dst


def edit_part(name: str, edit: Callable[[Any], Any]) -> Callable[[Blobs], Blobs]:
    """A blobs edit: decode part `name`, edit it, re-encode, fix its digest."""
    def apply(b: Blobs) -> Blobs:
        return rewrite_blob(b, name, packb(edit(unpackb(b[name], name))))
    return apply


def raw_part(name: str, data: bytes) -> Callable[[Blobs], Blobs]:
    return lambda b: rewrite_blob(b, name, data)


def edit_vcpu(node: int, edit: Callable[[bytes], bytes]) -> Callable[[Blobs], Blobs]:
    name = f"node{node}.vcpu"
    return lambda b: rewrite_blob(b, name, edit(b[name]))


def free_list_of(pfn: int, count: int) -> Callable[[bytes], bytes]:
    """The vCPU state with `count` free frames all `pfn`, the counts kept consistent."""
    def apply(state: bytes) -> bytes:
        high, used, free = struct.unpack_from("<III", state, OFF_ALLOC)
        alloc = struct.pack("<III", high, used + free - count, count)
        return (state[:OFF_ALLOC] + alloc + state[OFF_ALLOC + 12:FIXED]
                + struct.pack(f"<{count}I", *[pfn] * count))
    return apply


def _set(path: list[Any], value: Any) -> Callable[[Any], Any]:
    def apply(data: Any) -> Any:
        target = data
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        return data
    return apply


def _delete(key: str) -> Callable[[Any], Any]:
    def apply(data: Any) -> Any:
        del data[key]
        return data
    return apply


def _vma_maps(i: int, description: int, shared: int) -> Callable[[Any], Any]:
    """A kernel-state edit: VMA i made a file mapping of description (shared or not)."""
    def apply(kernel: Any) -> Any:
        kernel["vmas"][i] = [*kernel["vmas"][i][:4], 0, description, shared]
        return kernel
    return apply


def _disk_loop(disk: dict[str, Any]) -> dict[str, Any]:
    root = next(i for i in disk["inodes"] if i["ino"] == 1)
    root["entries"].append([b"again", 1])  # the root inside itself
    return disk


def _add_descriptions(*descriptions: list[Any], pipe: list[Any] | None = None,
                      ) -> Callable[[Any], Any]:
    """A kernel-state edit: more descriptions (and a shared pipe) in the descriptor table."""
    def apply(kernel: Any) -> Any:
        table = kernel["files"]["table"]
        if pipe is not None:
            table["shared"].append(pipe)
        table["descriptions"] += descriptions
        return kernel
    return apply


def _pipe_end(index: int) -> list[Any]:
    return ["pipe", 0, b"pipe:[9]", 0, index]


def _page_edit(region: str, pfn: int, data: bytes) -> Callable[[Blobs, Pages], Pages]:
    def apply(b: Blobs, p: Pages) -> Pages:
        return {**p, region: {**p[region], pfn: data}}
    return apply


def _leaf(p: dict[int, bytes], va: int) -> tuple[int, int, int]:
    """(page-table pfn, offset, entry) of va's leaf entry."""
    pfn = PML4
    for level in (3, 2, 1):
        pfn = (u64(p[pfn], ((va >> (12 + 9 * level)) & 511) * 8) & ADDR) >> 12
    off = ((va >> 12) & 511) * 8
    return pfn, off, u64(p[pfn], off)


def _pte_to(region: str, target: int) -> Callable[[Blobs, Pages], Pages]:
    """Point the leaf entry of the program's first page at another guest-physical address."""
    def apply(b: Blobs, p: Pages) -> Pages:
        pages = dict(p[region])
        pfn, off, entry = _leaf(pages, 0x400000)
        pages[pfn] = put64(pages[pfn], off, (entry & ~ADDR) | target)
        return {**p, region: pages}
    return apply


def _over(region: str, pfn: int) -> Callable[[Blobs, Pages], Pages]:
    return lambda b, p: _page_edit(region, pfn, b"\x90" * 64 + p[region][pfn][64:])(b, p)


# name -> (blobs edit, pages edit, words the one error line must contain)
CASES: dict[str, tuple[Any, Any, tuple[str, ...]]] = {
    "free list of 0xfffffff0": (edit_vcpu(1, free_list_of(0xFFFFFFF0, 16)), None,
                                ("part node1.vcpu", "free frame list entry 0 (0xfffffff0)")),
    "free list in the system area": (edit_vcpu(0, free_list_of(0x6, 1)), None,
                                     ("part node0.vcpu", "(0x6) is outside the user frames")),
    "rflags IOPL 3": (edit_vcpu(2, lambda s: put64(s, OFF_RFLAGS, 0x3202)), None,
                      ("part node2.vcpu", "rflags 0x3202")),
    "non-canonical rip": (edit_vcpu(0, lambda s: put64(s, OFF_RIP, 1 << 63)), None,
                          ("part node0.vcpu", "is not canonical")),
    "kernel gs base": (edit_vcpu(0, lambda s: put64(s, OFF_KGS, 0xFFFF800000020000)), None,
                       ("part node0.vcpu", "kernel gs base")),
    "mxcsr reserved bits": (edit_vcpu(0, lambda s: put64(s, OFF_MXCSR, 0xFFFFFFFF)), None,
                            ("part node0.vcpu", "mxcsr")),
    "vcpu state too short": (edit_vcpu(0, lambda s: s[:100]), None,
                             ("part node0.vcpu", "not canonical vCPU state")),
    "vma of the wrong types": (edit_part("node1.kernel", _set(["vmas", 2], ["a", 2, 3, 4])),
                               None, ("part node1.kernel", "field vmas[2] is not "
                                      "[int, int, int, str]")),
    "file mapping naming a missing description": (
        edit_part("node1.kernel", _vma_maps(2, 999, 0)), None,
        ("part node1.kernel", "has mapping", "naming description 999 of 3")),
    "shared mapping of a terminal": (
        edit_part("node0.kernel", _vma_maps(2, 0, 1)), None,
        ("part node0.kernel", "shared mapping", "of description 0", "cannot be shared")),
    "vma row of six items": (
        edit_part("node0.kernel", lambda k: _set(["vmas", 2], [*k["vmas"][2][:4], 0, 1])(k)),
        None, ("part node0.kernel", "field vmas[2]")),
    "disk content blob missing": (edit_part("node0.disk",
                                            _set(["external"], [[1, "data", "ab" * 32]])),
                                  None, ("part node0.disk", "field external[0] names a blob "
                                         "that is missing")),
    "disk content row of the wrong types": (edit_part("node0.disk",
                                                      _set(["external"], [[[1], [], 7]])),
                                            None, ("part node0.disk", "field external[0] is "
                                                   "not [inode, field, sha256]")),
    "vma in the kernel half": (edit_part("node0.kernel",
                                         _set(["vmas", 0], [1 << 63, (1 << 63) + 4096, 3, "x"])),
                               None, ("part node0.kernel", "field vmas[0][0]")),
    "kernel state key missing": (edit_part("node0.kernel", _delete("brk")), None,
                                 ("part node0.kernel", "has no field 'brk'")),
    "huge virtual time": (edit_part("node0.kernel", _set(["vtime_ns"], 2**64 - 1)), None,
                          ("part node0.kernel", "field vtime_ns is 18446744073709551615")),
    "unknown random stream": (edit_part("node0.kernel", _set(["random", 0], ["evil", 1])),
                              None, ("part node0.kernel", "field random[0]")),
    "description of an unknown kind": (
        edit_part("node0.kernel", _set(["files", "table", "descriptions", 0, 0], "nosuch")),
        None, ("part node0.kernel", "field files.table.descriptions[0] has an unknown kind "
               "'nosuch'")),
    "fd naming a missing description": (
        edit_part("node1.kernel", _set(["files", "table", "fds", 0, 1], 999)), None,
        ("part node1.kernel", "field files.table has fd 0 naming description 999 of 3")),
    "pipe buffer over its capacity": (
        edit_part("node0.kernel", _add_descriptions(
            _pipe_end(0), pipe=[9, 4096, b"x" * 5000, 1, 0, 0, 0])), None,
        ("part node0.kernel", "field files.table.shared[0] holds 5000 bytes, more than its "
         "capacity 4096")),
    "pipe end naming a missing pipe": (
        edit_part("node0.kernel", _add_descriptions(_pipe_end(3))), None,
        ("part node0.kernel", "has description 3 (pipe) naming shared object 3 of 0")),
    "epoll entry naming a missing description": (
        edit_part("node2.kernel", _add_descriptions(
            ["epoll", 2, b"anon_inode:[eventpoll]", 0, [0, [[9, 999, 1, 0, None, True]]]])),
        None, ("part node2.kernel", "has description 3 (epoll) naming description 999 of 4")),
    "epoll watching itself": (
        edit_part("node0.kernel", _add_descriptions(
            ["epoll", 2, b"anon_inode:[eventpoll]", 0, [0, [[9, 3, 1, 0, None, True]]]])),
        None, ("part node0.kernel", "field files.table has description 3 watching itself")),
    "waiting on a missing description": (
        edit_part("node0.kernel", _set(["files", "waiting"],
                                       [[1000, [0, "read", None, 0, [[999, 1]]]]])),
        None, ("part node0.kernel", "has a blocked call waiting on description 999 of 3")),
    "descriptor table of the wrong type": (
        edit_part("node0.kernel", _set(["files", "table", "fds"], "all")), None,
        ("part node0.kernel", "field files.table.fds is not a list")),
    "code_pages site past the user half": (
        edit_part("node0.kernel", _set(["code_pages", "sites"], [
            [(1 << 47) - 1, 2, "rdtsc", b"\x0f\x31", "f", None, 64]])), None,
        ("part node0.kernel", "field code_pages.sites[0] at 0x7fffffffffff reaches past the "
         "user half")),
    "code_pages page in the kernel half": (
        edit_part("node1.kernel", _set(["code_pages", "code"], [1 << 63])), None,
        ("part node1.kernel", "field code_pages.code[0] is 9223372036854775808")),
    "code_pages of the wrong type": (edit_part("node0.kernel", _set(["code_pages"], [1])),
                                     None, ("part node0.kernel", "field code_pages is not")),
    "deep nesting": (raw_part("node0.kernel", b"\x91" * 100_000 + b"\xc0"), None,
                     ("part node0.kernel", "malformed msgpack")),
    "kernel state not a table": (raw_part("node2.kernel", packb([1, 2, 3])), None,
                                 ("part node2.kernel", "is not a table")),
    "disk directory loop": (edit_part("node0.disk", _disk_loop), None,
                            ("part node0.disk", "twice in its entries tree")),
    "disk inodes of the wrong type": (edit_part("node0.disk", _set(["inodes"], {"a": 1})),
                                      None, ("part node0.disk", "field inodes")),
    "packet to a node that does not exist": (
        edit_part("fabric", _set(["in_flight"], [[1, 0, 7, b"x", 1, 0, 0, 0, 1]])), None,
        ("part fabric", "field in_flight[0][2] is 7, outside 0..2")),
    "fabric for another cluster": (edit_part("fabric", _set(["node_count"], 4)), None,
                                   ("part fabric", "field node_count")),
    "active fault the engine does not know": (
        edit_part("engine", _set(["active"], [["nope-1", 1, 2]])), None,
        ("part engine", "does not load")),
    "engine fault of an unknown kind": (
        edit_part("engine", _set(["faults", 0, "kind"], "meteor")), None,
        ("part engine", "field faults[0] fails as a fault")),
    "oracle assertion kind 9": (
        edit_part("oracle", lambda o: {**o, "assertions": [{**o["assertions"][0], "kind": 9}]}),
        None, ("part oracle", "field assertions[0].kind")),
    "inboxes for two nodes": (edit_part("inboxes", lambda rows: rows[:2]), None,
                              ("part inboxes", "has 2 endpoints for 3 nodes")),
    "unknown node status": (edit_part("controller", _set(["statuses", 1], "zombie")), None,
                            ("part controller", "field statuses[1]")),
    "negative event count": (edit_part("controller", _set(["event_count"], -1)), None,
                             ("part controller", "field event_count is -1")),
    "controller not a table": (raw_part("controller", packb("hello")), None,
                               ("part controller", "unsupported simulation state version")),
    "part missing": (lambda b: {k: v for k, v in b.items() if k != "fabric"}, None,
                     ("no 'fabric' part",)),
    "page over the GDT": (None, _over("node0", 0x1), ("region node0", "page 0x1 (GDT)")),
    "page over the IDT": (None, _over("node1", 0x2), ("region node1", "page 0x2 (IDT)")),
    "page over the TSS and I/O bitmap": (None, _over("node0", 0x4),
                                         ("page 0x4 (TSS and I/O bitmap)",)),
    "page over the CPL0 stubs": (None, _over("node2", 0x6), ("page 0x6 (CPL0 stubs)",)),
    "page over the entry page": (None, _over("node0", 0x7), ("page 0x7 (entry page)",)),
    "page over the direct map": (None, _over("node0", 0x22), ("page 0x22 (direct map)",)),
    "PML4 kernel half": (None, lambda b, p: _page_edit(
        "node0", PML4, put64(p["node0"][PML4], 300 * 8, 0x200027))(b, p),
        ("page 0x20 (PML4 kernel half)",)),
    "PTE past RAM": (None, _pte_to("node0", 1 << 40), ("region node0", "points past the VM's RAM")),
    "PTE into the system area": (None, _pte_to("node1", 0x6000),
                                 ("region node1", "points into the VMM's system area")),
    "page beyond the state's frames": (None, _page_edit("node0", 0xFFFFF, bytes(PAGE_SIZE)),
                                       ("part node0.vcpu", "is not below the state's high")),
}


def _one_clear_line(output: str, *words: str) -> None:
    lines = [line for line in output.splitlines() if line.strip()]
    assert "Traceback" not in output, output
    assert len(lines) == 1, output
    for word in words:
        assert word in lines[0], lines[0]


def _state_at_target(path: Path) -> Any:
    with RecordingReader(path) as reader:
        seq = reader.checkpoints[TARGET].seq
    return CliRunner().invoke(main, ["state", str(path), "--event", str(seq + 1)])


@pytest.mark.parametrize("case", sorted(CASES))
def test_state_refuses_a_hostile_checkpoint_in_one_line(honest, tmp_path, case) -> None:
    blobs, pages, words = CASES[case]
    path = rewrite(honest, tmp_path / "hostile.ccr", blobs=blobs, pages=pages)
    result = _state_at_target(path)
    assert result.exit_code == 2, result.output
    _one_clear_line(result.output, "error:", str(path), f"checkpoint {TARGET}", *words)


def test_the_rewriter_keeps_an_honest_recording_honest(honest, tmp_path) -> None:
    """Without edits the rewritten file reconstructs: the refusals above are the edits'."""
    path = rewrite(honest, tmp_path / "copy.ccr", blobs=lambda b: b)
    result = _state_at_target(path)
    assert result.exit_code == 0, result.output
    verify = CliRunner().invoke(main, ["verify", str(path)])
    assert verify.exit_code == 0, verify.output


def test_every_part_table_names_exactly_the_fields_of_a_real_checkpoint(honest) -> None:
    """The tables mirror what capture() writes: a field added to a part without its line in
    sim/checkpoint_check.py (or kernel/state_check.py) fails here."""
    from chaosreplay.kernel.state_check import DISK_STATE, KERNEL_STATE
    from chaosreplay.sim import checkpoint_check as checks
    from chaosreplay.sim.checkpoint import STATE_VERSION

    tables = {"fabric": checks.fabric(3), "engine": checks.engine(3), "oracle": checks.oracle(3),
              "controller": checks.controller(3, (), STATE_VERSION),
              "node0.kernel": KERNEL_STATE, "node0.disk": DISK_STATE}
    with RecordingReader(honest) as reader:
        blobs = reader.load_checkpoint(TARGET).blobs
    for name, table in tables.items():
        record = table.inner if hasattr(table, "inner") else table
        fields = set(unpackb(blobs[name], name))
        assert fields == set(record.fields), (name, fields ^ set(record.fields))


def test_the_host_process_stays_sane_after_the_corpus(honest, tmp_path) -> None:
    """Hostile checkpoints one after another in this process, then the honest recording:
    it reconstructs exactly as before, so nothing outside a VM was written."""
    before = _state_at_target(honest)
    assert before.exit_code == 0, before.output
    for case in ("free list of 0xfffffff0", "PTE past RAM", "page over the CPL0 stubs",
                 "rflags IOPL 3"):
        blobs, pages, _ = CASES[case]
        assert _state_at_target(rewrite(honest, tmp_path / f"{case}.ccr", blobs=blobs,
                                        pages=pages)).exit_code == 2
    after = _state_at_target(honest)
    assert after.exit_code == 0 and after.output == before.output


def test_replay_never_loads_a_checkpoint_and_reports_the_parts_that_differ(honest,
                                                                           tmp_path) -> None:
    blobs, pages, _ = CASES["free list of 0xfffffff0"]
    path = rewrite(honest, tmp_path / "hostile.ccr", blobs=blobs, pages=pages)
    result = CliRunner().invoke(main, ["replay", str(path)])
    assert "Traceback" not in result.output
    assert result.exit_code == 1, result.output
    assert "node 1 vCPU" in result.output


MANIFEST_CASES: dict[str, tuple[Callable[[dict[str, Any]], dict[str, Any]], str]] = {
    "no scenario": (_delete("scenario"), "has no field 'scenario'"),
    "scenario of the wrong type": (_set(["scenario"], [1, 2]), "field scenario is not"),
    # The scenario parser may refuse it first; either way one line about memory_per_node.
    "memory_per_node of 1 TB": (_set(["scenario", "memory_per_node"], 1 << 40),
                                "memory_per_node"),
    "memory_per_node a string": (_set(["scenario", "memory_per_node"], "lots"),
                                 "memory_per_node"),
    "no options": (_delete("options"), "has no field 'options'"),
    "keep_going not a bool": (_set(["options", "keep_going"], "yes"),
                              "field options.keep_going is not bool"),
    "group naming a missing program": (_set(["programs", "groups", 0], "ab" * 32),
                                       "that is not embedded"),
    "programs of the wrong type": (_set(["programs"], "none"), "field programs is not"),
    "program bytes of the wrong type": (
        lambda m: _set(["programs", "binaries", m["programs"]["groups"][0], "elf"], 7)(m),
        "field programs.binaries"),
}


@pytest.mark.parametrize("command", ["state", "replay", "debug", "triage"])
@pytest.mark.parametrize("case", sorted(MANIFEST_CASES))
def test_a_hostile_manifest_is_one_line_everywhere(honest, tmp_path, case, command) -> None:
    edit, words = MANIFEST_CASES[case]
    folder = tmp_path / "bugs"
    folder.mkdir()
    path = rewrite(honest, folder / "hostile.ccr", manifest=edit)
    if command == "debug":  # the debugger opens and shows why it cannot reconstruct
        with DebugSession(path) as session:
            assert session.cannot_reconstruct is not None
            assert words in session.cannot_reconstruct, session.cannot_reconstruct
            assert str(path) in session.cannot_reconstruct
        return
    args = {"state": ["state", str(path), "--event", "1"], "replay": ["replay", str(path)],
            "triage": ["triage", str(folder)]}[command]
    result = CliRunner().invoke(main, args)
    assert "Traceback" not in result.output
    assert str(path) in result.output, result.output
    assert words in result.output, result.output
    if command == "triage":  # triage notes the recording it cannot read and goes on
        assert "not replayed" in result.output, result.output
    else:
        assert result.exit_code == 2, result.output
