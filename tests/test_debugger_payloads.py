"""Packet payloads: kept in the recording, decoded by a C type of the program's DWARF or a
Python function, a packet's send and delivery found from either end, and the TUI's packet
view (key o)."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from textual.pilot import Pilot
from textual.widgets import Static
from tui_helpers import debugger, drive, plain, press

from chaosreplay.cli import main
from chaosreplay.debugger.payloads import DecoderError
from chaosreplay.debugger.session import DebugSession
from chaosreplay.errors import ConfigError
from chaosreplay.events import EventKind
from chaosreplay.sim.scenario import loads_scenario
from chaosreplay.tui import make_app
from chaosreplay.tui.packet_screen import PacketScreen

MSG = struct.Struct("<IIHBBBBHQQ")  # struct msg up to commit_index (guest/src/raft.c)


def test_a_scenario_may_name_a_c_type_but_not_python() -> None:
    """packet_decoder in a scenario is a type name; a Python function (it runs code) is
    refused there with the key's path in the message."""
    assert loads_scenario('packet_decoder = "struct msg"').packet_decoder == "struct msg"
    with pytest.raises(ConfigError, match="packet_decoder: expected a C type name"):
        loads_scenario('packet_decoder = "evil.py:run"')


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("payloads") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "2s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


def _delivered(session: DebugSession, count: int = 20) -> list[Any]:
    events = session.reader.events(kinds=[EventKind.PACKET_DELIVERED.value])
    return [e for _, e in zip(range(count), events, strict=False)]


@pytest.mark.kvm
def test_payloads_are_recorded_and_decoded_as_the_programs_struct(demo: Path) -> None:
    """Delivered packets carry their first 256 bytes; decoded as `struct msg` their fields
    are what the C layout says (checked with struct.unpack), the sender field is the
    network's source, and the send and the delivery point at each other."""
    with DebugSession(demo) as session:
        session.set_decoder("struct msg")
        delivered = _delivered(session)
        assert delivered
        for event in delivered:
            payload = event.fields["payload"]
            assert len(payload) == min(256, event.fields["size"])
            view = session.packet(event.seq)
            assert view is not None and view.delivered_seq == event.seq
            assert view.sent_seq is not None and view.sent_seq < event.seq
            sent = session.event(view.sent_seq)
            assert sent.kind == EventKind.PACKET_SENT
            assert sent.fields["packet_id"] == event.fields["packet_id"]
            assert sent.fields["payload"] == payload  # no corruption in the demo's faults
            back = session.packet(view.sent_seq)
            assert back is not None and back.delivered_seq == event.seq
            fields = dict(view.fields)  # type: ignore[arg-type]
            magic, _, length, kind, sender, is_leader, _, count, term, commit = MSG.unpack_from(
                payload)
            assert (fields["magic"], fields["length"], fields["count"], fields["term"],
                    fields["commit_index"]) == (
                str(magic), str(length), str(count), str(term), str(commit)), fields
            # uint8_t prints as gdb prints it: the number, then the character.
            assert [fields[k].split()[0] for k in ("type", "sender", "is_leader")] == [
                str(kind), str(sender), str(is_leader)], fields
            assert sender == event.fields["src"]
        assert session.packet(0) is None  # run.start is not about a packet


@pytest.mark.kvm
def test_python_decoders_and_their_failures(demo: Path, tmp_path: Path) -> None:
    """FILE.py:FUNCTION decodes with the user's function; an exception in it is shown in
    place of the fields; a missing file, function or type is a DecoderError."""
    source = tmp_path / "decode.py"
    source.write_text("import struct\n"
                      "def msg(payload, src, dst):\n"
                      "    return {'term': struct.unpack_from('<Q', payload, 16)[0], 'src': src}\n"
                      "def broken(payload, src, dst):\n"
                      "    raise ValueError('nope')\n")
    with DebugSession(demo) as session:
        event = _delivered(session, 1)[0]
        session.set_decoder(f"{source}:msg")
        view = session.packet(event.seq)
        assert view is not None
        term = struct.unpack_from("<Q", event.fields["payload"], 16)[0]
        assert view.fields == [("term", str(term)), ("src", str(event.fields["src"]))]
        session.set_decoder(f"{source}:broken")
        view = session.packet(event.seq)
        assert view is not None and view.fields == "decoder failed: ValueError: nope"
        for spec, problem in ((f"{tmp_path}/missing.py:msg", "no such file"),
                              (f"{source}:absent", "has no function absent"),
                              ("struct no_such_thing", "no node's program defines")):
            with pytest.raises(DecoderError, match=problem):
                session.set_decoder(spec)


@pytest.mark.kvm
def test_debug_refuses_a_bad_decoder_in_one_line(demo: Path) -> None:
    result = CliRunner().invoke(main, ["debug", str(demo), "--decoder", "struct nope"])
    assert result.exit_code == 2 and "no node's program defines" in result.output
    assert "Traceback" not in result.output


@pytest.mark.kvm
def test_packet_key_shows_fields_and_goes_to_the_send(demo: Path) -> None:
    """o on a delivery opens the packet: its decoded fields and its payload in hex; s
    closes it on the packet's send."""
    with DebugSession(demo) as session:
        event = _delivered(session, 1)[0]
        session.set_decoder("struct msg")
        view = session.packet(event.seq)
        assert view is not None and view.sent_seq is not None
    term = struct.unpack_from("<Q", event.fields["payload"], 16)[0]
    app_session = DebugSession(demo)
    app_session.set_decoder("struct msg")

    async def script(pilot: Pilot[Any]) -> None:
        screen = debugger(pilot.app)
        await press(pilot, "g", *f"#{event.seq}", "enter", "o")
        shown = pilot.app.screen
        assert isinstance(shown, PacketScreen), shown
        fields = plain(shown.query_one("#packet-fields", Static).content)
        assert f"term = {term}" in fields and f"sent #{view.sent_seq}" in fields, fields
        dump = plain(shown.query_one("#packet-dump", Static).content)
        assert dump.split()[1:5] == [f"{b:02x}" for b in event.fields["payload"][:4]], dump
        await press(pilot, "s")
        assert pilot.app.screen is screen and screen.cursor == view.sent_seq

    try:
        drive(make_app(app_session), script)
    finally:
        app_session.close()
