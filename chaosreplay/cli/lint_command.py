"""`chaosreplay lint PROGRAM`: list the instructions chaosreplay must patch in a program."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from chaosreplay.vm.elf import load_program
from chaosreplay.vm.nonvirt import PAGE_SIZE, Kind, Site, Stray, defuse, scan_program


def _site_record(site: Site) -> dict[str, object]:
    return {
        "address": f"{site.address:#x}",
        "length": site.length,
        "instruction": site.text,
        "bytes": site.original.hex(" "),
        "symbol": site.symbol,
        "patchable": site.problem is None,
        "problem": site.problem,
    }


def _stray_record(stray: Stray, defused: str | None) -> dict[str, object]:
    return {
        "address": f"{stray.address:#x}",
        "instruction": stray.kind.value,
        "inside": f"{stray.inside:#x}",
        "symbol": stray.symbol,
        "defused": defused,
        "trapped": None if defused or stray.trap is None else
        f"{stray.trap[0]:#x}-{stray.trap[1]:#x}",
    }


def _summary(sites: list[Site], strays: list[Stray], stepped: list[Stray]) -> dict[str, object]:
    counts = Counter(site.kind.value for site in sites)
    return {
        "counts": {kind.value: counts[kind.value] for kind in Kind if counts[kind.value]},
        "patchable": sum(1 for s in sites if s.problem is None),
        "unpatchable": sum(1 for s in sites if s.problem is not None),
        "hidden": len(strays),
        "single_stepped_pages": len({s.address // PAGE_SIZE for s in stepped}),
    }


def _echo_text(program: Path, sites: list[Site], strays: dict[Stray, str | None],
               summary: dict[str, object]) -> None:
    for site in sites:
        line = f"{site.address:#014x}  {site.text:<12} {site.symbol}"
        if site.problem is not None:
            line += f"  UNPATCHABLE: {site.problem}"
        click.echo(line)
    for stray, defused in strays.items():
        if defused:
            fate = f"defused: {defused}"
        elif stray.trap is not None:
            fate = f"trapped: int3 over {stray.trap[0]:#x}-{stray.trap[1]:#x}"
        else:
            fate = "its page runs single-stepped"
        click.echo(f"{stray.address:#014x}  {stray.kind.value:<12} {stray.symbol}  HIDDEN "
                   f"inside the instruction at {stray.inside:#x}; {fate}")
    if strays:
        click.echo(f"{program}: {len(strays)} hidden pattern(s) inside other instructions; "
                   f"{summary['single_stepped_pages']} page(s) run single-stepped")
    counts = summary["counts"]
    assert isinstance(counts, dict)
    by_kind = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"
    click.echo(
        f"{program}: {len(sites)} non-virtualizable instruction(s) ({by_kind}); "
        f"{summary['patchable']} patchable, {summary['unpatchable']} unpatchable"
    )


@click.command("lint")
@click.argument("program", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.pass_context
def lint(ctx: click.Context, program: Path, as_json: bool) -> None:
    """List PROGRAM's non-virtualizable instructions (rdtsc, cpuid, rdrand, ...).

    chaosreplay patches each to a trap at load and emulates it deterministically. Byte
    patterns hidden inside other instructions (reachable only by a jump into the middle
    of one) are listed as HIDDEN: re-encoded where an equivalent instruction removes them,
    else trapped (the instructions holding them filled with int3) where the decode is sure,
    else their pages run single-stepped. Exit status 0 when every
    site is patchable (or there are none), 1 when any is not.
    """
    image = load_program(program)
    sites, found = scan_program(image)
    strays = {}
    for stray in found:
        rewrite = defuse(image, stray)
        strays[stray] = rewrite.why if rewrite is not None else None
    stepped = [s for s, why in strays.items() if why is None and s.trap is None]
    summary = _summary(sites, found, stepped)
    if as_json:
        document = {
            "program": str(program),
            "sha256": image.sha256,
            "sites": [_site_record(s) for s in sites],
            "hidden": [_stray_record(s, why) for s, why in strays.items()],
            "summary": summary,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_text(program, sites, strays, summary)
    if summary["unpatchable"]:
        ctx.exit(1)
