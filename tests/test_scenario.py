"""Scenario files: defaults, units, every error naming its key, round-trip, docs in step."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgpack
import pytest

from chaosreplay.errors import ConfigError
from chaosreplay.sim.faults.model import KIND_SPECS, FaultKind
from chaosreplay.sim.network.fabric import LinkParams
from chaosreplay.sim.scenario import (
    DEMO_PROGRAM,
    NodeGroup,
    Scenario,
    documented_keys,
    load_scenario,
    loads_scenario,
)

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "scenarios.md").read_text()
EXAMPLES = sorted((ROOT / "examples").glob("*.toml"))


def doc_section(title: str) -> str:
    """The text of one '## title' section of docs/scenarios.md."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", DOC, re.M | re.S)
    assert match, f"docs/scenarios.md has no '## {title}' section"
    return match.group(1)


def doc_example() -> str:
    match = re.search(r"```toml\n(.*?)```", doc_section("Example"), re.S)
    assert match, "the Example section has no ```toml block"
    return match.group(1)


def error_of(text: str) -> str:
    with pytest.raises(ConfigError) as info:
        loads_scenario(text, "scenario.toml")
    message = str(info.value)
    assert "\n" not in message, message
    return message


def test_empty_file_is_the_default_demo_scenario() -> None:
    """Every option has a default: an empty file is a 3-node demo for 60 s, no faults."""
    scenario = loads_scenario("")
    assert scenario == Scenario()
    assert (scenario.seed, scenario.duration, scenario.checkpoint_interval) == (0, 60_000, 1000)
    assert scenario.duration_ns == 60 * 10**9
    assert scenario.memory_per_node == 64 << 20 and scenario.stop_on_first_bug
    assert scenario.nodes == (NodeGroup(DEMO_PROGRAM, count=3),) and scenario.node_count == 3
    assert scenario.network.defaults == LinkParams() and scenario.network.overrides == ()
    assert scenario.faults.schedule == () and scenario.faults.random is None
    assert scenario.faults.wait_for_setup


@pytest.mark.parametrize(("written", "ticks"), [
    ('"60s"', 60_000), ('"500ms"', 500), ('"2m"', 120_000), ("250", 250), ('"1.5s"', 1500),
    ('"1h"', 3_600_000), ('"3000000us"', 3000),
])
def test_duration_formats(written: str, ticks: int) -> None:
    """duration takes "60s", "500ms", "2m" or an integer of ms."""
    assert loads_scenario(f"duration = {written}").duration == ticks


def test_docs_example_parses_with_the_documented_meaning() -> None:
    """The example in docs/scenarios.md is a valid scenario and means what it says."""
    scenario = loads_scenario(doc_example(), "docs example")
    assert scenario.seed == 42 and scenario.duration == 120_000
    assert scenario.checkpoint_interval == 500 and scenario.memory_per_node == 32 << 20
    assert [spec.name for spec in scenario.node_specs()] == [f"kv-{i}" for i in range(5)]
    assert scenario.nodes[0].env == (("LOG_LEVEL", "info"),)
    fabric = scenario.build_fabric()
    assert fabric.link_params(0, 1).latency_ns == 2_000_000
    assert fabric.link_params(0, 4).latency_ns == 40_000_000
    assert fabric.link_params(0, 4).loss == 0.01
    assert [f.kind.value for f in scenario.faults.schedule] == ["partition", "kill", "clock_jump"]
    assert scenario.faults.schedule[0].at == 5000 and scenario.faults.schedule[1].duration == 3000
    random = scenario.faults.random
    assert random is not None and random.start == 40_000
    assert random.range_of(FaultKind.LOSS, "probability") == (0.1, 0.4)
    engine = scenario.build_fault_engine(fabric)
    assert len(engine.plan()) > 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_files_parse_and_round_trip(path: Path) -> None:
    """Each examples/*.toml loads, and its canonical dict reads back to an equal Scenario."""
    import re

    for program in re.findall(r'^program = "(/[^"]+)"', path.read_text(), re.M):
        if not Path(program).exists():  # a root = "host" example of a server not installed
            pytest.skip(f"{program} is not installed (tests/install-tools.sh installs it)")
    scenario = load_scenario(path)
    data = msgpack.unpackb(msgpack.packb(scenario.to_dict()))
    assert Scenario.from_dict(data) == scenario
    assert Scenario.from_dict(data).to_dict() == scenario.to_dict()
    assert scenario.faults.schedule or scenario.faults.random, "examples should show faults"


