"""The shape of a run manifest read from a recording, checked before replay uses it.

The scenario inside goes through the scenario parser (Scenario.from_dict, errors naming the
key path); this adds what only a manifest has: the embedded programs, one per node group,
and limits the VM enforces (guest memory), so a hostile or damaged manifest is one line.
"""

from __future__ import annotations

import re
from typing import Any

from chaosreplay.errors import RecordingError
from chaosreplay.recording.schema import (
    Bool,
    Bytes,
    Int,
    ListOf,
    MapOf,
    Record,
    SchemaError,
    Str,
    Where,
    validate,
)
from chaosreplay.runs.manifest_contents import MAX_CONTENT_BYTES, scenario_table
from chaosreplay.sim.disk_files import MAX_DISK_PATHS
from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.vmm import MAX_MEM_SIZE

MAX_PROGRAM_BYTES = 1 << 30
SHA256_HEX = Where(Str(64), lambda s: None if re.fullmatch(r"[0-9a-f]{64}", s)
                   else "is not a SHA-256 in hex")


def _groups_are_embedded(section: dict[str, Any]) -> str | None:
    for i, sha in enumerate(section["groups"]):
        if sha not in section["binaries"]:
            return f"has group {i} naming program {sha[:12]}… that is not embedded"
    return None


PROGRAMS = Where(Record({
    "binaries": MapOf(SHA256_HEX, Record({"name": Str(255), "elf": Bytes(MAX_PROGRAM_BYTES)}),
                      max_len=1 << 10),
    "groups": ListOf(SHA256_HEX, max_len=1 << 10),
}), _groups_are_embedded)

# Open: a manifest may carry more (tool version, parent, later options) than replay reads.
MANIFEST = Record({"scenario": Record({}, open=True),  # its contents: Scenario.from_dict
                   "programs": PROGRAMS,
                   "options": Record({"keep_going": Bool()}, open=True)}, open=True)
# Version 2: the scenario's large file contents, one xz stream each (manifest_contents.py).
CONTENTS = MapOf(SHA256_HEX, Record({"size": Int(0, MAX_CONTENT_BYTES),
                                     "xz": Bytes(MAX_CONTENT_BYTES)}),
                 max_len=MAX_DISK_PATHS << 4)


def check_manifest(manifest: dict[str, Any], where: str) -> Scenario:
    """The manifest's scenario, once every part replay reads is known to be well formed."""
    try:
        validate(manifest, MANIFEST, "manifest", what="")
        if manifest.get("version") == 2:
            validate(manifest.get("contents"), CONTENTS, "manifest.contents", what="")
    except SchemaError as exc:
        raise RecordingError(f"{where}: {exc}") from None
    # A recording made before packet_payload_bytes existed kept no payloads, and one made
    # before the vDSO ran without one.
    table = {"packet_payload_bytes": 0, "vdso": False, **scenario_table(manifest, where)}
    scenario = Scenario.from_dict(table, f"{where} (manifest)")
    if scenario.memory_per_node > MAX_MEM_SIZE:
        raise RecordingError(f"{where}: manifest: memory_per_node is "
                             f"{scenario.memory_per_node} bytes, more than a VM can have "
                             f"({MAX_MEM_SIZE >> 30} GiB)")
    groups = len(manifest["programs"]["groups"])
    if groups != len(scenario.nodes):
        raise RecordingError(f"{where}: manifest embeds {groups} programs for "
                             f"{len(scenario.nodes)} node groups")
    return scenario
