"""The GDB remote serial protocol over one node's history (node_history.py).

`chaosreplay gdb` serves one connection: registers (`g`), memory (`m`), software
breakpoints (`Z0`/`z0`), `s`/`c` forward and `bs`/`bc` backward (gdb builds `next`,
`finish`, `reverse-next` and the rest from these). The recording is read-only: register
and memory writes are refused, since a changed program would no longer be the recorded
run. Stops are reported as SIGTRAP (`swbreak` at a breakpoint), a crash as its signal,
and the two ends of the history as `replaylog:begin` / `replaylog:end`, which gdb shows
as "No more reverse-execution history."
"""

from __future__ import annotations

import socket
from collections.abc import Callable

from chaosreplay.debugger.execution_hooks import ReplayDiverged, Stop
from chaosreplay.debugger.node_history import GDB_REGISTERS, NodeHistory
from chaosreplay.errors import ChaosReplayError

MAX_PACKET = 0x4000
MAX_READ = 0x2000  # bytes of memory per `m` reply
SIGTRAP = 5
# Linux signal numbers that gdb's remote protocol numbers differently (gdb/signals.def).
GDB_SIGNALS = {7: 10, 10: 30, 12: 31}
REFUSED = "E01"  # a write: the recorded run cannot be changed
NO_MEMORY = "E14"  # EFAULT


def _thread_id(text: str) -> int | None:
    """A thread id of a packet (hex, -1 for all, 0 for any); None when malformed."""
    try:
        return -1 if text == "-1" else int(text, 16)
    except ValueError:
        return None


def checksum(data: bytes) -> int:
    return sum(data) & 0xFF


def frame(payload: str) -> bytes:
    """`$payload#checksum` (payloads here never hold `$`, `#`, `}` or `*`)."""
    data = payload.encode("latin-1")
    return b"$" + data + b"#" + f"{checksum(data):02x}".encode()


