"""`chaosreplay triage`: exit codes, the three report forms, baselines, skipped files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result
from triage_runs import FakeRun

from chaosreplay.cli import main
from chaosreplay.recording import RecordingReader

ELECTION = "election safety: at most one leader per term"
TERMS = "log terms never decrease along the log"


def _triage(*args: str | Path) -> Result:
    return CliRunner().invoke(main, ["triage", "--no-progress", *map(str, args)],
                              env={"COLUMNS": "240"})


def _bugs(tmp_path: Path) -> Path:
    bugs = tmp_path / "bugs"
    FakeRun(seed=4).fault(100, "partition", 900, sides=[[0], [1, 2]]).bug(
        700, 1, ELECTION, line=487).write(bugs / "seed-4.ccr")
    FakeRun(seed=9).fault(50, "partition", 2000, sides=[[1], [0, 2]]).bug(
        450, 2, ELECTION, line=487).write(bugs / "seed-9.ccr")
    FakeRun(seed=7).bug(800, 2, TERMS, line=33).crash(810, 2).write(bugs / "seed-7.ccr")
    return bugs


def test_findings_exit_1_with_a_table(tmp_path: Path) -> None:
    """The table names each cluster's failure, faults, runs and seeds."""
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink")
    assert result.exit_code == 1, result.output
    out = result.stdout
    assert ELECTION in out and "(src/app.c:487)" in out and "partition" in out
    assert "4, 9" in out and "450–700" in out and TERMS in out
    assert "3 recordings · 3 failing runs · 2 clusters of 2 signatures" in out


