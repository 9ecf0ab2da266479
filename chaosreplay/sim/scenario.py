"""Scenario files: TOML → a frozen Scenario with a default for every option.

A scenario names the node programs (in groups with a count), the seed, the virtual duration,
the network defaults and per-node overrides, the fault plan, checkpointing and per-node
memory. Every mistake gets a one-line ConfigError naming the file, the key path and the
problem; unknown keys get a "did you mean". `Scenario.to_dict()` is the canonical form the
run manifest stores and `Scenario.from_dict` reads it back. docs/scenarios.md documents every
key; a test keeps it and `documented_keys()` in step.

Times: `duration`, `checkpoint_interval` and fault ticks are ticks (1 ms); an integer means
ms, a string like "60s" / "500ms" / "2m" is converted. Keys ending in `_ns` are nanoseconds
(integer, or a duration string). Sizes are bytes (integer, or "64MiB"-style strings).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

from chaosreplay.errors import ConfigError
from chaosreplay.sim.faults.engine import FaultEngine, FaultPlan
from chaosreplay.sim.faults.random import RandomFaults
from chaosreplay.sim.network.fabric import LINK_PARAM_NAMES, LinkParams, NetworkFabric
from chaosreplay.sim.validation import (
    NS_PER_TICK,
    KeyPath,
    check_keys,
    expect_bool,
    expect_bytes_size,
    expect_int,
    expect_list,
    expect_node,
    expect_ns,
    expect_probability,
    expect_str,
    expect_table,
    expect_ticks,
)

DEMO_PROGRAM = "builtin:demo"  # the embedded Raft demo; the CLI resolves it to the binary
PAGE = 4096


@dataclass(frozen=True)
class NodeGroup:
    """Nodes running one program: `count` of them, with the same args and environment."""

    program: str
    count: int = 1
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # in the order written: the guest sees this order
    name: str = ""  # "" = the program's file name
    stderr_is_failure: bool = False  # triage counts a write to stderr as a failure

    @property
    def label(self) -> str:
        """The group's display name."""
        return self.name or PurePosixPath(self.program).name

    def program_path(self, base_dir: Path) -> Path:
        """The program file, a relative path taken from the scenario file's directory."""
        path = Path(self.program)
        return path if path.is_absolute() else base_dir / path


@dataclass(frozen=True)
class NodeSpec:
    """One node of the run: its 0-based index and what it runs."""

    index: int
    group: int
    name: str
    program: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class LinkOverride:
    """Link parameters that differ for one node (the others keep the network defaults)."""

    node: int
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class NetworkConfig:
    """Network-wide link parameters and per-node overrides."""

    defaults: LinkParams = field(default_factory=LinkParams)
    overrides: tuple[LinkOverride, ...] = ()

    def build_fabric(self, seed: int, node_count: int) -> NetworkFabric:
        """A NetworkFabric configured with these defaults and overrides."""
        fabric = NetworkFabric(seed, node_count, self.defaults)
        for override in self.overrides:
            fabric.set_link_params(override.node, **dict(override.params))
        return fabric


