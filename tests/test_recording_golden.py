"""Golden recordings: every committed .ccr of any version reads to its recorded content."""

from __future__ import annotations

import hashlib
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from chaosreplay.recording import FORMAT_MAJOR, FORMAT_MINOR, RecordingReader
from chaosreplay.recording.jsonview import to_json

GOLDEN = Path(__file__).resolve().parents[1] / "recordings"
EXPECTED = {name: content for path in sorted(GOLDEN.glob("v*-expected.json"))
            for name, content in json.loads(path.read_text()).items()}


def _as_json(value: Any) -> Any:
    """A value as it reads back from the expectations file (JSON: map keys become str)."""
    return json.loads(json.dumps(to_json(value)))


def _sha(data: bytes) -> str:
    """Hex SHA-256, the stand-in for big payloads in the expectations."""
    return hashlib.sha256(data).hexdigest()


def test_golden_files_exist_for_the_current_version() -> None:
    """The current format version has golden files, and every .ccr has expectations."""
    version = f"v{FORMAT_MAJOR}.{FORMAT_MINOR}"
    assert {f"{version}-complete.ccr", f"{version}-crashed.ccr"} <= set(EXPECTED)
    assert {p.name for p in GOLDEN.glob("*.ccr")} == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_golden_file_reads_to_expected_content(name: str) -> None:
    """Manifest, events, checkpoints (blobs and resolved pages) and status all match."""
    expected = EXPECTED[name]
    with RecordingReader(GOLDEN / name) as reader:
        assert reader.complete is expected["complete"]
        assert reader.ignored_tail_bytes == expected["ignored_tail_bytes"]
        assert _as_json(reader.manifest) == expected["manifest"]
        assert _as_json(reader.host) == expected["host"]
        assert _as_json(reader.summary) == expected["summary"]
        events = [_as_json([e.seq, e.tick, e.vtime_ns, e.node, e.kind, e.fields])
                  for e in reader.events()]
        assert events == expected["events"]
        assert len(reader.checkpoints) == len(expected["checkpoints"])
        for want in expected["checkpoints"]:
            info = reader.checkpoints[want["index"]]
            assert (info.tick, info.seq, info.base, info.digest.hex()) == (
                want["tick"], want["seq"], want["base"], want["digest"])
            loaded = reader.load_checkpoint(want["index"])
            assert {k: _sha(v) for k, v in loaded.blobs.items()} == want["blobs"]
            pages = {region: {str(pfn): _sha(data)
                              for pfn, data in sorted(loaded.pages(region).items())}
                     for region in loaded.regions}
            assert {k: v for k, v in pages.items() if v} == want["pages"]


def test_make_golden_reproduces_the_current_files_byte_for_byte(tmp_path: Path) -> None:
    """The committed files of this version are exactly what the script writes (determinism)."""
    spec = importlib.util.spec_from_file_location("make_golden", GOLDEN / "make_golden.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(tmp_path)
    for path in tmp_path.iterdir():
        assert path.read_bytes() == (GOLDEN / path.name).read_bytes(), path.name
