"""Regenerate the golden .ccr files of the current format version, and what they must contain.

    python recordings/make_golden.py

Golden files are never regenerated for an older version: once committed, `vMAJOR.MINOR-*.ccr`
stays as it is, and every later chaosreplay must read it to the content recorded in
`vMAJOR.MINOR-expected.json` (tests/test_recording_golden.py checks this). The expected
content is written from the inputs below, not by reading the files back.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import zstandard

from chaosreplay.recording import FORMAT_MAJOR, FORMAT_MINOR, RecordingWriter
from chaosreplay.recording.batch import encode_batch
from chaosreplay.recording.format import FrameKind, pack_frame
from chaosreplay.recording.jsonview import to_json

HERE = Path(__file__).resolve().parent
VERSION = f"v{FORMAT_MAJOR}.{FORMAT_MINOR}"
PAGE = 4096


def _page(fill: int) -> bytes:
    """A page whose content identifies `fill`."""
    return bytes((fill + i) % 251 for i in range(PAGE))


def _events() -> list[tuple[int, int, int, str, dict[str, Any]]]:
    """A small run: three nodes, syscalls, output bytes, packets, a fault and a bug."""
    rows: list[tuple[int, int, int, str, dict[str, Any]]] = [
        (0, 0, -1, "run.start", {"seed": 1234, "nodes": 3})]
    for i in range(1, 160):
        node, tick = i % 3, i // 4
        vtime = tick * 1_000_000 + i * 211
        if i % 7 == 0:
            rows.append((tick, vtime, node, "output",
                         {"fd": 1, "data": f"[n{node}] step {i}\n".encode()}))
        elif i % 11 == 0:
            rows.append((tick, vtime, -1, "packet.sent",
                         {"src": node, "dst": (node + 1) % 3, "len": 40 + i, "id": i}))
        else:
            rows.append((tick, vtime, node, "syscall",
                         {"nr": (0, 1, 228, 232)[i % 4], "args": [i, -1, 2**40 + i],
                          "ret": -11 if i % 13 == 0 else i, "meta": {"retry": i % 2 == 0}}))
        if i == 80:
            rows.append((tick, vtime + 1, -1, "fault", {"type": "partition",
                                                        "groups": [[0], [1, 2]]}))
    rows.append((40, 40_000_000, 2, "bug", {"message": "always(commit_monotonic) failed",
                                            "float": 0.25, "none": None}))
    return rows


def _checkpoints() -> list[dict[str, Any]]:
    """A full checkpoint, a delta with a removed page, and a big chunked blob."""
    return [
        {"after": 60, "tick": 15, "digest": hashlib.sha256(b"ck0").digest(), "base": None,
         "blobs": {"node0.regs": bytes(range(200)), "fabric": b"\x01\x02"},
         "pages": {"node0.mem": {0: _page(0), 1: _page(1), 2: _page(0), 16: _page(7)},
                   "node1.mem": {0: _page(3)}}},
        {"after": 120, "tick": 30, "digest": hashlib.sha256(b"ck1").digest(), "base": 0,
         "blobs": {"node0.regs": bytes(range(100, 300 % 256)),
                   "trace": bytes(range(256)) * 6000},  # 1.5 MiB: two BLOB chunks
         "pages": {"node0.mem": {1: b"", 2: _page(9)}, "node2.mem": {5: _page(1)}}},
    ]


def _resolve(plans: list[dict[str, Any]], k: int) -> dict[str, dict[int, bytes]]:
    """What load_checkpoint(k).pages must give, computed from the inputs."""
    plan = plans[k]
    base = {} if plan["base"] is None else _resolve(plans, plan["base"])
    out = {name: dict(pages) for name, pages in base.items()}
    for name, pages in plan["pages"].items():
        for pfn, data in pages.items():
            if data:
                out.setdefault(name, {})[pfn] = data
            else:
                out.setdefault(name, {}).pop(pfn, None)
    return out


def _digest(data: bytes) -> str:
    """Short stand-in for big payloads in the expected JSON."""
    return hashlib.sha256(data).hexdigest()


MANIFEST = {"tool": "chaosreplay golden", "seed": 1234, "scenario": {"nodes": 3, "ticks": 40},
            "binaries": {"node": b"\x7fELF\x02\x01\x01" + bytes(range(256)) * 4}}
HOST = {"note": "informational only"}


def write_complete(path: Path) -> None:
    """The complete golden recording: events, two checkpoints, a summary."""
    rows, plans = _events(), _checkpoints()
    with RecordingWriter(path, MANIFEST, host=HOST, flush_every_events=32,
                         flush_every_ticks=10) as writer:
        for seq, row in enumerate(rows):
            for plan in plans:
                if plan["after"] == seq:
                    writer.add_checkpoint(plan["tick"], seq, plan["digest"], plan["blobs"],
                                          plan["pages"], base=plan["base"])
            writer.append(*row)
        writer.close({"verdict": "bug", "events": len(rows)})


def write_crashed(path: Path) -> int:
    """A writer killed mid-write: frames for 70 events, then the first 57 bytes of the next."""
    rows = _events()
    writer = RecordingWriter(path, MANIFEST, flush_every_events=32, flush_every_ticks=10)
    for row in rows[:70]:
        writer.append(*row)
    writer.flush()
    del writer  # never closed: no INDEX frame, no trailer
    flat = [item for row in rows[70:100] for item in row]
    raw, _ = encode_batch(70, flat)
    partial = pack_frame(FrameKind.EVENTS, raw, zstandard.ZstdCompressor(level=3))[:57]
    with open(path, "ab") as out:
        out.write(partial)
    return 70


def expected_content(crashed_events: int) -> dict[str, Any]:
    """What each golden file must read to, computed from the inputs."""
    rows, plans = _events(), _checkpoints()
    events = [to_json([seq, *row]) for seq, row in enumerate(rows)]
    checkpoints = []
    for k, plan in enumerate(plans):
        checkpoints.append({
            "index": k, "tick": plan["tick"], "seq": plan["after"], "base": plan["base"],
            "digest": plan["digest"].hex(),
            "blobs": {name: _digest(data) for name, data in plan["blobs"].items()},
            "pages": {name: {str(pfn): _digest(data) for pfn, data in sorted(pages.items())}
                      for name, pages in sorted(_resolve(plans, k).items()) if pages},
        })
    return {
        f"{VERSION}-complete.ccr": {
            "complete": True, "ignored_tail_bytes": 0, "manifest": to_json(MANIFEST),
            "host": HOST, "summary": {"verdict": "bug", "events": len(rows)},
            "events": events, "checkpoints": checkpoints},
        f"{VERSION}-crashed.ccr": {
            "complete": False, "ignored_tail_bytes": 57, "manifest": to_json(MANIFEST),
            "host": None, "summary": None, "events": events[:crashed_events],
            "checkpoints": []},
    }


def main(directory: Path = HERE) -> None:
    """Write the golden files of the current version into `directory`."""
    complete = directory / f"{VERSION}-complete.ccr"
    write_complete(complete)
    crashed_events = write_crashed(directory / f"{VERSION}-crashed.ccr")
    expected = directory / f"{VERSION}-expected.json"
    expected.write_text(json.dumps(expected_content(crashed_events), indent=1) + "\n")
    print(f"wrote {complete.name}, {VERSION}-crashed.ccr and {expected.name} in {directory}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE)