class PacketReader:
    """Splits the byte stream from gdb into packets, checking their checksums."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def feed(self, data: bytes) -> list[tuple[str | None, bool]]:
        """Complete packets so far: (payload, checksum ok); None for an interrupt byte."""
        out: list[tuple[str | None, bool]] = []
        buf = self.buffer
        buf.extend(data)
        while buf:
            if buf[0] == 0x03:
                del buf[0]
                out.append((None, True))
                continue
            start = buf.find(b"$")
            if start < 0:
                buf.clear()  # acks and noise between packets
                break
            end = buf.find(b"#", start)
            if end < 0 or len(buf) < end + 3:
                del buf[:start]
                break
            body = bytes(buf[start + 1:end])
            try:
                ok = int(buf[end + 1:end + 3], 16) == checksum(body)
            except ValueError:
                ok = False
            del buf[:end + 3]
            out.append((_unescape(body).decode("latin-1"), ok))
        return out


def _unescape(body: bytes) -> bytes:
    if b"}" not in body:
        return body
    out, i = bytearray(), 0
    while i < len(body):
        if body[i] == 0x7D and i + 1 < len(body):
            out.append(body[i + 1] ^ 0x20)
            i += 2
        else:
            out.append(body[i])
            i += 1
    return bytes(out)


def _le(value: int, size: int) -> str:
    return (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little").hex()


class GdbStub:
    """Answers packets for one node's history; `handle` returns the reply payload."""

    def __init__(self, history: NodeHistory) -> None:
        self.history = history
        self.no_ack = False
        self.closed = False
        self.console: list[str] = []  # `O` messages to send before the next stop reply
        self._last: Stop | None = None
        self._crash_reported = False
        self.selected: int | None = None  # Hg: the thread whose registers g reads

    # -- dispatch --------------------------------------------------------------------------------

    def handle(self, packet: str) -> str:
        """The reply to one packet ('' = not supported)."""
        head = packet[:1]
        if packet.startswith("qSupported"):
            return (f"PacketSize={MAX_PACKET:x};QStartNoAckMode+;swbreak+;"
                    "ReverseStep+;ReverseContinue+")
        if packet == "QStartNoAckMode":
            self.no_ack = True
            return "OK"
        if packet == "?":
            return self._stop_reply(self._last or Stop.STEPPED)
        if packet == "qC":
            return f"QC{self.history.current_thread():x}"
        if packet == "qfThreadInfo":
            return "m" + ",".join(f"{tid:x}" for tid in self.history.threads())
        if packet == "qsThreadInfo":
            return "l"
        if packet == "qAttached":
            return "1"
        if packet.startswith("qSymbol"):
            return "OK"
        if packet.startswith("Hg"):
            return self._select_thread(packet[2:])
        if head == "H":
            return "OK"  # Hc: resuming runs the node, whichever thread the scheduler picks
        if head == "T":
            tid = _thread_id(packet[1:])
            return "OK" if tid is not None and tid in self.history.threads() else "E01"
        if packet == "g":
            return self._registers()
        if head in ("G", "P", "M", "X"):
            return REFUSED
        if head == "m":
            return self._memory(packet[1:])
        if head in ("Z", "z"):
            return self._breakpoint(packet)
        if packet in ("s", "c", "bs", "bc") or (head in ("s", "c") and len(packet) > 1
                                                  and packet[1] != ";"):
            return self._resume(packet)
        if packet in ("k", "vKill;1") or head == "D":
            self.closed = True
            return "OK"
        return ""

    # -- state -----------------------------------------------------------------------------------

    def _select_thread(self, text: str) -> str:
        tid = _thread_id(text)
        if tid is None:
            return "E01"
        if tid in (0, -1):  # any thread: the one on the vCPU
            self.selected = None
            return "OK"
        if tid not in self.history.threads():
            return "E01"
        self.selected = tid
        return "OK"

    def _registers(self) -> str:
        values = self.history.registers(self.selected)
        return "".join(_le(values[name], 8 if index < 17 else 4)
                       for index, name in enumerate(GDB_REGISTERS))

    def _memory(self, arguments: str) -> str:
        try:
            address_text, length_text = arguments.split(",")
            address, length = int(address_text, 16), min(int(length_text, 16), MAX_READ)
        except ValueError:
            return "E22"
        data = self.history.read_memory(address, length)
        if data is None:
            # gdb reads across the end of a mapping: give what is readable.
            while length > 1 and data is None:
                length //= 2
                data = self.history.read_memory(address, length)
            if data is None:
                return NO_MEMORY
        return data.hex()

    def _breakpoint(self, packet: str) -> str:
        try:
            kind, address_text, _ = packet[1:].split(",", 2)
            address = int(address_text, 16)
        except ValueError:
            return "E22"
        if kind != "0":
            return ""  # hardware breakpoints and watchpoints: not served
        if packet[0] == "Z":
            self.history.breakpoints.add(address)
        else:
            self.history.breakpoints.discard(address)
        return "OK"

    # -- running ---------------------------------------------------------------------------------

    def _resume(self, packet: str) -> str:
        history = self.history
        self.selected = None  # after a stop gdb asks for the thread that stopped
        try:
            if packet == "bs":
                return self._stop_reply(Stop.STEPPED if history.reverse_stepi() else None)
            if packet == "bc":
                return self._stop_reply(Stop.BREAKPOINT if history.reverse_cont() else None)
            if packet[0] == "s":
                return self._stop_reply(history.stepi())
            return self._stop_reply(history.cont())
        except (ReplayDiverged, ChaosReplayError) as exc:
            self.console.append(f"chaosreplay: {exc}\n")
            return "E01"

    def _stop_reply(self, stop: Stop | None) -> str:
        """A stop reply; None = the start of the history was reached going backward."""
        if stop is None:
            self._last = Stop.STEPPED
            return f"T{SIGTRAP:02x}replaylog:begin;thread:{self.history.current_thread():x};"
        self._last = stop
        history = self.history
        thread = f"thread:{history.current_thread():x};"
        if stop is Stop.ENDED:
            signo = history.crash_signal()
            if signo is not None and not self._crash_reported:
                self._crash_reported = True
                return f"T{GDB_SIGNALS.get(signo, signo):02x}{thread}"
            return f"T{SIGTRAP:02x}replaylog:end;{thread}"
        self._crash_reported = False
        if stop is Stop.BREAKPOINT or history.registers()["rip"] in history.breakpoints:
            return f"T{SIGTRAP:02x}swbreak:;{thread}"
        return f"T{SIGTRAP:02x}{thread}"


def serve(stub: GdbStub, listener: socket.socket,
          on_connect: Callable[[str], None] | None = None) -> None:
    """Serve one gdb connection on `listener` until gdb detaches, kills or hangs up."""
    conn, peer = listener.accept()
    if on_connect is not None:
        on_connect(f"{peer[0]}:{peer[1]}")
    reader = PacketReader()
    with conn:
        while not stub.closed:
            data = conn.recv(65536)
            if not data:
                break
            for packet, ok in reader.feed(data):
                if packet is None:
                    continue  # an interrupt: every resume here runs to its stop by itself
                if not stub.no_ack:
                    conn.sendall(b"+" if ok else b"-")
                if not ok:
                    continue
                reply = stub.handle(packet)
                for message in stub.console:
                    conn.sendall(frame("O" + message.encode().hex()))
                stub.console.clear()
                conn.sendall(frame(reply))
                if stub.closed:
                    break
