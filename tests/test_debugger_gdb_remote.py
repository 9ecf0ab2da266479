"""`chaosreplay gdb`: the GDB remote protocol (packets, replies) without KVM, one node's
history forward and backward (execution_hooks.py, node_history.py), and a session of
Debian's real gdb in batch mode against the server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.debugger.execution_hooks import Stop
from chaosreplay.debugger.gdb_remote import GdbStub, PacketReader, checksum, frame
from chaosreplay.debugger.node_history import GDB_REGISTERS, NodeHistory
from chaosreplay.debugger.session import DebugSession

GDB = shutil.which("gdb")
needs_gdb = pytest.mark.skipif(GDB is None, reason="gdb is not installed "
                               "(tests/install-tools.sh does not install it; apt-get install gdb)")
ROOT = Path(__file__).resolve().parents[1]


# -- the protocol (no KVM) -------------------------------------------------------------------


class FakeHistory:
    """A node history with fixed registers and one mapped page at 0x1000."""

    def __init__(self) -> None:
        self.breakpoints: set[int] = set()
        self.at_start = False
        self.stopped: Stop = Stop.STEPPED
        self.rip = 0x401000

        self.tids = [1]  # the threads; the first is on the vCPU

    def threads(self) -> list[int]:
        return self.tids

    def current_thread(self) -> int:
        return self.tids[0]

    def registers(self, tid: int | None = None) -> dict[str, int]:
        values = {name: index + 1 for index, name in enumerate(GDB_REGISTERS)}
        values["rip"] = self.rip if tid in (None, self.tids[0]) else tid
        return values

    def read_memory(self, address: int, size: int) -> bytes | None:
        if address >= 0x1000 and address + size <= 0x2000:
            return bytes((address + i) & 0xFF for i in range(size))
        return None

    def crash_signal(self) -> int | None:
        return None

    def stepi(self) -> Stop:
        return self.stopped

    def cont(self) -> Stop:
        return self.stopped

    def reverse_stepi(self) -> bool:
        return not self.at_start

    def reverse_cont(self) -> bool:
        return not self.at_start


def test_packets_are_framed_checked_and_unescaped() -> None:
    """`$...#cs` packets come out whole across reads, a bad checksum is flagged, `}`
    escapes are undone, ^C is an interrupt, and replies carry their checksum."""
    reader = PacketReader()
    good = frame("qSupported:swbreak+")
    assert reader.feed(b"+" + good[:7]) == []
    assert reader.feed(good[7:] + b"$g#00\x03") == [("qSupported:swbreak+", True),
                                                      ("g", False), (None, True)]
    body = b"X10,1:}" + bytes([ord("#") ^ 0x20])
    assert reader.feed(b"$" + body + b"#" + f"{checksum(body):02x}".encode()) == [
        ("X10,1:#", True)]
    assert frame("OK") == b"$OK#9a"


def test_stub_answers_registers_memory_breakpoints_and_refuses_writes() -> None:
    """g is 17 8-byte and 7 4-byte little-endian registers in gdb's amd64 order; m reads
    (an unmapped tail is cut, an unmapped start is E14); Z0/z0 set and clear breakpoints;
    register and memory writes are refused; the resume packets give the right stops."""
    history = FakeHistory()
    stub = GdbStub(history)  # type: ignore[arg-type]
    assert "ReverseContinue+" in stub.handle("qSupported:multiprocess+")
    g = stub.handle("g")
    assert len(g) == 2 * (17 * 8 + 7 * 4)
    assert g[:16] == (1).to_bytes(8, "little").hex()
    assert g[16 * 16:17 * 16] == (0x401000).to_bytes(8, "little").hex()
    assert g[17 * 16:17 * 16 + 8] == (18).to_bytes(4, "little").hex()  # eflags
    assert stub.handle("m1ffe,2") == "feff"
    assert stub.handle("m1ffe,8") == "feff"  # cut at the end of the mapping
    assert stub.handle("m3000,4") == "E14"
    assert stub.handle("M1000,1:00") == "E01" and stub.handle("G00") == "E01"
    assert stub.handle("P0=00") == "E01"
    assert stub.handle("Z0,401000,1") == "OK" and history.breakpoints == {0x401000}
    assert stub.handle("Z2,1000,8") == ""  # watchpoints are not served
    assert stub.handle("s") == "T05swbreak:;thread:1;"  # rip is at the breakpoint
    assert stub.handle("z0,401000,1") == "OK" and history.breakpoints == set()
    assert stub.handle("c") == "T05thread:1;"
    history.at_start = True
    assert stub.handle("bc") == "T05replaylog:begin;thread:1;"
    assert stub.handle("bs") == "T05replaylog:begin;thread:1;"
    history.stopped = Stop.ENDED
    assert stub.handle("c") == "T05replaylog:end;thread:1;"
    assert stub.handle("vCont?") == ""
    assert stub.handle("k") == "OK" and stub.closed


# -- one node's history (KVM) ----------------------------------------------------------------


def test_threads_are_listed_selected_and_named_in_stops() -> None:
    """qfThreadInfo lists every tid (hex), qC and stop replies name the thread on the
    vCPU, Hg selects whose registers g reads (0: the running one), T checks a thread is
    alive, and resuming goes back to the thread that stops."""
    history = FakeHistory()
    history.tids = [1000, 1001, 1002]
    stub = GdbStub(history)  # type: ignore[arg-type]
    assert stub.handle("qfThreadInfo") == "m3e8,3e9,3ea" and stub.handle("qsThreadInfo") == "l"
    assert stub.handle("qC") == "QC3e8"
    assert stub.handle("T3e9") == "OK" and stub.handle("T3eb") == "E01"
    rip = slice(16 * 16, 17 * 16)
    assert stub.handle("Hg3e9") == "OK"
    assert stub.handle("g")[rip] == (1001).to_bytes(8, "little").hex()
    assert stub.handle("Hg7") == "E01" and stub.handle("Hgxyz") == "E01"
    assert stub.handle("Hg0") == "OK"
    assert stub.handle("g")[rip] == (0x401000).to_bytes(8, "little").hex()
    assert stub.handle("Hg3ea") == "OK" and stub.handle("Hc-1") == "OK"
    assert stub.handle("c") == "T05thread:3e8;"
    assert stub.handle("g")[rip] == (0x401000).to_bytes(8, "little").hex()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("gdb") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "3s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


def _regs(history: NodeHistory) -> tuple[int, ...]:
    values = history.registers()
    return tuple(values[name] for name in GDB_REGISTERS)


@pytest.mark.kvm
def test_reverse_stepi_retraces_every_instruction_across_a_system_call(demo: Path) -> None:
    """From a breakpoint, 60 single steps forward (crossing at least one system call) and
    60 reverse steps back see the same registers at every instruction."""
    with DebugSession(demo) as session:
        rec = session.reconstructor
        assert rec is not None
        history = NodeHistory(rec, 2)
        history.breakpoints.add(rec.symbol_address(2, "now_ns") or 0)
        assert history.cont() is Stop.BREAKPOINT
        assert history.cont() is Stop.BREAKPOINT
        history.breakpoints.clear()
        trace, stops = [], []
        for _ in range(60):
            trace.append(_regs(history))
            stops.append(history.stepi())
        assert Stop.SYSCALL in stops and set(stops) <= {Stop.STEPPED, Stop.SYSCALL}, stops
        for index in reversed(range(60)):
            assert history.reverse_stepi()
            assert _regs(history) == trace[index], (index, history.position)


@pytest.mark.kvm
def test_reverse_continue_lands_on_each_earlier_hit_across_checkpoints(demo: Path) -> None:
    """Forward hits of a breakpoint (run natively with int3) and reverse-continue's hits
    (found by re-executing from checkpoints) are the same states in reverse order, also
    across a checkpoint; before the first hit the node is back at its entry."""
    with DebugSession(demo) as session:
        rec = session.reconstructor
        assert rec is not None
        first_checkpoint = session.reader.checkpoints[0].seq
        history = NodeHistory(rec, 1)
        entry = _regs(history)
        history.breakpoints.add(rec.symbol_address(1, "note_leader") or 0)
        hits = []
        while history.cont() is Stop.BREAKPOINT:
            hits.append((history.position.anchor, _regs(history)))
            if history.position.anchor > first_checkpoint and len(hits) >= 3:
                break
        assert len(hits) >= 3 and hits[-2][0] > 0, hits
        assert any(anchor < first_checkpoint for anchor, _ in hits[:-1]), (first_checkpoint,
                                                                            hits)
        for anchor, regs in reversed(hits[:-1]):
            assert history.reverse_cont()
            assert (history.position.anchor, _regs(history)) == (anchor, regs)
        assert not history.reverse_cont()
        assert _regs(history) == entry


# -- Debian's gdb against the server ---------------------------------------------------------


def _serve(demo: Path, node: int, program: Path) -> tuple[subprocess.Popen[str], int]:
    server = subprocess.Popen(
        [sys.executable, "-c", "from chaosreplay.cli import main; main()", "gdb", str(demo),
         "--node", str(node), "--port", "0", "--program", str(program)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"})  # a crash
        # then prints its Python stack on the server's output, which a failed test shows
    assert server.stdout is not None
    for line in server.stdout:
        found = re.search(r"target remote [\d.]+:(\d+)", line)
        if found:
            return server, int(found.group(1))
    server.wait(timeout=60)
    raise AssertionError(f"the server did not start (exit {server.returncode})")


@pytest.mark.kvm
@needs_gdb
def test_a_gdb_session_breaks_steps_and_runs_backward(demo: Path, tmp_path: Path) -> None:
    """gdb -batch: break at a function, continue to several hits printing variables;
    next then reverse-next (back into the line next left), three stepi and three
    reverse-stepi (back to the same pc);
    then reverse-continue to each hit again: the values printed going back are those
    printed going forward, and before the first hit gdb is told the history begins at
    the program's entry."""
    program = tmp_path / "raft"
    forward_hits = 6
    values = 'commit_index, last_index, $rdi, $sp, $pc'
    commands = ["break note_leader"]
    for _ in range(forward_hits):
        commands += ["continue", f'printf "FWD %lu %lu %lu %lx %lx\\n", {values}']
    commands += ['printf "POS %lx\\n", $pc', "next", 'printf "NEXT %lx\\n", $pc', "reverse-next",
                 'printf "BACK %lx\\n", $pc', "stepi", "stepi", "stepi", "reverse-stepi",
                 "reverse-stepi", "reverse-stepi", 'printf "BACK %lx\\n", $pc']
    for _ in range(forward_hits):
        commands += ["reverse-continue", f'printf "REV %lu %lu %lu %lx %lx\\n", {values}']
    commands += ["reverse-continue", 'printf "START %lx\\n", $pc', "kill"]
    server, port = _serve(demo, 1, program)
    args = [GDB or "gdb", "-batch", "-nx", str(program), "-ex", f"target remote 127.0.0.1:{port}"]
    for command in commands:
        args += ["-ex", command]
    try:
        result = subprocess.run(args, capture_output=True, text=True, timeout=600,
                                env={**os.environ, "LC_ALL": "C"})
    finally:
        server.wait(timeout=120)
    out = result.stdout + result.stderr
    lines = {tag: [line.split()[1:] for line in out.splitlines() if line.startswith(tag + " ")]
             for tag in ("FWD", "REV", "POS", "NEXT", "BACK", "START")}
    forward, reverse = lines["FWD"], lines["REV"]
    assert len(forward) == forward_hits and len(reverse) == forward_hits, out
    assert len({tuple(hit) for hit in forward}) > 1, out  # the hits are different states
    # From inside the last hit's call, the first reverse-continue is back at that hit.
    assert reverse == list(reversed(forward)), out
    (start,), (after_next,) = lines["POS"][0], lines["NEXT"][0]
    (back_from_next,), (back_from_stepi,) = lines["BACK"]
    # reverse-next returns into the line next left; three stepi undone land where they began.
    assert int(start, 16) <= int(back_from_next, 16) < int(after_next, 16), out
    assert back_from_stepi == back_from_next, out
    assert "No more reverse-execution history." in out, out
    entry = int(lines["START"][0][0], 16)
    assert entry == int(subprocess.run(["readelf", "-h", str(program)], capture_output=True,
                                       text=True).stdout.split("Entry point address:")[1]
                        .split()[0], 16), out
    assert server.returncode == 0, server.stdout.read() if server.stdout else ""


@pytest.mark.kvm
def test_gdb_command_refuses_a_missing_node(demo: Path) -> None:
    """A node the recording does not have: one line, exit 2."""
    result = CliRunner().invoke(main, ["gdb", str(demo), "--node", "7", "--port", "0"])
    assert result.exit_code == 2, result.output
    assert "node 7 does not exist" in result.output
    assert "Traceback" not in result.output
