"""`chaosreplay record` and `chaosreplay replay` from the command line, bad input included."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.recording import RecordingReader

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