def test_no_findings_exit_0(tmp_path: Path) -> None:
    """Runs that found nothing make no cluster."""
    FakeRun().syscalls(5, 0, 3).write(tmp_path / "bugs" / "clean.ccr")
    result = _triage(tmp_path / "bugs", "--no-replay", "--no-shrink", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["clusters"] == []


@pytest.mark.parametrize(("setup", "message"), [
    ("missing", "does not exist"),
    ("empty", "no .ccr recordings under"),
    ("bad-json", "not JSON"),
    ("bad-version", "report version 99 is not supported"),
    ("not-a-report", "not a triage report"),
])
def test_user_errors_exit_2(tmp_path: Path, setup: str, message: str) -> None:
    """A missing or empty folder and a bad baseline are one-line errors, status 2."""
    bugs = tmp_path / "bugs"
    args: list[str | Path] = [bugs, "--no-replay", "--no-shrink"]
    if setup != "missing":
        bugs.mkdir()
        (bugs / "readme.txt").write_text("no recordings here")
    if setup.startswith("bad") or setup == "not-a-report":
        FakeRun().bug(5, 0, ELECTION).write(bugs / "a.ccr")
        baseline = tmp_path / "old.json"
        baseline.write_text({"bad-json": "{nope", "bad-version": '{"version": 99, "clusters": []}',
                             "not-a-report": "[1, 2]"}[setup])
        args += ["--baseline", baseline]
    result = _triage(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_json_schema(tmp_path: Path) -> None:
    """--json: the documented report (docs/triage.md), version 1."""
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink", "--json")
    data = json.loads(result.stdout)
    assert set(data) == {"version", "chaosreplay", "folder", "replayed", "shrunk", "baseline",
                         "totals", "signatures", "clusters", "gone", "skipped", "notes"}
    assert data["version"] == 1 and data["replayed"] is False and data["shrunk"] is False
    assert data["totals"] == {"recordings": 3, "failing": 3, "clusters": 2, "signatures": 2,
                              "skipped": 0, "gone": 0}
    cluster = data["clusters"][0]
    assert set(cluster) == {"key", "signature_key", "status", "class", "assertion_id",
                            "message", "location", "title", "faults", "count", "seeds",
                            "first_failure_ticks", "nodes", "representative", "runs",
                            "minimal"}
    assert (cluster["class"], cluster["message"], cluster["location"]) == (
        "always", ELECTION, "src/app.c:487")
    assert cluster["faults"] == ["partition"] and cluster["seeds"] == [4, 9]
    assert cluster["first_failure_ticks"] == [450, 700] and cluster["count"] == 2
    rep = cluster["representative"]
    assert rep["seed"] == 9 and rep["tick"] == 450 and rep["path"].endswith("seed-9.ccr")
    assert {t["node"] for t in rep["timeline"]} == {-1, 2}
    assert data["signatures"][0]["clusters"] == [cluster["key"]]
    assert data["signatures"][0]["folders"] == {".": 2}


def test_out_writes_markdown_and_json(tmp_path: Path) -> None:
    """--out: report.md with the clusters, signatures and timelines; report.json alike."""
    out = tmp_path / "report"
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink", "--out", out)
    assert result.exit_code == 1, result.output
    markdown = (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["totals"]["clusters"] == 2
    assert markdown.startswith(f"# Triage of {tmp_path / 'bugs'}")
    for expected in ("## Clusters", "## Signatures",
                     f'## 1. always failed: "{ELECTION}" at src/app.c:487',
                     "- faults in effect or just ended before the failure: partition",
                     "- 2 runs, seeds 4, 9; first failure between tick 450 and 700",
                     "Last events before the failure (representative, tick 450):",
                     "fault starts: partition (sides=[[1], [0, 2]]) for 2000 ms",
                     f"- other runs: `{tmp_path / 'bugs' / 'seed-4.ccr'}` (tick 700)",
                     f"`chaosreplay replay {tmp_path / 'bugs' / 'seed-9.ccr'}`"):
        assert expected in markdown, f"{expected!r} missing from:\n{markdown}"
    assert f"wrote {out / 'report.md'}" in result.stderr


def test_baseline_marks_new_still_present_and_gone(tmp_path: Path) -> None:
    """Clusters are matched by key against an earlier report.json."""
    bugs = _bugs(tmp_path)
    old = tmp_path / "old"
    assert _triage(bugs, "--no-replay", "--no-shrink", "--out", old).exit_code == 1
    (bugs / "seed-7.ccr").unlink()
    FakeRun(seed=12).hang(300, 1).write(bugs / "seed-12.ccr")
    result = _triage(bugs, "--no-replay", "--no-shrink", "--json", "--out", tmp_path / "new",
                     "--baseline", old / "report.json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    statuses = {c["class"]: c["status"] for c in data["clusters"]}
    assert statuses == {"always": "still present", "hang": "new"}
    [gone] = data["gone"]
    assert gone["status"] == "gone" and TERMS in gone["title"] and gone["count"] == 1
    markdown = (tmp_path / "new" / "report.md").read_text()
    assert "1 new, 1 still present, 1 gone" in markdown and "## Gone since the baseline" in markdown
    table = _triage(bugs, "--no-replay", "--no-shrink", "--baseline", old / "report.json")
    assert "still present" in table.stdout and "gone: always failed" in table.stdout


def test_damaged_file_is_reported_and_skipped(tmp_path: Path) -> None:
    """One warning line on stderr, listed as skipped in the report; the rest is triaged."""
    bugs = _bugs(tmp_path)
    good = (bugs / "seed-4.ccr").read_bytes()
    (bugs / "seed-5.ccr").write_bytes(good[:len(good) // 50])
    result = _triage(bugs, "--no-replay", "--no-shrink", "--json")
    assert result.exit_code == 1, result.output
    warnings = [line for line in result.stderr.splitlines() if "skipped" in line]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"chaosreplay: warning: skipped {bugs / 'seed-5.ccr'}: "), result.stderr
    data = json.loads(result.stdout)
    assert [s["path"] for s in data["skipped"]] == [str(bugs / "seed-5.ccr")]
    assert data["totals"]["recordings"] == 4 and data["totals"]["clusters"] == 2


def test_shrinking_reports_the_figures_everywhere(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in shrinker: one call per cluster on its representative, judged by the
    cluster's signature; the minimal run in --out (else BUGS_DIR/.triage/); the figures in
    the table, the markdown and the JSON."""
    calls: list[tuple[Path, Path]] = []

    def shrink_recording(path: Path, still_fails: Any, out: Path, *, jobs: int = 1,
                         budget_seconds: float | None = None,
                         on_progress: Any = None) -> SimpleNamespace:
        with RecordingReader(path) as reader:
            assert still_fails(reader.summary), "the representative must fail the same way"
        assert not still_fails(FakeRun().hang(5, 0).summary())
        assert budget_seconds == 30.0 and jobs == 1
        calls.append((path, out))
        out.write_bytes(path.read_bytes())
        return SimpleNamespace(original=path, output=out, faults_before=3, faults_after=1,
                               ticks_before=700, ticks_after=400, events_before=50,
                               events_after=20, candidates=9, seconds=1.25, log=[],
                               one_minimal=True, budget_exhausted=False,
                               schedule=[{"kind": "partition", "at": 100, "duration": 50,
                                          "sides": [[0], [1, 2]]}])

    monkeypatch.setitem(sys.modules, "chaosreplay.triage.shrink",
                        SimpleNamespace(shrink_recording=shrink_recording))
    bugs, out = _bugs(tmp_path), tmp_path / "report"
    common = ("--no-replay", "-j", "1", "--shrink-budget", "30")
    table = _triage(bugs, *common, "--out", out)
    assert table.exit_code == 1, table.output
    assert [p.name for p, _ in calls] == ["seed-9.ccr", "seed-7.ccr"]
    data = json.loads((out / "report.json").read_text())
    minimal = data["clusters"][0]["minimal"]
    assert minimal["path"] == str(out / f"min-{data['clusters'][0]['key']}.ccr")
    assert (minimal["faults_before"], minimal["faults_after"], minimal["candidates"]) == (3, 1, 9)
    assert "3→1 faults, 700→400 ticks" in table.stdout
    markdown = (out / "report.md").read_text()
    assert ("faults 3→1, ticks 700→400, events 50→20, 9 candidate runs, 1.2s" in markdown
            and "  - partition at tick 100 (duration=50, sides=[[0], [1, 2]])" in markdown)
    calls.clear()
    assert _triage(bugs, *common, "--json").exit_code == 1
    assert {o.parent for _, o in calls} == {bugs / ".triage"}
