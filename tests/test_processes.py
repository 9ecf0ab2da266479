"""Processes on a node (kernel/processes.py, syscalls/process.py): busybox's shell with
pipes, redirections, subshells, command substitution and external applets, compared with
the same busybox run natively; determinism; checkpoints while a node has children."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from simulate import Run, simulate

from chaosreplay.sim.scenario import Scenario, loads_scenario

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


PIPELINES = ("seq 1 3000 | sort -rn | head -2; sleep 0.005 | cat; "
             "(seq 50 | while read x; do echo $x; done) | wc -l; echo $(seq 400 | md5sum); "
             "sleep 0.003 & sleep 0.002; wait")


def _resumed_runs_match(sc: Scenario, tmp_path: Path) -> tuple[Run, list[set[str]]]:
    """Record sc (as tmp_path/run.ccr); resume from every checkpoint and compare the rest
    of the run's events with the uninterrupted run's. The run, and the names of each
    checkpoint's process blobs."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.recording.format import packb
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.sim.simulation import Simulation
    from chaosreplay.vm.elf import load_program

    images = [load_program(sc.nodes[0].program)]
    run = simulate(sc)
    assert not run.result.failures, run.result.failures
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    names = []
    with RecordingReader(tmp_path / "run.ccr") as reader:
        assert len(reader.checkpoints) == len(run.of("checkpoint"))
        for info in reader.checkpoints:
            loaded = reader.load_checkpoint(info.index)
            at = next(i for i, e in enumerate(run.events)
                      if e[3] == "checkpoint" and e[4]["index"] == info.index)
            tail: list = []
            Simulation.resume(sc, images, loaded.blobs, loaded.pages,
                              sink=lambda *e, out=tail: out.append(e)).run()
            assert packb(tail) == packb(run.events[at + 1:]), f"after checkpoint {info.index}"
            names.append({name for name in loaded.blobs if ".p1" in name})
    return run, names


@pytest.mark.kvm
@needs_busybox
def test_a_run_resumed_while_processes_run_continues_identically(tmp_path: Path) -> None:
    """Checkpoints every millisecond of a shell's pipelines: each covers every process of
    the node (its VM, threads, descriptors shared through pipes, zombies, a wait4 in
    progress), and resuming from any gives the rest of the run's events exactly."""
    _, names = _resumed_runs_match(_scenario(PIPELINES, checkpoint_interval=1), tmp_path)
    assert len(names) >= 8
    with_children = [n for n in names if n]
    assert len(with_children) >= 6, names
    assert all(name.startswith("node0.p1") and name.endswith(".vcpu")
               for n in with_children for name in n)


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
    import program_cache

    from chaosreplay.recording import RecordingReader
    from chaosreplay.recording.format import packb, unpackb
    from chaosreplay.recording.schema import SchemaError
    from chaosreplay.sim.checkpoint import rewrite_blob
    from chaosreplay.sim.simulation import Simulation
    from chaosreplay.vm.elf import load_program

    program = None if entry == "busybox" else str(program_cache.build_program(
        "exec_into.c", "musl"))
    script = LOOP if entry == "exec_into" else f"exec /bin/sh -c {_quote(LOOP)}"
    sc = _scenario(script, checkpoint_interval=100, program=program)
    run, _ = _resumed_runs_match(sc, tmp_path)
    assert _stdout(run) == "".join(f"tick {i}\n" for i in range(1, 7)), run.result
    assert run.of("process.exec") and len(run.of("checkpoint")) >= 4
    if entry == "busybox":
        return
    images = [load_program(sc.nodes[0].program)]
    with RecordingReader(tmp_path / "run.ccr") as reader:  # a checkpoint whose exec'd
        loaded = reader.load_checkpoint(reader.checkpoints[-1].index)  # program is gone
        kernel = unpackb(loaded.blobs["node0.kernel"], "kernel")
        assert kernel["exe"][0] == b"/bin/sh"
        kernel["exe"][2] = bytes(32)
        blobs = rewrite_blob(loaded.blobs, "node0.kernel", packb(kernel))
        with pytest.raises(SchemaError, match="exec'd program b'/bin/sh' is not on"):
            Simulation.resume(sc, images, blobs, loaded.pages)


