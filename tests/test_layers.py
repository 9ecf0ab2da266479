"""The package's layers (docs/architecture.md, "Packages: one per layer") import downwards only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chaosreplay"

# Layer -> the top-level parts of chaosreplay it must never import (directly or lazily).
FORBIDDEN = {
    "vm": {"kernel", "sim", "runs", "triage", "debugger", "tui", "cli", "recording", "scaleout"},
    "recording": {"vm", "kernel", "sim", "runs", "triage", "debugger", "tui", "cli",
                  "scaleout"},
    "kernel": {"sim", "runs", "triage", "debugger", "tui", "cli", "scaleout"},
    "sim": {"runs", "triage", "debugger", "tui", "cli", "scaleout"},
    "runs": {"triage", "debugger", "tui", "cli", "scaleout"},
    "debugger": {"tui", "cli", "scaleout"},
    "explore": {"triage", "debugger", "tui", "cli", "scaleout"},
    "triage": {"tui", "cli", "scaleout"},
    "scaleout": {"tui", "cli"},
}


def imported_parts(path: Path) -> set[str]:
    """The top-level chaosreplay parts a module imports, at any depth of its body."""
    parts: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            if node.module == "chaosreplay":
                names = [f"chaosreplay.{alias.name}" for alias in node.names]
        for name in names:
            bits = name.split(".")
            if bits[0] == "chaosreplay" and len(bits) > 1:
                parts.add(bits[1])
    return parts


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer: str) -> None:
    """No module of the layer imports a layer above it (the kernel never imports sim/)."""
    offenders = []
    for module in sorted((PACKAGE / layer).rglob("*.py")):
        bad = imported_parts(module) & FORBIDDEN[layer]
        if bad:
            offenders.append(f"{module.relative_to(PACKAGE)} imports {sorted(bad)}")
    assert not offenders, "\n".join(offenders)


def _importers(library: str, allowed: tuple[str, ...]) -> list[str]:
    """The modules outside the allowed packages that import library (at any depth)."""
    offenders = []
    for module in sorted(PACKAGE.rglob("*.py")):
        if module.relative_to(PACKAGE).parts[0] in allowed:
            continue
        tree = ast.parse(module.read_text(), str(module))
        for node in ast.walk(tree):
            mods = ([a.name for a in node.names] if isinstance(node, ast.Import)
                    else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(m.split(".")[0] == library for m in mods):
                offenders.append(str(module.relative_to(PACKAGE)))
    return offenders


def test_only_the_tui_imports_textual() -> None:
    """Textual stays inside tui/ (the debugger engine is usable without a screen)."""
    offenders = _importers("textual", ("tui", "cli"))
    assert not offenders, offenders


def test_only_scaleout_imports_ray() -> None:
    """Ray stays inside scaleout/ (an optional extra: everything else works without it)."""
    offenders = _importers("ray", ("scaleout",))
    assert not offenders, offenders
