"""Processes on a node (kernel/processes.py, syscalls/process.py): busybox's shell with
pipes, redirections, subshells, command substitution and external applets, compared with
the same busybox run natively; determinism; checkpoints while a node has children."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from chaosreplay.sim.scenario import Scenario, loads_scenario
from tests.simulate import Run, simulate

BUSYBOX = shutil.which("busybox")
needs_busybox = pytest.mark.skipif(BUSYBOX is None, reason="busybox is not installed "
                                   "(tests/install-tools.sh installs busybox-static)")
WORDS = "pear\napple\npear\nfig\npear\napple\n"
# Run as `sh -c SCRIPT sh DIR`: DIR holds words.txt and sub/a.txt, natively and on the node.
SCRIPT = r"""
cd "$1" || exit 9
echo one > out.txt; echo two >> out.txt; cat < out.txt
(cd sub && pwd | sed 's|.*/||')
sort words.txt | uniq -c
find . -type f | sort
seq 1 10 | awk '{ s += $1 } END { print "sum", s }'
echo $(echo nested) && false || echo fallback
lines=$(seq 3 | wc -l); echo "lines $lines"
timeout 1 sleep 5 2>/dev/null; echo "timeout status $?"
sh -c 'exit 3'; echo "child status $?"
env echo "external echo"
cat missing 2>/dev/null || echo "no such file"
echo piped | tr a-z A-Z | rev
ls sub | wc -l
"""
APPLETS = ("sh", "cat", "sed", "pwd", "sort", "uniq", "find", "seq", "awk", "wc", "timeout",
           "sleep", "env", "echo", "tr", "rev", "ls", "false")


def _native(script: str, tmp_path: Path) -> str:
    """What busybox's shell prints running script natively, applets linked in a PATH dir."""
    assert BUSYBOX is not None
    bin_dir, data = tmp_path / "bin", tmp_path / "data"
    bin_dir.mkdir()
    (data / "sub").mkdir(parents=True)
    for applet in APPLETS:
        (bin_dir / applet).symlink_to(BUSYBOX)
    (data / "words.txt").write_text(WORDS)
    (data / "sub" / "a.txt").write_text("a\n")
    result = subprocess.run([str(bin_dir / "sh"), "-c", script, "sh", str(data)],
                            capture_output=True, text=True, timeout=60, check=False,
                            env={"PATH": str(bin_dir)}, start_new_session=True)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _scenario(script: str, seed: int = 0, policy: str = "round-robin",
              checkpoint_interval: int = 0, program: str | None = None) -> Scenario:
    """busybox's shell running script as a node's program (or as what `program` execs),
    /bin holding its applets."""
    args = ["sh", "-c", script, "sh", "/data"]
    if program is not None:
        args = ["/bin/sh", *args[1:]]
    text = f"""
seed = {seed}
duration = "10s"
checkpoint_interval = {checkpoint_interval}
memory_per_node = "64MiB"
scheduler = {{ policy = "{policy}" }}
[[nodes]]
program = "{program or BUSYBOX}"
args = [{", ".join(_toml(a) for a in args)}]
env = {{ PATH = "/bin" }}
files = [
  {{ path = "/bin", busybox = "{BUSYBOX}" }},
  {{ path = "/data/words.txt", content = {_toml(WORDS)} }},
  {{ path = "/data/sub/a.txt", content = "a\\n" }},
]
"""
    return loads_scenario(text, base_dir=Path("/"))


def _on_node(script: str, seed: int = 0, policy: str = "round-robin",
             checkpoint_interval: int = 0) -> Run:
    """Run _scenario to its end."""
    return simulate(_scenario(script, seed, policy, checkpoint_interval))


