"""What a simulation recording embeds for its nodes' disks, as `info` reports it.

Per node group, the disk entries its scenario puts there (the root's included); per root
(the read-only layer of kernel/fs/root_layer.py, stored once however many groups share
it), its raw size, what it takes in the recording and every file it embeds. A large
content's stored size is its xz stream in a version 2 manifest (runs/manifest_contents.py);
small files travel inside the MANIFEST frame and count their raw bytes (an upper bound);
in a version 1 manifest everything is compressed with the frame and only raw sizes are
known. Everything here is read defensively: `info` reports damaged files too.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from chaosreplay.recording import RecordingReader

LARGEST_SHOWN = 5


def _table(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _listed(table: Any) -> list[dict[str, Any]]:
    raw = table.get("files", []) if isinstance(table, dict) else []
    return [e for e in raw if isinstance(e, dict)] if isinstance(raw, list) else []


class _Contents:
    """Raw and stored bytes of the manifest's file contents, by SHA-256 hex."""

    def __init__(self, manifest: dict[str, Any], scenario: dict[str, Any]) -> None:
        shared = _table(scenario.get("file_contents"))  # version 1: plain bytes
        self.sizes = {k: (len(v), None) for k, v in shared.items() if isinstance(v, bytes)}
        for digest, row in _table(manifest.get("contents")).items():  # version 2: xz each
            size, stream = _table(row).get("size"), _table(row).get("xz")
            if type(size) is int and isinstance(stream, bytes):
                self.sizes[digest] = (size, len(stream))

    def of(self, entry: dict[str, Any]) -> tuple[int, int | None] | None:
        """(raw, stored or None) of a file entry's content; None for links and directories."""
        inline = entry.get("content")
        if isinstance(inline, bytes):
            return len(inline), len(inline)
        return self.sizes.get(entry.get("content_sha"))  # type: ignore[arg-type]


def _parts(reader: RecordingReader) -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
    manifest = _table(reader.manifest)
    scenario = _table(manifest.get("scenario"))
    groups = scenario.get("nodes")
    return manifest, groups if isinstance(groups, list) else [], scenario


def disk_files(reader: RecordingReader) -> list[dict[str, Any]]:
    """Per node group, the disk entries its scenario embeds (the root's included): how many
    entries and files, their bytes and the largest files."""
    manifest, groups, scenario = _parts(reader)
    contents = _Contents(manifest, scenario)
    roots = _table(scenario.get("roots"))
    out = []
    for index, group in enumerate(groups):
        group = _table(group)
        entries = _listed(roots.get(group.get("root"))) + _listed(group)  # type: ignore[arg-type]
        sizes = sorted(((size[0], str(e.get("path", "?"))) for e in entries
                        if (size := contents.of(e)) is not None and size[0] >= 0),
                       key=lambda f: (-f[0], f[1]))
        program = group.get("program")
        out.append({
            "group": index,
            "name": group.get("name") or (str(program).rsplit("/", 1)[-1] if program
                                          else str(index)),
            "root": group.get("root") if isinstance(group.get("root"), str) else None,
            "entries": len(entries),
            "files": len(sizes),
            "bytes": sum(size for size, _ in sizes),
            "largest": [{"path": path, "bytes": size} for size, path in sizes[:LARGEST_SHOWN]],
        })
    return out


def roots(reader: RecordingReader) -> list[dict[str, Any]]:
    """Per root the recording stores (once, by digest): the groups over it, its entries,
    raw and stored bytes, and every file it embeds (path, raw and stored bytes)."""
    manifest, groups, scenario = _parts(reader)
    contents = _Contents(manifest, scenario)
    out = []
    for digest, tree in sorted(_table(scenario.get("roots")).items()):
        entries = _listed(tree)
        files = []
        for e in sorted(entries, key=lambda e: str(e.get("path", ""))):
            size = contents.of(e)
            if size is not None:
                files.append({"path": str(e.get("path", "?")), "bytes": size[0],
                              "stored_bytes": size[1]})
        stored = [f["stored_bytes"] for f in files]
        out.append({
            "digest": str(digest),
            "groups": [i for i, g in enumerate(groups) if _table(g).get("root") == digest],
            "entries": len(entries),
            "files": len(files),
            "raw_bytes": sum(max(0, f["bytes"]) for f in files),
            # None: a version 1 manifest, whose contents are compressed with the whole frame
            "stored_bytes": None if None in stored else sum(stored),
            "embedded": files,
        })
    return out


def print_disk_files(console: Console, info: dict[str, Any]) -> None:
    """The disk-files and roots tables of `info`'s text output."""
    if any(g["entries"] for g in info["disk_files"]):
        table = Table(title="disk files (embedded; the root's included)", title_justify="left")
        for column in ("group", "entries", "files", "bytes", "largest"):
            table.add_column(column, justify="left" if column in ("group", "largest")
                             else "right")
        for g in info["disk_files"]:
            largest = "\n".join(f"{escape(f['path'])} ({f['bytes']:,})" for f in g["largest"])
            table.add_row(escape(f"{g['group']} {g['name']}"), f"{g['entries']:,}",
                          f"{g['files']:,}", f"{g['bytes']:,}", largest or "-")
        console.print(table)
    names = {g["group"]: g["name"] for g in info["disk_files"]}
    for root in info.get("roots", []):
        stored = root["stored_bytes"]
        title = (f"root {root['digest'][:16]}… (read-only, stored once): groups "
                 f"{', '.join(escape(str(names.get(i, i))) for i in root['groups']) or '-'}"
                 f" · {root['entries']:,} entries, {root['files']:,} files · raw "
                 f"{root['raw_bytes']:,} bytes, stored "
                 + ("with the manifest" if stored is None else f"{stored:,} bytes"))
        table = Table(title=title, title_justify="left")
        for column in ("embedded file", "bytes", "stored"):
            table.add_column(column, justify="left" if column == "embedded file" else "right")
        for f in root["embedded"]:
            table.add_row(escape(f["path"]), f"{f['bytes']:,}",
                          "-" if f["stored_bytes"] is None else f"{f['stored_bytes']:,}")
        console.print(table)
