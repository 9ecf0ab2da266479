"""Socket options: which setsockopt/getsockopt names exist, their defaults and checks.

Every option a program sets is stored on its socket and read back by getsockopt, and
the ones the stack acts on (buffer sizes, timeouts, SO_REUSEADDR/SO_REUSEPORT, IPV6_V6ONLY)
are read from the same store. Values are kept as ints: SO_LINGER as onoff << 32 | seconds,
the timeouts in ns. SO_SNDBUF and SO_RCVBUF are doubled and clamped as Linux does
(socket(7)).
"""

from __future__ import annotations

import errno
import struct

SOL_SOCKET, IPPROTO_IP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6 = 1, 0, 6, 17, 41
SO_DEBUG, SO_REUSEADDR, SO_TYPE, SO_ERROR, SO_DONTROUTE, SO_BROADCAST = 1, 2, 3, 4, 5, 6
SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE, SO_OOBINLINE, SO_PRIORITY, SO_LINGER = 7, 8, 9, 10, 12, 13
SO_REUSEPORT, SO_PASSCRED, SO_PEERCRED, SO_RCVLOWAT, SO_SNDLOWAT = 15, 16, 17, 18, 19
SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD, SO_TIMESTAMP, SO_ACCEPTCONN = 20, 21, 29, 30
SO_PROTOCOL, SO_DOMAIN, SO_RCVTIMEO_NEW, SO_SNDTIMEO_NEW = 38, 39, 66, 67
SO_SNDBUFFORCE, SO_RCVBUFFORCE = 32, 33
TCP_NODELAY, TCP_MAXSEG, TCP_CORK, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT = 1, 2, 3, 4, 5, 6
TCP_SYNCNT, TCP_LINGER2, TCP_DEFER_ACCEPT, TCP_QUICKACK, TCP_USER_TIMEOUT = 7, 8, 9, 12, 18
TCP_FASTOPEN, TCP_NOTSENT_LOWAT = 23, 25
IP_TOS, IP_TTL, IP_MTU_DISCOVER, IP_RECVERR = 1, 2, 10, 11
IPV6_UNICAST_HOPS, IPV6_RECVERR, IPV6_V6ONLY = 16, 25, 26

BUFFER_DEFAULT = 212992  # net.core.wmem_default / rmem_default
BUFFER_MAX = 212992  # net.core.wmem_max / rmem_max
SNDBUF_MIN, RCVBUF_MIN = 4608, 2304  # SOCK_MIN_SNDBUF / SOCK_MIN_RCVBUF
NS_PER_S, NS_PER_US = 1_000_000_000, 1_000

# (level, name) -> default value, for the options any socket of the level takes.
SOCKET_OPTIONS = {
    SO_DEBUG: 0, SO_REUSEADDR: 0, SO_DONTROUTE: 0, SO_BROADCAST: 0, SO_SNDBUF: BUFFER_DEFAULT,
    SO_RCVBUF: BUFFER_DEFAULT, SO_KEEPALIVE: 0, SO_OOBINLINE: 0, SO_PRIORITY: 0, SO_LINGER: 0,
    SO_REUSEPORT: 0, SO_PASSCRED: 0, SO_RCVLOWAT: 1, SO_SNDLOWAT: 1, SO_RCVTIMEO_OLD: 0,
    SO_SNDTIMEO_OLD: 0, SO_TIMESTAMP: 0,
}
TCP_OPTIONS = {
    TCP_NODELAY: 0, TCP_MAXSEG: 536, TCP_CORK: 0, TCP_KEEPIDLE: 7200, TCP_KEEPINTVL: 75,
    TCP_KEEPCNT: 9, TCP_SYNCNT: 6, TCP_LINGER2: 60, TCP_DEFER_ACCEPT: 0, TCP_QUICKACK: 1,
    TCP_USER_TIMEOUT: 0, TCP_FASTOPEN: 0, TCP_NOTSENT_LOWAT: 0xFFFFFFFF,
}
IP_OPTIONS = {IP_TOS: 0, IP_TTL: 64, IP_MTU_DISCOVER: 1, IP_RECVERR: 0}
IPV6_OPTIONS = {IPV6_UNICAST_HOPS: 64, IPV6_RECVERR: 0, IPV6_V6ONLY: 0}
TIMEOUTS = {SO_RCVTIMEO_NEW: SO_RCVTIMEO_OLD, SO_SNDTIMEO_NEW: SO_SNDTIMEO_OLD}
TIMEVAL = (SO_RCVTIMEO_OLD, SO_SNDTIMEO_OLD)
BOOLEAN = ({(SOL_SOCKET, n) for n in SOCKET_OPTIONS if n not in (SO_PRIORITY, SO_RCVLOWAT,
                                                             SO_SNDLOWAT, SO_SNDBUF, SO_RCVBUF,
                                                             SO_LINGER, *TIMEVAL)}
           | {(IPPROTO_TCP, n) for n in (TCP_NODELAY, TCP_CORK, TCP_QUICKACK)}
           | {(IPPROTO_IPV6, IPV6_V6ONLY), (IPPROTO_IPV6, IPV6_RECVERR), (IPPROTO_IP, IP_RECVERR)})
