"""The socket system calls: socket, socketpair, bind, listen, accept, connect, send*, recv*,
shutdown, getsockname, getpeername, setsockopt and getsockopt (socket(7), unix(7), udp(7),
tcp(7)).

Every call works on a `SocketFile` and its endpoint in the node's `NetStack`. A call that
cannot finish blocks on the socket's queue (kernel/fs/waiters.py) unless the description
is O_NONBLOCK or the call passes MSG_DONTWAIT; SO_RCVTIMEO and SO_SNDTIMEO bound the wait
of recv* and send* (then EAGAIN, or the bytes already moved). A send on a connection whose
other end is gone fails with EPIPE and raises SIGPIPE unless MSG_NOSIGNAL is given.
Ancillary data (SCM_RIGHTS, SCM_CREDENTIALS) is not carried: a sendmsg with control data
fails with EOPNOTSUPP and recvmsg always returns msg_controllen 0.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaosreplay.kernel.fs.files import O_NONBLOCK, O_RDWR, READABLE, WRITABLE
from chaosreplay.kernel.fs.waiters import WAIT, block, deadline_after, progress, timed_out
from chaosreplay.kernel.net import options
from chaosreplay.kernel.net.addresses import (
    AF_INET,
    AF_INET6,
    AF_UNIX,
    AF_UNSPEC,
    Address,
    pack,
    parse,
)
from chaosreplay.kernel.net.socket_file import SocketFile
from chaosreplay.kernel.net.sockets import (
    MSG_CMSG_CLOEXEC,
    MSG_CONFIRM,
    MSG_DONTWAIT,
    MSG_EOR,
    MSG_MORE,
    MSG_NOSIGNAL,
    MSG_OOB,
    MSG_PEEK,
    MSG_TRUNC,
    MSG_WAITALL,
    SOCK_CLOEXEC,
    SOCK_DGRAM,
    SOCK_NONBLOCK,
    SOCK_STREAM,
    Received,
    Socket,
)
from chaosreplay.kernel.net.tcp_socket import TcpSocket
from chaosreplay.kernel.net.udp import Udp
from chaosreplay.kernel.net.unix import UnixDgram, UnixStream
from chaosreplay.kernel.syscalls.args import MAX_IO, gather, int32, iovecs
from chaosreplay.kernel.syscalls.io import broken_pipe
from chaosreplay.kernel.syscalls.numbers import NUMBERS

if TYPE_CHECKING:
    from chaosreplay.kernel.process import GuestProcess

SOCK_TYPE_MASK = 0xF
SOCKADDR_MAX = 128  # sizeof(struct sockaddr_storage)
MSGHDR = struct.Struct("<QI4xQQQQi4x")  # name, namelen, iov, iovlen, control, controllen, flags
MMSGHDR_SIZE = MSGHDR.size + 8  # struct mmsghdr: the msghdr, msg_len, padding
UIO_MAXIOV = 1024
PID, UID, GID = 1000, 0, 0  # what SO_PEERCRED reports (task.py's identity)
SEND_FLAGS = MSG_DONTWAIT | MSG_NOSIGNAL | MSG_CONFIRM | MSG_EOR | MSG_MORE | MSG_OOB
RECV_FLAGS = MSG_DONTWAIT | MSG_PEEK | MSG_TRUNC | MSG_WAITALL | MSG_CMSG_CLOEXEC | MSG_OOB


def _socket_of(p: GuestProcess, fd: int) -> SocketFile | int:
    p.net.on_timers(p, p.vtime_ns)  # timers due by now (a lone process has no controller)
    file = p.files.get(int32(fd))
    if file is None:
        return -errno.EBADF
    return file if isinstance(file, SocketFile) else -errno.ENOTSOCK


def _new_socket(domain: int, kind: int, protocol: int, p: GuestProcess) -> Socket | int:
    if domain == AF_UNIX:
        if protocol not in (0, AF_UNIX):
            return -errno.EPROTONOSUPPORT
        if kind == SOCK_STREAM:
            return p.net.add(UnixStream)
        if kind == SOCK_DGRAM:
            return p.net.add(UnixDgram)
        return -errno.ESOCKTNOSUPPORT
    if domain in (AF_INET, AF_INET6):
        if kind == SOCK_DGRAM and protocol in (0, options.IPPROTO_UDP):
            return p.net.add(Udp, v6=domain == AF_INET6)
        if kind == SOCK_STREAM and protocol in (0, options.IPPROTO_TCP):
            return p.net.add(TcpSocket, v6=domain == AF_INET6)
        return -errno.EPROTONOSUPPORT if kind in (SOCK_STREAM, SOCK_DGRAM) \
            else -errno.ESOCKTNOSUPPORT
    return -errno.EAFNOSUPPORT


def _install(p: GuestProcess, sock: Socket, flags: int) -> int:
    file = SocketFile(O_RDWR | (O_NONBLOCK if flags & SOCK_NONBLOCK else 0),
                      b"socket:[%d]" % sock.sid, sock)
    fd = p.files.install(file, bool(flags & SOCK_CLOEXEC))
    if fd < 0:
        sock.release(p.net, p)
    return fd


def _table_full(p: GuestProcess) -> bool:
    return all(fd in p.files.slots for fd in range(p.files.limit))


def sys_socket(p: GuestProcess, r: Any) -> int:
    domain, kind, protocol = int32(r.rdi), r.rsi & 0xFFFFFFFF, int32(r.rdx)
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    sock = _new_socket(domain, kind & SOCK_TYPE_MASK, protocol, p)
    return sock if isinstance(sock, int) else _install(p, sock, kind)


def sys_socketpair(p: GuestProcess, r: Any) -> int:
    domain, kind, protocol = int32(r.rdi), r.rsi & 0xFFFFFFFF, int32(r.rdx)
    if kind & ~(SOCK_TYPE_MASK | SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    if domain in (AF_INET, AF_INET6):
        return -errno.EOPNOTSUPP
    first = _new_socket(domain, kind & SOCK_TYPE_MASK, protocol, p)
    if isinstance(first, int):
        return first
    second = p.net.add(type(first))
    first.pair(second)  # type: ignore[attr-defined]
    a = _install(p, first, kind)
    if a < 0:
        second.release(p.net, p)
        return a
    b = _install(p, second, kind)
    if b < 0:
        p.files.close(p, a)
        return b
    if not p.space.write(r.r10, struct.pack("<ii", a, b)):
        p.files.close(p, a)
        p.files.close(p, b)
        return -errno.EFAULT
    return 0


def _address_arg(p: GuestProcess, sock: Socket, address: int, length: int) -> Address | int:
    length = int32(length)
    if not 0 <= length <= SOCKADDR_MAX:
        return -errno.EINVAL
    raw = p.space.read(address, length) if length else b""
    if raw is None:
        return -errno.EFAULT
    return parse(raw, sock.family)


def _write_address(p: GuestProcess, sock: Socket, address: Address | None, buf: int,
                   length_ptr: int) -> int:
    """Fill a (sockaddr, socklen_t *) pair as Linux does: truncate, report the full size."""
    if not buf or not length_ptr:
        return 0
    raw = p.space.read(length_ptr, 4)
    if raw is None:
        return -errno.EFAULT
    (room,) = struct.unpack("<i", raw)
    if room < 0:
        return -errno.EINVAL
    packed = pack(address, sock.family)
    if not p.space.write(buf, packed[:room]) or not p.space.write(
            length_ptr, struct.pack("<i", len(packed))):
        return -errno.EFAULT
    return 0


def sys_bind(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    address = _address_arg(p, file.sock, r.rsi, r.rdx)
    if isinstance(address, int):
        return address
    return file.sock.bind(p.net, p, address)


def sys_listen(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    return file.sock.listen(p.net, p, int32(r.rsi))


def _nonblocking(file: SocketFile, flags: int) -> bool:
    return file.nonblocking or bool(flags & MSG_DONTWAIT)


def _timeout(sock: Socket, name: int) -> int | None:
    value = sock.option(options.SOL_SOCKET, name)
    return value or None


def _accept(p: GuestProcess, r: Any, flags: int) -> int:
    if flags & ~(SOCK_NONBLOCK | SOCK_CLOEXEC):
        return -errno.EINVAL
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    if timed_out(p):
        return -errno.EAGAIN
    if _table_full(p):
        return -errno.EMFILE  # before taking a connection, which stays in the backlog
    got = file.sock.accept(p.net, p)
    if got == -errno.EAGAIN and not file.nonblocking:
        deadline = deadline_after(p, _timeout(file.sock, options.SO_RCVTIMEO_OLD))
        return block(p, [(file, READABLE)], deadline, f"accept on {file.path.decode()}")
    if isinstance(got, int):
        return got
    peer = got.peer_address(p.net)
    written = _write_address(p, got, None if isinstance(peer, int) else peer, r.rsi, r.rdx)
    fd = _install(p, got, flags)
    if fd >= 0 and written < 0:
        p.files.close(p, fd)
        return written
    return fd


def sys_accept(p: GuestProcess, r: Any) -> int:
    return _accept(p, r, 0)


def sys_accept4(p: GuestProcess, r: Any) -> int:
    return _accept(p, r, r.r10 & 0xFFFFFFFF)


def sys_connect(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    sock = file.sock
    raw = p.space.read(r.rsi, 2) if int32(r.rdx) >= 2 else None
    if raw is not None and struct.unpack("<H", raw)[0] == AF_UNSPEC and isinstance(
            sock, UnixDgram | Udp):
        sock.disconnect()  # connect(AF_UNSPEC) dissolves a datagram socket's association
        return 0
    address = _address_arg(p, sock, r.rsi, r.rdx)
    if isinstance(address, int):
        return address
    if isinstance(sock, TcpSocket) and p.waiting is not None and sock.connect_pending:
        outcome = sock.connect_outcome()  # a blocked connect woke: the handshake's end?
        if outcome is not None:
            return outcome
        if timed_out(p):
            return -errno.EINPROGRESS
        return block(p, [(file, WRITABLE)], p.waiting.deadline_ns,
                     f"connect on {file.path.decode()}")
    if timed_out(p):
        return -errno.EAGAIN
    result = sock.connect(p.net, p, address)
    if result == -errno.EINPROGRESS and isinstance(sock, TcpSocket) and not file.nonblocking:
        outcome = sock.connect_outcome()  # over the loopback it has ended already
        if outcome is not None:
            return outcome
        deadline = deadline_after(p, _timeout(sock, options.SO_SNDTIMEO_OLD))
        return block(p, [(file, WRITABLE)], deadline, f"connect on {file.path.decode()}")
    if result == -errno.EAGAIN and not file.nonblocking:
        deadline = deadline_after(p, _timeout(sock, options.SO_SNDTIMEO_OLD))
        return block(p, [(file, WRITABLE)], deadline, f"connect on {file.path.decode()}")
    return result


# -- sending ------------------------------------------------------------------------------------
def send_on(p: GuestProcess, file: SocketFile, data: bytes, address: Address | None,
            flags: int) -> int:
    """Send all of data (a stream) or one datagram, blocking as the call may; bytes or -errno."""
    if flags & MSG_OOB:
        return -errno.EOPNOTSUPP
    sock, done = file.sock, progress(p)
    if timed_out(p):
        return done or -errno.EAGAIN
    n = sock.send(p.net, p, data[done:], address, flags)
    if n == -errno.EPIPE:
        return done or (-errno.EPIPE if flags & MSG_NOSIGNAL else broken_pipe(p))
    if n < 0 and n != -errno.EAGAIN:
        return done or n
    done += max(n, 0)
    if done < len(data) or n == -errno.EAGAIN:
        if _nonblocking(file, flags):
            return done or -errno.EAGAIN
        deadline = deadline_after(p, _timeout(sock, options.SO_SNDTIMEO_OLD))
        return block(p, [(file, WRITABLE)], deadline, f"send on {file.path.decode()}",
                     moved=done)
    return done


def _destination(p: GuestProcess, sock: Socket, address: int, length: int) -> Address | int | None:
    if not address or not int32(length):
        return None  # a zero length names no address, as move_addr_to_kernel sees it
    if isinstance(sock, UnixStream) and sock.state == "connected":
        return -errno.EISCONN
    return _address_arg(p, sock, address, length)


def sys_sendto(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    flags = r.r10 & 0xFFFFFFFF
    address = _destination(p, file.sock, r.r8, r.r9)
    if isinstance(address, int):
        return address
    count = min(r.rdx, MAX_IO)
    data = p.space.read(r.rsi, count) if count else b""
    if data is None:
        return -errno.EFAULT
    return send_on(p, file, data, address, flags)


def _msghdr(p: GuestProcess, address: int) -> tuple[int, ...] | int:
    raw = p.space.read(address, MSGHDR.size)
    return -errno.EFAULT if raw is None else MSGHDR.unpack(raw)


def _sendmsg(p: GuestProcess, file: SocketFile, header: int, flags: int) -> int:
    fields = _msghdr(p, header)
    if isinstance(fields, int):
        return fields
    name, namelen, iov, iovlen, _control, controllen, _ = fields
    if controllen:
        return -errno.EOPNOTSUPP  # ancillary data is not carried (module docstring)
    if iovlen > UIO_MAXIOV:
        return -errno.EMSGSIZE
    address = _destination(p, file.sock, name, namelen)
    if isinstance(address, int):
        return address
    data = gather(p, iov, iovlen)
    if isinstance(data, int):
        return data
    return send_on(p, file, data, address, flags)


def sys_sendmsg(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    return _sendmsg(p, file, r.rsi, r.rdx & 0xFFFFFFFF)


def sys_sendmmsg(p: GuestProcess, r: Any) -> int:
    """Each message in turn; only the first may block, as on Linux."""
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    count, flags = min(r.rdx & 0xFFFFFFFF, UIO_MAXIOV), r.r10 & 0xFFFFFFFF
    sent = 0
    for i in range(count):
        header = r.rsi + i * MMSGHDR_SIZE
        result = _sendmsg(p, file, header, flags if i == 0 else flags | MSG_DONTWAIT)
        if result == WAIT:
            return WAIT
        if result < 0:
            return sent or result
        if not p.space.write(header + MSGHDR.size, struct.pack("<I", result)):
            return sent or -errno.EFAULT
        sent += 1
    return sent


# -- receiving ----------------------------------------------------------------------------------
Deliver = Callable[[bytes, int], bool]  # (bytes, offset already moved) -> copied


def recv_on(p: GuestProcess, file: SocketFile, size: int, flags: int,
            deliver: Deliver) -> tuple[int, Received | None] | int:
    """Receive into the guest through `deliver`, blocking as the call may: (bytes moved,
    what the last receive got), or -errno, or WAIT."""
    if flags & MSG_OOB:
        return -errno.EINVAL
    sock, done = file.sock, progress(p)
    if timed_out(p):
        return (done, None) if done else -errno.EAGAIN
    size = min(size, MAX_IO)
    got = sock.recv(p.net, p, size - done, flags)
    if isinstance(got, Received):
        if got.data and not deliver(got.data, done):
            return -errno.EFAULT
        done += len(got.data)
        stream = sock.type == SOCK_STREAM
        if (flags & MSG_WAITALL and stream and not flags & MSG_PEEK and got.data
                and done < size and not _nonblocking(file, flags)):
            deadline = deadline_after(p, _timeout(sock, options.SO_RCVTIMEO_OLD))
            return block(p, [(file, READABLE)], deadline, f"recv on {file.path.decode()}",
                         moved=done)
        return done, got
    if got == -errno.EAGAIN and not _nonblocking(file, flags):
        deadline = deadline_after(p, _timeout(sock, options.SO_RCVTIMEO_OLD))
        return block(p, [(file, READABLE)], deadline, f"recv on {file.path.decode()}",
                     moved=done)
    return (done, None) if done else got


def sys_recvfrom(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    flags, buf = r.r10 & 0xFFFFFFFF, r.rsi
    result = recv_on(p, file, r.rdx, flags,
                     lambda data, at: p.space.write(buf + at, data))
    if isinstance(result, int):
        return result
    moved, got = result
    if got is not None and got.source is not None:
        written = _write_address(p, file.sock, got.source, r.r8, r.r9)
        if written < 0:
            return written
    elif (r.r8 and r.r9 and file.sock.type == SOCK_STREAM
          and not p.space.write(r.r9, struct.pack("<i", 0))):
        return -errno.EFAULT  # a stream names no source: addrlen 0
    if got is not None and flags & MSG_TRUNC and file.sock.type != SOCK_STREAM:
        return got.full_size
    return moved


def _scatter_from(p: GuestProcess, vecs: list[tuple[int, int]], data: bytes, at: int) -> bool:
    """Copy data into iovecs starting `at` bytes in (what an earlier try moved)."""
    for base, length in vecs:
        if at >= length:
            at -= length
            continue
        chunk = data[: length - at]
        if chunk and not p.space.write(base + at, chunk):
            return False
        data, at = data[len(chunk):], 0
        if not data:
            break
    return True


def _recvmsg(p: GuestProcess, file: SocketFile, header: int, flags: int) -> int:
    fields = _msghdr(p, header)
    if isinstance(fields, int):
        return fields
    name, namelen, iov, iovlen, _control, _controllen, _ = fields
    if iovlen > UIO_MAXIOV:
        return -errno.EMSGSIZE
    vecs = iovecs(p, iov, iovlen)
    if isinstance(vecs, int):
        return vecs
    size = sum(length for _, length in vecs)
    result = recv_on(p, file, size, flags,
                     lambda data, at: _scatter_from(p, vecs, data, at))
    if isinstance(result, int):
        return result
    moved, got = result
    out_flags = 0
    if got is not None and got.full_size > len(got.data) and file.sock.type != SOCK_STREAM:
        out_flags |= MSG_TRUNC
    packed = pack(got.source, file.sock.family) if got is not None and got.source else b""
    if name and packed and not p.space.write(name, packed[:namelen]):
        return -errno.EFAULT
    # msg_namelen, msg_controllen, msg_flags
    if not (p.space.write(header + 8, struct.pack("<I", len(packed) if name else 0))
            and p.space.write(header + 40, struct.pack("<Qi", 0, out_flags))):
        return -errno.EFAULT
    if got is not None and flags & MSG_TRUNC and file.sock.type != SOCK_STREAM:
        return got.full_size
    return moved


def sys_recvmsg(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    return _recvmsg(p, file, r.rsi, r.rdx & 0xFFFFFFFF)


def sys_recvmmsg(p: GuestProcess, r: Any) -> int:
    """Each message in turn; only the first may block (no timeout support beyond it)."""
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    count, flags = min(r.rdx & 0xFFFFFFFF, UIO_MAXIOV), r.r10 & 0xFFFFFFFF
    got = 0
    for i in range(count):
        header = r.rsi + i * MMSGHDR_SIZE
        result = _recvmsg(p, file, header, flags if i == 0 else flags | MSG_DONTWAIT)
        if result == WAIT:
            return WAIT
        if result < 0:
            return got or result
        if not p.space.write(header + MSGHDR.size, struct.pack("<I", result)):
            return got or -errno.EFAULT
        got += 1
    return got


# -- the rest -----------------------------------------------------------------------------------
def sys_shutdown(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    return file.sock.shut(p.net, p, int32(r.rsi))


def sys_getsockname(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    return _write_address(p, file.sock, file.sock.local_address(), r.rsi, r.rdx) \
        if r.rsi and r.rdx else -errno.EFAULT


def sys_getpeername(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    peer = file.sock.peer_address(p.net)
    if isinstance(peer, int):
        return peer
    return _write_address(p, file.sock, peer, r.rsi, r.rdx) if r.rsi and r.rdx \
        else -errno.EFAULT


def _level_allowed(sock: Socket, level: int) -> int:
    """0 when options of `level` apply to this socket, else the -errno Linux answers."""
    if level == options.SOL_SOCKET:
        return 0
    if sock.family == AF_UNIX:
        return -errno.EOPNOTSUPP
    if level == options.IPPROTO_IP:
        return 0
    if level == options.IPPROTO_IPV6:
        return 0 if sock.family == AF_INET6 else -errno.ENOPROTOOPT
    if level == options.IPPROTO_TCP:
        return 0 if sock.type == SOCK_STREAM else -errno.ENOPROTOOPT
    return -errno.ENOPROTOOPT


def sys_setsockopt(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    sock, level, name, length = file.sock, int32(r.rsi), int32(r.rdx), int32(r.r8)
    allowed = _level_allowed(sock, level)
    if allowed < 0:
        return allowed
    if length < 0:
        return -errno.EINVAL
    if level == options.SOL_SOCKET:
        name = options.TIMEOUTS.get(name, name)
        if name in (options.SO_SNDBUFFORCE, options.SO_RCVBUFFORCE):
            name = options.SO_SNDBUF if name == options.SO_SNDBUFFORCE else options.SO_RCVBUF
    if options.default(level, name) is None:
        return -errno.ENOPROTOOPT
    raw = p.space.read(r.r10, min(length, 16)) if length else b""
    if raw is None:
        return -errno.EFAULT
    value = options.decode(level, name, raw)
    if value < 0:
        return value
    sock.options[(level, name)] = value
    sock.option_set(p.net, p, level, name)
    return 0


def _read_only_option(p: GuestProcess, sock: Socket, name: int) -> bytes | None:
    if name == options.SO_TYPE:
        return struct.pack("<i", sock.type)
    if name == options.SO_DOMAIN:
        return struct.pack("<i", sock.family)
    if name == options.SO_PROTOCOL:
        return struct.pack("<i", sock.protocol)
    if name == options.SO_ERROR:
        return struct.pack("<i", sock.take_error())
    if name == options.SO_ACCEPTCONN:
        return struct.pack("<i", int(sock.accepting()))
    if name == options.SO_PEERCRED and sock.family == AF_UNIX:
        if isinstance(sock, UnixStream) and sock.state == "connected":
            return struct.pack("<iII", PID, UID, GID)
        return struct.pack("<iII", 0, 0xFFFFFFFF, 0xFFFFFFFF)  # no peer: overflow ids
    return None


def sys_getsockopt(p: GuestProcess, r: Any) -> int:
    file = _socket_of(p, r.rdi)
    if isinstance(file, int):
        return file
    sock, level, name = file.sock, int32(r.rsi), int32(r.rdx)
    allowed = _level_allowed(sock, level)
    if allowed < 0:
        return allowed
    raw_len = p.space.read(r.r8, 4)
    if raw_len is None:
        return -errno.EFAULT
    (room,) = struct.unpack("<i", raw_len)
    if room < 0:
        return -errno.EINVAL
    value: bytes | None = None
    if level == options.SOL_SOCKET:
        value = _read_only_option(p, sock, name)
        name = options.TIMEOUTS.get(name, name)
    if value is None:
        if options.default(level, name) is None:
            return -errno.ENOPROTOOPT
        value = options.encode(level, name, sock.option_read(p.net, level, name))
    value = value[:room]
    if not p.space.write(r.r10, value) or not p.space.write(r.r8, struct.pack("<i", len(value))):
        return -errno.EFAULT
    return 0


HANDLERS = {
    NUMBERS["socket"]: sys_socket,
    NUMBERS["socketpair"]: sys_socketpair,
    NUMBERS["bind"]: sys_bind,
    NUMBERS["listen"]: sys_listen,
    NUMBERS["accept"]: sys_accept,
    NUMBERS["accept4"]: sys_accept4,
    NUMBERS["connect"]: sys_connect,
    NUMBERS["sendto"]: sys_sendto,
    NUMBERS["sendmsg"]: sys_sendmsg,
    307: sys_sendmmsg,
    NUMBERS["recvfrom"]: sys_recvfrom,
    NUMBERS["recvmsg"]: sys_recvmsg,
    299: sys_recvmmsg,
    NUMBERS["shutdown"]: sys_shutdown,
    NUMBERS["getsockname"]: sys_getsockname,
    NUMBERS["getpeername"]: sys_getpeername,
    NUMBERS["setsockopt"]: sys_setsockopt,
    NUMBERS["getsockopt"]: sys_getsockopt,
}