def _toml(text: str) -> str:
    """A TOML basic string of text."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _stdout(run: Run) -> str:
    return b"".join(f["data"] for *_, f in run.of("output", 0) if f["fd"] == 1).decode()


@pytest.mark.kvm
@needs_busybox
def test_busybox_shell_prints_what_it_prints_natively(tmp_path: Path) -> None:
    """Pipes, redirections, a subshell, $(...), && and ||, timeout, seq | awk, find | sort,
    sort | uniq -c, external applets run by exec from /bin: the same output as natively."""
    expected = _native(SCRIPT, tmp_path)
    assert "      3 pear" in expected and "timeout status 143" in expected
    run = _on_node(SCRIPT)
    assert not run.result.failures, run.result.failures
    assert _stdout(run) == expected
    execs = [f["path"] for *_, f in run.of("process.exec")]
    assert b"/bin/sleep" in execs, "timeout runs sleep from /bin by execve"
    assert b"/proc/self/exe" in execs, "the shell runs applets by exec of itself"
    starts, exits = run.of("process.start"), run.of("process.exit")
    assert len(starts) == len(exits) > 10, "every child process ended"
    killed = [f for *_, f in exits if f.get("signal") == 15]
    assert len(killed) == 1 and "SIGTERM" in killed[0]["reason"], "timeout killed sleep"


@pytest.mark.kvm
@needs_busybox
def test_two_runs_of_a_shell_pipeline_are_identical() -> None:
    """Forks, execs and the order processes run in are a function of the seed."""
    script = "seq 1 200 | sort -rn | head -3; echo $(ls /bin | wc -l) applets"
    first, second = _on_node(script), _on_node(script)
    assert first.stream() == second.stream()
    assert first.sim.nodes[0].process.digest() == second.sim.nodes[0].process.digest()
    assert _stdout(first).splitlines()[:3] == ["200", "199", "198"]


@pytest.mark.kvm
@needs_busybox
def test_checkpoints_wait_while_a_node_has_children() -> None:
    """A checkpoint covers one process per node: none is taken while children live, and
    the run goes on to the next one."""
    # The shell alone waits 0.2 s (read with a timeout on an empty FIFO) before and after.
    script = ("mkfifo /tmp/f; exec 3<>/tmp/f; read -t 0.2 x <&3; sleep 0.25 | cat; "
              "read -t 0.2 x <&3; echo done")
    run = _on_node(script, checkpoint_interval=50)
    ticks = [vtime for _, vtime, *_ in run.of("checkpoint")]  # virtual times, in ns
    pipeline = [vtime for _, vtime, *_, f in run.of("process.start") if f["pid"] > 1001]
    ends = [vtime for _, vtime, *_ in run.of("process.exit")]
    assert _stdout(run) == "done\n"
    assert [t for t in ticks if t < min(pipeline)] and [t for t in ticks if t > max(ends)]
    assert not [t for t in ticks if min(pipeline) <= t <= max(ends)]
    assert [f["index"] for *_, f in run.of("checkpoint")] == list(range(len(ticks)))


@pytest.mark.kvm
@needs_busybox
def test_a_deadlocked_pipeline_is_reported_with_every_process() -> None:
    """Processes that all wait for each other forever end the node with a report naming
    each one's wait."""
    run = _on_node("mkfifo /tmp/p; cat /tmp/p | cat")
    crash = run.of("crash", 0)
    assert crash and "deadlock" in crash[0][4]["reason"], run.result
    assert "pid 1000" in crash[0][4]["reason"]



@pytest.mark.kvm
@needs_busybox
def test_the_random_policy_interleaves_processes_by_seed() -> None:
    """Two background jobs print in an order the seed picks under the random policy; round
    robin lets each run until it blocks, whatever the seed."""
    script = "for i in 1 2 3; do echo a$i; done & for i in 1 2 3; do echo b$i; done & wait"
    robin = {_stdout(_on_node(script, seed=seed)) for seed in range(3)}
    assert robin == {"a1\na2\na3\nb1\nb2\nb3\n"}
    orders = {_stdout(_on_node(script, seed=seed, policy="random")) for seed in range(4)}
    assert len(orders) > 1
    assert all(sorted(order.split()) == ["a1", "a2", "a3", "b1", "b2", "b3"] for order in orders)
    again = _stdout(_on_node(script, seed=1, policy="random"))
    assert again == _stdout(_on_node(script, seed=1, policy="random"))


LOOP = ("mkfifo /tmp/f; exec 3<>/tmp/f; i=0; while [ $i -lt 6 ]; do read -t 0.1 x <&3; "
        "i=$((i + 1)); echo tick $i; done")


@pytest.mark.kvm
@needs_busybox
@pytest.mark.parametrize("entry", ["busybox", "exec_into"])
def test_a_run_resumed_after_an_exec_continues_identically(entry: str, tmp_path: Path) -> None:
    """A node whose program exec'd another (busybox running itself again as /bin/sh, or a
    C entrypoint exec'ing busybox from the disk) is checkpointed with the program it runs
    now, and resuming from each checkpoint gives the rest of the run's events exactly."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.recording.format import packb, unpackb
    from chaosreplay.recording.schema import SchemaError
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.sim.checkpoint import rewrite_blob
    from chaosreplay.sim.simulation import Simulation
    from chaosreplay.vm.elf import load_program
    from tests import program_cache

    program = None if entry == "busybox" else str(program_cache.build_program(
        "exec_into.c", "musl"))
    script = LOOP if entry == "exec_into" else f"exec /bin/sh -c {_quote(LOOP)}"
    sc = _scenario(script, checkpoint_interval=100, program=program)
    images = [load_program(sc.nodes[0].program)]
    run = simulate(sc)
    assert _stdout(run) == "".join(f"tick {i}\n" for i in range(1, 7)), run.result
    assert run.of("process.exec") and run.of("checkpoint")
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        assert len(reader.checkpoints) >= 4
        for info in reader.checkpoints[1:]:
            loaded = reader.load_checkpoint(info.index)
            at = next(i for i, e in enumerate(run.events)
                      if e[3] == "checkpoint" and e[4]["index"] == info.index)
            tail: list = []
            Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                              sink=lambda *e, out=tail: out.append(e)).run()
            assert packb(tail) == packb(run.events[at + 1:]), f"after checkpoint {info.index}"
        if entry == "exec_into":  # a checkpoint whose exec'd program is not on its disk
            loaded = reader.load_checkpoint(reader.checkpoints[-1].index)
            kernel = unpackb(loaded.blobs["node0.kernel"], "kernel")
            assert kernel["exe"][0] == b"/bin/sh"
            kernel["exe"][2] = bytes(32)
            blobs = rewrite_blob(loaded.blobs, "node0.kernel", packb(kernel))
            with pytest.raises(SchemaError, match="exec'd program b'/bin/sh' is not on"):
                Simulation.resume(sc, images, blobs, loaded.pages)


def _quote(text: str) -> str:
    """text as one single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"