KEY_MAX = 1 << 16  # levels and names are below this


def default(level: int, name: int) -> int | None:
    """An option's value before any setsockopt (None: no such option at that level)."""
    table = {SOL_SOCKET: SOCKET_OPTIONS, IPPROTO_TCP: TCP_OPTIONS, IPPROTO_IP: IP_OPTIONS,
             IPPROTO_IPV6: IPV6_OPTIONS}.get(level)
    return None if table is None else table.get(name)


def decode(level: int, name: int, raw: bytes) -> int:
    """The stored form of a setsockopt value, or -errno (EINVAL: too short or out of range)."""
    if level == SOL_SOCKET and name in TIMEVAL:
        if len(raw) < 16:
            return -errno.EINVAL
        seconds, micros = struct.unpack_from("<qq", raw)
        if seconds < 0 or not 0 <= micros < 1_000_000:
            return -errno.EDOM
        return min(seconds * NS_PER_S + micros * NS_PER_US, (1 << 63) - 1)
    if level == SOL_SOCKET and name == SO_LINGER:
        if len(raw) < 8:
            return -errno.EINVAL
        onoff, seconds = struct.unpack_from("<ii", raw)
        return (1 << 32 if onoff else 0) | max(0, seconds)
    if len(raw) < 4:
        return -errno.EINVAL
    (value,) = struct.unpack_from("<i", raw)
    if level == SOL_SOCKET and name in (SO_SNDBUF, SO_RCVBUF):
        floor = SNDBUF_MIN if name == SO_SNDBUF else RCVBUF_MIN
        return max(floor, min(max(value, 0), BUFFER_MAX) * 2)
    if level == IPPROTO_TCP and name in (TCP_KEEPIDLE, TCP_KEEPINTVL) and not 1 <= value <= 32767:
        return -errno.EINVAL
    if level == IPPROTO_TCP and name == TCP_KEEPCNT and not 1 <= value <= 127:
        return -errno.EINVAL
    if level == IPPROTO_IP and name == IP_TTL and not (value == -1 or 1 <= value <= 255):
        return -errno.EINVAL
    if (level, name) in BOOLEAN:
        return 1 if value else 0  # boolean options read back as 0 or 1
    if level == IPPROTO_IP and name == IP_TTL and value == -1:
        return 64
    return value & 0xFFFFFFFF


def encode(level: int, name: int, value: int) -> bytes:
    """A stored value as getsockopt writes it."""
    if level == SOL_SOCKET and name in TIMEVAL:
        seconds, ns = divmod(value, NS_PER_S)
        return struct.pack("<qq", seconds, ns // NS_PER_US)
    if level == SOL_SOCKET and name == SO_LINGER:
        return struct.pack("<ii", value >> 32, value & 0xFFFFFFFF)
    return struct.pack("<I", value & 0xFFFFFFFF)