def test_examples_directory_has_two_scenarios() -> None:
    assert len(EXAMPLES) >= 2, EXAMPLES


def test_round_trip_of_the_docs_example_and_defaults() -> None:
    """to_dict is canonical: from_dict(to_dict(s)) == s, through msgpack."""
    for scenario in (Scenario(), loads_scenario(doc_example())):
        data = msgpack.unpackb(msgpack.packb(scenario.to_dict()))
        assert Scenario.from_dict(data) == scenario


def test_docs_key_table_matches_the_dataclasses() -> None:
    """The Keys table lists exactly the keys the dataclasses define, once each, in order."""
    listed = re.findall(r"^\| `([^`]+)` \|", doc_section("Keys"), re.M)
    assert listed == documented_keys()


def test_docs_fault_kind_table_matches_the_kind_specs() -> None:
    """The fault-kind table names every kind, its node/duration rule and its parameters."""
    rows = re.findall(r"^\| `([a-z_]+)` \| ([^|]+) \| ([^|]+) \| ([^|]+) \|",
                      doc_section("Fault kinds"), re.M)
    assert [row[0] for row in rows] == [kind.value for kind in FaultKind]
    for name, node, duration, params in rows:
        spec = KIND_SPECS[FaultKind(name)]
        assert node.strip() == {"none": "—"}.get(spec.node, spec.node), name
        assert duration.strip() == spec.duration, name
        documented = re.findall(r"`([a-z_]+)`", params)
        assert documented == [p.name for p in spec.params], name


def test_with_seed_and_node_specs() -> None:
    """Groups number nodes in file order; with_seed changes only the seed."""
    scenario = loads_scenario(
        '[[nodes]]\nprogram = "a"\n[[nodes]]\nprogram = "bin/b"\ncount = 2\nargs = ["-x"]\n')
    specs = scenario.node_specs()
    assert [(s.index, s.group, s.name, s.args) for s in specs] == [
        (0, 0, "a", ()), (1, 1, "b-0", ("-x",)), (2, 1, "b-1", ("-x",))]
    assert scenario.nodes[1].program_path(Path("/s")) == Path("/s/bin/b")
    assert scenario.with_seed(9).seed == 9 and scenario.with_seed(9).nodes == scenario.nodes
    with pytest.raises(ConfigError, match="--seed"):
        scenario.with_seed(-1)


