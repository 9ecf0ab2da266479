"""Scenario files on a node's disk: parsing and checking `nodes[].files`
(chaosreplay.sim.disk_files), installing them (chaosreplay.kernel.fs.install), and node
programs seeing them, in a run and in its replay."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.errors import ConfigError, GuestProgramError
from chaosreplay.kernel.fs.disk import FileSystem
from chaosreplay.kernel.fs.install import DiskEntry, EntryKind, install
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.disk_files import busybox_applets
from chaosreplay.sim.programs import resolve_images
from chaosreplay.sim.scenario import Scenario, load_scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

GuestBin = Callable[[str, str], Path]
BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed "
                                   "(tests/install-tools.sh installs busybox-static)")


def group_files(text: str, base_dir: Path | None = None) -> tuple[DiskEntry, ...]:
    """The files of the one group of a scenario whose [[nodes]] table ends with `text`."""
    sc = loads_scenario(f'[[nodes]]\nprogram = "p"\n{text}\n', "s.toml", base_dir=base_dir)
    return sc.nodes[0].files


# -- busybox applets --------------------------------------------------------------------------


def test_applet_list_is_read_from_the_bytes() -> None:
    blob = b"\x7fELF junk\0[\0[[\0cat\0ls\0sh\0\0more junk"
    assert busybox_applets(blob) == ["[", "[[", "cat", "ls", "sh"]
    assert busybox_applets(b"\0[\0[[\0ls\0cat\0\0") is None, "busybox keeps them sorted"
    assert busybox_applets(b"no list here") is None


@needs_busybox
def test_applet_list_of_the_real_busybox_is_what_it_lists_itself() -> None:
    assert BUSYBOX is not None
    listed = subprocess.run([BUSYBOX, "--list"], capture_output=True, text=True,
                            check=True).stdout.split()
    assert busybox_applets(Path(BUSYBOX).read_bytes()) == listed


# -- parsing ------------------------------------------------------------------------------------


def test_every_kind_of_entry_parses_with_its_default_mode(tmp_path: Path) -> None:
    (tmp_path / "tool").write_bytes(b"\x00\x01binary")
    files = group_files("""files = [
  { path = "/etc-app/config", content = "peers = 3\\n" },
  { path = "/opt/tool", from = "tool", mode = 0o755 },
  { path = "/usr/bin/env", symlink = "/opt/tool" },
  { path = "/data/spool", directory = true },
]""", tmp_path)
    assert files == (
        DiskEntry("/etc-app/config", EntryKind.FILE, data=b"peers = 3\n", mode=0o644),
        DiskEntry("/opt/tool", EntryKind.FILE, data=b"\x00\x01binary", mode=0o755),
        DiskEntry("/usr/bin/env", EntryKind.SYMLINK, target="/opt/tool"),
        DiskEntry("/data/spool", EntryKind.DIRECTORY, mode=0o755),
    )


def _fake_busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_bytes(b"\x7fELF\0\0[\0[[\0cat\0ls\0sh\0\0")
    return path


def test_busybox_installs_the_binary_and_a_link_per_applet(tmp_path: Path) -> None:
    _fake_busybox(tmp_path)
    files = group_files('files = [{ path = "/bin", busybox = "busybox" },'
                        ' { path = "/bin/ls", content = "mine" }]', tmp_path)
    assert [(e.path, e.kind.value, e.target) for e in files] == [
        ("/bin/busybox", "file", ""), ("/bin/[", "symlink", "busybox"),
        ("/bin/[[", "symlink", "busybox"), ("/bin/cat", "symlink", "busybox"),
        ("/bin/sh", "symlink", "busybox"), ("/bin/ls", "file", "")], \
        "in file order; the explicit /bin/ls replaces the applet's link"
    assert files[0].mode == 0o755
    subset = group_files('files = [{ path = "/bin", busybox = "busybox", applets = ["sh"] }]',
                         tmp_path)
    assert [e.path for e in subset] == ["/bin/busybox", "/bin/sh"]


def test_the_canonical_form_holds_bytes_and_reads_back_without_the_host(
        tmp_path: Path) -> None:
    _fake_busybox(tmp_path)
    (tmp_path / "s.toml").write_text('[[nodes]]\nprogram = "p"\nfiles = ['
                                     '{ path = "/bin", busybox = "busybox" },'
                                     '{ path = "/f", from = "busybox" }]\n')
    sc = load_scenario(tmp_path / "s.toml")
    data = sc.to_dict()
    entries = data["nodes"][0]["files"]
    assert entries[0] == {"path": "/bin/busybox", "content": _fake_busybox(tmp_path).read_bytes(),
                          "mode": 0o755}
    assert {"path": "/bin/sh", "symlink": "busybox"} in entries
    assert not any("from" in e or "busybox" in e for e in entries)
    (tmp_path / "busybox").unlink()
    assert Scenario.from_dict(data) == sc


def test_a_manifest_cannot_name_a_host_file() -> None:
    data = Scenario().to_dict()
    data["nodes"][0]["files"] = [{"path": "/f", "from": "/etc/passwd"}]
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.files\[0\]\.from: names a host file"):
        Scenario.from_dict(data, "run.ccr (manifest)")


ERRORS = [
    ('files = [{ content = "x" }]', "files[0].path: missing"),
    ('files = [{ path = "/a" }]', "files[0]: expected exactly one of content, from, symlink, "
     "directory, busybox, got none"),
    ('files = [{ path = "/a", content = "x", symlink = "y" }]',
     "files[0]: expected exactly one of content, from, symlink, directory, busybox, got "
     "content, symlink"),
    ('files = [{ path = "a/b", content = "x" }]', 'files[0].path: expected an absolute path'),
    ('files = [{ path = "/a/../b", content = "x" }]', "files[0].path: expected an absolute"),
    ('files = [{ path = "/a//b", content = "x" }]', "files[0].path: expected an absolute"),
    ('files = [{ path = "/", directory = true }]', "files[0].path: expected an absolute"),
    ('files = [{ path = "/proc/x", content = "x" }]', "files[0].path: /proc is a synthetic"),
    ('files = [{ path = "/etc/hosts", content = "x" }]', "files[0].path: /etc is a synthetic"),
    ('files = [{ path = "/tmp", content = "x" }]', "files[0].path: /tmp is a directory on "
     "every node's disk"),
    ('files = [{ path = "/a", content = "x" }, { path = "/a", symlink = "b" }]',
     "files[1].path: /a is already given by nodes[0].files[0]"),
    ('files = [{ path = "/a", content = "x" }, { path = "/a/b", content = "y" }]',
     "files[1].path: /a is a file (nodes[0].files[0]); nothing can be put under it"),
    ('files = [{ path = "/l", symlink = "/d" }, { path = "/l/b", content = "y" }]',
     "files[1].path: /l is a symlink (nodes[0].files[0])"),
    ('files = [{ path = "/a", symlink = "b", mode = 0o644 }]',
     "files[0].mode: a symbolic link has no mode of its own"),
    ('files = [{ path = "/a", content = "x", mode = 0o10000 }]',
     "files[0].mode: expected permission bits from 0 to 0o7777"),
    ('files = [{ path = "/a", content = "x", mode = "755" }]', "files[0].mode: expected"),
    ('files = [{ path = "/a", content = "x", applets = ["sh"] }]',
     "files[0].applets: only a busybox entry has applets"),
    ('files = [{ path = "/a", directory = "yes" }]', "files[0].directory: expected true"),
    ('files = [{ path = "/a", symlink = "" }]', "files[0].symlink: expected a non-empty"),
    ('files = [{ path = "/a", content = 3 }]', "files[0].content: expected a string, got 3"),
    ('files = [{ path = "/a", contents = "x" }]', 'files[0].contents: unknown key (did you '
     'mean "content"?)'),
    ('files = ["/a"]', "files[0]: expected a table"),
    ('files = [{ path = "/a", from = "missing" }]',
     "files[0].from: cannot read host file"),
    ('files = [{ path = "/a", from = "." }]', "files[0].from: host file"),
    ('files = [{ path = "/bin", busybox = "notbusybox" }]',
     "files[0].busybox: {dir}/notbusybox: no busybox applet list found in the binary"),
    ('files = [{ path = "/bin", busybox = "busybox", applets = ["vi"] }]',
     'files[0].applets[0]: {dir}/busybox has no applet "vi"'),
    ('files = [{ path = "/bin", busybox = "busybox", applets = ["../x"] }]',
     'files[0].applets[0]: not an applet name: "../x"'),
]


@pytest.mark.parametrize(("text", "message"), ERRORS)
def test_each_mistake_is_one_line_naming_the_entry(text: str, message: str,
                                                   tmp_path: Path) -> None:
    _fake_busybox(tmp_path)
    (tmp_path / "notbusybox").write_bytes(b"\x7fELF nothing")
    with pytest.raises(ConfigError) as info:
        group_files(text, tmp_path)
    line = str(info.value)
    assert "\n" not in line
    assert line.startswith("s.toml: nodes[0]."), line
    assert message.format(dir=tmp_path) in line, line


def test_files_over_the_budget_are_refused(tmp_path: Path) -> None:
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(25 << 20)
    text = ('[[nodes]]\nprogram = "p"\nfiles = [{ path = "/a", from = "big" }]\n'
            '[[nodes]]\nprogram = "p"\nfiles = [{ path = "/b", from = "big" }]\n')
    with pytest.raises(ConfigError, match=r"nodes\[1\]\.files\[0\]\.from: host file .* has "
                                          r"26,214,400 bytes, more than the 24,117,248"):
        loads_scenario(text, "s.toml", base_dir=tmp_path)


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ConfigError, match=r"host file .*fifo is not a regular file"):
        group_files('files = [{ path = "/a", from = "fifo" }]', tmp_path)


def test_programs_and_files_share_the_recording_budget(tmp_path: Path,
                                                       guest_bin: GuestBin) -> None:
    sc = loads_scenario(f'[[nodes]]\nprogram = "{guest_bin("musl", "hello")}"\n'
                        'files = [{ path = "/a", content = "x" }]\n', "s.toml")
    assert resolve_images(sc, tmp_path)
    entry = sc.nodes[0].files[0]
    huge = DiskEntry(entry.path, entry.kind, data=bytes(63 << 20), mode=entry.mode)
    heavy = dataclasses.replace(sc, nodes=(dataclasses.replace(sc.nodes[0], files=(huge,)),))
    with pytest.raises(GuestProgramError, match="bytes of disk files, more than the 63 MiB"):
        resolve_images(heavy, tmp_path)


# -- installing ---------------------------------------------------------------------------------

ENTRIES = (
    DiskEntry("/bin/busybox", EntryKind.FILE, data=b"BB" * 3000, mode=0o755),
    DiskEntry("/bin/sh", EntryKind.SYMLINK, target="busybox"),
    DiskEntry("/srv/app/conf", EntryKind.FILE, data=b"x=1\n"),
    DiskEntry("/data/spool", EntryKind.DIRECTORY, mode=0o700),
    DiskEntry("/srv", EntryKind.DIRECTORY, mode=0o750),
)


def test_install_creates_files_links_and_directories() -> None:
    fs = FileSystem(seed=1, node=0)
    install(fs, ENTRIES)
    assert fs.read_file("/bin/busybox") == b"BB" * 3000
    assert fs.stat_path("/bin/busybox").mode & 0o7777 == 0o755
    assert fs.readlink(fs.lookup("/bin/sh")) == b"busybox"
    assert fs.read_file("/srv/app/conf") == b"x=1\n"
    assert fs.stat_path("/srv/app/conf").mode & 0o7777 == 0o644
    assert fs.stat_path("/srv").mode & 0o7777 == 0o750, "a later directory entry sets the mode"
    assert fs.stat_path("/srv/app").mode & 0o7777 == 0o755
    assert fs.stat_path("/data/spool").mode & 0o7777 == 0o700


def test_install_is_deterministic_and_durable() -> None:
    a, b = FileSystem(seed=1, node=0), FileSystem(seed=1, node=0)
    install(a, ENTRIES)
    install(b, ENTRIES)
    assert a.snapshot() == b.snapshot()
    a.crash()  # what a node's kill leaves: only durable state
    assert a.snapshot()["inodes"] == b.snapshot()["inodes"], "everything installed is durable"


# -- with KVM: a node program sees them, in the run and in its replay ---------------------------


def _read_files_scenario(program: Path, tmp_path: Path, busybox: str | None) -> Path:
    (tmp_path / "payload").write_bytes(bytes(range(256)) * 40)
    busybox_entry = f'{{ path = "/bin", busybox = "{busybox}" }},' if busybox else ""
    paths = ["/srv/payload", "/srv/conf", "/srv/link", "/srv/dir"]
    if busybox:
        paths += ["/bin/busybox", "/bin/sh", "/bin/ls"]
    (tmp_path / "s.toml").write_text(f"""
