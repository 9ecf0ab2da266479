"""Roots from a directory or a tar archive (sim/root_tree.py, `root = { dir }`/`{ tar }`),
`chaosreplay rootfs` writing a host closure as a deterministic tar, and what `info` shows of
a recording's embedded disk files."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.errors import ConfigError
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.root_tree import read_tar_root
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.sim.validation import KeyPath
from chaosreplay.vm.elf import load_program


def _member(tar: tarfile.TarFile, name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"",
            mode: int = 0o644, link: str = "") -> None:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.linkname, info.size = kind, mode, link, len(data)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _tar(path: Path, *members: tuple) -> Path:
    with tarfile.open(path, "w") as tar:
        for m in members:
            _member(tar, *m)
    return path


def _root(base: Path, root: str, files: str = "") -> Scenario:
    return loads_scenario(f"""
[[nodes]]
program = "prog"
root = {root}
{files}
""", "root.toml", base_dir=base)


def _entries(sc: Scenario) -> dict[str, DiskEntry]:
    """The group's disk entries by path: its root's (the lower layer) and its files."""
    return {e.path: e for e in sc.nodes[0].root + sc.nodes[0].files}


def test_a_tar_root_keeps_files_modes_directories_and_links_and_copies_hard_links(
        tmp_path: Path) -> None:
    _tar(tmp_path / "r.tar",
         ("./usr/", tarfile.DIRTYPE, b"", 0o750),
         ("./usr/bin/tool", tarfile.REGTYPE, b"#!tool\n", 0o4755),
         ("./usr/bin/alias", tarfile.LNKTYPE, b"", 0o4755, "./usr/bin/tool"),
         ("./bin", tarfile.SYMTYPE, b"", 0o777, "usr/bin"),
         ("./lib64/ld.so", tarfile.SYMTYPE, b"", 0o777, "/usr/lib/ld.so"),
         ("./dev/console", tarfile.CHRTYPE),
         ("./etc/passwd", tarfile.REGTYPE, b"root:x:0:0\n"),
         ("./run/fifo", tarfile.FIFOTYPE))
    entries = _entries(_root(tmp_path, '{ tar = "r.tar" }'))
    assert list(entries) == sorted(entries)
    assert entries["/usr"] == DiskEntry("/usr", EntryKind.DIRECTORY, mode=0o750)
    assert entries["/usr/bin/tool"] == DiskEntry("/usr/bin/tool", EntryKind.FILE, b"#!tool\n",
                                                 mode=0o4755)
    assert entries["/usr/bin/alias"].data == b"#!tool\n"  # a hard link becomes a copy
    assert entries["/bin"] == DiskEntry("/bin", EntryKind.SYMLINK, target="usr/bin")
    assert entries["/lib64/ld.so"].target == "/usr/lib/ld.so"  # as written, never followed
    assert not {"/dev/console", "/etc/passwd", "/run/fifo"} & set(entries), entries
    tree = read_tar_root(tmp_path / "r.tar", KeyPath("t"), 1 << 20, 100)
    assert dict(tree.skipped) == {"under /dev (the kernel's own)": 1,
                                  "under /etc (the kernel's own)": 1, "FIFOs": 1}


@pytest.mark.parametrize(("member", "problem"), [
    (("../evil", tarfile.REGTYPE, b"x"), r"\.\." + ".*outside the root"),
    (("usr/../../evil", tarfile.REGTYPE, b"x"), "outside the root"),
    (("/etc/evil", tarfile.REGTYPE, b"x"), "an absolute member name"),
    (("bad", tarfile.LNKTYPE, b"", 0o644, "nothing"), "hard link to 'nothing'"),
    (("bad", tarfile.LNKTYPE, b"", 0o644, "../up"), "outside the root"),
    (("tmp", tarfile.SYMTYPE, b"", 0o777, "/"), "/tmp is a directory on every node's disk"),
])
def test_a_tar_member_escaping_the_root_is_refused_in_one_line(
        tmp_path: Path, member: tuple, problem: str) -> None:
    _tar(tmp_path / "r.tar", member)
    with pytest.raises(ConfigError, match=r"^root\.toml: nodes\[0\]\.root\.tar: .*r\.tar: "
                                          r"member .*" + problem) as err:
        _root(tmp_path, '{ tar = "r.tar" }')
    assert "\n" not in str(err.value)


def test_nothing_can_be_put_under_a_root_link(tmp_path: Path) -> None:
    """A member under a link would be written through it (maybe outside the root): refused."""
    _tar(tmp_path / "r.tar", ("lib", tarfile.SYMTYPE, b"", 0o777, "/tmp/x"),
         ("lib/libc.so", tarfile.REGTYPE, b"x"))
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.root: /lib is a symlink "
                                          r"\(nodes\[0\]\.root\); nothing can be put under it"):
        _root(tmp_path, '{ tar = "r.tar" }')
    _tar(tmp_path / "ok.tar", ("lib", tarfile.SYMTYPE, b"", 0o777, "usr/lib"))
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.files\[0\]\.path: /lib is a symlink "
                                          r"\(nodes\[0\]\.root\)"):
        _root(tmp_path, '{ tar = "ok.tar" }', 'files = [{ path = "/lib/x", content = "" }]')


def test_bad_archives_and_budgets_are_one_line_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(ConfigError, match=r"root\.tar: .*junk\.tar: not a readable tar"):
        _root(tmp_path, '{ tar = "junk.tar" }')
    with pytest.raises(ConfigError, match=r"root\.tar: cannot read .*none\.tar"):
        _root(tmp_path, '{ tar = "none.tar" }')
    with pytest.raises(ConfigError, match=r"root: expected one of dir and tar"):
        _root(tmp_path, '{ tar = "a", dir = "b" }')
    _tar(tmp_path / "many.tar", *[(f"f{i}", tarfile.REGTYPE, b"x") for i in range(11)])
    with pytest.raises(ConfigError, match=r"more than 10 paths"):
        read_tar_root(tmp_path / "many.tar", KeyPath("t"), 1 << 20, 10)
    with pytest.raises(ConfigError, match=r"member 'f5': 1 bytes would take the root past "
                                          r"the 5 bytes"):
        read_tar_root(tmp_path / "many.tar", KeyPath("t"), 5, 100)


def test_a_directory_root_relative_to_the_scenario_with_files_over_it(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "usr/bin").mkdir(parents=True)
    (tree / "usr/bin/tool").write_bytes(b"tool")
    (tree / "usr/bin/tool").chmod(0o700)
    (tree / "usr/share").mkdir(mode=0o711)
    (tree / "usr/share").chmod(0o711)
    (tree / "usr/conf").write_text("from the tree\n")
    (tree / "bin").symlink_to("usr/bin")
    (tree / "dev").mkdir()
    (tree / "dev/null").write_text("")
    os.mkfifo(tree / "pipe")
    sc = _root(tmp_path, '{ dir = "tree" }',
               'files = [{ path = "/usr/conf", content = "from the scenario\\n" }]')
    entries = _entries(sc)
    assert entries["/usr/bin/tool"] == DiskEntry("/usr/bin/tool", EntryKind.FILE, b"tool",
                                                 mode=0o700)
    assert entries["/usr/share"].mode == 0o711 and entries["/usr/share"].kind == "directory"
    assert entries["/bin"].target == "usr/bin"
    assert entries["/usr/conf"].data == b"from the scenario\n"  # files replace the root's
    assert [e.path for e in sc.nodes[0].root + sc.nodes[0].files].count("/usr/conf") == 1
    assert not {"/dev", "/dev/null", "/pipe"} & set(entries)
    assert Scenario.from_dict(sc.to_dict()).nodes[0] == sc.nodes[0]
    with pytest.raises(ConfigError, match=r"root\.dir: .*nowhere is not a directory|"
                                          r"root\.dir: cannot read .*nowhere"):
        _root(tmp_path, '{ dir = "nowhere" }')


def _cli(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.output


def test_rootfs_writes_a_deterministic_tar_of_the_closure(dynamic_pthreads: Path,
                                                          tmp_path: Path) -> None:
    code, out = _cli("rootfs", str(dynamic_pthreads), "-o", str(tmp_path / "a.tar"))
    assert code == 0, out
    assert out.startswith(f"{tmp_path / 'a.tar'}: 3 files, ") and " bytes of file content" in out
    assert _cli("rootfs", str(dynamic_pthreads), "-o", str(tmp_path / "b.tar"))[0] == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    with tarfile.open(tmp_path / "a.tar") as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names)
    assert str(dynamic_pthreads).lstrip("/") in names
    assert any(n.endswith("/libc.so.6") for n in names)
    assert all(m.mtime == 0 and m.uid == m.gid == 0 and m.uname == m.gname == ""
               for m in members)
    assert not list(tmp_path.glob(".*partial"))
    code, out = _cli("rootfs", "/etc/hostname", "-o", str(tmp_path / "c.tar"))
    assert code == 2 and out.count("\n") == 1 and "not a readable ELF file" in out, out
    assert not (tmp_path / "c.tar").exists()


def test_lint_with_a_root_lists_each_library_and_a_total(dynamic_pthreads: Path,
                                                         tmp_path: Path) -> None:
    code, out = _cli("lint", str(dynamic_pthreads), "--root", "host")
    assert code == 0, out
    lines = out.splitlines()
    libc = [ln for ln in lines if ln.endswith("unpatchable") and "/libc.so.6: " in ln]
    assert len(libc) == 1 and "rdtsc" in libc[0], out
    loader = [ln for ln in lines if "ld-linux-x86-64.so.2: " in ln and "cpuid" in ln]
    assert loader, out
    assert lines[-1].startswith("total: 3 file(s), "), lines[-1]
    assert _cli("rootfs", str(dynamic_pthreads), "-o", str(tmp_path / "r.tar"))[0] == 0
    code, out_tar = _cli("lint", str(dynamic_pthreads), "--root", str(tmp_path / "r.tar"),
                         "--json")
    assert code == 0, out_tar
    doc = json.loads(out_tar)
    by_path = {f["path"]: f for f in doc["root"]}
    libc_doc = next(f for p, f in by_path.items() if p.endswith("/libc.so.6"))
    assert libc_doc["summary"]["counts"].get("rdtsc", 0) >= 1
    assert all(int(s["address"], 16) < 1 << 32 for s in libc_doc["sites"])  # its own addresses
    assert doc["total"]["patchable"] == sum(f["summary"]["patchable"] for f in doc["root"]) \
        + doc["summary"]["patchable"]
    code, out = _cli("lint", str(dynamic_pthreads), "--root", str(tmp_path / "none.tar"))
    assert code == 2 and "--root: cannot read" in out, out


@pytest.mark.kvm
def test_a_rootfs_tar_runs_the_dynamic_program_as_natively_and_info_lists_its_files(
        dynamic_pthreads: Path, tmp_path: Path) -> None:
    """rootfs -> root.tar -> root = { tar }: the program prints what it prints natively,
    the recording replays, and `info` names what it embedded (libc among the largest)."""
    assert _cli("rootfs", str(dynamic_pthreads), "-o", str(tmp_path / "root.tar"))[0] == 0
    sc = loads_scenario(f"""