@dataclass(frozen=True)
class Scenario:
    """A whole run's configuration; every field has a default (a 3-node demo for 60 s)."""

    seed: int = 0
    duration: int = 60_000  # ticks
    checkpoint_interval: int = 1_000  # ticks; 0 = no periodic checkpoints
    memory_per_node: int = 64 << 20  # bytes of guest memory per node
    stop_on_first_bug: bool = True
    nodes: tuple[NodeGroup, ...] = (NodeGroup(DEMO_PROGRAM, count=3),)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    faults: FaultPlan = field(default_factory=FaultPlan)

    @property
    def node_count(self) -> int:
        """How many nodes the run has."""
        return sum(group.count for group in self.nodes)

    @property
    def duration_ns(self) -> int:
        """The virtual duration in nanoseconds."""
        return self.duration * NS_PER_TICK

    def node_specs(self) -> list[NodeSpec]:
        """Every node in index order: groups in file order, `count` nodes each."""
        specs = []
        for g, group in enumerate(self.nodes):
            for k in range(group.count):
                name = group.label if group.count == 1 else f"{group.label}-{k}"
                specs.append(NodeSpec(len(specs), g, name, group.program, group.args, group.env))
        return specs

    def build_fabric(self) -> NetworkFabric:
        """The run's NetworkFabric."""
        return self.network.build_fabric(self.seed, self.node_count)

    def build_fault_engine(self, fabric: NetworkFabric | None) -> FaultEngine:
        """The run's FaultEngine, random faults expanded for this seed and duration."""
        return FaultEngine.from_plan(self.faults, self.seed, self.node_count, self.duration,
                                     fabric)

    def with_seed(self, seed: int) -> Scenario:
        """The same scenario with another seed (for --seed and seed sweeps)."""
        return replace(self, seed=expect_int(seed, KeyPath("--seed"), minimum=0,
                                             maximum=2**64 - 1))

    def to_dict(self) -> dict[str, Any]:
        """The canonical, msgpack-ready form (all values normalised: ticks, ns, bytes)."""
        return {
            "seed": self.seed,
            "duration": self.duration,
            "checkpoint_interval": self.checkpoint_interval,
            "memory_per_node": self.memory_per_node,
            "stop_on_first_bug": self.stop_on_first_bug,
            "nodes": [
                {"program": g.program, "count": g.count, "args": list(g.args),
                 "env": dict(g.env), "name": g.name, **_stderr_rule(g)}
                for g in self.nodes
            ],
            "network": {
                **self.network.defaults.to_dict(),
                "overrides": [{"node": o.node, **dict(o.params)}
                              for o in self.network.overrides],
            },
            "faults": self.faults.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "scenario") -> Scenario:
        """Parse and check a scenario table (a TOML file's content or a `to_dict`)."""
        return parse_scenario(data, source)


_TOP_KEYS = [f.name for f in fields(Scenario)]
_GROUP_KEYS = [f.name for f in fields(NodeGroup)]


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; any problem is a one-line ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the scenario: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text ({exc.reason})") from exc
    return loads_scenario(text, source)


def loads_scenario(text: str, source: str = "scenario.toml") -> Scenario:
    """Parse scenario TOML text."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    return parse_scenario(data, source)


def parse_scenario(data: Mapping[str, Any], source: str = "scenario") -> Scenario:
    """Check every key of a scenario table and build the Scenario."""
    root = KeyPath(source)
    expect_table(data, root)
    check_keys(data, _TOP_KEYS, root)
    defaults = Scenario()
    nodes = (_parse_nodes(data["nodes"], root.key("nodes")) if "nodes" in data
             else defaults.nodes)
    node_count = sum(group.count for group in nodes)
    memory_at = root.key("memory_per_node")
    memory = expect_bytes_size(data.get("memory_per_node", defaults.memory_per_node), memory_at,
                               minimum=1 << 20)
    if memory % PAGE:
        memory_at.fail(f"expected a multiple of the {PAGE}-byte page size, got {memory}")
    network = (_parse_network(data["network"], root.key("network"), node_count)
               if "network" in data else defaults.network)
    faults = (FaultPlan.from_dict(data["faults"], root.key("faults"), node_count)
              if "faults" in data else defaults.faults)
    return Scenario(
        seed=expect_int(data.get("seed", defaults.seed), root.key("seed"), minimum=0,
                        maximum=2**64 - 1),
        duration=expect_ticks(data.get("duration", defaults.duration), root.key("duration"),
                              minimum=1),
        checkpoint_interval=expect_ticks(
            data.get("checkpoint_interval", defaults.checkpoint_interval),
            root.key("checkpoint_interval")),
        memory_per_node=memory,
        stop_on_first_bug=expect_bool(data.get("stop_on_first_bug", defaults.stop_on_first_bug),
                                      root.key("stop_on_first_bug")),
        nodes=nodes,
        network=network,
        faults=faults,
    )


def _parse_nodes(value: Any, at: KeyPath) -> tuple[NodeGroup, ...]:
    groups = expect_list(value, at)
    if not groups:
        at.fail("expected at least one [[nodes]] group")
    out = []
    for i, raw in enumerate(groups):
        g_at = at.index(i)
        table = expect_table(raw, g_at)
        check_keys(table, _GROUP_KEYS, g_at)
        if "program" not in table:
            g_at.key("program").fail("missing (the path of the node's static ELF program)")
        env_at = g_at.key("env")
        env = []
        for name, val in expect_table(table.get("env", {}), env_at).items():
            if not name or "=" in name or "\0" in name:
                env_at.key(name).fail("an environment variable name must be non-empty "
                                      "without '=' or NUL")
            env.append((name, expect_str(val, env_at.key(name))))
        args_at = g_at.key("args")
        out.append(NodeGroup(
            program=expect_str(table["program"], g_at.key("program"), nonempty=True),
            count=expect_int(table.get("count", 1), g_at.key("count"), minimum=1, maximum=1024),
            args=tuple(expect_str(a, args_at.index(j))
                       for j, a in enumerate(expect_list(table.get("args", []), args_at))),
            env=tuple(env),
            name=expect_str(table.get("name", ""), g_at.key("name")),
            stderr_is_failure=_parse_stderr_is_failure(table, g_at),
        ))
    return tuple(out)


# -- triage's key: "stderr is a failure" (kept apart for easy merging; read by
#    chaosreplay.triage.classify.stderr_is_failure from the manifest) --------------------------


def _parse_stderr_is_failure(table: dict[str, Any], at: KeyPath) -> bool:
    """A node group's `stderr_is_failure` (default false)."""
    return expect_bool(table.get("stderr_is_failure", False), at.key("stderr_is_failure"))