duration = "1s"
checkpoint_interval = "10ms"
[[nodes]]
program = "{program}"
args = {paths!r}
files = [
  {busybox_entry}
  {{ path = "/srv/payload", from = "payload", mode = 0o600 }},
  {{ path = "/srv/conf", content = "peers = 3\\n" }},
  {{ path = "/srv/link", symlink = "conf" }},
  {{ path = "/srv/dir", directory = true, mode = 0o711 }},
]
""".replace("'", '"'))
    return tmp_path / "s.toml"


def _fnv(data: bytes) -> str:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & (2**64 - 1)
    return f"{h:016x}"


def _stdout(sim: Simulation, events: list[Any]) -> bytes:
    return b"".join(e[4]["data"] for e in events if e[3] == "output" and e[4]["fd"] == 1)


@pytest.mark.kvm
@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_a_node_program_opens_stats_reads_and_readlinks_its_files(
        libc: str, guest_bin: GuestBin, tmp_path: Path) -> None:
    sc = load_scenario(_read_files_scenario(guest_bin(libc, "read_files"), tmp_path, None))
    events: list[Any] = []
    sim = Simulation(sc, [load_program(guest_bin(libc, "read_files"))],
                     sink=lambda *e: events.append(e))
    sim.run()
    payload = (tmp_path / "payload").read_bytes()
    conf = _fnv(b"peers = 3\n")
    assert _stdout(sim, events).decode().splitlines() == [
        f"/srv/payload: file mode=0600 size={len(payload)} read={len(payload)} "
        f"fnv={_fnv(payload)}",
        f"/srv/conf: file mode=0644 size=10 read=10 fnv={conf}",
        "/srv/link: link -> conf (file)",
        "/srv/dir: dir mode=0711",
    ]


@pytest.mark.kvm
@needs_busybox
def test_busybox_files_are_seen_and_replay_without_the_host_files(
        guest_bin: GuestBin, tmp_path: Path) -> None:
    assert BUSYBOX is not None
    copy = tmp_path / "busybox"
    shutil.copy(BUSYBOX, copy)
    program = guest_bin("musl", "read_files")
    path = _read_files_scenario(program, tmp_path, "busybox")
    sc = load_scenario(path)
    recording = tmp_path / "run.ccr"
    record_run(sc, resolve_images(sc, tmp_path), recording)
    copy.unlink()
    (tmp_path / "payload").unlink()
    with RecordingReader(recording) as reader:
        lines = b"".join(e.fields["data"] for e in reader.events()
                         if e.kind == "output" and e.fields["fd"] == 1).decode().splitlines()
    raw = Path(BUSYBOX).read_bytes()
    assert lines[4:] == [
        f"/bin/busybox: file mode=0755 size={len(raw)} read={len(raw)} fnv={_fnv(raw)}",
        "/bin/sh: link -> busybox (file)",
        "/bin/ls: link -> busybox (file)",
    ]
    report = replay_run(recording)
    assert report.identical and report.events_checked > 0, report
    from click.testing import CliRunner

    from chaosreplay.cli import main

    info = CliRunner().invoke(main, ["info", str(recording)])
    assert info.exit_code == 0, info.stderr  # the embedded bytes show as length + digest


def test_record_with_a_bad_files_entry_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from chaosreplay.cli import main

    scenario_file = tmp_path / "s.toml"
    scenario_file.write_text('[[nodes]]\nprogram = "p"\n'
                             'files = [{ path = "/bin/sh", from = "no-such-busybox" }]\n')
    out = tmp_path / "x.ccr"
    result = CliRunner().invoke(main, ["record", str(scenario_file), "-o", str(out)])
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.strip().count("\n") == 0 and "Traceback" not in result.stderr
    assert "nodes[0].files[0].from: cannot read host file" in result.stderr, result.stderr
    assert not out.exists()


def test_a_large_content_on_two_groups_is_held_once_in_the_canonical_form() -> None:
    """The canonical form moves contents of 64 KiB or more into `file_contents` by SHA-256,
    once for both groups; it reads back equal; a content that does not match its digest,
    or a reference to none, is one line naming the key."""
    import hashlib

    import msgpack

    big = bytes(range(256)) * 400  # 100 KiB
    entry = DiskEntry("/lib/big.so", EntryKind.FILE, data=big, mode=0o755)
    sc = loads_scenario('[[nodes]]\nprogram = "p"\n[[nodes]]\nprogram = "q"\n', "s.toml")
    sc = dataclasses.replace(sc, nodes=tuple(dataclasses.replace(g, files=(entry,))
                                             for g in sc.nodes))
    data = msgpack.unpackb(msgpack.packb(sc.to_dict()))
    digest = hashlib.sha256(big).hexdigest()
    assert data["file_contents"] == {digest: big}
    assert [g["files"] for g in data["nodes"]] == [[{"path": "/lib/big.so", "mode": 0o755,
                                                      "content_sha": digest}]] * 2
    assert Scenario.from_dict(data) == sc
    assert sc.files_bytes() == len(big)  # counted once against the recording's budget
    data["nodes"][0]["files"][0]["content_sha"] = [digest]  # not even a name
    with pytest.raises(ConfigError, match=r"content_sha: names no content of file_contents"):
        Scenario.from_dict(data)
    data["nodes"][0]["files"][0]["content_sha"] = digest
    data["file_contents"][digest] = big[:-1]
    with pytest.raises(ConfigError, match=r"file_contents\.\w+: is not bytes whose SHA-256"):
        Scenario.from_dict(data)
    del data["file_contents"]
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.files\[0\]\.content_sha: unknown key"):
        Scenario.from_dict(data)
