"""The scenario and programs of a job, sent to Ray workers content-addressed.

The driver puts each distinct piece (the pickled scenario, each program's ELF bytes) into
the object store once, keyed by its SHA-256; tasks carry only the digests and the object
references (nested in a `Shipment`, so Ray does not fetch them for every task). A worker
process fetches and parses a piece the first time a task needs it and keeps it by digest,
so every worker receives each program once, however many seeds it runs.
"""

from __future__ import annotations

import hashlib
import pickle
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from chaosreplay.sim.scenario import Scenario
from chaosreplay.vm.elf import ProgramImage, parse_program


@dataclass(frozen=True)
class Shipment:
    """What a task needs to rebuild a job's scenario and programs on a worker."""

    scenario: str  # SHA-256 of the pickled scenario
    programs: tuple[tuple[str, str], ...]  # (SHA-256 of the ELF, its path) per node group
    refs: dict[str, Any]  # digest -> object reference of the bytes


def ship(ray: ModuleType, scenario: Scenario, images: list[ProgramImage]) -> Shipment:
    """Put the scenario and each distinct program into the object store once."""
    pickled = pickle.dumps(scenario, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.sha256(pickled).hexdigest()
    refs = {digest: ray.put(pickled)}
    for image in images:
        if image.sha256 not in refs:
            refs[image.sha256] = ray.put(image.raw)
    return Shipment(digest, tuple((i.sha256, str(i.path)) for i in images), refs)


def put_file(ray: ModuleType, refs: dict[str, Any], path: Path) -> str:
    """Put a file's bytes into the object store (once per content); its digest."""
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest not in refs:
        refs[digest] = ray.put(data)
    return digest


_UNPACKED: dict[str, Any] = {}  # in a worker process: digest -> the piece, rebuilt


def fetch(refs: dict[str, Any], digest: str) -> bytes:
    """A piece's bytes, fetched from the object store (not kept: callers keep what they build)."""
    import ray

    data = ray.get(refs[digest])
    if hashlib.sha256(data).hexdigest() != digest:
        raise ValueError(f"object {digest[:16]} does not match its SHA-256")
    return data


def unpack(shipment: Shipment) -> tuple[Scenario, list[ProgramImage]]:
    """The scenario and programs, from this worker's cache or fetched once."""
    if shipment.scenario not in _UNPACKED:
        _UNPACKED[shipment.scenario] = pickle.loads(fetch(shipment.refs, shipment.scenario))
    images = []
    for digest, path in shipment.programs:
        if digest not in _UNPACKED:
            _UNPACKED[digest] = parse_program(fetch(shipment.refs, digest), path)
        images.append(_UNPACKED[digest])
    return _UNPACKED[shipment.scenario], images

