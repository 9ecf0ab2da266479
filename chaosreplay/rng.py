"""Seeded random streams: everything a guest can observe derives from the run's seed.

Each purpose (AT_RANDOM, getrandom, the SDK, rdrand, the network fabric, ...) gets its own
ChaCha20 keystream keyed by (seed, domain, node), so drawing more values for one purpose
never shifts the values of another. A stream's whole state is its byte position, which makes
checkpointing it trivial.
"""

from __future__ import annotations

import hashlib
import struct

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

_BLOCK = 64
_REFILL_BLOCKS = 64  # keystream is generated 4 KiB at a time; each refill costs one cipher call


def stream_key(seed: int, domain: str, node: int) -> bytes:
    """The 32-byte ChaCha20 key of the stream for (seed, domain, node)."""
    if seed < 0 or node < -1:
        raise ValueError(f"seed must be >= 0 and node >= -1 (got seed={seed}, node={node})")
    material = b"chaosreplay/rng/v1\0" + struct.pack("<Qq", seed & (2**64 - 1), node)
    return hashlib.sha256(material + domain.encode()).digest()


class DeterministicStream:
    """A ChaCha20 keystream for one (seed, domain, node), read as bytes or integers."""

    __slots__ = ("_buffer", "_buffer_start", "_key", "domain", "node", "position", "seed")

    def __init__(self, seed: int, domain: str, node: int = -1, position: int = 0) -> None:
        self.seed = seed
        self.domain = domain
        self.node = node
        self._key = stream_key(seed, domain, node)
        self.position = 0
        self._buffer = b""
        self._buffer_start = 0
        self.seek(position)

    def seek(self, position: int) -> None:
        """Move to an absolute byte position of the keystream (restoring a checkpoint)."""
        if position < 0:
            raise ValueError("stream position must be >= 0")
        self.position = position
        self._buffer = b""
        self._buffer_start = position

    def _refill(self) -> None:
        block = self.position // _BLOCK
        nonce = struct.pack("<QQ", block, 0)  # 64-bit block counter, zero nonce
        cipher = Cipher(algorithms.ChaCha20(self._key, nonce), mode=None).encryptor()
        self._buffer = cipher.update(bytes(_BLOCK * _REFILL_BLOCKS))
        self._buffer_start = block * _BLOCK

    def read(self, n: int) -> bytes:
        """The next n bytes of the stream."""
        out = bytearray()
        while n > 0:
            offset = self.position - self._buffer_start
            if offset < 0 or offset >= len(self._buffer):
                self._refill()
                offset = self.position - self._buffer_start
            chunk = self._buffer[offset : offset + n]
            out += chunk
            self.position += len(chunk)
            n -= len(chunk)
        return bytes(out)

    def next_u64(self) -> int:
        """The next 64-bit unsigned integer."""
        return int.from_bytes(self.read(8), "little")

    def below(self, bound: int) -> int:
        """A uniform integer in [0, bound), without modulo bias."""
        if bound <= 0:
            raise ValueError(f"bound must be positive (got {bound})")
        limit = (2**64 // bound) * bound
        while True:
            value = self.next_u64()
            if value < limit:
                return value % bound

    def uniform(self) -> float:
        """A float in [0, 1) with 53 random bits."""
        return (self.next_u64() >> 11) / float(1 << 53)

    def chance(self, probability: float) -> bool:
        """True with the given probability (0 and 1 draw nothing, so they cost no entropy)."""
        if probability <= 0.0:
            return False
        if probability >= 1.0:
            return True
        return self.uniform() < probability
