"""Roots from a directory or a tar archive (sim/root_tree.py, `root = { dir }`/`{ tar }`)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind
from chaosreplay.sim.root_tree import read_tar_root
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.validation import KeyPath


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
    return {e.path: e for e in sc.nodes[0].files}


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
    assert [e.path for e in sc.nodes[0].files].count("/usr/conf") == 1
    assert not {"/dev", "/dev/null", "/pipe"} & set(entries)
    assert Scenario.from_dict(sc.to_dict()).nodes[0].files == sc.nodes[0].files
    with pytest.raises(ConfigError, match=r"root\.dir: .*nowhere is not a directory|"
                                          r"root\.dir: cannot read .*nowhere"):
        _root(tmp_path, '{ dir = "nowhere" }')
