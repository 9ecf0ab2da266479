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
from chaosreplay.triage import minimize

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
    FakeRun(seed=3).bug(950, 0, ELECTION, line=487).write(bugs / "calm" / "seed-3.ccr")
    return bugs


def test_findings_exit_1_with_a_table(tmp_path: Path) -> None:
    """One row per property that broke: its failure, runs, first-failure sparkline."""
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink")
    assert result.exit_code == 1, result.output
    out = result.stdout
    words = set(out.replace("\"", " ").split())  # the table wraps long messages
    assert set(ELECTION.split()) <= words and set(TERMS.split()) <= words
    assert "src/app.c:487" in out and "····█··█·█" in out and "450–950" in out
    assert "4 recordings · 4 failing runs · 2 findings" in out


def test_the_table_fits_80_columns_and_keeps_numbers_and_paths_whole(tmp_path: Path) -> None:
    """Long messages wrap inside the table; no line is wider than 80; the numbers, the
    source location and the command lines are never cut."""
    bugs = tmp_path / "bugs"
    long = ("replicated state machines agree on every applied command even across "
            "restarts, partitions and clock jumps of every node")
    FakeRun(seed=1).bug(123456, 0, long, file="src/replication/state_machine.c",
                        line=4321).write(bugs / "seed-1.ccr")
    result = CliRunner().invoke(main, ["triage", "--no-progress", str(bugs), "--no-replay",
                                       "--no-shrink"], env={"COLUMNS": "200"})
    assert result.exit_code == 1, result.output
    table = result.stdout.split("\n")
    assert max(len(line) for line in table) <= 80, result.stdout
    assert "123456" in result.stdout, result.stdout
    assert "src/replication/state_machine.c:4321" in result.stdout, result.stdout