def _stderr_rule(group: NodeGroup) -> dict[str, Any]:
    """The key in the canonical form only when set, so other scenarios' digests stay."""
    return {"stderr_is_failure": True} if group.stderr_is_failure else {}


def _link_value(name: str, value: Any, at: KeyPath) -> Any:
    """One link parameter, checked and normalised."""
    if name.endswith("_ns"):
        return expect_ns(value, at)
    if name == "bandwidth_bps":
        return expect_int(value, at, minimum=0, what="integer of bits per second (0 = unlimited)")
    return expect_probability(value, at)


def _parse_network(value: Any, at: KeyPath, node_count: int) -> NetworkConfig:
    table = expect_table(value, at)
    check_keys(table, [*LINK_PARAM_NAMES, "overrides"], at)
    defaults = LinkParams(**{
        name: _link_value(name, table[name], at.key(name))
        for name in LINK_PARAM_NAMES if name in table
    })
    overrides = []
    seen: set[int] = set()
    o_at = at.key("overrides")
    for i, raw in enumerate(expect_list(table.get("overrides", []), o_at)):
        entry_at = o_at.index(i)
        entry = expect_table(raw, entry_at)
        check_keys(entry, ["node", *LINK_PARAM_NAMES], entry_at)
        if "node" not in entry:
            entry_at.key("node").fail("missing (the node these parameters apply to)")
        node = expect_node(entry["node"], entry_at.key("node"), node_count)
        if node in seen:
            entry_at.key("node").fail(f"node {node} already has an override above")
        seen.add(node)
        params = tuple(
            (name, _link_value(name, entry[name], entry_at.key(name)))
            for name in LINK_PARAM_NAMES if name in entry
        )
        overrides.append(LinkOverride(node, params))
    return NetworkConfig(defaults, tuple(overrides))


# -- the documented key list ----------------------------------------------------------------

# How nested configuration maps to keys: a field that is a table, an array of tables, or a
# table whose keys sit directly in the parent (NetworkConfig.defaults, LinkOverride.params).
_NESTED: dict[tuple[type, str], tuple[str, type]] = {
    (Scenario, "nodes"): ("array", NodeGroup),
    (Scenario, "network"): ("table", NetworkConfig),
    (Scenario, "faults"): ("table", FaultPlan),
    (NetworkConfig, "defaults"): ("inline", LinkParams),
    (NetworkConfig, "overrides"): ("array", LinkOverride),
    (LinkOverride, "params"): ("inline", LinkParams),
    (FaultPlan, "random"): ("table", RandomFaults),
}
_SCHEDULE_ENTRY_KEYS = ("kind", "at", "duration", "node")  # plus each kind's parameters


def documented_keys(cls: type = Scenario, prefix: str = "") -> list[str]:
    """Every key path a scenario file may use, derived from the dataclasses themselves."""
    keys = []
    for f in fields(cls):
        nested = _NESTED.get((cls, f.name))
        path = prefix + f.name
        if nested is None and (cls, f.name) == (FaultPlan, "schedule"):
            keys += [f"{path}[].{k}" for k in _SCHEDULE_ENTRY_KEYS]
        elif nested is None:
            keys.append(path)
        elif nested[0] == "inline":
            keys += documented_keys(nested[1], prefix)
        elif nested[0] == "array":
            keys += documented_keys(nested[1], f"{path}[].")
        else:
            keys += documented_keys(nested[1], f"{path}.")
    return keys
