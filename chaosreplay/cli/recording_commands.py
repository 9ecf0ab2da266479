"""`chaosreplay info`, `events` and `verify`: look inside a .ccr recording.

Bytes in output: `events --json` writes every byte string in full as {"$bytes": "<base64>"};
the human `events` view prints them as Python-style literals (b"GET /\\n"); `info` shows
manifest byte strings (embedded guest binaries) as their length and SHA-256 only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from chaosreplay.cli.embedded_files import disk_files, print_disk_files, roots
from chaosreplay.cli.integrity import about_file
from chaosreplay.errors import ChaosReplayError
from chaosreplay.events import EventKind
from chaosreplay.recording import Event, RecordingReader, verify_recording
from chaosreplay.recording.jsonview import to_json
from chaosreplay.runs.manifest_contents import scenario_table
from chaosreplay.runs.record_replay import MANIFEST_KIND
from chaosreplay.runs.schedules import gate_tick, planned, run_faults
from chaosreplay.sim.outcome import ended_nodes, outcome_words
from chaosreplay.sim.scenario import Scenario
from chaosreplay.sim.validation import did_you_mean

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _summarise_bytes(value: Any) -> Any:
    """Manifest values for `info`: byte strings replaced by their length and digest."""
    if isinstance(value, bytes):
        return {"$bytes": {"length": len(value), "sha256": hashlib.sha256(value).hexdigest()}}
    if isinstance(value, dict):
        return {str(k): _summarise_bytes(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_summarise_bytes(v) for v in value]
    return value


def _human_value(value: Any) -> str:
    """A field value on one line: Python literal notation, bytes escaped."""
    text = repr(value)
    return text if len(text) <= 200 else f"{text[:197]}..."


def _run_facts(reader: RecordingReader) -> dict[str, Any]:
    """A simulation recording's outcome in words and the faults of its run (the expanded
    schedule, each marked with whether it started); {} for other recordings."""
    manifest = reader.manifest
    if not isinstance(manifest, dict) or manifest.get("kind") != MANIFEST_KIND:
        return {}
    try:
        scenario = Scenario.from_dict(scenario_table(manifest, str(reader.path)),
                                      f"{reader.path} (manifest)")
    except (ChaosReplayError, KeyError, TypeError) as exc:
        return {"outcome": f"unknown: the manifest's scenario cannot be read ({exc})",
                "faults": []}
    summary = reader.summary if isinstance(reader.summary, dict) else None
    facts: dict[str, Any] = {"outcome": outcome_words(summary, scenario.duration),
                             "nodes_ended": ended_nodes(summary) if summary else None}
    try:
        gate = gate_tick(reader)
    except (ChaosReplayError, KeyError, TypeError, ValueError):
        gate = None
    started = {e.fields.get("fault_id") for e in reader.events(kinds=("fault.start",))}
    facts["faults"] = [{**p.to_dict(), "started": p.fault_id in started}
                       for p in planned(run_faults(scenario), gate)]
    return facts


def _info_dict(reader: RecordingReader, problems: list[str]) -> dict[str, Any]:
    """Everything `info` reports, as plain JSON-ready data."""
    stored = max(1, reader.size)
    first, last = reader.first_tick, reader.last_tick
    return {
        "path": reader.path,
        "format_version": "{}.{}".format(*reader.version),
        "size_bytes": reader.size,
        "uncompressed_bytes": reader.raw_bytes,
        "compression_ratio": round(reader.raw_bytes / stored, 2),
        "complete": reader.complete,
        "ignored_tail_bytes": reader.ignored_tail_bytes,
        "events": reader.event_count,
        "first_tick": first,
        "last_tick": last,
        "virtual_duration_ms": None if first is None or last is None else last - first,
        "counts_by_kind": reader.counts_by_kind,
        "counts_by_node": {str(k): v for k, v in reader.counts_by_node.items()},
        "checkpoints": [
            {"index": c.index, "tick": c.tick, "seq": c.seq, "base": c.base,
             "digest": c.digest.hex(), "page_count": c.page_count, "new_pages": c.new_pages,
             "blob_bytes": c.blob_bytes, "stored_bytes": c.stored_bytes}
            for c in reader.checkpoints],
        "manifest": _summarise_bytes(reader.manifest),
        "host": _summarise_bytes(reader.host),
        "summary": to_json(reader.summary),
        "integrity": {"intact": not problems, "problems": problems},
        "disk_files": disk_files(reader),
        "roots": roots(reader),
        **_run_facts(reader),
    }


def _print_info(info: dict[str, Any]) -> None:
    """The human view of `info`: a few rich tables."""
    console = Console(highlight=False)
    overview = Table(title=info["path"], show_header=False, title_justify="left")
    overview.add_column("what", style="bold")
    overview.add_column("value")
    duration = info["virtual_duration_ms"]
    rows = [
        ("format", info["format_version"]),
        ("size", f"{info['size_bytes']:,} bytes ({info['uncompressed_bytes']:,} uncompressed, "
                 f"ratio {info['compression_ratio']}x)"),
        ("status", "complete" if info["complete"] else
         f"incomplete ({info['ignored_tail_bytes']} trailing bytes ignored)"),
        ("events", f"{info['events']:,}"),
        ("ticks", "-" if duration is None else
         f"{info['first_tick']} .. {info['last_tick']} (virtual duration {duration} ms)"),
        ("checkpoints", str(len(info["checkpoints"]))),
        ("integrity", "intact (every frame checksum and the index verified)"
         if info["integrity"]["intact"] else
         f"DAMAGED: {len(info['integrity']['problems'])} problem(s), see below"),
    ]
    if "outcome" in info:
        rows.insert(0, ("outcome", info["outcome"]))
        if info.get("nodes_ended"):
            rows.insert(1, ("nodes ended", info["nodes_ended"]))
        ran = sum(f["started"] for f in info["faults"])
        rows.append(("faults", f"{len(info['faults'])} in the expanded schedule, {ran} "
                               "started (table below)" if info["faults"] else "none"))
    for key, value in info["manifest"].items():
        rows.append((f"manifest.{key}", json.dumps(value)))
    for row in rows:
        overview.add_row(*row)
    console.print(overview)
    for title, counts in (("events per kind", info["counts_by_kind"]),
                          ("events per node", info["counts_by_node"])):
        table = Table(title=title, title_justify="left")
        table.add_column("kind" if "kind" in title else "node")
        table.add_column("events", justify="right")
        for key, count in counts.items():
            table.add_row("sim (-1)" if key == "-1" else str(key), f"{count:,}")
        console.print(table)
    if info["checkpoints"]:
        table = Table(title="checkpoints", title_justify="left")
        for column in ("#", "tick", "seq", "base", "digest", "pages", "new", "blobs", "stored"):
            table.add_column(column, justify="right")
        for c in info["checkpoints"]:
            table.add_row(str(c["index"]), str(c["tick"]), str(c["seq"]),
                          "-" if c["base"] is None else str(c["base"]), c["digest"][:16],
                          str(c["page_count"]), str(c["new_pages"]), f"{c['blob_bytes']:,}",
                          f"{c['stored_bytes']:,}")
        console.print(table)
    print_disk_files(console, info)
    if info.get("faults"):
        table = Table(title="faults (the expanded schedule)", title_justify="left")
        for column in ("id", "kind", "node", "start", "end", "parameters", "ran"):
            table.add_column(column, no_wrap=column != "parameters")
        for f in info["faults"]:
            fault = dict(f["fault"])
            kind, node = fault.pop("kind"), fault.pop("node", None)
            fault.pop("at", None)
            fault.pop("duration", None)
            table.add_row(f["fault_id"], kind, "-" if node is None else str(node),
                          _tick_text(f["start_tick"]), _tick_text(f["end_tick"]),
                          ", ".join(f"{k}={_param_text(v)}" for k, v in fault.items()) or "-",
                          "yes" if f["started"] else "no")
        console.print(table)
    for problem in info["integrity"]["problems"]:
        console.print(f"[red]damage:[/red] {problem}", markup=True)


def _tick_text(tick: int | None) -> str:
    return "-" if tick is None else str(tick)


def _param_text(value: Any) -> str:
    """A fault parameter, floats to 3 significant digits."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


