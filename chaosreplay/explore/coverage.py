"""Edge coverage from the SDK's bitmap (guest/include/chaosreplay.h, CR_COVERAGE builds).

A program built with coverage registers a bitmap of 8-bit edge counters in its own memory
(CR_SYS_COVERAGE; the handler keeps its location as `process.coverage_map`). The explorer
reads it at decision points — every checkpoint and the end of a run — never per event, and
turns every non-zero counter into an ``("edge", group, index)`` signal: edges of one
program are one space whichever node ran them. Only whether an edge ran counts, not how
often: in a server loop, counts grow with time alone.

Reading must not change the guest: a page of the bitmap the guest has not touched yet is
not populated by the read (that would allocate a frame and change every later digest), it
reads as zeros.
"""

from __future__ import annotations

import contextlib
import re

from chaosreplay.sim.simulation import Simulation
from chaosreplay.vm.vmm import VmmError

PAGE = 4096
_NONZERO = re.compile(rb"[^\x00]")
CoverageMaps = dict[int, tuple[int, int]]  # node group -> (address, size) of its bitmap


def known_maps(sim: Simulation) -> CoverageMaps:
    """The bitmaps the nodes of a simulation have registered, by node group."""
    maps: CoverageMaps = {}
    for node in sim.nodes:
        region = node.process.coverage_map
        if region is not None:
            maps.setdefault(node.spec.group, region)
    return maps


def adopt_maps(sim: Simulation, maps: CoverageMaps) -> None:
    """Tell a simulation resumed from a checkpoint where its programs' bitmaps are (the
    registration happened before the checkpoint, in the run the checkpoint came from)."""
    for node in sim.nodes:
        region = maps.get(node.spec.group)
        if region is not None and node.process.coverage_map is None:
            node.process.coverage_map = region


def read_bitmap(sim: Simulation, node_index: int) -> bytes | None:
    """A node's coverage bitmap as it stands (None: it has none); unpopulated pages are zero."""
    node = sim.nodes[node_index]
    region = node.process.coverage_map
    if region is None:
        return None
    address, size = region
    out = bytearray(size)
    vm = node.process.vm
    offset = 0
    while offset < size:
        chunk = min(size - offset, PAGE - (address + offset) % PAGE)
        with contextlib.suppress(VmmError):  # not populated: no edge counted there yet
            out[offset:offset + chunk] = vm.read(address + offset, chunk)
        offset += chunk
    return bytes(out)


def edge_indices(bitmap: bytes) -> list[int]:
    """The indices of the non-zero counters."""
    return [m.start() for m in _NONZERO.finditer(bitmap)]  # the scan runs in C


def edges(sim: Simulation) -> set[tuple[str, int, int]]:
    """Every edge signal of the simulation's nodes at this moment."""
    out: set[tuple[str, int, int]] = set()
    for node in sim.nodes:
        bitmap = read_bitmap(sim, node.index)
        if bitmap is not None:
            out.update(("edge", node.spec.group, i) for i in edge_indices(bitmap))
    return out