def test_no_findings_exit_0(tmp_path: Path) -> None:
    """Runs that found nothing make no finding."""
    FakeRun().syscalls(5, 0, 3).write(tmp_path / "bugs" / "clean.ccr")
    result = _triage(tmp_path / "bugs", "--no-replay", "--no-shrink", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["findings"] == []


def test_a_run_that_only_exits_2_is_a_finding(tmp_path: Path) -> None:
    """Every node printing a usage error and exiting 2 is one finding, not a green run."""
    for seed in (1, 2, 3):
        run = FakeRun(seed=seed)
        for node in range(3):
            run.stderr(0, node, "usage: raft [correct|...]\n").exit(0, node, 2)
        run.write(tmp_path / "bugs" / f"seed-{seed}.ccr")
    result = _triage(tmp_path / "bugs", "--no-replay", "--no-shrink", "--json")
    assert result.exit_code == 1, result.output
    [finding] = json.loads(result.stdout)["findings"]
    assert (finding["class"], finding["message"], finding["count"]) == (
        "exit", "exit status 2", 3), finding


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
        baseline.write_text({"bad-json": "{nope", "bad-version": '{"version": 99, "findings": []}',
                             "not-a-report": "[1, 2]"}[setup])
        args += ["--baseline", baseline]
    result = _triage(*args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.output


def test_json_schema(tmp_path: Path) -> None:
    """--json: the documented report (docs/triage.md), version 2."""
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink", "--json")
    data = json.loads(result.stdout)
    assert set(data) == {"version", "chaosreplay", "folder", "replayed", "shrunk", "baseline",
                         "totals", "findings", "resolved", "skipped", "notes"}
    assert data["version"] == 2 and data["replayed"] is False and data["shrunk"] is False
    assert data["totals"] == {"recordings": 4, "failing": 4, "findings": 2, "skipped": 0,
                              "new": 0, "rare": 1, "resolved": 0}
    finding = data["findings"][0]
    assert set(finding) == {"number", "key", "signature_key", "status", "rare", "class",
                            "assertion_id", "message", "location", "title", "grouping",
                            "count", "seeds", "nodes", "faults", "first_failure_ticks",
                            "first_failure_histogram", "breakdown", "representative", "runs",
                            "minimal", "attempts"}
    assert (finding["number"], finding["class"], finding["message"], finding["location"]) == (
        1, "always", ELECTION, "src/app.c:487")
    assert finding["seeds"] == [3, 4, 9] and finding["count"] == 3 and not finding["rare"]
    assert finding["first_failure_ticks"] == [450, 950]
    hist = finding["first_failure_histogram"]
    # ticks 450, 700, 950 over 0..950 in 10 bins of 96 ticks: bins 4, 7 and 9
    assert hist["bin_ticks"] == 96 and hist["counts"] == [0, 0, 0, 0, 1, 0, 0, 1, 0, 1]
    assert hist["sparkline"] == "····█··█·█"
    assert finding["breakdown"] == {"faults": [["partition", 2], ["none", 1]],
                                    "nodes": [["node 0", 1], ["node 1", 1], ["node 2", 1]],
                                    "folders": [[".", 2], ["calm", 1]]}
    rep = finding["representative"]
    assert rep["seed"] == 9 and rep["tick"] == 450 and rep["path"].endswith("seed-9.ccr")
    assert {t["node"] for t in rep["timeline"]} == {-1, 2}
    assert rep["commands"]["debug"] == f"chaosreplay debug {rep['path']} --seek 450"
    assert data["findings"][1]["rare"] is True, "one run of four"


def test_out_writes_markdown_and_json(tmp_path: Path) -> None:
    """--out: report.md with the findings, their breakdown, commands and timelines."""
    out = tmp_path / "report"
    result = _triage(_bugs(tmp_path), "--no-replay", "--no-shrink", "--out", out)
    assert result.exit_code == 1, result.output
    markdown = (out / "report.md").read_text()
    assert json.loads((out / "report.json").read_text())["totals"]["findings"] == 2
    assert markdown.startswith(f"# Triage of {tmp_path / 'bugs'}")
    seed9 = tmp_path / "bugs" / "seed-9.ccr"
    for expected in ("## Findings", f'## Finding 1: always failed: "{ELECTION}" at src/app.c:487',
                     "- 3 runs, seeds 3-4, 9; first failure between tick 450 and 950: "
                     "`····█··█·█` (runs per 96 ticks from 0)",
                     "| partition | 2 |", "| none | 1 |", "| calm | 1 |",
                     "Last events before the failure (representative, tick 450):",
                     "fault starts: partition (sides=[[1], [0, 2]]) for 2000 ms",
                     f"- other runs: `{tmp_path / 'bugs' / 'seed-4.ccr'}` (tick 700)",
                     f"  chaosreplay debug {seed9} --seek 450",
                     f"  chaosreplay replay {seed9}", f"  chaosreplay state {seed9} --tick 450 "
                     "--node 2"):
        assert expected in markdown, f"{expected!r} missing from:\n{markdown}"
    assert f"wrote {out / 'report.md'}" in result.stderr


def test_baseline_marks_new_still_present_resolved_and_rare(tmp_path: Path) -> None:
    """Findings are matched by the property that broke against an earlier report.json."""
    bugs = _bugs(tmp_path)
    old = tmp_path / "old"
    assert _triage(bugs, "--no-replay", "--no-shrink", "--out", old).exit_code == 1
    (bugs / "seed-7.ccr").unlink()
    (bugs / "seed-4.ccr").unlink()  # election still breaks, in fewer runs and other faults
    FakeRun(seed=12).hang(300, 1).write(bugs / "seed-12.ccr")
    result = _triage(bugs, "--no-replay", "--no-shrink", "--json", "--out", tmp_path / "new",
                     "--baseline", old / "report.json")
    assert result.exit_code == 1, result.output
    data = json.loads(result.stdout)
    statuses = {f["class"]: (f["status"], f["rare"]) for f in data["findings"]}
    assert statuses == {"always": ("still present", False), "hang": ("new", True)}
    [resolved] = data["resolved"]
    assert resolved["status"] == "resolved" and TERMS in resolved["title"]
    assert resolved["count"] == 1 and resolved["seeds"] == [7]
    markdown = (tmp_path / "new" / "report.md").read_text()
    assert "1 new, 1 still present, 1 resolved" in markdown
    assert "## Resolved since the baseline" in markdown and "| new, rare |" in markdown
    table = _triage(bugs, "--no-replay", "--no-shrink", "--baseline", old / "report.json")
    assert "still present" in table.stdout and "resolved: always failed" in table.stdout


def test_a_version_1_report_is_still_a_baseline(tmp_path: Path) -> None:
    """Reports written before findings (version 1, "clusters") still serve as baselines."""
    bugs = _bugs(tmp_path)
    data = json.loads(_triage(bugs, "--no-replay", "--no-shrink", "--json").stdout)
    old = {"version": 1, "clusters": [{"key": "x", "signature_key": f["signature_key"],
                                       "title": f["title"], "count": 1, "seeds": [1]}
                                      for f in data["findings"][:1]]}
    (tmp_path / "old.json").write_text(json.dumps(old))
    again = json.loads(_triage(bugs, "--no-replay", "--no-shrink", "--json", "--baseline",
                               tmp_path / "old.json").stdout)
    assert [f["status"] for f in again["findings"]] == ["still present", "new"]


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
    assert data["totals"]["recordings"] == 5 and data["totals"]["findings"] == 2


def test_shrinking_reports_the_figures_everywhere(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """With a stand-in shrinker: up to three runs per finding (one per fault pattern first),
    judged by the finding's signature; the smallest result kept as finding-N-min.ccr in
    --out (else BUGS_DIR/.triage/), the others' files removed; the figures and the commands
    in the table, the markdown and the JSON."""
    calls: list[tuple[Path, Path]] = []
    sizes = {"seed-9.ccr": 3, "seed-4.ccr": 1, "seed-3.ccr": 2, "seed-7.ccr": 1}

    def shrink_recording(path: Path, still_fails: Any, out: Path, *, jobs: int = 1,
                         budget_seconds: float | None = None,
                         on_progress: Any = None) -> SimpleNamespace:
        with RecordingReader(path) as reader:
            assert still_fails(reader.summary), "the run must fail the same way"
        assert not still_fails(FakeRun().hang(5, 0).summary())
        assert budget_seconds == 30.0 and jobs == 1
        calls.append((path, out))
        out.write_bytes(path.read_bytes())
        faults = sizes[path.name]
        return SimpleNamespace(original=path, output=out, faults_before=5, faults_after=faults,
                               ticks_before=700, ticks_after=400, events_before=50,
                               events_after=20, candidates=9, seconds=1.25, log=[],
                               one_minimal=True, budget_exhausted=False,
                               schedule=[{"kind": "partition", "at": 100, "duration": 50,
                                          "sides": [[0], [1, 2]]}] * faults)

    monkeypatch.setitem(sys.modules, "chaosreplay.triage.shrink",
                        SimpleNamespace(shrink_recording=shrink_recording))
    # made-up runs cannot be re-executed: the stack at the failure is stood in too
    monkeypatch.setattr(minimize, "stack_at", lambda reader, seq, node: [
        f"apply+0x1c (src/app.c:{seq})", "main (src/app.c:90)"])
    bugs, out = _bugs(tmp_path), tmp_path / "report"
    common = ("--no-replay", "-j", "1", "--shrink-budget", "30")
    table = _triage(bugs, *common, "--out", out)
    assert table.exit_code == 1, table.output
    assert sorted(p.name for p, _ in calls) == ["seed-3.ccr", "seed-4.ccr", "seed-7.ccr",
                                               "seed-9.ccr"]
    data = json.loads((out / "report.json").read_text())
    first = data["findings"][0]
    minimal = first["minimal"]
    assert minimal["member"].endswith("seed-4.ccr"), "the fewest faults win"
    assert minimal["path"] == str(out / "finding-1-min.ccr") and Path(minimal["path"]).is_file()
    assert sorted(p.name for p in out.glob("*.ccr")) == ["finding-1-min.ccr",
                                                        "finding-2-min.ccr"]
    assert not list(out.glob(".attempt-*")), "the other attempts' files are removed"
    assert len(first["attempts"]) == 3
    assert (minimal["faults_before"], minimal["faults_after"], minimal["candidates"]) == (5, 1, 9)
    assert minimal["commands"]["debug"].startswith(f"chaosreplay debug {minimal['path']} --seek")
    assert "1 fault" in table.stdout and f"finding 1: chaosreplay debug {out}" in table.stdout
    markdown = (out / "report.md").read_text()
    assert ("faults 5→1, ticks 700→400, events 50→20, 9 candidate runs, 1.2s" in markdown
            and "  - partition at tick 100 (duration=50, sides=[[0], [1, 2]])" in markdown
            and f"  chaosreplay replay {out / 'finding-1-min.ccr'}" in markdown)
    assert "not split: the minimal reproductions of 3 runs need overlapping faults" in markdown
    seq = minimal["failure_event"]
    assert minimal["stack"][0] == f"apply+0x1c (src/app.c:{seq})"
    assert (f"  - stack at the failure (node {minimal['failure_node']}, innermost first): "
            f"`apply+0x1c (src/app.c:{seq})` ← `main (src/app.c:90)`") in markdown
    calls.clear()
    assert _triage(bugs, *common, "--json").exit_code == 1
    assert {o.parent for _, o in calls} == {bugs / ".triage"}