def _quote(text: str) -> str:
    """text as one single-quoted shell word."""
    return "'" + text.replace("'", "'\\''") + "'"


@pytest.mark.kvm
@needs_busybox
@pytest.mark.parametrize(("damage", "problem"), [
    (lambda p: p["processes"].append(dict(p["processes"][0])), "each process once"),
    (lambda p: p["processes"][0]["files"]["fds"].append([9, 10**5, False]), "naming description"),
    (lambda p: p["processes"][0].update(status="exited"), "with state, exited"),
    (lambda p: p["processes"][0].update(pid=1000), "process 1000, whose id is taken"),
    (lambda p: p["processes"][0].update(pid=10**9), r"processes\[0\]\.pid is 1000000000"),
], ids=["duplicate", "bad-fd", "live-but-exited", "taken-tid", "pid-range"])
def test_a_damaged_process_table_in_a_checkpoint_is_one_clear_error(damage, problem,
                                                                    tmp_path: Path) -> None:
    """A checkpoint's process table comes from a file: a duplicate or out-of-range process,
    a descriptor naming no description, a live row that says it ended, a task id taken
    twice are each one SchemaError naming the field, never a crash of the loader."""
    from chaosreplay.recording import RecordingReader
    from chaosreplay.recording.format import packb, unpackb
    from chaosreplay.recording.schema import SchemaError
    from chaosreplay.runs.record_replay import RunOptions, record_run
    from chaosreplay.sim.checkpoint import rewrite_blob
    from chaosreplay.sim.simulation import Simulation
    from chaosreplay.vm.elf import load_program

    sc = _scenario("sleep 0.05 | cat", checkpoint_interval=20)
    images = [load_program(sc.nodes[0].program)]
    record_run(sc, images, tmp_path / "run.ccr", RunOptions())
    with RecordingReader(tmp_path / "run.ccr") as reader:
        loaded = reader.load_checkpoint(reader.checkpoints[0].index)
        kernel = unpackb(loaded.blobs["node0.kernel"], "kernel")
        assert len(kernel["processes"]["processes"]) == 2
        damage(kernel["processes"])
        blobs = rewrite_blob(loaded.blobs, "node0.kernel", packb(kernel))
        with pytest.raises(SchemaError, match=problem):
            Simulation.resume(sc, images, blobs, loaded.pages)


@pytest.mark.kvm
@needs_busybox
def test_the_debugger_shows_every_process_of_a_node() -> None:
    """A node's state in the debugger lists the threads of its other processes too, each
    named by its process and program, while the program waits for them."""
    from chaosreplay.debugger.program_state import ProgramInspector
    from chaosreplay.debugger.symbols import Symbolizer
    from chaosreplay.debugger.views import capture_state
    from chaosreplay.sim.simulation import Simulation
    from chaosreplay.vm.elf import load_program

    sc = _scenario("sleep 0.05 | cat")
    image = load_program(sc.nodes[0].program)
    events = simulate(sc).events
    seq = next(i for i, e in enumerate(events) if e[3] == "process.start" and e[4]["pid"] == 1002)
    sim = Simulation(sc, [image])
    sim.run_to(seq + 20)
    threads = capture_state(sim, seq, [ProgramInspector(Symbolizer(image))]).nodes[0].threads
    tids = [t.tid for t in threads]
    assert tids[0] == 1000 and {1001, 1002} <= set(tids)
    sleeper = next(t for t in threads if t.tid == 1001)
    assert sleeper.state.startswith("process 1001 (")


@pytest.mark.kvm
@needs_busybox
def test_proc_shows_every_process_and_what_it_runs() -> None:
    """/proc lists the node's live processes; a child reads its parent's /proc/<pid>; an
    exec'd program's /proc/self/cmdline and exe are its own."""
    script = ("sleep 0.01 & ls /proc | grep -c '^[0-9]'; cut -d' ' -f1-5 /proc/$$/stat; "
              "/bin/cat /proc/self/cmdline | tr '\\0' ' '; echo; wait")
    run = _on_node(script)
    count, stat, cmdline = _stdout(run).splitlines()
    assert int(count) == 4, "the shell, sleep, and the pipeline's ls and grep"
    assert stat == "1000 (busybox) R 1 1000"
    assert cmdline == "/bin/cat /proc/self/cmdline "
