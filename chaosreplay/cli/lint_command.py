"""`chaosreplay lint PROGRAM`: list the instructions chaosreplay must patch in a program."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from chaosreplay.vm.elf import load_program
from chaosreplay.vm.nonvirt import Kind, Site, scan_sites


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


def _summary(sites: list[Site]) -> dict[str, object]:
    counts = Counter(site.kind.value for site in sites)
    return {
        "counts": {kind.value: counts[kind.value] for kind in Kind if counts[kind.value]},
        "patchable": sum(1 for s in sites if s.problem is None),
        "unpatchable": sum(1 for s in sites if s.problem is not None),
    }


def _echo_text(program: Path, sites: list[Site], summary: dict[str, object]) -> None:
    for site in sites:
        line = f"{site.address:#014x}  {site.text:<12} {site.symbol}"
        if site.problem is not None:
            line += f"  UNPATCHABLE: {site.problem}"
        click.echo(line)
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

    chaosreplay patches each to a trap at load and emulates it deterministically. Exit
    status 0 when every site is patchable (or there are none), 1 when any is not.
    """
    image = load_program(program)
    sites = scan_sites(image)
    summary = _summary(sites)
    if as_json:
        document = {
            "program": str(program),
            "sha256": image.sha256,
            "sites": [_site_record(s) for s in sites],
            "summary": summary,
        }
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_text(program, sites, summary)
    if summary["unpatchable"]:
        ctx.exit(1)
