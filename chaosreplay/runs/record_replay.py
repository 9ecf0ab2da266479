"""Recording a simulation into a .ccr, and replaying one to prove it reproduces.

`record_run` writes `<path>.partial` and renames it to `<path>` only once the recording is
complete, so a file at the requested name is never a half-written run. `replay_run`
re-executes a recording from its manifest alone (scenario + embedded programs) and checks
every event and every checkpoint digest against the recorded ones; on a divergence it
names the first event that differs and, from the next checkpoint, the parts of the state
that differ.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chaosreplay import __version__
from chaosreplay.errors import RecordingError
from chaosreplay.kernel.fastpath import DEFAULT as FAST_PATH_DEFAULT
from chaosreplay.recording import RecordingReader, RecordingWriter
from chaosreplay.recording.format import packb
from chaosreplay.recording.model import Event
from chaosreplay.runs.manifest_check import check_manifest
from chaosreplay.runs.manifest_contents import pack_contents
from chaosreplay.sim.checkpoint import SimCheckpoint, stored_parts
from chaosreplay.sim.programs import embed_programs, images_from_manifest
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.simulation import RunResult, Simulation
from chaosreplay.vm.elf import ProgramImage

MANIFEST_KIND = "chaosreplay.run"
MANIFEST_VERSION = 2
"""Version 2 keeps the scenario's large file contents in `contents`, one zstd frame each
(runs/manifest_contents.py); a manifest with none is still written, and read, as 1."""
MANIFEST_VERSIONS = (1, 2)
Progress = Callable[[Simulation], None]


@dataclass(frozen=True)
class RunOptions:
    """How a run is executed, beyond the scenario; stored in the manifest."""

    keep_going: bool = False
    hang_seconds: float = 10.0
    fast_path: bool = FAST_PATH_DEFAULT  # not in the manifest: the run is the same either way


def build_manifest(scenario: Scenario, images: list[ProgramImage], options: RunOptions,
                   parent: dict[str, Any] | None = None) -> dict[str, Any]:
    """Everything a replay needs: the scenario, the programs and the options."""
    table = scenario.to_dict()
    contents = pack_contents(table)
    return {
        "kind": MANIFEST_KIND, "version": 1 if contents is None else MANIFEST_VERSION,
        "chaosreplay": __version__, "scenario": table, "programs": embed_programs(images),
        "options": {"keep_going": options.keep_going}, "parent": parent,
        **({} if contents is None else {"contents": contents}),
    }


def host_info() -> dict[str, Any]:
    """Informational only (kept apart from the manifest): where the recording was made."""
    return {"hostname": platform.node(), "kernel": platform.release(),
            "python": platform.python_version()}


def partial_path(path: str | os.PathLike[str]) -> Path:
    """Where record_run writes the recording until it is complete."""
    final = Path(path)
    return final.with_name(final.name + ".partial")


def record_run(scenario: Scenario, images: list[ProgramImage], path: str | os.PathLike[str],
               options: RunOptions = RunOptions(), on_progress: Progress | None = None,
               parent: dict[str, Any] | None = None) -> RunResult:
    """Run the scenario and write its recording to path (atomically, see module docstring).

    A write that fails (a full disk, a folder that is not writable) is a RecordingError
    naming the file; what was written so far stays in the `.partial` file, which readers
    read up to its last whole frame."""
    final = Path(path)
    partial = partial_path(final)
    if final.is_dir():
        raise RecordingError(f"{final}: is a directory; give the recording a file name")
    manifest = build_manifest(scenario, images, options, parent)
    # The VMs first: a host without KVM or a bad program leaves no file behind.
    sim = Simulation(scenario, images, keep_going=options.keep_going, on_progress=on_progress,
                     hang_seconds=options.hang_seconds, fast_path=options.fast_path)
    try:
        writer = RecordingWriter(partial, manifest, host=host_info())
    except OSError as exc:
        raise RecordingError(f"{partial}: cannot write the recording ({exc.strerror})") from None
    except ValueError as exc:  # the manifest does not fit its frame
        raise RecordingError(f"{partial}: cannot write the recording ({exc})") from None
    last_checkpoint: list[int | None] = [None]

    def on_checkpoint(c: SimCheckpoint) -> None:
        last_checkpoint[0] = writer.add_checkpoint(c.tick, c.seq, c.digest, c.blobs, c.pages(),
                                                   base=last_checkpoint[0])

    try:
        with writer:
            sim.sink, sim.on_checkpoint = writer.append, on_checkpoint
            result = sim.run()
            writer.close(result.summary())
        os.replace(partial, final)
    except OSError as exc:
        raise RecordingError(f"{partial}: writing the recording failed ({exc.strerror}); the "
                             "run so far is left in this file, readable up to its last whole "
                             "frame") from None
    return result


def load_run(reader: RecordingReader) -> tuple[Scenario, list[ProgramImage], RunOptions]:
    """The scenario, programs and options a recording was made with."""
    manifest = reader.manifest
    where = str(reader.path)
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        raise RecordingError(f"{where}: not a simulation recording (no run manifest)")
    if manifest.get("version") not in MANIFEST_VERSIONS:
        raise RecordingError(f"{where}: run manifest version {manifest.get('version')!r} is "
                             f"not supported (this chaosreplay reads "
                             f"{' and '.join(map(str, MANIFEST_VERSIONS))})")
    scenario = check_manifest(manifest, where)
    images = images_from_manifest(manifest["programs"], where)
    options = RunOptions(keep_going=bool(manifest["options"]["keep_going"]))
    return scenario, images, options


@dataclass
class Divergence:
    """The first event where a replay differs from its recording."""

    seq: int
    tick: int
    node: int
    expected: Event | None  # None: the replay produced more events than recorded
    actual: tuple[int, int, int, str, dict[str, Any]] | None  # None: it produced fewer


@dataclass
class ReplayReport:
    """What a replay found."""

    events_checked: int = 0
    checkpoints_checked: int = 0
    divergence: Divergence | None = None
    state_differs: list[str] = field(default_factory=list)  # part names, from a checkpoint
    state_checked_at: int | None = None  # tick of the checkpoint that showed state_differs
    complete_recording: bool = True
    outcome: dict[str, Any] | None = None  # the re-executed run's summary, once it ran out
    duration: int = 0  # the scenario's duration in ticks (for describing the outcome)

    @property
    def identical(self) -> bool:
        """Every event and checkpoint matched."""
        return self.divergence is None and not self.state_differs


class _Stop(Exception):
    """Ends a replay early (after a divergence has been described)."""


class _Comparer:
    """The sink and checkpoint hook of a replaying Simulation."""

    def __init__(self, reader: RecordingReader, report: ReplayReport) -> None:
        self.reader = reader
        self.report = report
        self.expected = reader.rows()
        self.checkpoints = reader.checkpoints
        self.seq = 0

    def event(self, tick: int, vtime_ns: int, node: int, kind: str,
              fields: dict[str, Any]) -> None:
        report = self.report
        if report.divergence is not None:
            return  # running on only to reach the next checkpoint
        recorded = next(self.expected, None)
        actual = (tick, vtime_ns, node, kind, fields)
        if recorded is None:
            if not self.reader.complete:
                report.complete_recording = False
                raise _Stop
            report.divergence = Divergence(self.seq, tick, node, None, actual)
        elif not same_row(recorded, actual):
            report.divergence = Divergence(self.seq, recorded[0], recorded[2],
                                           Event(self.seq, *recorded), actual)
        else:
            report.events_checked += 1
        self.seq += 1

    def checkpoint(self, c: SimCheckpoint) -> None:
        report = self.report
        index = report.checkpoints_checked
        if index >= len(self.checkpoints):
            if report.divergence is not None or not self.reader.complete:
                report.complete_recording = self.reader.complete
                raise _Stop
            return
        info = self.checkpoints[index]
        if info.digest == c.digest and info.tick == c.tick and info.seq == c.seq:
            report.checkpoints_checked += 1
            if report.divergence is not None:
                raise _Stop  # state matches here despite the events: nothing more to learn
            return
        recorded = stored_parts(self.reader.load_checkpoint(index).blobs)
        report.state_differs = sorted(name for name in set(recorded) | set(c.parts)
                                      if recorded.get(name) != c.parts.get(name))
        report.state_checked_at = c.tick
        raise _Stop

    def finish(self) -> None:
        """After a full run: the recording must hold nothing more."""
        report = self.report
        if report.divergence is None:
            extra = next(self.expected, None)
            if extra is not None:
                report.divergence = Divergence(self.seq, extra[0], extra[2],
                                               Event(self.seq, *extra), None)


Row = tuple[int, int, int, str, dict[str, Any]]


def same_row(recorded: Row, actual: Row) -> bool:
    """Whether a re-executed event equals the recorded one as the recording stores it: plain
    equality fails only where a tuple was stored as an array, which the encoding settles."""
    return recorded == actual or (recorded[:4] == actual[:4]
                                  and packb(recorded[4]) == packb(actual[4]))


def replay_run(path: str | os.PathLike[str], on_progress: Progress | None = None,
               hang_seconds: float = 10.0, fast_path: bool = FAST_PATH_DEFAULT) -> ReplayReport:
    """Re-execute a recording and compare; see the module docstring."""
    report = ReplayReport()
    with RecordingReader(path) as reader:
        report.complete_recording = reader.complete
        scenario, images, options = load_run(reader)
        report.duration = scenario.duration
        comparer = _Comparer(reader, report)
        sim = Simulation(scenario, images, sink=comparer.event, keep_going=options.keep_going,
                         on_checkpoint=comparer.checkpoint, on_progress=on_progress,
                         hang_seconds=hang_seconds, fast_path=fast_path)
        try:
            report.outcome = sim.run().summary()
            comparer.finish()
        except _Stop:
            pass
    return report


def describe_part(name: str) -> str:
    """A checkpoint part name in words (node1.memory -> node 1 guest memory)."""
    node, _, what = name.partition(".")
    words = {"vcpu": "vCPU registers", "memory": "guest memory", "kernel":
             "kernel state (clock, fds, memory map, random streams)", "disk": "disk"}
    if what:
        return f"node {node.removeprefix('node')} {words.get(what, what)}"
    return {"fabric": "network fabric (packets in flight, link state, stats)",
            "engine": "fault engine", "oracle": "assertion oracle",
            "inboxes": "node inboxes", "controller": "controller (time, counters, bugs)"}.get(
                name, name)