@click.command()
@click.argument("file", type=_FILE)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of tables.")
def info(file: Path, as_json: bool) -> None:
    """Show a recording's manifest, counts, checkpoints, size and integrity."""
    with about_file(file):
        problems = verify_recording(file).problems
        with RecordingReader(file) as reader:
            data = _info_dict(reader, problems)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    else:
        _print_info(data)


def _event_line(event: Event) -> str:
    """One event in the human view."""
    fields = " ".join(f"{key}={_human_value(value)}" for key, value in event.fields.items())
    node = "sim" if event.node == -1 else f"n{event.node}"
    return (f"{event.seq:>8} t={event.tick} v={event.vtime_ns}ns {node} {event.kind}"
            f"{' ' + fields if fields else ''}")


def _expand_kinds(file: Path, reader: RecordingReader, asked: tuple[str, ...]) -> set[str]:
    """The kinds asked for, a prefix ("fault") standing for its family (fault.start,
    fault.end); an unknown kind is refused with the list of kinds."""
    known = sorted({kind.value for kind in EventKind} | set(reader.counts_by_kind))
    selected: set[str] = set()
    for name in asked:
        family = [k for k in known if k == name or k.startswith(name + ".")]
        if not family:
            close = did_you_mean(name, known)
            raise click.BadParameter(f"{file}: unknown event kind {name!r}{close}; the kinds "
                                     f"are {', '.join(known)} (or a prefix such as 'fault')",
                                     param_hint="--kind")
        selected.update(family)
    return selected