ERRORS: list[tuple[str, str]] = [
    ("sead = 1", 'scenario.toml: sead: unknown key (did you mean "seed"?)'),
    ("seed = -1", "scenario.toml: seed: expected an integer >= 0, got -1"),
    ('seed = "x"', 'scenario.toml: seed: expected an integer >= 0, got "x"'),
    ('duration = "soon"', 'scenario.toml: duration: expected a non-negative integer tick or a '
                          'duration like "2s", got "soon"'),
    ('duration = "1us"', "scenario.toml: duration: expected a whole number of ticks"),
    ("duration = 0", "scenario.toml: duration: expected a >= 1 integer tick, got 0"),
    ("duration = true", "scenario.toml: duration: expected a >= 1 integer tick, got true"),
    ("checkpoint_interval = -5", "scenario.toml: checkpoint_interval: expected a non-negative"),
    ('memory_per_node = "1KiB"', "scenario.toml: memory_per_node: expected at least 2097152"),
    ('memory_per_node = "3MiB"', "scenario.toml: memory_per_node: expected a multiple of 2 MiB"),
    ('memory_per_node = "20GiB"', "scenario.toml: memory_per_node: expected at most 16 GiB"),
    ("duration = 18446744073709551616", "scenario.toml: duration: expected at most"),
    ('duration = "9999999999h"', "scenario.toml: duration: expected at most"),
    ("checkpoint_interval = 18446744073709551616",
     "scenario.toml: checkpoint_interval: expected at most"),
    ("x = " + "[" * 5000 + "]" * 5000, "scenario.toml: arrays or tables nested 5000 deep"),
    ('[[nodes]]\nprogram = "p"\nexpect_exit = [256]',
     "scenario.toml: nodes[0].expect_exit[0]: expected an exit status <= 255"),
    ('[[nodes]]\nprogram = "p"\nexpect_exit = ["SIGFOO"]',
     "scenario.toml: nodes[0].expect_exit[0]: expected an exit status 0..255 or a signal"),
    ('[[nodes]]\nprogram = "p"\nargs = ["' + "a" * 300_000 + '"]',
     "scenario.toml: nodes[0].args: an argument or variable of 300,000 bytes is longer"),
    ('[[nodes]]\nprogram = "p"\nargs = [' + ", ".join(['"' + "a" * 60_000 + '"'] * 3) + "]",
     "scenario.toml: nodes[0].args: arguments and environment take"),
    ('stop_on_first_bug = "yes"', 'scenario.toml: stop_on_first_bug: expected true or false'),
    ("nodes = []", "scenario.toml: nodes: expected at least one [[nodes]] group"),
    ('nodes = "a"', 'scenario.toml: nodes: expected an array, got "a"'),
    ("[[nodes]]\ncount = 2", "scenario.toml: nodes[0].program: missing"),
    ('[[nodes]]\nprogram = ""', "scenario.toml: nodes[0].program: expected a non-empty string"),
    ('[[nodes]]\nprogram = "a"\n[[nodes]]\nprogram = "b"\ncount = 0',
     "scenario.toml: nodes[1].count: expected an integer >= 1, got 0"),
    ('[[nodes]]\nprogram = "a"\nargs = ["x", 3]', "scenario.toml: nodes[0].args[1]: expected a "
                                                  "string, got 3"),
    ('[[nodes]]\nprogram = "a"\nenv = { A = 1 }', "scenario.toml: nodes[0].env.A: expected a "
                                                  "string, got 1"),
    ('[[nodes]]\nprogram = "a"\nenv = { "A=B" = "1" }', "scenario.toml: nodes[0].env.A=B: an "
                                                        "environment variable name"),
    ('[[nodes]]\nprogram = "a"\nargv = []', 'scenario.toml: nodes[0].argv: unknown key (did you '
                                            'mean "args"?)'),
    ("[network]\nlos = 0.1", 'scenario.toml: network.los: unknown key (did you mean "loss"?)'),
    ("[network]\nloss = 1.5", "scenario.toml: network.loss: expected a probability between 0 "
                              "and 1, got 1.5"),
    ('[network]\nlatency_ns = "fast"', 'scenario.toml: network.latency_ns: expected nanoseconds '
                                       'or a duration like "2ms", got "fast"'),
    ("[network]\nbandwidth_bps = -1", "scenario.toml: network.bandwidth_bps: expected an integer"),
    ('network = "wan"', 'scenario.toml: network: expected a table, got "wan"'),
    ('[network.tcp]\nkeepalive_time_ns = "1500ms"', "scenario.toml: network.tcp."
     "keepalive_time_ns: expected a whole number of seconds from 1s to 32767s"),
    ('[network.tcp]\nkeepalive_intvl_ns = "0s"', "scenario.toml: network.tcp."
     "keepalive_intvl_ns: expected a whole number of seconds"),
    ("[network.tcp]\nkeepalive_probes = 0", "scenario.toml: network.tcp.keepalive_probes: "
                                            "expected an integer >= 1"),
    ("[[network.overrides]]\nloss = 0.1", "scenario.toml: network.overrides[0].node: missing"),
    ("[[network.overrides]]\nnode = 3", "scenario.toml: network.overrides[0].node: node 3 does "
                                        "not exist (nodes are 0..2)"),
    ("[[network.overrides]]\nnode = 1\n[[network.overrides]]\nnode = 1",
     "scenario.toml: network.overrides[1].node: node 1 already has an override"),
    ("[[network.overrides]]\nnode = 0\nduplicat = 0.1",
     'scenario.toml: network.overrides[0].duplicat: unknown key (did you mean "duplicate"?)'),
    ("[faults]\nwait_for_setup = 1", "scenario.toml: faults.wait_for_setup: expected true or "
                                     "false, got 1"),
    ('[[faults.schedule]]\nkind = "kill"\nnode = 3',
     "scenario.toml: faults.schedule[0].node: node 3 does not exist (nodes are 0..2)"),
    ('[[faults.schedule]]\nkind = "kill"\nnode = 0\nat = "soon"',
     'scenario.toml: faults.schedule[0].at: expected a non-negative integer tick'),
    ('[faults.random]\nrates = { partion = 1 }',
     'scenario.toml: faults.random.rates.partion: unknown fault kind "partion" (did you mean '
     '"partition"?)'),
    ("seed = ", "scenario.toml: invalid TOML:"),
]


