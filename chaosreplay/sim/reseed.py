"""Reseeding a run's random streams from a tick on: what a `reseed` fault does.

Everything random a run draws comes from seeded streams (rng.py): per node the ones its
program sees — `getrandom`, the SDK's `cr_get_random`, /dev/urandom, rdrand, rdseed — and its
disk's fault stream (torn writes, corrupted reads); for the whole run the network fabric's
(jitter, loss, corruption, reordering, duplication). A `reseed` fault with seed S gives each
stream it targets (one node's, or, without a node, every node's and the fabric's) a new key:
the stream's seed becomes `next_stream_seed(seed, S)`, its domain, node and byte position
stay. So from that tick on the run draws other numbers — other election timeouts, other
packets lost — while everything before it is untouched.

Why a fault: the explorer's branches must diverge in chance, not only in faults, and each
branch must still be one scenario that replays from scratch. As a fault, a reseed is a
line of the explicit schedule a recording's manifest holds, fires at its tick like any
other, is checkpointed by the fault engine, and the shrinker can drop it. A branch is then
a pure function of its parent's checkpoint and the seed of the reseed it adds.

State: a node's stream seed is the controller's (`Simulation.stream_seeds`, in the
checkpoint's controller part once any node has one) because the process rebuilds its
streams from its configured seed when it restarts; the controller rekeys them again then
and after a resume. The fabric and the disk carry their own seed in their snapshots.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Any

from chaosreplay.rng import DeterministicStream

SEED_BITS = 63  # stream seeds are non-negative and fit msgpack's signed range


def next_stream_seed(seed: int, salt: int) -> int:
    """The seed a stream of seed `seed` has after a reseed with `salt`."""
    material = b"chaosreplay/reseed/v1\0" + struct.pack("<QQ", seed, salt)
    return int.from_bytes(hashlib.sha256(material).digest()[:8], "little") >> (64 - SEED_BITS)


def rekey(stream: DeterministicStream, seed: int) -> DeterministicStream:
    """The same stream (domain, node, position) under another seed."""
    return DeterministicStream(seed, stream.domain, stream.node, stream.position)


def rekey_process(process: Any, seed: int) -> None:
    """Give a node's process streams of `seed`: its program's random sources and its disk's.

    `process` is a kernel GuestProcess; the kernel does not know about reseeding, so this
    replaces the streams it holds (kernel/process.py `random`, the emulator's rdrand and
    rdseed, the disk's `stream` and `seed`, which its snapshot carries)."""
    process.random = {name: rekey(s, seed) for name, s in process.random.items()}
    emulator = process.emulator
    emulator.rdrand, emulator.rdseed = rekey(emulator.rdrand, seed), rekey(emulator.rdseed, seed)
    process.fs.seed = seed
    process.fs.stream = rekey(process.fs.stream, seed)
