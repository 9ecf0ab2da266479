"""`chaosreplay lint PROGRAM`: list the instructions chaosreplay must patch in a program,
and with --root in every ELF file of its root (libraries, the loader)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from chaosreplay.cli.lint_root import RootFile, root_files
from chaosreplay.vm.elf import ProgramImage, load_program
from chaosreplay.vm.nonvirt import PAGE_SIZE, Kind, Site, Stray, defuse, scan_program


def _site_record(site: Site, offset: int = 0) -> dict[str, object]:
    return {
        "address": f"{site.address - offset:#x}",
        "length": site.length,
        "instruction": site.text,
        "bytes": site.original.hex(" "),
        "symbol": site.symbol,
        "patchable": site.problem is None,
        "problem": site.problem,
    }


def _stray_record(stray: Stray, defused: str | None, offset: int = 0) -> dict[str, object]:
    return {
        "address": f"{stray.address - offset:#x}",
        "instruction": stray.kind.value,
        "inside": f"{stray.inside - offset:#x}",
        "symbol": stray.symbol,
        "defused": defused,
        "trapped": None if defused or stray.trap is None else
        f"{stray.trap[0] - offset:#x}-{stray.trap[1] - offset:#x}",
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


def _echo_text(program: Path | str, sites: list[Site], strays: dict[Stray, str | None],
               summary: dict[str, object], offset: int = 0) -> None:
    """One file's sites, hidden patterns and summary line; `offset` is subtracted from
    addresses (a shared object's load bias: its own addresses, as objdump shows them)."""
    for site in sites:
        line = f"{site.address - offset:#014x}  {site.text:<12} {site.symbol}"
        if site.problem is not None:
            line += f"  UNPATCHABLE: {site.problem}"
        click.echo(line)
    for stray, defused in strays.items():
        if defused:
            fate = f"defused: {defused}"
        elif stray.trap is not None:
            fate = (f"trapped: int3 over {stray.trap[0] - offset:#x}-"
                    f"{stray.trap[1] - offset:#x}")
        else:
            fate = "its page runs single-stepped"
        click.echo(f"{stray.address - offset:#014x}  {stray.kind.value:<12} {stray.symbol}  "
                   f"HIDDEN inside the instruction at {stray.inside - offset:#x}; {fate}")
    if strays:
        click.echo(f"{program}: {len(strays)} hidden pattern(s) inside other instructions; "
                   f"{summary['single_stepped_pages']} page(s) run single-stepped")
    click.echo(f"{program}: {_sites_words(summary)}")


def _sites_words(summary: dict[str, object]) -> str:
    counts = summary["counts"]
    assert isinstance(counts, dict)
    by_kind = ", ".join(f"{n} {kind}" for kind, n in counts.items()) or "none"
    total = int(str(summary["patchable"])) + int(str(summary["unpatchable"]))
    return (f"{total} non-virtualizable instruction(s) ({by_kind}); "
            f"{summary['patchable']} patchable, {summary['unpatchable']} unpatchable")


def _scan(image: ProgramImage) -> tuple[list[Site], dict[Stray, str | None], dict[str, object]]:
    """An image's sites, its hidden patterns (each with how it is defused, or None) and
    their summary."""
    sites, found = scan_program(image)
    strays = {}
    for stray in found:
        rewrite = defuse(image, stray)
        strays[stray] = rewrite.why if rewrite is not None else None
    stepped = [s for s, why in strays.items() if why is None and s.trap is None]
    return sites, strays, _summary(sites, found, stepped)


def _total(summaries: list[dict[str, object]]) -> dict[str, object]:
    """The summaries added up."""
    counts: Counter[str] = Counter()
    for summary in summaries:
        part = summary["counts"]
        assert isinstance(part, dict)
        counts.update(part)
    keys = ("patchable", "unpatchable", "hidden", "single_stepped_pages")
    total: dict[str, object] = {
        "counts": {kind.value: counts[kind.value] for kind in Kind if counts[kind.value]}}
    total.update({k: sum(int(str(s[k])) for s in summaries) for k in keys})
    return total


@click.command("lint")
@click.argument("program", type=click.Path(path_type=Path, dir_okay=True))
@click.option("--root", "root", metavar="host|DIR|TAR",
              help="Also scan every ELF file of this root: the host's closure of PROGRAM "
                   "(its loader and libraries), or a directory or tar archive as a "
                   "scenario's root = { dir } or { tar } reads it.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document instead.")
@click.pass_context
def lint(ctx: click.Context, program: Path, root: str | None, as_json: bool) -> None:
    """List PROGRAM's non-virtualizable instructions (rdtsc, cpuid, rdrand, ...).

    chaosreplay patches each to a trap at load and emulates it deterministically. Byte
    patterns hidden inside other instructions (reachable only by a jump into the middle
    of one) are listed as HIDDEN: re-encoded where an equivalent instruction removes them,
    else trapped (the instructions holding them filled with int3) where the decode is sure,
    else their pages run single-stepped. With --root, each ELF file of the root follows,
    by path, at its own addresses, then a total. Exit status 0 when every site is
    patchable (or there are none), 1 when any is not.
    """
    image = load_program(program)
    sites, strays, summary = _scan(image)
    files: list[RootFile] = []
    skipped: dict[str, int] = {}
    if root is not None:
        files, skipped = root_files(root, program)
    scans = [(f, *_scan(f.image)) for f in files]
    total = _total([summary, *(s for *_, s in scans)])
    if as_json:
        document: dict[str, object] = {
            "program": str(program),
            "sha256": image.sha256,
            "sites": [_site_record(s) for s in sites],
            "hidden": [_stray_record(s, why) for s, why in strays.items()],
            "summary": summary,
        }
        if root is not None:
            document["root"] = [
                {"path": f.path, "sha256": f.image.sha256,
                 "sites": [_site_record(s, f.image.load_bias) for s in f_sites],
                 "hidden": [_stray_record(s, why, f.image.load_bias)
                            for s, why in f_strays.items()],
                 "summary": f_summary}
                for f, f_sites, f_strays, f_summary in scans]
            document["root_left_out"] = skipped
            document["total"] = total
        click.echo(json.dumps(document, indent=2))
    else:
        _echo_text(program, sites, strays, summary)
        for f, f_sites, f_strays, f_summary in scans:
            _echo_text(f.path, f_sites, f_strays, f_summary, f.image.load_bias)
        if root is not None:
            if skipped:
                click.echo("root: left out " + ", ".join(
                    f"{n} {reason}" for reason, n in sorted(skipped.items())))
            click.echo(f"total: {1 + len(scans)} file(s), {_sites_words(total)}")
    if total["unpatchable"]:
        ctx.exit(1)