@pytest.mark.parametrize(("text", "expected"), ERRORS, ids=[e[1][:60] for e in ERRORS])
def test_every_error_names_the_key_and_the_problem(text: str, expected: str) -> None:
    """Each invalid input gets one line naming the file, the key path and the problem."""
    message = error_of(text)
    assert message.startswith(expected), message


def test_node_count_from_groups_bounds_faults_and_overrides() -> None:
    """Node indices in faults and overrides are checked against the groups' total count."""
    text = ('[[nodes]]\nprogram = "a"\ncount = 5\n[[network.overrides]]\nnode = 4\n'
            '[[faults.schedule]]\nkind = "partition"\nsides = [[0, 1], [4]]\n')
    scenario = loads_scenario(text)
    assert scenario.node_count == 5 and scenario.network.overrides[0].node == 4


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    """A missing or non-UTF-8 file is a one-line ConfigError naming the file."""
    with pytest.raises(ConfigError, match="cannot read the scenario"):
        load_scenario(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"seed = 1\n\xff\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: not UTF-8"):
        load_scenario(bad)


def test_to_dict_is_plain_data() -> None:
    """The canonical dict holds only msgpack-native types (no tuples, enums or dataclasses)."""
    data = loads_scenario(doc_example()).to_dict()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            assert all(type(k) is str for k in value), value
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        else:
            assert type(value) in (int, float, str, bool), (type(value), value)

    walk(data)


def test_default_node_names_follow_the_docs() -> None:
    """The demo's nodes are raft-0.. (not builtin:demo-0); a group of one is its name."""
    assert [s.name for s in Scenario().node_specs()] == ["raft-0", "raft-1", "raft-2"]
    scenario = loads_scenario('[[nodes]]\nprogram = "bin/kv"\n[[nodes]]\nprogram = "bin/kv"\n'
                              'count = 2\nname = "db"\n')
    assert [s.name for s in scenario.node_specs()] == ["kv", "db-0", "db-1"]


def test_expect_exit_parses_statuses_and_signals_and_round_trips() -> None:
    """expect_exit: statuses and signal names; [0] by default; kept in to_dict."""
    scenario = loads_scenario('[[nodes]]\nprogram = "p"\nexpect_exit = [0, 3, "SIGTERM"]\n'
                              '[[nodes]]\nprogram = "q"\n')
    first, second = scenario.node_specs()
    assert first.expect_exit == (0, 3, "SIGTERM") and second.expect_exit == (0,)
    assert first.expects_exit(3) and not first.expects_exit(2)
    assert first.expects_signal(15) and not first.expects_signal(11)
    assert Scenario.from_dict(scenario.to_dict()) == scenario


