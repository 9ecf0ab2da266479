"""`chaosreplay record` and `chaosreplay replay` from the command line, bad input included."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.recording import RecordingReader
from chaosreplay.recording.format import FRAME_MAGIC

RECORDINGS = Path(__file__).resolve().parent.parent / "recordings"


def _invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def _scenario(tmp_path, probe, body: str = "") -> str:
    path = tmp_path / "probe.toml"
    path.write_text(f'duration = "500ms"\ncheckpoint_interval = 100\n'
                    f'[[nodes]]\nprogram = "{probe}"\ncount = 3\nargs = ["ring", "30"]\n{body}')
    return str(path)


@pytest.fixture(scope="module")
def probe(guest_bin):
    return guest_bin("musl", "probe")


@pytest.mark.kvm
def test_record_then_replay(tmp_path, probe):
    out = tmp_path / "run.ccr"
    result = _invoke("record", _scenario(tmp_path, probe), "-o", str(out), "--seed", "4")
    assert result.exit_code == 0, result.stderr
    assert "passed" in result.stderr and f"chaosreplay replay {out}" in result.stderr
    assert f"chaosreplay events {out}" in result.stderr
    with RecordingReader(out) as reader:
        assert reader.complete and reader.manifest["scenario"]["seed"] == 4
    replayed = _invoke("replay", str(out))
    assert replayed.exit_code == 0, replayed.stderr
    assert "identical" in replayed.stderr


@pytest.mark.kvm
def test_record_duration_override_and_bug_exit_code(tmp_path, probe):
    path = tmp_path / "bug.toml"
    path.write_text(f'[[nodes]]\nprogram = "{probe}"\ncount = 2\nargs = ["bug", "2"]\n')
    out = tmp_path / "bug.ccr"
    result = _invoke("record", str(path), "-o", str(out), "--duration", "300ms")
    assert result.exit_code == 1, result.stderr
    assert "FAILED" in result.stderr and 'always "probe planted bug"' in result.stderr
    with RecordingReader(out) as reader:
        assert reader.manifest["scenario"]["duration"] == 300
        assert reader.summary["bugs"][0]["message"] == "probe planted bug"


@pytest.mark.kvm
def test_record_without_arguments_runs_the_demo(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = _invoke("record", "--duration", "2s", "--seed", "1")
    assert result.exit_code == 0, result.stderr
    with RecordingReader(tmp_path / "run.ccr") as reader:
        [binary] = reader.manifest["programs"]["binaries"].values()
        assert binary["name"] == "raft" and reader.manifest["scenario"]["nodes"][0]["count"] == 3


@pytest.mark.parametrize("args, message", [
    (["record", "/nonexistent/s.toml"], "cannot read the scenario"),
    (["record", "{bad}"], "invalid TOML"),
    (["record", "{unknown_key}"], "did you mean"),
    (["record", "{missing_program}"], "no such file"),
    (["record", "--duration", "soon"], "--duration"),
])
def test_record_bad_input_is_one_line(tmp_path, args, message):
    files = {
        "{bad}": "duration = [",
        "{unknown_key}": "durration = 5",
        "{missing_program}": '[[nodes]]\nprogram = "/nope/prog"\n',
    }
    resolved = []
    for arg in args:
        if arg in files:
            path = tmp_path / "s.toml"
            path.write_text(files[arg])
            arg = str(path)
        resolved.append(arg)
    result = _invoke(*resolved, "-o", str(tmp_path / "x.ccr"))
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.ccr").exists()


def test_replay_refuses_a_recording_without_a_run_manifest():
    golden = sorted(RECORDINGS.glob("*.ccr"))[0]
    result = _invoke("replay", str(golden))
    assert result.exit_code == 2
    assert "not a simulation recording" in result.stderr


def test_replay_of_a_corrupt_file_is_one_line(tmp_path):
    bad = tmp_path / "bad.ccr"
    bad.write_bytes(b"not a recording at all" * 10)
    result = _invoke("replay", str(bad))
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_record_help_lists_the_options():
    result = _invoke("record", "--help")
    assert result.exit_code == 0
    for option in ("--seed", "--duration", "--output", "--keep-going", "--seeds", "--jobs",
                   "--keep-failing"):
        assert option in result.stdout


@pytest.mark.kvm
def test_record_many_seeds_keeps_failing_recordings(tmp_path, probe):
    path = tmp_path / "bug.toml"
    path.write_text(f'duration = "300ms"\n[[nodes]]\nprogram = "{probe}"\ncount = 2\n'
                    f'args = ["bug", "2"]\n')
    bugs = tmp_path / "bugs"
    result = _invoke("record", str(path), "--seeds", "1-3", "-j", "2", "--keep-failing",
                     str(bugs))
    assert result.exit_code == 1, result.stderr
    assert "3 seeds · 3 failing" in result.stdout and "probe planted bug" in result.stdout
    assert sorted(p.name for p in bugs.iterdir()) == ["seed-1.ccr", "seed-2.ccr", "seed-3.ccr"]


@pytest.mark.parametrize("args, message", [
    (["--seeds", "5-1"], "ends before it starts"),
    (["--seeds", "x"], "expected seeds like"),
    (["-j", "2"], "go with --seeds"),
])
def test_record_seed_options_are_checked(args, message):
    result = _invoke("record", *args)
    assert result.exit_code == 2 and message in result.stderr, result.stderr


@pytest.mark.kvm
@pytest.mark.parametrize("variant, failing", [("figure8", True), ("correct", False)])
def test_figure8_schedule_catches_the_figure8_bug_only(tmp_path, variant, failing):
    """examples/raft-figure8.toml: the targeted schedule exposes the planted Figure 8 bug."""
    example = RECORDINGS.parent / "examples" / "raft-figure8.toml"
    text = example.read_text().replace('args = ["figure8"]', f'args = ["{variant}"]')
    path = tmp_path / "f8.toml"
    path.write_text(text)
    result = _invoke("record", str(path), "-o", str(tmp_path / "f8.ccr"))
    assert result.exit_code == (1 if failing else 0), result.stderr
    if failing:
        assert "leader completeness" in result.stderr or "committed" in result.stderr


# -- honest outcomes (issue 11, item 7) ---------------------------------------------------------


def _usage_scenario(tmp_path, probe, body: str = "") -> str:
    """Two probes given a mode they do not know: each prints its usage and exits 2."""
    path = tmp_path / "usage.toml"
    path.write_text(f'duration = "2s"\n[[nodes]]\nprogram = "{probe}"\ncount = 2\n'
                    f'args = ["nope"]\n{body}')
    return str(path)


@pytest.mark.kvm
def test_nodes_exiting_with_a_usage_error_fail_record_sweep_and_replay(tmp_path, probe):
    """Exit status 2 is a failure: record says which node exited how with its stderr, a
    sweep counts the seed as failing, and replay reports the same verdict."""
    out = tmp_path / "u.ccr"
    scenario = _usage_scenario(tmp_path, probe)
    result = _invoke("record", scenario, "-o", str(out))
    assert result.exit_code == 1, result.stderr
    assert "FAILED: node 1 (probe-1) exited with status 2 (expected 0)" in result.stderr
    assert "| usage: probe ring|burst" in result.stderr, result.stderr
    with RecordingReader(out) as reader:
        summary = reader.summary
    assert summary["failed"] and summary["failures"][0]["kind"] == "exit"
    assert summary["failures"][0]["stderr"][-1].startswith("usage: probe")
    swept = _invoke("record", scenario, "--seeds", "1-2", "-j", "1")
    assert swept.exit_code == 1, swept.output
    assert "2 seeds · 2 failing" in swept.stdout
    assert "seed 1: FAILED: node 1 (probe-1) exited with status 2" in swept.stdout
    replayed = _invoke("replay", str(out))
    assert replayed.exit_code == 0, replayed.stderr
    assert "identical" in replayed.stderr
    assert "FAILED: node 1 (probe-1) exited with status 2" in replayed.stderr


@pytest.mark.kvm
def test_expect_exit_makes_an_exit_status_a_pass(tmp_path, probe):
    """nodes[].expect_exit = [2]: the same run passes, and says every node ended."""
    result = _invoke("record", _usage_scenario(tmp_path, probe, "expect_exit = [0, 2]\n"),
                     "-o", str(tmp_path / "u.ccr"))
    assert result.exit_code == 0, result.stderr
    assert "passed: every node ended as expected" in result.stderr
    assert "probe-0 exit 2, probe-1 exit 2" in result.stderr


@pytest.mark.kvm
def test_expected_signal_is_a_pass_and_other_crashes_fail(tmp_path, guest_bin):
    """expect_exit = ["SIGSEGV"] lets a node die of SIGSEGV; without it the crash fails."""
    segv = guest_bin("musl", "segv")
    for body, code in (('expect_exit = ["SIGSEGV"]\n', 0), ("", 1)):
        path = tmp_path / "segv.toml"
        path.write_text(f'duration = "1s"\n[[nodes]]\nprogram = "{segv}"\n{body}')
        result = _invoke("record", str(path), "-o", str(tmp_path / "s.ccr"))
        assert result.exit_code == code, result.stderr
        assert ("crashed" in result.stderr) == (code == 1), result.stderr


@pytest.mark.kvm
def test_run_ends_when_all_nodes_ended_not_at_the_next_checkpoint(tmp_path, probe):
    """The ring probes end after ~100 ms; with checkpoints every second the run used to go on
    to the checkpoint at 1 s. It ends at the last node's end, and replays identically."""
    path = tmp_path / "ring.toml"
    path.write_text(f'duration = "5s"\ncheckpoint_interval = "1s"\n[[nodes]]\n'
                    f'program = "{probe}"\ncount = 2\nargs = ["ring", "10"]\n')
    out = tmp_path / "ring.ccr"
    result = _invoke("record", str(path), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    with RecordingReader(out) as reader:
        ends = [e for e in reader.events(kinds=("run.end",))]
        statuses = [e.tick for e in reader.events(kinds=("node.status",))]
        assert reader.counts_by_kind.get("checkpoint", 0) == 0, reader.counts_by_kind
        assert reader.summary["reason"] == "all nodes ended"
    assert ends[0].tick == max(statuses) < 1000, (ends, statuses)
    replayed = _invoke("replay", str(out))
    assert replayed.exit_code == 0 and "identical" in replayed.stderr, replayed.stderr


@pytest.mark.kvm
def test_summary_says_in_words_that_the_run_ran_its_full_duration(tmp_path, probe):
    """A run cut by its duration: "passed: ran the full 0.3 s", not "duration after ..."."""
    path = tmp_path / "wait.toml"
    path.write_text(f'duration = 300\n[[nodes]]\nprogram = "{probe}"\nargs = ["wait"]\n')
    result = _invoke("record", str(path), "-o", str(tmp_path / "w.ccr"))
    assert result.exit_code == 0, result.stderr
    assert result.stderr.startswith("passed: ran the full 0.3 s"), result.stderr


@pytest.fixture(scope="module")
def ring_recording(tmp_path_factory, probe) -> Path:
    """A complete recording with several event frames and checkpoints."""
    folder = tmp_path_factory.mktemp("ring")
    path = folder / "ring.toml"
    path.write_text(f'duration = "2s"\ncheckpoint_interval = 200\n[[nodes]]\n'
                    f'program = "{probe}"\ncount = 3\nargs = ["ring", "200"]\n')
    out = folder / "ring.ccr"
    result = _invoke("record", str(path), "-o", str(out))
    assert result.exit_code == 0, result.stderr
    return out


def _flipped(recording: Path, tmp_path: Path) -> Path:
    data = bytearray(recording.read_bytes())
    data[int(len(data) * 0.7)] ^= 0x40
    bad = tmp_path / "flipped.ccr"
    bad.write_bytes(bytes(data))
    return bad


@pytest.mark.kvm
def test_replay_refuses_a_recording_verify_finds_damaged(tmp_path, ring_recording):
    """A flipped byte: replay used to say identical; now it refuses (exit 2) unless --force,
    which warns loudly."""
    bad = _flipped(ring_recording, tmp_path)
    assert _invoke("verify", str(bad)).exit_code == 1
    refused = _invoke("replay", str(bad))
    assert refused.exit_code == 2, refused.stderr
    assert f"{bad}: damaged recording: verify finds" in refused.stderr
    assert "identical" not in refused.stderr and "--force" in refused.stderr
    forced = _invoke("replay", str(bad), "--force")
    assert "WARNING" in forced.stderr and "damaged recording" in forced.stderr, forced.stderr


@pytest.mark.kvm
def test_replay_still_reads_an_unfinished_recording(tmp_path, ring_recording):
    """A recording cut short (a killed writer) is incomplete, not damaged: it replays."""
    data = ring_recording.read_bytes()
    cut = tmp_path / "cut.ccr.partial"
    cut.write_bytes(data[: len(data) * 3 // 4])
    result = _invoke("replay", str(cut))
    assert result.exit_code == 0, result.stderr
    assert "identical" in result.stderr and "incomplete" in result.stderr


@pytest.mark.kvm
def test_replay_reads_a_recording_cut_inside_a_frame_header(tmp_path, ring_recording):
    """Cut one byte into a frame header (a writer killed mid-header): incomplete too."""
    data = ring_recording.read_bytes()
    cut = tmp_path / "header.ccr.partial"
    cut.write_bytes(data[: data.find(FRAME_MAGIC, len(data) // 2) + 1])
    assert "truncated frame header (1 of 24 bytes)" in _invoke("verify", str(cut)).stdout
    result = _invoke("replay", str(cut))
    assert result.exit_code == 0, result.stderr
    assert "identical" in result.stderr and "incomplete" in result.stderr


@pytest.mark.kvm
def test_state_and_debug_refuse_a_damaged_recording(tmp_path, ring_recording):
    """state and debug refuse the flipped file with one line; state --force goes on."""
    bad = _flipped(ring_recording, tmp_path)
    state = _invoke("state", str(bad), "--tick", "5")
    assert state.exit_code == 2 and "damaged recording" in state.stderr, state.stderr
    assert state.stderr.count("\n") == 1, state.stderr
    debug = _invoke("debug", str(bad))
    assert debug.exit_code == 2 and "damaged recording" in debug.stderr, debug.stderr
    forced = _invoke("state", str(bad), "--tick", "5", "--force")
    assert forced.exit_code == 0 and "WARNING" in forced.stderr, forced.stderr


@pytest.mark.kvm
def test_info_shows_the_outcome_and_the_faults_that_ran(tmp_path, probe):
    """info: the verdict in words and the expanded schedule, each fault marked started."""
    path = tmp_path / "kill.toml"
    path.write_text(f'duration = "1s"\n[[nodes]]\nprogram = "{probe}"\ncount = 2\n'
                    f'args = ["wait"]\n[[faults.schedule]]\nkind = "kill"\nat = 50\n'
                    f'node = 1\nduration = 100\n[[faults.schedule]]\nkind = "pause"\n'
                    f'at = "5s"\nnode = 0\nduration = 10\n')
    out = tmp_path / "kill.ccr"
    assert _invoke("record", str(path), "-o", str(out)).exit_code == 0
    data = json.loads(_invoke("info", str(out), "--json").stdout)
    assert data["outcome"] == "passed: ran the full 1 s"
    assert [(f["fault"]["kind"], f["started"]) for f in data["faults"]] == [
        ("kill", True), ("pause", False)]
    human = _invoke("info", str(out)).stdout
    assert "passed: ran the full 1 s" in human and "2 in the expanded schedule, 1 started" \
        in human, human


# -- the CLI (issue 11, item 8) and its inputs -----------------------------------------------


@pytest.mark.kvm
def test_ctrl_c_during_record_names_the_partial_file(tmp_path, probe, monkeypatch):
    """An interrupt mid-run: exit 130, and the message names the .partial file left."""
    from chaosreplay.sim.simulation import Simulation

    steps = {"n": 0}
    original = Simulation._after_step

    def interrupting(self):
        steps["n"] += 1
        if steps["n"] == 200:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(Simulation, "_after_step", interrupting)
    out = tmp_path / "int.ccr"
    result = _invoke("record", _scenario(tmp_path, probe), "-o", str(out))
    assert result.exit_code == 130, result.stderr
    assert f"left in {out}.partial" in result.stderr, result.stderr
    assert (tmp_path / "int.ccr.partial").exists() and not out.exists()


@pytest.mark.kvm
def test_a_full_disk_during_record_is_one_line_and_keeps_the_partial(tmp_path, probe,
                                                                     monkeypatch):
    """ENOSPC from the writer: one line naming the .partial file, exit 2, no traceback, and
    no file at the final name; the partial file still opens."""
    import errno

    from chaosreplay.recording.writer import RecordingWriter

    original = RecordingWriter._write_all
    writes = {"n": 0}

    def filling(self, data):
        writes["n"] += 1
        if writes["n"] > 3:
            raise OSError(errno.ENOSPC, "No space left on device")
        original(self, data)

    monkeypatch.setattr(RecordingWriter, "_write_all", filling)
    out = tmp_path / "full.ccr"
    result = _invoke("record", _scenario(tmp_path, probe), "-o", str(out))
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert f"{out}.partial: writing the recording failed (No space left on device)" in lines[0]
    assert not out.exists()
    monkeypatch.undo()
    with RecordingReader(f"{out}.partial") as reader:
        assert not reader.complete and reader.event_count > 0


@pytest.mark.parametrize("output, message", [
    ("{tmp}/missing/dir/x.ccr", "x.ccr.partial: cannot write the recording (No such file"),
    ("{tmp}", "is a directory"),
])
def test_record_output_that_cannot_be_written_is_one_line(tmp_path, probe, output, message):
    """-o into a missing folder or onto a folder: one line, exit 2, nothing written."""
    result = _invoke("record", _scenario(tmp_path, probe), "-o",
                     output.format(tmp=tmp_path))
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output, result.output


def _program_scenario(tmp_path: Path, program: str) -> str:
    path = tmp_path / "prog.toml"
    path.write_text(f'[[nodes]]\nprogram = "{program}"\n')
    return str(path)


def test_record_refuses_a_device_a_fifo_and_a_huge_program(tmp_path):
    """program = "/dev/zero" used to read forever and a FIFO to hang: one line each."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge"
    with open(huge, "wb") as f:
        f.truncate(300 << 20)  # sparse
    for program, message in (("/dev/zero", "/dev/zero: not a regular file"),
                             (str(fifo), f"{fifo}: not a regular file"),
                             (str(huge), "larger than the 256 MiB")):
        result = _invoke("record", _program_scenario(tmp_path, program), "-o",
                         str(tmp_path / "x.ccr"))
        assert result.exit_code == 2, result.output
        assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_record_refuses_programs_a_recording_cannot_embed(tmp_path, probe):
    """A 70 MiB program cannot go into a recording's manifest: one line before any run."""
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.write(probe.read_bytes())
        f.truncate(70 << 20)  # a valid ELF with 70 MiB of padding after it
    result = _invoke("record", _program_scenario(tmp_path, str(big)), "-o",
                     str(tmp_path / "x.ccr"))
    assert result.exit_code == 2 and "MiB a recording embeds" in result.stderr, result.stderr


@pytest.mark.parametrize("args, message", [
    (["--seeds", "1-100000000000"], "more than 1,000,000 seeds"),
    (["--seeds", "18446744073709551616"], "larger than the largest seed"),
    (["--seeds", "1-2", "-j", "0"], "0 is not in the range"),
    (["--hang-timeout", "-1"], "-1.0 is not in the range"),
    (["--duration", "18446744073709551616"], "expected at most"),
])
def test_record_option_values_are_checked(args, message):
    """Each bad option value: one message, exit 2, never a MemoryError or a traceback."""
    result = _invoke("record", *args)
    assert result.exit_code == 2 and message in result.stderr, result.output
    assert "Traceback" not in result.output


def test_keep_failing_folder_that_cannot_be_made_is_one_line(tmp_path, probe):
    """--keep-failing under a file: one line naming the folder."""
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = _invoke("record", _scenario(tmp_path, probe), "--seeds", "1", "--keep-failing",
                     str(blocker / "bugs"))
    assert result.exit_code == 2, result.output
    assert f"{blocker / 'bugs'}: cannot create the folder" in result.stderr, result.stderr