def _node_count(reader: RecordingReader) -> int:
    """How many nodes the recorded run had (from its scenario, else from its events)."""
    manifest = reader.manifest
    scenario = manifest.get("scenario") if isinstance(manifest, dict) else None
    groups = scenario.get("nodes") if isinstance(scenario, dict) else None
    if isinstance(groups, list) and all(isinstance(g, dict) for g in groups):
        counts = [g.get("count", 1) for g in groups]
        if all(isinstance(c, int) for c in counts):
            return sum(counts)
    return max((n + 1 for n in reader.counts_by_node if n >= 0), default=0)


@click.command()
@click.argument("file", type=_FILE)
@click.option("--kind", "kinds", multiple=True,
              help="Only events of this kind, or of a family such as 'fault' (repeatable).")
@click.option("--node", "nodes", multiple=True, type=click.IntRange(min=-1),
              help="Only events of this node; -1 for simulation-level events (repeatable).")
@click.option("--from", "from_tick", type=click.IntRange(min=0),
              help="First tick (inclusive).")
@click.option("--to", "to_tick", type=click.IntRange(min=0), help="Last tick (inclusive).")
@click.option("--json", "as_json", is_flag=True,
              help='JSON lines; byte strings as {"$bytes": "<base64>"}.')
def events(file: Path, kinds: tuple[str, ...], nodes: tuple[int, ...], from_tick: int | None,
           to_tick: int | None, as_json: bool) -> None:
    """Print a recording's events, one per line, filtered by kind, node and tick range.

    A filter that matches nothing prints "0 events" on stderr.
    """
    if from_tick is not None and to_tick is not None and from_tick > to_tick:
        raise click.BadParameter(f"--from {from_tick} is after --to {to_tick}: an empty range",
                                 param_hint="--from/--to")
    with about_file(file), RecordingReader(file) as reader:
        for problem in reader.damage:
            click.echo(f"chaosreplay: warning: {problem}", err=True)
        kind_set = _expand_kinds(file, reader, kinds) if kinds else None
        count = _node_count(reader)
        for node in nodes:
            if node >= count:
                raise click.BadParameter(
                    f"{file}: node {node} does not exist (the run has nodes 0..{count - 1}, "
                    "and -1 for the simulation itself)" if count else
                    f"{file}: node {node} does not exist (the recording has no node events)",
                    param_hint="--node")
        selected = reader.events(from_tick=from_tick, to_tick=to_tick,
                                 kinds=kind_set, nodes=nodes or None)
        shown = 0
        for event in selected:
            shown += 1
            if as_json:
                click.echo(json.dumps({"seq": event.seq, "tick": event.tick,
                                       "vtime_ns": event.vtime_ns, "node": event.node,
                                       "kind": event.kind,
                                       "fields": to_json(event.fields)}))
            else:
                click.echo(_event_line(event))
        if not shown:
            click.echo("0 events", err=True)


@click.command()
@click.argument("file", type=_FILE)
def verify(file: Path) -> None:
    """Check every frame checksum and the index: exit 0 if intact, 1 with one line per problem."""
    report = verify_recording(file)
    if report.ok:
        click.echo(f"{file}: intact: {report.frames} frames, {report.events} events, "
                   f"{report.checkpoints} checkpoints verified")
        return
    for problem in report.problems:
        click.echo(f"{file}: {problem}")
    raise SystemExit(1)


COMMANDS: list[click.Command] = [info, events, verify]