def test_random_faults_over_a_huge_duration_are_refused_before_expansion() -> None:
    """Rates over ~292 years would expand billions of faults up front: one clear error,
    for the file's duration and for a --duration override alike."""
    rates = "[faults.random.rates]\nloss = 1.0\n"
    with pytest.raises(ConfigError, match=r"faults\.random\.rates: random fault rates over"):
        loads_scenario(f"duration = 9223372036854\n{rates}")
    scenario = loads_scenario(f'duration = "60s"\n{rates}')
    with pytest.raises(ConfigError, match=r"^--duration: random fault rates over"):
        scenario.with_duration(9_223_372_036_854)
    assert scenario.with_duration(120_000).duration == 120_000
    with pytest.raises(ConfigError, match=r"^--duration: expected at most"):
        scenario.with_duration(2**64)


def test_packet_payload_bytes_is_checked_and_old_manifests_keep_none() -> None:
    """packet_payload_bytes takes sizes from 0 to the largest datagram and reaches the
    fabric; a manifest written before the key existed means no payloads (so its replay
    produces the events it recorded)."""
    from chaosreplay.runs.manifest_check import check_manifest

    assert Scenario().build_fabric().payload_bytes == 256
    assert loads_scenario('packet_payload_bytes = "1KiB"').build_fabric().payload_bytes == 1024
    assert loads_scenario("packet_payload_bytes = 0").packet_payload_bytes == 0
    with pytest.raises(ConfigError, match="packet_payload_bytes: expected at most 65536"):
        loads_scenario("packet_payload_bytes = 65537")
    from chaosreplay.runs.record_replay import RunOptions, build_manifest
    from chaosreplay.sim.programs import resolve_images

    scenario = Scenario()
    manifest = build_manifest(scenario, resolve_images(scenario, ROOT), RunOptions())
    assert check_manifest(manifest, "new.ccr").packet_payload_bytes == 256
    del manifest["scenario"]["packet_payload_bytes"]
    assert check_manifest(manifest, "old.ccr").packet_payload_bytes == 0


def test_vdso_is_on_for_scenarios_and_off_for_manifests_from_before_it() -> None:
    """A scenario gives its programs a vDSO unless it says `vdso = false`; a manifest
    written before the key existed ran without one, and replays so."""
    from chaosreplay.runs.manifest_check import check_manifest
    from chaosreplay.runs.record_replay import RunOptions, build_manifest
    from chaosreplay.sim.programs import resolve_images

    assert Scenario().vdso and loads_scenario("").vdso
    assert not loads_scenario("vdso = false").vdso
    assert "vdso" not in loads_scenario("vdso = false").to_dict()  # the legacy form
    with pytest.raises(ConfigError, match="vdso: expected true or false"):
        loads_scenario('vdso = "yes"')
    scenario = Scenario()
    manifest = build_manifest(scenario, resolve_images(scenario, ROOT), RunOptions())
    assert manifest["scenario"]["vdso"] is True
    assert check_manifest(manifest, "new.ccr").vdso
    del manifest["scenario"]["vdso"]
    assert not check_manifest(manifest, "old.ccr").vdso


def test_keepalive_defaults_reach_the_kernels_tcp_config() -> None:
    """network.tcp's keepalive keys become what a socket with SO_KEEPALIVE and none of the
    TCP_KEEP* options uses; unset, they are Linux's sysctl defaults (7200 s, 75 s, 9)."""
    plain = Scenario.from_dict({}).network.tcp.config()
    assert (plain.keepalive_time_ns, plain.keepalive_intvl_ns, plain.keepalive_probes) == (
        7200 * 10**9, 75 * 10**9, 9)
    sc = Scenario.from_dict({"network": {"tcp": {"keepalive_time_ns": "3s",
                                                 "keepalive_intvl_ns": "1s",
                                                 "keepalive_probes": 2}}})
    config = sc.network.tcp.config()
    assert (config.keepalive_time_ns, config.keepalive_intvl_ns, config.keepalive_probes) == (
        3 * 10**9, 10**9, 2)
    assert Scenario.from_dict(sc.to_dict()) == sc
