"""Inodes with a current and a durable half, and what of them survives a power cut.

`Inode` keeps both halves of a file or directory (see the durability model in
`kernel.fs.disk`); `crash_tree` rebuilds a file system's inodes from their durable halves;
`torn_content` decides how much of a file's unsynced write log reached the platters when a
torn-write fault is active.
"""

from __future__ import annotations

from typing import Any

from chaosreplay.rng import DeterministicStream

SECTOR = 512
WHITEOUT = 0  # an entry hiding a root entry (kernel.fs.disk); never an inode number

WriteOp = tuple[int, bytes | None]
"""One entry of a file's unsynced log: (offset, data), or (new size, None) for a truncate."""


class Inode:
    """A file or directory, with its current and its durable (synced) halves."""

    __slots__ = ("atime_ns", "ctime_ns", "data", "durable", "durable_entries",
                 "durable_links", "durable_mtime_ns", "durable_xattrs", "entries", "gid", "ino",
                 "is_dir", "links", "mode", "mtime_ns", "opens", "ops", "parent", "special",
                 "target", "uid", "xattrs")

    def __init__(self, ino: int, is_dir: bool, mode: int, now_ns: int) -> None:
        self.ino = ino
        self.is_dir = is_dir
        self.mode = mode & 0o7777
        self.data = bytearray()
        self.durable = b""
        self.ops: list[WriteOp] = []
        self.entries: dict[bytes, int] = {}
        self.durable_entries: dict[bytes, int] = {}
        self.parent = ino
        self.links = 0          # current directory entries naming it
        self.durable_links = 0  # durable directory entries naming it
        self.opens = 0          # open file descriptions referring to it
        self.mtime_ns = self.ctime_ns = self.durable_mtime_ns = self.atime_ns = now_ns
        self.uid = self.gid = 0
        self.target: bytes | None = None  # a symbolic link's target (its content is durable)
        self.xattrs: dict[bytes, bytes] = {}  # extended attributes, in the order they were set
        self.durable_xattrs: dict[bytes, bytes] = {}  # as of the last fsync
        self.special = 0  # S_IFIFO or S_IFSOCK for a node mknod made; 0 for the others

    def to_dict(self) -> dict[str, Any]:
        return {
            "ino": self.ino, "dir": self.is_dir, "mode": self.mode, "data": bytes(self.data),
            "durable": self.durable, "ops": [[o, d] for o, d in self.ops],
            "entries": [[n, i] for n, i in sorted(self.entries.items())],
            "durable_entries": [[n, i] for n, i in sorted(self.durable_entries.items())],
            "parent": self.parent, "links": self.links, "durable_links": self.durable_links,
            "opens": self.opens, "mtime": self.mtime_ns, "ctime": self.ctime_ns,
            "durable_mtime": self.durable_mtime_ns, "atime": self.atime_ns,
            "uid": self.uid, "gid": self.gid, "target": self.target,
            "xattrs": [[n, v] for n, v in self.xattrs.items()],
            "durable_xattrs": [[n, v] for n, v in self.durable_xattrs.items()],
            "special": self.special,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Inode:
        node = cls(d["ino"], d["dir"], d["mode"], 0)
        node.data = bytearray(d["data"])
        node.durable = bytes(d["durable"])
        node.ops = [(o, None if b is None else bytes(b)) for o, b in d["ops"]]
        node.entries = {bytes(n): i for n, i in d["entries"]}
        node.durable_entries = {bytes(n): i for n, i in d["durable_entries"]}
        node.parent, node.links, node.durable_links = d["parent"], d["links"], d["durable_links"]
        node.opens = d["opens"]
        node.mtime_ns, node.ctime_ns, node.durable_mtime_ns = (
            d["mtime"], d["ctime"], d["durable_mtime"])
        node.atime_ns = d.get("atime", node.mtime_ns)
        node.uid, node.gid = d.get("uid", 0), d.get("gid", 0)
        target = d.get("target")
        node.target = None if target is None else bytes(target)
        node.xattrs = {bytes(n): bytes(v) for n, v in d.get("xattrs", [])}
        node.durable_xattrs = {bytes(n): bytes(v) for n, v in d.get("durable_xattrs", [])}
        node.special = d.get("special", 0)
        return node


def apply_op(data: bytearray, op: WriteOp) -> None:
    """Apply one logged write or truncate to a file's content, in place."""
    offset, chunk = op
    if chunk is None:
        if offset < len(data):
            del data[offset:]
        else:
            data.extend(bytes(offset - len(data)))
        return
    if offset > len(data):
        data.extend(bytes(offset - len(data)))
    data[offset : offset + len(chunk)] = chunk


def torn_content(durable: bytes, ops: list[WriteOp], stream: DeterministicStream) -> bytes:
    """The durable content plus a seeded prefix of the unsynced log, torn at a sector.

    Draws n = below(len(ops)): ops[0..n) are applied whole. Of ops[n], a prefix ending on a
    512-byte sector boundary of the file survives: the candidate cuts are 0 (nothing) and
    every absolute sector boundary strictly inside the op's range, one drawn uniformly
    (one below() draw, made even when 0 is the only candidate). A torn truncate is all or
    nothing, so its prefix is always nothing. At least the last op is therefore lost.
    """
    data = bytearray(durable)
    count = stream.below(len(ops))
    for op in ops[:count]:
        apply_op(data, op)
    offset, chunk = ops[count]
    cuts = [0]
    if chunk is not None:
        first = (offset // SECTOR + 1) * SECTOR
        cuts += [b - offset for b in range(first, offset + len(chunk), SECTOR)]
    cut = cuts[stream.below(len(cuts))]
    if cut and chunk is not None:
        apply_op(data, (offset, chunk[:cut]))
    return bytes(data)


def durable_reachable(inodes: dict[int, Inode], root: int) -> dict[int, int]:
    """Inodes reachable from the root over durable entries: ino -> parent ino.

    Breadth-first in name order, so a directory that two durable entries name (an
    unsynced cross-directory rename of a directory) gets the first parent found.
    """
    parents = {root: root}
    queue = [root]
    while queue:
        current = queue.pop(0)
        entries = inodes[current].durable_entries
        for name in sorted(entries):
            child = entries[name]
            if child not in parents and child in inodes:
                parents[child] = current
                if inodes[child].is_dir:
                    queue.append(child)
    return parents


def crash_tree(inodes: dict[int, Inode], root: int, torn_probability: float,
               stream: DeterministicStream) -> dict[int, Inode]:
    """The inodes that survive a crash, rebuilt in place from their durable halves.

    Only inodes reachable over durable directory entries survive. Each surviving file gets
    its durable content; with a torn-write probability, files with unsynced writes are
    visited in inode order and each is torn (`torn_content`) with that probability (one
    chance() draw per such file). The result is fully synced: current == durable.
    """
    parents = durable_reachable(inodes, root)
    survivors: dict[int, Inode] = {}
    for ino in sorted(parents):
        node = inodes[ino]
        if node.is_dir:
            # whiteouts (inode 0: a root entry removed) survive as any durable entry does
            node.entries = {n: i for n, i in node.durable_entries.items()
                            if i in parents or i == WHITEOUT}
            node.durable_entries = dict(node.entries)
            node.parent = parents[ino]
        else:
            content = node.durable
            if node.ops and stream.chance(torn_probability):
                content = torn_content(node.durable, node.ops, stream)
            node.data = bytearray(content)
            node.durable = content
        node.ops = []
        node.opens = 0
        node.xattrs = dict(node.durable_xattrs)
        node.mtime_ns = node.ctime_ns = node.durable_mtime_ns
        node.links = node.durable_links = 0
        survivors[ino] = node
    for node in survivors.values():
        for child in node.entries.values():
            if child == WHITEOUT:
                continue
            survivors[child].links += 1
            survivors[child].durable_links += 1
    survivors[root].links = survivors[root].durable_links = 1
    return survivors
