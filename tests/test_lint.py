"""`chaosreplay lint`: lists patch sites, summarises, and exits 1 on unpatchable ones."""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.vm.elf import load_program

GuestBin = Callable[[str, str], Path]


def _lint(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["lint", *args])
    return result.exit_code, result.stdout, result.stderr


def test_lint_lists_each_site_with_symbol(guest_bin: GuestBin) -> None:
    path = guest_bin("musl", "nonvirt")
    code, out, _ = _lint(str(path))
    assert code == 0, out
    lines = out.splitlines()
    main_lines = [line for line in lines if " main+" in line]
    assert [line.split()[1] for line in main_lines] == [
        "rdtsc", "rdtscp", "cpuid", "cpuid", "rdrand", "rdseed", "xgetbv", "rdpid",
    ]  # fmt: skip
    main_address = load_program(path).symbols.address_of("main")
    assert main_address is not None
    first = int(main_lines[0].split()[0], 16)
    assert main_lines[0].split()[2] == f"main+{first - main_address:#x}"
    assert lines[-1].endswith("8 patchable, 0 unpatchable"), lines[-1]
    assert "2 cpuid" in lines[-1] and "1 rdpid" in lines[-1]


def test_lint_json_document(guest_bin: GuestBin) -> None:
    code, out, _ = _lint(str(guest_bin("glibc", "hello")), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["summary"]["unpatchable"] == 0
    assert doc["summary"]["counts"]["rdtsc"] == 1
    assert doc["summary"]["patchable"] == len(doc["sites"]) > 20
    site = doc["sites"][0]
    assert set(site) == {"address", "length", "instruction", "bytes", "symbol", "patchable",
                         "problem"}  # fmt: skip
    assert site["patchable"] is True and site["problem"] is None


def test_lint_of_a_clean_program_reports_none(guest_bin: GuestBin) -> None:
    code, out, _ = _lint(str(guest_bin("musl", "hello")))
    assert code == 0
    assert out.strip().endswith(
        "0 non-virtualizable instruction(s) (none); 0 patchable, 0 unpatchable"
    )


def test_lint_exits_1_on_an_unpatchable_site(guest_bin: GuestBin, tmp_path: Path) -> None:
    """Shrinking main's symbol to end inside its first rdtsc makes that site straddle."""
    path = guest_bin("musl", "nonvirt")
    image = load_program(path)
    main_address = image.symbols.address_of("main")
    assert main_address is not None
    code, out, _ = _lint(str(path), "--json")
    rdtsc = next(s for s in json.loads(out)["sites"] if s["instruction"] == "rdtsc")
    new_size = int(rdtsc["address"], 16) - main_address + 1
    raw = bytearray(image.raw)
    _set_symbol_size(raw, "main", new_size)
    edited = tmp_path / "nonvirt.edited"
    edited.write_bytes(bytes(raw))
    code, out, _ = _lint(str(edited))
    assert code == 1, out
    assert "UNPATCHABLE: straddles" in out
    assert out.splitlines()[-1].endswith(" unpatchable") and " 0 unpatchable" not in out


def _set_symbol_size(raw: bytearray, name: str, size: int) -> None:
    """Rewrite st_size of one .symtab entry in place (Elf64_Sym is 24 bytes, size at +16)."""
    (shoff,) = struct.unpack_from("<Q", raw, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", raw, 0x3A)
    headers = [struct.unpack_from("<IIQQQQIIQQ", raw, shoff + i * shentsize) for i in range(shnum)]
    for _n, sh_type, _f, _a, offset, length, link, _i, _al, entsize in headers:
        if sh_type != 2:  # SHT_SYMTAB
            continue
        strtab = headers[link][4]
        for entry in range(offset, offset + length, entsize):
            st_name = struct.unpack_from("<I", raw, entry)[0]
            end = raw.index(b"\0", strtab + st_name)
            if raw[strtab + st_name : end] == name.encode():
                struct.pack_into("<Q", raw, entry + 16, size)
                return
    raise AssertionError(f"no symbol {name}")


def test_lint_refuses_bad_files_with_one_line(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\n")
    code, out, err = _lint(str(script))
    assert code == 2 and out == ""
    assert err == f"chaosreplay: error: {script}: not an ELF file (magic 23 21 2f 62)\n"
    code, _, err = _lint(str(tmp_path / "missing"))
    assert code == 2 and err.strip().endswith("missing: no such file")


def test_lint_is_registered_in_help() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0 and "lint" in result.stdout


def test_lint_lists_hidden_patterns_and_their_fate(guest_bin: GuestBin) -> None:
    """Patterns inside other instructions are HIDDEN lines; they do not fail the lint."""
    code, out, _ = _lint(str(guest_bin("musl", "hidden_insn")))
    assert code == 0, out
    hidden = [line for line in out.splitlines() if "HIDDEN" in line]
    assert [line.split()[1] for line in hidden] == ["rdtsc", "cpuid", "rdrand"], hidden
    assert all(re.search(r"; trapped: int3 over 0x[0-9a-f]+-0x[0-9a-f]+$", line)
               for line in hidden), hidden
    assert "3 hidden pattern(s) inside other instructions; 0 page(s) run single-stepped" in out


def test_lint_json_reports_trapped_patterns(guest_bin: GuestBin) -> None:
    """musl's raft_cov hides rdtsc in a coverage call's displacement: trapped, not stepped."""
    code, out, _ = _lint(str(guest_bin("musl", "raft_cov")), "--json")
    assert code == 0
    doc = json.loads(out)
    trapped = [h for h in doc["hidden"] if h["trapped"]]
    assert trapped and all(h["defused"] is None for h in trapped), doc["hidden"]
    assert doc["summary"]["single_stepped_pages"] == 0


def test_lint_json_reports_defused_patterns(guest_bin: GuestBin) -> None:
    code, out, _ = _lint(str(guest_bin("glibc", "hello")), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["summary"]["hidden"] == len(doc["hidden"]) > 0
    assert doc["summary"]["single_stepped_pages"] == 0
    assert {h["defused"] for h in doc["hidden"]} == {"xor r32, r32 re-encoded as sub r32, r32"}
