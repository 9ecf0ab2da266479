"""Watch expressions: parsing, evaluation against a node's memory, `state --watch`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaosreplay.cli import main
from chaosreplay.debugger.session import DebugSession
from chaosreplay.debugger.watch import Node, WatchError, parse


def test_expressions_parse_into_trees() -> None:
    """Postfix binds tighter than unary, `*` tighter than `+`, indices nest."""
    assert parse("current_term") == Node("name", ("current_term",))
    tree = parse("log_[commit_index - 1].term")
    assert tree.op == "member" and tree.args[1] == "term"
    index = tree.args[0]
    assert isinstance(index, Node) and index.op == "index"
    assert index.args[1] == Node("-", (Node("name", ("commit_index",)), Node("int", (1,))))
    assert parse("*m->log").op == "deref"
    assert parse("a + 2 * b") == Node("+", (Node("name", ("a",)), Node("*", (
        Node("int", (2,)), Node("name", ("b",))))))
    assert parse("peers[2].next_index").args[0] == Node("index", (Node("name", ("peers",)),
                                                                    Node("int", (2,))))
    for bad in ("", "log_[", "a..b", "a[1]]", "&x", "1 +", "a->3"):
        with pytest.raises(WatchError):
            parse(bad)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("watch") / "demo.ccr"
    result = CliRunner().invoke(main, ["record", "-o", str(path), "--duration", "2s",
                                       "--no-progress"])
    assert path.exists(), result.output
    return path


@pytest.mark.kvm
def test_state_watch_reads_what_memory_holds(demo: Path) -> None:
    """`state --watch` in JSON: each node's watches equal the bytes at the variables'
    addresses (an index that is itself a variable included), and a name that is not in
    scope is a value saying so, not an error."""
    with DebugSession(demo) as session:
        seq = session.event_count - 1
        result = CliRunner().invoke(main, [
            "state", str(demo), "--event", str(seq), "--json", "--watch", "current_term",
            "--watch", "log_[last_index].term", "--watch", "next_index[1] + 1",
            "--watch", "no_such_name"])
        assert result.exit_code == 0, result.output
        nodes = json.loads(result.output)["nodes"]
        for node in nodes:
            watches = {w["expression"]: w for w in node["watches"]}

            def u64(where: int | str, n: int = node["index"]) -> int:
                _, data = session.memory(n, where, 8, seq=seq)
                assert data is not None
                return int.from_bytes(data, "little")

            assert watches["current_term"] == {"expression": "current_term",
                                               "type": "uint64_t",
                                               "value": str(u64("current_term"))}
            log = session.reconstructor.symbol_address(node["index"], "log_")
            assert log is not None
            entry = log + 24 * u64("last_index")  # struct entry: term first, 24 bytes
            assert watches["log_[last_index].term"]["value"] == str(u64(entry))
            next_index = session.reconstructor.symbol_address(node["index"], "next_index")
            assert next_index is not None
            assert watches["next_index[1] + 1"]["value"] == str(u64(next_index + 8) + 1)
            assert "no symbol 'no_such_name'" in watches["no_such_name"]["value"]
        assert any(int(n["watches"][0]["value"]) > 0 for n in nodes), "terms were won"


@pytest.mark.kvm
def test_state_watch_syntax_error_is_one_line(demo: Path) -> None:
    result = CliRunner().invoke(main, ["state", str(demo), "--event", "0", "--watch", "log_["])
    assert result.exit_code == 2
    assert result.output.strip() == "chaosreplay: error: watch 'log_[': expected more at the end"
