"""`chaosreplay info`, `events` and `verify` through click's CliRunner."""

from __future__ import annotations

import base64
import json
from pathlib import Path

from click.testing import CliRunner
from recording_helpers import page

from chaosreplay.cli import main
from chaosreplay.recording import RecordingWriter
from chaosreplay.recording.format import FRAME_HEADER, PREAMBLE


def _invoke(*args: str) -> tuple[int, str, str]:
    """Run the CLI; return (exit code, stdout, stderr)."""
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def _recording(path: Path) -> Path:
    """A small complete recording with two nodes, output bytes and a checkpoint."""
    with RecordingWriter(path, {"seed": 42, "guest": b"\x7fELF" * 10}) as writer:
        writer.append(0, 0, -1, "run.start", {"seed": 42})
        for i in range(1, 21):
            writer.append(i, i * 1_000_000, i % 2, "syscall", {"nr": 1, "ret": i})
            writer.append(i, i * 1_000_000 + 5, i % 2, "output", {"data": b"line\n\x00"})
        writer.add_checkpoint(20, 41, b"\xab" * 32, {"regs": b"r"}, {"m": {0: page(0)}})
        writer.close({"verdict": "pass"})
    return path


def test_info_json_reports_counts_duration_checkpoints_and_integrity(tmp_path: Path) -> None:
    """info --json carries the counts, virtual duration, checkpoints and an intact verdict."""
    code, out, err = _invoke("info", str(_recording(tmp_path / "r.ccr")), "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["events"] == 41 and data["complete"] is True
    assert data["counts_by_kind"] == {"run.start": 1, "syscall": 20, "output": 20}
    assert data["counts_by_node"] == {"-1": 1, "0": 20, "1": 20}
    assert data["virtual_duration_ms"] == 20
    assert data["checkpoints"][0]["digest"] == "ab" * 32
    assert data["manifest"]["guest"]["$bytes"]["length"] == 40
    assert data["integrity"] == {"intact": True, "problems": []}
    assert data["compression_ratio"] > 0 and data["summary"] == {"verdict": "pass"}


def test_info_human_view_has_tables(tmp_path: Path) -> None:
    """The human view shows the status, the per-kind table and the checkpoint table."""
    code, out, _ = _invoke("info", str(_recording(tmp_path / "r.ccr")))
    assert code == 0
    for text in ("complete", "events per kind", "syscall", "checkpoints", "intact",
                 "manifest.seed"):
        assert text in out, out


def test_events_filters_and_json_lines(tmp_path: Path) -> None:
    """--kind/--node/--from/--to select events; --json writes bytes as base64."""
    path = str(_recording(tmp_path / "r.ccr"))
    code, out, _ = _invoke("events", path, "--kind", "output", "--node", "1", "--from", "3",
                           "--to", "7", "--json")
    assert code == 0
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["tick"] for line in lines] == [3, 5, 7]
    assert {line["kind"] for line in lines} == {"output"}
    assert base64.b64decode(lines[0]["fields"]["data"]["$bytes"]) == b"line\n\x00"
    code, out, _ = _invoke("events", path, "--node", "-1")
    assert out.splitlines() == ["       0 t=0 v=0ns sim run.start seed=42"]
    code, out, _ = _invoke("events", path, "--kind", "output", "--to", "1")
    assert out.splitlines() == [r"       2 t=1 v=1000005ns n1 output data=b'line\n\x00'"]


def test_verify_exit_codes(tmp_path: Path) -> None:
    """verify: 0 when intact; 1 with one line per problem (offset named) when damaged."""
    path = _recording(tmp_path / "r.ccr")
    code, out, _ = _invoke("verify", str(path))
    assert code == 0 and "intact" in out
    data = bytearray(path.read_bytes())
    victim = PREAMBLE.size + FRAME_HEADER.size + 1  # inside the manifest payload
    data[victim] ^= 0x04
    path.write_bytes(bytes(data))
    code, out, _ = _invoke("verify", str(path))
    assert code == 1
    assert out.splitlines()[0] == f"{path}: offset {PREAMBLE.size}: frame kind 1: payload " \
                                  "checksum mismatch"