duration = "1s"
memory_per_node = "64MiB"
[[nodes]]
program = "{dynamic_pthreads}"
count = 2
root = {{ tar = "root.tar" }}
""", "tar.toml", base_dir=tmp_path)
    native = subprocess.run([dynamic_pthreads], capture_output=True, check=True).stdout
    images = [load_program(dynamic_pthreads)]
    events: list = []
    result = Simulation(sc, images, sink=lambda *e: events.append(e)).run()
    assert not result.failures, result.failures
    for node in range(2):
        out = b"".join(f["data"] for _, _, n, kind, f in events
                       if kind == "output" and n == node and f["fd"] == 1)
        assert out == native and out
    path = tmp_path / "tar.ccr"
    record_run(sc, images, path)
    assert replay_run(path).identical
    # The recording alone replays: the root's archive removed, the recording moved to an
    # empty directory (nothing of the root is read from the host at replay).
    (tmp_path / "root.tar").unlink()
    alone = tmp_path / "elsewhere"
    alone.mkdir()
    path = path.rename(alone / "tar.ccr")
    assert replay_run(path).identical
    code, out = _cli("info", str(path), "--json")
    assert code == 0, out
    groups = json.loads(out)["disk_files"]
    assert [g["files"] for g in groups] == [3], groups
    (root,) = json.loads(out)["roots"]  # the read-only layer, stored once by digest
    assert root["digest"] == groups[0]["root"] == sc.nodes[0].root_digest
    assert root["groups"] == [0] and root["files"] == 3, root
    assert root["raw_bytes"] == sum(len(e.data) for e in sc.nodes[0].root)
    assert 0 < root["stored_bytes"] < root["raw_bytes"] / 2, root
    assert [f["path"] for f in root["embedded"]] == sorted(
        e.path for e in sc.nodes[0].root if e.kind is EntryKind.FILE)
    assert groups[0]["bytes"] == sum(len(e.data) for e in sc.nodes[0].root + sc.nodes[0].files)
    assert groups[0]["largest"][0]["path"].endswith("/libc.so.6")
    code, text = _cli("info", str(path))
    assert code == 0 and "disk files" in text and "libc.so.6" in text, text
    assert f"root {root['digest'][:16]}" in text and "stored once" in text, text
