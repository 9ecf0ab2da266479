"""Dynamically linked programs in a simulation: a group's `root = "host"` puts the program's
loader and libraries on every node's disk (sim/host_root.py), ld.so maps them through
private file mappings, and the run is deterministic, records, replays from the recording
alone, and stores each library once however many nodes and checkpoints hold it."""

from __future__ import annotations

from pathlib import Path

import program_cache
import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.recording import RecordingReader
from chaosreplay.runs.record_replay import record_run, replay_run
from chaosreplay.sim.host_root import host_closure
from chaosreplay.sim.scenario import Scenario, loads_scenario
from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.elf import load_program

PTHREADS = "counter 8000\nring" + " 0 1 2 3 4 5 6 7" * 3 + "\njoined 280\n"


def _scenario(program: Path, root: str = '"host"', checkpoint_interval: int = 0) -> Scenario:
    return loads_scenario(f"""
duration = "1s"
checkpoint_interval = {checkpoint_interval}
memory_per_node = "64MiB"
[[nodes]]
program = "{program}"
count = 3
root = {root}
""", "dyn.toml", base_dir=Path("/"))


def test_the_closure_of_a_dynamic_program_is_its_loader_libc_and_their_links(
        dynamic_pthreads: Path) -> None:
    """What ld.so will open, at the host's real paths, plus the links met on the way."""
    entries = {e.path: e for e in host_closure([dynamic_pthreads])}
    assert {"/lib64", "/lib"} <= set(entries) or "/lib64/ld-linux-x86-64.so.2" in entries
    files = [e for e in entries.values() if e.data]
    assert {Path(e.path).name for e in files} >= {"ld-linux-x86-64.so.2", "libc.so.6"}
    assert all(Path(e.path).read_bytes() == e.data for e in files)
    assert host_closure([program_cache.build_program("pthreads.c", "glibc")]) == []  # static


def test_a_root_needs_a_scenario_file_and_a_known_form(dynamic_pthreads: Path) -> None:
    data = _scenario(dynamic_pthreads).to_dict()
    digest = data["nodes"][0]["root"]  # the root by digest: replay reads no host file
    assert set(data["roots"]) == {digest} and not data["nodes"][0]["files"]
    assert Scenario.from_dict(data) == _scenario(dynamic_pthreads)
    data["nodes"][0]["root"] = "host"
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.root: reads host files"):
        Scenario.from_dict(data)
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.root: expected \"host\""):
        _scenario(dynamic_pthreads, root='"docker"')
    with pytest.raises(ConfigError, match=r"nodes\[0\]\.root: .*cannot be read"):
        _scenario(dynamic_pthreads, root='{ host = ["/no/such/tool"] }')


@pytest.mark.kvm
def test_a_dynamic_program_runs_on_every_node_as_natively(dynamic_pthreads: Path) -> None:
    """Three nodes, each loading ld.so and libc.so.6 from its disk, print what the program
    prints natively; two runs are identical."""
    sc = _scenario(dynamic_pthreads)
    images = [load_program(dynamic_pthreads)]

    def run() -> list:
        events: list = []
        result = Simulation(sc, images, sink=lambda *e: events.append(e)).run()
        assert not result.failures, result.failures
        return events

    events = run()
    for node in range(3):
        out = b"".join(f["data"] for _, _, n, kind, f in events
                       if kind == "output" and n == node and f["fd"] == 1)
        assert out.decode() == PTHREADS
    assert run() == events


DASH = Path("/usr/bin/dash")


@pytest.mark.kvm
@pytest.mark.skipif(not DASH.is_file(), reason="no /usr/bin/dash on this host")
def test_debian_dash_sleep_and_cat_run_record_and_replay_holding_libc_once(
        tmp_path: Path) -> None:
    """Debian's own dash, sleep and cat (dynamically linked, nothing rebuilt): the shell
    forks and execs both on three nodes; the recording (a checkpoint every 100 ms) replays
    identically, and libc, on three disks in every checkpoint, is stored once."""
    sc = loads_scenario("""
duration = "2s"
checkpoint_interval = 100
memory_per_node = "64MiB"
[[nodes]]
program = "/usr/bin/dash"
name = "sh"
count = 3
args = ["-c", "echo start; sleep 0.5; echo slept; cat /etc/hostname"]
env = { PATH = "/usr/bin:/bin" }
root = { host = ["/usr/bin/sleep", "/usr/bin/cat"] }
""", "dash.toml", base_dir=Path("/"))
    images = [load_program(DASH)]
    events: list = []
    assert not Simulation(sc, images, sink=lambda *e: events.append(e)).run().failures
    for node in range(3):
        out = b"".join(f["data"] for _, _, n, kind, f in events
                       if kind == "output" and n == node and f["fd"] == 1)
        assert out == b"start\nslept\nsh-%d\n" % node
    assert [f["path"] for *_, kind, f in events if kind == "process.exec"] == [
        b"/usr/bin/sleep"] * 3 + [b"/usr/bin/cat"] * 3
    path = tmp_path / "dash.ccr"
    record_run(sc, images, path)
    assert replay_run(path).identical
    libc = next(e.data for e in sc.nodes[0].root if e.path.endswith("/libc.so.6"))
    with RecordingReader(path) as reader:
        assert len(reader.checkpoints) >= 4
        for i in range(len(reader.checkpoints)):  # the root is the manifest's, never theirs
            blobs = reader.load_checkpoint(i).blobs
            assert not any(libc in blob for blob in blobs.values()), i
    # once in the manifest (the scenario's root), compressed: far below one copy per node
    # and checkpoint (3 x 5 here)
    assert path.stat().st_size < 2 * len(libc)