def test_unreadable_file_is_one_error_line(tmp_path: Path) -> None:
    """A file that is not a recording: exit 2, one line naming the file, no traceback."""
    path = tmp_path / "junk.ccr"
    path.write_bytes(b"\x00" * 100)
    for command in ("info", "events"):
        code, out, err = _invoke(command, str(path))
        assert code == 2
        assert err == (f"chaosreplay: error: {path}: offset 0: not a .ccr recording (wrong "
                       "magic bytes)\n")
    code, out, _ = _invoke("verify", str(path))
    assert code == 1 and "wrong magic" in out


def test_events_warns_about_an_unfinished_file(tmp_path: Path) -> None:
    """events on a truncated file prints what is readable and warns on stderr."""
    path = _recording(tmp_path / "r.ccr")
    path.write_bytes(path.read_bytes()[:-30])
    code, out, err = _invoke("events", str(path))
    assert code == 0 and len(out.splitlines()) == 41
    assert err.startswith("chaosreplay: warning: offset ")


def _fault_recording(path: Path) -> Path:
    """A recording with a 3-node run manifest, fault and bug events."""
    manifest = {"kind": "chaosreplay.run", "scenario": {"nodes": [{"count": 3}]}}
    with RecordingWriter(path, manifest) as writer:
        writer.append(0, 0, -1, "run.start", {"seed": 1})
        writer.append(5, 5_000_000, -1, "fault.start", {"fault_id": "kill-1"})
        writer.append(7, 7_000_000, 2, "bug", {"message": "x"})
        writer.append(9, 9_000_000, -1, "fault.end", {"fault_id": "kill-1"})
        writer.close({})
    return path


def test_events_refuses_unknown_kinds_and_lists_the_kinds(tmp_path: Path) -> None:
    """--kind bugs used to print nothing with exit 0: now exit 2, a suggestion, the kinds."""
    code, out, err = _invoke("events", str(_fault_recording(tmp_path / "f.ccr")), "--kind",
                             "bugs")
    assert code == 2 and not out
    assert "unknown event kind 'bugs' (did you mean \"bug\"?)" in err, err
    assert "fault.start" in err and "packet.sent" in err and "f.ccr" in err


def test_events_kind_prefix_selects_the_family(tmp_path: Path) -> None:
    """--kind fault selects fault.start and fault.end."""
    code, out, _ = _invoke("events", str(_fault_recording(tmp_path / "f.ccr")), "--kind",
                           "fault", "--json")
    assert code == 0
    assert [json.loads(line)["kind"] for line in out.splitlines()] == ["fault.start",
                                                                       "fault.end"]


def test_events_refuses_nodes_that_do_not_exist_and_empty_ranges(tmp_path: Path) -> None:
    """--node 7 of a 3-node run and --from 100 --to 50: exit 2 with the reason."""
    path = str(_fault_recording(tmp_path / "f.ccr"))
    code, _, err = _invoke("events", path, "--node", "7")
    assert code == 2 and "node 7 does not exist (the run has nodes 0..2" in err, err
    code, _, err = _invoke("events", path, "--from", "100", "--to", "50")
    assert code == 2 and "--from 100 is after --to 50" in err, err
    code, _, err = _invoke("events", path, "--node", "-2")
    assert code == 2, err


def test_events_says_0_events_when_a_valid_filter_matches_nothing(tmp_path: Path) -> None:
    """A valid filter with no match: "0 events" on stderr, exit 0, nothing on stdout."""
    path = str(_fault_recording(tmp_path / "f.ccr"))
    code, out, err = _invoke("events", path, "--node", "1")
    assert code == 0 and out == "" and err.strip() == "0 events", (out, err)
    code, out, err = _invoke("events", path, "--kind", "bug", "--json")
    assert code == 0 and len(out.splitlines()) == 1 and "0 events" not in err

