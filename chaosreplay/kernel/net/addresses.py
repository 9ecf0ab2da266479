"""Socket addresses: sockaddr_un / sockaddr_in / sockaddr_in6 and the nodes' IP addresses.

Node `i` of a run has the IPv4 address 10.0.<i // 254>.<i % 254 + 1> (what /etc/hosts
lists); 127.0.0.0/8 and ::1 are its loopback. Inside the stack every IP address is held in
its 16-byte IPv6 form (an IPv4 address as ::ffff:a.b.c.d), so AF_INET and dual-stack
AF_INET6 sockets share one port space, as on Linux.
"""

from __future__ import annotations

import errno
import posixpath
import struct
from dataclasses import dataclass

AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6 = 0, 1, 2, 10
V4_PREFIX = b"\0" * 10 + b"\xff\xff"
ANY_V4 = V4_PREFIX + b"\0\0\0\0"
ANY_V6 = b"\0" * 16
LOOPBACK_V4 = V4_PREFIX + bytes([127, 0, 0, 1])
LOOPBACK_V6 = b"\0" * 15 + b"\x01"
UNIX_PATH_MAX = 108  # sizeof(sun_path)
SOCKADDR_IN_LEN, SOCKADDR_IN6_LEN = 16, 28
NODES_PER_SUBNET = 254


def node_ipv4(index: int) -> bytes:
    """Node `index`'s IPv4 address (4 bytes)."""
    return bytes([10, 0, index // NODES_PER_SUBNET, index % NODES_PER_SUBNET + 1])


def node_address(index: int) -> str:
    """Node `index`'s IPv4 address as text."""
    return ".".join(str(b) for b in node_ipv4(index))


def node_host(index: int) -> bytes:
    """Node `index`'s address in the stack's 16-byte form."""
    return V4_PREFIX + node_ipv4(index)


def node_of(host: bytes, node_count: int) -> int | None:
    """The node whose address `host` is, if any."""
    if not host.startswith(V4_PREFIX):
        return None
    a, b, c, d = host[12:]
    if a != 10 or b != 0 or not 1 <= d <= NODES_PER_SUBNET:
        return None
    index = c * NODES_PER_SUBNET + d - 1
    return index if index < node_count else None


def is_v4(host: bytes) -> bool:
    return host.startswith(V4_PREFIX)


def is_loopback(host: bytes) -> bool:
    return host == LOOPBACK_V6 or (is_v4(host) and host[12] == 127)


def is_any(host: bytes) -> bool:
    return host in (ANY_V4, ANY_V6)


def host_text(host: bytes) -> str:
    """An address as people write it (dotted quad for IPv4)."""
    if is_v4(host):
        return ".".join(str(b) for b in host[12:])
    groups = [f"{x:x}" for x in struct.unpack(">8H", host)]
    return ":".join(groups)


@dataclass(frozen=True, slots=True)
class InetAddress:
    """An IP address (16-byte form) and port."""

    host: bytes
    port: int

    def text(self) -> str:
        return f"{host_text(self.host)}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixAddress:
    """An AF_UNIX name: a path, an abstract name (leading NUL), or b"" (unnamed)."""

    name: bytes

    def text(self) -> str:
        return "@" + self.name[1:].decode(errors="replace") if self.name[:1] == b"\0" \
            else self.name.decode(errors="replace")


Address = InetAddress | UnixAddress


def parse(raw: bytes, family: int) -> Address | int:
    """A sockaddr of a socket of `family`, or -errno (EINVAL, EAFNOSUPPORT)."""
    if len(raw) < 2:
        return -errno.EINVAL
    (given,) = struct.unpack_from("<H", raw)
    if family == AF_UNIX:
        if given != AF_UNIX:
            return -errno.EINVAL
        path = raw[2:2 + UNIX_PATH_MAX]
        if path[:1] == b"\0":
            return UnixAddress(path)  # abstract: every byte of the given length counts
        return UnixAddress(path.split(b"\0", 1)[0])
    if family == AF_INET:
        if given != AF_INET and not (given == AF_UNSPEC and len(raw) >= SOCKADDR_IN_LEN):
            return -errno.EAFNOSUPPORT
        if len(raw) < SOCKADDR_IN_LEN:
            return -errno.EINVAL
        port, ip = struct.unpack_from(">H4s", raw, 2)
        return InetAddress(V4_PREFIX + ip, port)
    if family == AF_INET6:
        if given == AF_INET:
            return -errno.EAFNOSUPPORT
        if given != AF_INET6 or len(raw) < 24:
            return -errno.EINVAL
        port, _flow, ip = struct.unpack_from(">HI16s", raw, 2)
        return InetAddress(ip, port)
    return -errno.EAFNOSUPPORT


def pack(address: Address | None, family: int) -> bytes:
    """The sockaddr a socket of `family` reports for `address` (None: the family only)."""
    if family == AF_UNIX:
        name = address.name if isinstance(address, UnixAddress) else b""
        if not name or name[:1] == b"\0":
            return struct.pack("<H", AF_UNIX) + name
        return struct.pack("<H", AF_UNIX) + name + b"\0"
    inet = address if isinstance(address, InetAddress) else None
    host = inet.host if inet else (ANY_V4 if family == AF_INET else ANY_V6)
    port = inet.port if inet else 0
    if family == AF_INET:
        return struct.pack("<H", AF_INET) + struct.pack(">H4s", port, host[12:]) + bytes(8)
    return struct.pack("<H", AF_INET6) + struct.pack(">HI16sI", port, 0, host, 0)


def unix_key(name: bytes, cwd: bytes) -> bytes:
    """Where an AF_UNIX name lives in the node's namespace (paths made absolute)."""
    if name[:1] == b"\0":
        return name
    return posixpath.normpath(posixpath.join(cwd, name))
