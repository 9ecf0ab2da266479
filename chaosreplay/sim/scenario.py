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

import functools
import hashlib
import re
import tomllib
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path, PurePosixPath
from typing import Any

from chaosreplay.errors import ConfigError
from chaosreplay.kernel.fs.install import DiskEntry
from chaosreplay.kernel.fs.root_layer import tree_digest
from chaosreplay.kernel.loader import exec_arguments_problem
from chaosreplay.kernel.net.tcp import TcpConfig
from chaosreplay.kernel.scheduler import POLICIES, SchedulerConfig
from chaosreplay.kernel.syscalls.sdk import MAX_DATAGRAM  # cr_send's limit
from chaosreplay.sim.disk_files import (
    FILE_KEYS,
    MAX_DISK_PATHS,
    MAX_FILES_BYTES,
    files_bytes,
    files_to_dict,
    parse_files,
)
from chaosreplay.sim.faults.engine import FaultEngine, FaultPlan
from chaosreplay.sim.faults.random import RandomFaults
from chaosreplay.sim.host_root import host_closure
from chaosreplay.sim.network.fabric import LINK_PARAM_NAMES, LinkParams, NetworkFabric
from chaosreplay.sim.root_tree import read_dir_root, read_tar_root
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
    show,
)

DEMO_PROGRAM = "builtin:demo"  # the embedded Raft demo; the CLI resolves it to the binary
DEMO_NAME = "raft"  # the demo binary's file name, and so its nodes' default name
KV_PROGRAM = "builtin:kv"  # the embedded replicated key-value store (docs/demo.md)
BUILTIN_PROGRAMS = {DEMO_PROGRAM: DEMO_NAME, KV_PROGRAM: "kvstore"}
"""The built-in programs, each with its binary's file name (its nodes' default name)."""
MEMORY_ALIGN = 2 << 20  # guest RAM is one memslot of 2 MiB pages
MEMORY_MAX = 16 << 30
MAX_RANDOM_ARRIVALS = 1_000_000  # expected random fault arrivals; each is drawn up front
MAX_TOML_NESTING = 64  # arrays and tables inside one another; tomllib recurses per level
PAGE = 4096
ExpectedExit = int | str  # an exit status 0..255, or a signal name ("SIGTERM")


@dataclass(frozen=True)
class NodeGroup:
    """Nodes running one program: `count` of them, with the same args and environment."""

    program: str
    count: int = 1
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()  # in the order written: the guest sees this order
    name: str = ""  # "" = the program's file name
    expect_exit: tuple[ExpectedExit, ...] = (0,)  # how a node may end; running on is fine
    stderr_is_failure: bool = False  # triage counts a write to stderr as a failure
    files: tuple[DiskEntry, ...] = ()  # put on each node's disk before it starts
    root: tuple[DiskEntry, ...] = ()  # the read-only root under each node's disk, by path

    @functools.cached_property  # hashing a root's bytes takes a while; the group is frozen
    def root_digest(self) -> str:
        """The SHA-256 (hex) naming the group's root by content ("" without one)."""
        return tree_digest(self.root) if self.root else ""

    @property
    def label(self) -> str:
        """The group's display name."""
        if self.name:
            return self.name
        return BUILTIN_PROGRAMS.get(self.program) or PurePosixPath(self.program).name

    def program_path(self, base_dir: Path) -> Path:
        """The program file, a relative path taken from the scenario file's directory."""
        path = Path(self.program)
        return path if path.is_absolute() else base_dir / path


DURABILITIES = ("posix", "journal")


@dataclass(frozen=True)
class DiskSettings:
    """How every node's disk keeps names across a crash (kernel/fs/disk.py)."""

    durability: str = "posix"


@dataclass(frozen=True)
class NodeSpec:
    """One node of the run: its 0-based index and what it runs."""

    index: int
    group: int
    name: str
    program: str
    args: tuple[str, ...]
    env: tuple[tuple[str, str], ...]
    expect_exit: tuple[ExpectedExit, ...] = (0,)

    def expects_exit(self, code: int) -> bool:
        """Whether exiting with this status is an expected end for this node."""
        return code in self.expect_exit

    def expects_signal(self, signo: int) -> bool:
        """Whether dying of this signal is an expected end for this node."""
        return signal_name(signo) in self.expect_exit


def signal_name(signo: int) -> str:
    """"SIGSEGV" for 11: Linux x86-64 numbering (the guest's, whatever the host)."""
    return _SIGNAL_NAMES.get(signo, f"signal {signo}")


# Linux x86-64 signal numbers, written out: the host's signal module need not agree.
_SIGNAL_NAMES = {
    1: "SIGHUP", 2: "SIGINT", 3: "SIGQUIT", 4: "SIGILL", 5: "SIGTRAP", 6: "SIGABRT",
    7: "SIGBUS", 8: "SIGFPE", 9: "SIGKILL", 10: "SIGUSR1", 11: "SIGSEGV", 12: "SIGUSR2",
    13: "SIGPIPE", 14: "SIGALRM", 15: "SIGTERM", 16: "SIGSTKFLT", 17: "SIGCHLD",
    18: "SIGCONT", 19: "SIGSTOP", 20: "SIGTSTP", 21: "SIGTTIN", 22: "SIGTTOU", 23: "SIGURG",
    24: "SIGXCPU", 25: "SIGXFSZ", 26: "SIGVTALRM", 27: "SIGPROF", 28: "SIGWINCH", 29: "SIGIO",
    30: "SIGPWR", 31: "SIGSYS",
}


@dataclass(frozen=True)
class LinkOverride:
    """Link parameters that differ for one node (the others keep the network defaults)."""

    node: int
    params: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class TcpSettings:
    """The nodes' TCP timers and retry limits (Linux's defaults; TIME_WAIT shortened)."""

    syn_retries: int = TcpConfig.syn_retries
    synack_retries: int = TcpConfig.synack_retries
    retries2: int = TcpConfig.retries2
    rto_initial_ns: int = TcpConfig.rto_initial_ns
    rto_min_ns: int = TcpConfig.rto_min_ns
    rto_max_ns: int = TcpConfig.rto_max_ns
    time_wait_ns: int = TcpConfig.time_wait_ns
    keepalive_time_ns: int = TcpConfig.keepalive_time_ns
    keepalive_intvl_ns: int = TcpConfig.keepalive_intvl_ns
    keepalive_probes: int = TcpConfig.keepalive_probes

    def config(self) -> TcpConfig:
        """The kernel's TcpConfig with these settings."""
        return TcpConfig(**asdict(self))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


TCP_COUNTS = ("syn_retries", "synack_retries", "retries2")
# Keepalive defaults take what TCP_KEEPIDLE/_KEEPINTVL (1..32767 s) and _KEEPCNT take.
KEEPALIVE_TIMES = ("keepalive_time_ns", "keepalive_intvl_ns")
KEEPALIVE_SECONDS_MAX, KEEPALIVE_PROBES_MAX = 32767, 127


@dataclass(frozen=True)
class NetworkConfig:
    """Network-wide link parameters, per-node overrides, and the nodes' TCP settings."""

    defaults: LinkParams = field(default_factory=LinkParams)
    overrides: tuple[LinkOverride, ...] = ()
    tcp: TcpSettings = field(default_factory=TcpSettings)

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
    packet_payload_bytes: int = 256  # of each packet's payload kept in its events (0: none)
    packet_decoder: str = ""  # a C type of the programs' DWARF the debugger decodes them as
    nodes: tuple[NodeGroup, ...] = (NodeGroup(DEMO_PROGRAM, count=3),)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    faults: FaultPlan = field(default_factory=FaultPlan)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)  # threads per node
    disk: DiskSettings = field(default_factory=lambda: DiskSettings())  # every node's disk
    # A vDSO at AT_SYSINFO_EHDR (libcs and Go read the clock through it). A recording's
    # manifest without the key is from before it: off (runs/manifest_check.py).
    vdso: bool = True

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
                specs.append(NodeSpec(len(specs), g, name, group.program, group.args, group.env,
                                      group.expect_exit))
        return specs

    def build_fabric(self) -> NetworkFabric:
        """The run's NetworkFabric."""
        fabric = self.network.build_fabric(self.seed, self.node_count)
        fabric.payload_bytes = self.packet_payload_bytes
        return fabric

    def build_fault_engine(self, fabric: NetworkFabric | None) -> FaultEngine:
        """The run's FaultEngine, random faults expanded for this seed and duration."""
        return FaultEngine.from_plan(self.faults, self.seed, self.node_count, self.duration,
                                     fabric)

    def with_duration(self, duration: int, source: str = "--duration") -> Scenario:
        """The same scenario with another duration (for --duration), checked like the file's."""
        at = KeyPath(source)
        scenario = replace(self, duration=expect_ticks(duration, at, minimum=1))
        check_random_arrivals(scenario, at)
        return scenario

    def with_seed(self, seed: int) -> Scenario:
        """The same scenario with another seed (for --seed and seed sweeps)."""
        return replace(self, seed=expect_int(seed, KeyPath("--seed"), minimum=0,
                                             maximum=2**64 - 1))

    def to_dict(self) -> dict[str, Any]:
        """The canonical, msgpack-ready form (all values normalised: ticks, ns, bytes)."""
        data = {
            "seed": self.seed,
            "duration": self.duration,
            "checkpoint_interval": self.checkpoint_interval,
            "memory_per_node": self.memory_per_node,
            "stop_on_first_bug": self.stop_on_first_bug,
            "packet_payload_bytes": self.packet_payload_bytes,
            "packet_decoder": self.packet_decoder,
            "nodes": [
                {"program": g.program, "count": g.count, "args": list(g.args),
                 "env": dict(g.env), "name": g.name, "expect_exit": list(g.expect_exit),
                 "stderr_is_failure": g.stderr_is_failure, "files": files_to_dict(g.files),
                 **({"root": g.root_digest} if g.root else {})}
                for g in self.nodes
            ],
            "network": {
                **self.network.defaults.to_dict(),
                "overrides": [{"node": o.node, **dict(o.params)}
                              for o in self.network.overrides],
                # only when set, so scenarios from before TCP keep their canonical form
                **({"tcp": self.network.tcp.to_dict()}
                   if self.network.tcp != TcpSettings() else {}),
            },
            "faults": self.faults.to_dict(),
            # only when set, so scenarios from before threads keep their digests
            **({"scheduler": _scheduler_dict(self.scheduler)}
               if self.scheduler != SchedulerConfig() else {}),
            # only when set, so scenarios from before it keep their digests
            **({"disk": {"durability": self.disk.durability}}
               if self.disk != DiskSettings() else {}),
            # only when on: a manifest without it is from before the vDSO, which it was not
            **({"vdso": True} if self.vdso else {}),
        }
        roots = {g.root_digest: {"files": files_to_dict(g.root)} for g in self.nodes if g.root}
        if roots:  # only when there is one, so scenarios without keep their digests
            data["roots"] = dict(sorted(roots.items()))
        shared = _shared_contents([*data["nodes"], *data.get("roots", {}).values()])
        if shared:  # only when there is some, so scenarios without keep their digests
            data["file_contents"] = shared
        return data

    def files_bytes(self) -> int:
        """Content bytes of every group's disk files as the recording embeds them (a
        large content once however many groups hold it)."""
        stored: set[bytes] = set()
        return sum(_new_bytes(g.root + g.files, stored) for g in self.nodes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "scenario") -> Scenario:
        """Parse and check a scenario table (a TOML file's content or a `to_dict`); host
        files are refused: only a scenario file may name them."""
        return parse_scenario(data, source)


_TOP_KEYS = [f.name for f in fields(Scenario)] + ["file_contents", "roots"]  # canonical form's
SHARED_CONTENT = 64 << 10
"""File contents at least this long go into the canonical form's `file_contents` table, by
SHA-256, once however many groups' files hold them (a root's libraries on two groups)."""
_GROUP_KEYS = [f.name for f in fields(NodeGroup)]
_DIGEST = re.compile(r"[0-9a-f]{64}")  # a root named by digest (the canonical form)


def load_scenario(path: str | Path) -> Scenario:
    """Read and check a scenario file; any problem is a one-line ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read the scenario: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text ({exc.reason})") from exc
    return loads_scenario(text, source, base_dir=Path(path).parent)


def loads_scenario(text: str, source: str = "scenario.toml",
                   base_dir: Path | None = None) -> Scenario:
    """Parse scenario TOML text; host files (`files[].from`) are read from base_dir."""
    depth = _nesting_depth(text)
    if depth > MAX_TOML_NESTING:
        raise ConfigError(f"{source}: arrays or tables nested {depth} deep; a scenario nests "
                          f"at most {MAX_TOML_NESTING}")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    except RecursionError:  # nesting the pre-check could not see (it is only an estimate)
        raise ConfigError(f"{source}: arrays or tables nested too deeply") from None
    return parse_scenario(data, source, base_dir)


def _nesting_depth(text: str) -> int:
    """An upper bound of how deep TOML arrays and inline tables nest (brackets outside
    strings and comments). tomllib recurses once per level, so 5,000 levels would end in a
    RecursionError; this bound lets a deep file be refused before tomllib sees it."""
    depth = deepest = 0
    quote = ""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quote:
            if c == "\\" and quote == '"':
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'":
            quote = c
        elif c == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth = max(0, depth - 1)
        i += 1
    return deepest


def parse_scenario(data: Mapping[str, Any], source: str = "scenario",
                   base_dir: Path | None = None) -> Scenario:
    """Check every key of a scenario table and build the Scenario (host files named by
    `files` are read relative to base_dir; None refuses them)."""
    root = KeyPath(source)
    expect_table(data, root)
    check_keys(data, _TOP_KEYS, root)
    if "file_contents" in data:
        data = _with_contents(data, root)
    roots = _parse_roots(data, root)
    defaults = Scenario()
    nodes = (_parse_nodes(data["nodes"], root.key("nodes"), base_dir, roots) if "nodes" in data
             else defaults.nodes)
    node_count = sum(group.count for group in nodes)
    memory_at = root.key("memory_per_node")
    memory = expect_bytes_size(data.get("memory_per_node", defaults.memory_per_node), memory_at,
                               minimum=MEMORY_ALIGN)
    if memory % MEMORY_ALIGN:
        memory_at.fail(f"expected a multiple of 2 MiB (guest RAM is made of 2 MiB pages), "
                       f"got {memory}")
    if memory > MEMORY_MAX:
        memory_at.fail(f"expected at most 16 GiB, got {memory}")
    network = (_parse_network(data["network"], root.key("network"), node_count)
               if "network" in data else defaults.network)
    faults = (FaultPlan.from_dict(data["faults"], root.key("faults"), node_count)
              if "faults" in data else defaults.faults)
    scheduler = (_parse_scheduler(data["scheduler"], root.key("scheduler"))
                 if "scheduler" in data else defaults.scheduler)
    disk = _parse_disk(data["disk"], root.key("disk")) if "disk" in data else defaults.disk
    scenario = Scenario(
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
        packet_payload_bytes=_payload_bytes(data, root, defaults),
        packet_decoder=_packet_decoder(data, root),
        nodes=nodes,
        network=network,
        faults=faults,
        scheduler=scheduler,
        disk=disk,
        vdso=expect_bool(data.get("vdso", defaults.vdso), root.key("vdso")),
    )
    check_random_arrivals(scenario, root.key("faults.random.rates"))
    return scenario


_SCHEDULER_KEYS = ["policy", "quantum_us", "change_every"]


def _parse_scheduler(value: Any, at: KeyPath) -> SchedulerConfig:
    """The `scheduler` table: how each node's threads share its one vCPU."""
    expect_table(value, at)
    check_keys(value, _SCHEDULER_KEYS, at)
    defaults = SchedulerConfig()
    policy = value.get("policy", defaults.policy)
    if policy not in POLICIES:
        at.key("policy").fail(f"expected one of {', '.join(POLICIES)}, got {policy!r}")
    quantum_us = expect_int(value.get("quantum_us", defaults.quantum_ns // 1000),
                            at.key("quantum_us"), minimum=1, maximum=10**9)
    change_every = expect_int(value.get("change_every", defaults.change_every),
                              at.key("change_every"), minimum=1, maximum=2**31)
    return SchedulerConfig(policy, quantum_us * 1000, change_every)


def _parse_disk(value: Any, at: KeyPath) -> DiskSettings:
    """The `disk` table: how the nodes' disks keep names across a crash."""
    expect_table(value, at)
    check_keys(value, ["durability"], at)
    durability = value.get("durability", DiskSettings().durability)
    if durability not in DURABILITIES:
        at.key("durability").fail(f"expected one of {', '.join(DURABILITIES)}, got "
                                  f"{show(durability)}")
    return DiskSettings(durability)


def _scheduler_dict(config: SchedulerConfig) -> dict[str, Any]:
    return {"policy": config.policy, "quantum_us": config.quantum_ns // 1000,
            "change_every": config.change_every}


def _payload_bytes(data: Mapping[str, Any], root: KeyPath, defaults: Scenario) -> int:
    at = root.key("packet_payload_bytes")
    value = expect_bytes_size(data.get("packet_payload_bytes", defaults.packet_payload_bytes),
                              at)
    if value > MAX_DATAGRAM:
        at.fail(f"expected at most {MAX_DATAGRAM} bytes (the largest datagram), got {value}")
    return value


def _packet_decoder(data: Mapping[str, Any], root: KeyPath) -> str:
    at = root.key("packet_decoder")
    value = expect_str(data.get("packet_decoder", ""), at)
    if ".py:" in value or len(value) > 200:
        # A Python decoder runs code: it comes from the command line, never from a file a
        # recording carries (debug --decoder FILE.py:FUNCTION).
        at.fail(f"expected a C type name such as \"struct msg\", got {show(value)}")
    return value


def check_random_arrivals(scenario: Scenario, at: KeyPath) -> None:
    """Refuse random-fault rates that over the run's window would draw more than
    MAX_RANDOM_ARRIVALS faults: the schedule is expanded before the run starts, so a long
    duration with rates would otherwise stall the host before the first tick."""
    config = scenario.faults.random
    if config is None:
        return
    window = max(0, min(config.stop or scenario.duration, scenario.duration) - config.start)
    expected = sum(rate for _, rate in config.rates if rate > 0) * window / 1000
    if expected > MAX_RANDOM_ARRIVALS:
        at.fail(f"random fault rates over {window:,} ticks draw about {expected:,.0f} faults, "
                f"more than the {MAX_RANDOM_ARRIVALS:,} a run expands up front (shorten the "
                "run, lower the rates or set faults.random.stop)")


def _shared_contents(nodes: list[dict[str, Any]]) -> dict[str, bytes]:
    """Move each large file content of the canonical nodes into a table by SHA-256 (the
    entries keep `content_sha`); the table, empty when there is nothing to share."""
    table: dict[str, bytes] = {}
    for group in nodes:
        for entry in group["files"]:
            data = entry.get("content")
            if isinstance(data, bytes) and len(data) >= SHARED_CONTENT:
                digest = hashlib.sha256(data).hexdigest()
                table[digest] = data
                entry["content_sha"] = digest
                del entry["content"]
    return dict(sorted(table.items()))


def _with_contents(data: Mapping[str, Any], at: KeyPath) -> dict[str, Any]:
    """The scenario table with every `content_sha` entry given its bytes from
    `file_contents` again (each checked against its digest)."""
    table_at = at.key("file_contents")
    table = expect_table(data["file_contents"], table_at)
    for digest, content in table.items():
        if not isinstance(content, bytes) or hashlib.sha256(content).hexdigest() != digest:
            table_at.key(digest).fail("is not bytes whose SHA-256 is its key")
    def filled(group: Any, g_at: KeyPath) -> dict[str, Any]:
        """A group (or a root) table with its files' contents put back."""
        group = dict(expect_table(group, g_at))
        files = []
        for j, entry in enumerate(expect_list(group.get("files", []), g_at.key("files"))):
            if isinstance(entry, Mapping) and "content_sha" in entry:
                entry = dict(entry)
                digest = entry.pop("content_sha")
                if not isinstance(digest, str) or digest not in table:
                    g_at.key("files").index(j).key("content_sha").fail(
                        f"names no content of file_contents: {show(digest)}")
                entry["content"] = table[digest]
            files.append(entry)
        group["files"] = files
        return group

    nodes = [filled(group, at.key("nodes").index(i))
             for i, group in enumerate(expect_list(data.get("nodes", []), at.key("nodes")))]
    out = {**{k: v for k, v in data.items() if k != "file_contents"}, "nodes": nodes}
    if "roots" in data:
        roots_at = at.key("roots")
        out["roots"] = {digest: filled(tree, roots_at.key(str(digest)))
                        for digest, tree in expect_table(data["roots"], roots_at).items()}
    return out


def _parse_roots(data: Mapping[str, Any], at: KeyPath) -> dict[str, tuple[DiskEntry, ...]]:
    """The canonical form's `roots`: each root's entries, checked against its digest."""
    roots_at = at.key("roots")
    out: dict[str, tuple[DiskEntry, ...]] = {}
    for digest, tree in expect_table(data.get("roots", {}), roots_at).items():
        tree_at = roots_at.key(str(digest))
        check_keys(expect_table(tree, tree_at), ["files"], tree_at)
        entries = parse_files(tree.get("files", []), tree_at.key("files"), None)
        if tree_digest(entries) != digest:
            tree_at.fail("is not a root whose digest is its key (damaged or edited)")
        out[digest] = entries
    return out


def _parse_nodes(value: Any, at: KeyPath, base_dir: Path | None,
                 roots: Mapping[str, tuple[DiskEntry, ...]]) -> tuple[NodeGroup, ...]:
    groups = expect_list(value, at)
    if not groups:
        at.fail("expected at least one [[nodes]] group")
    out: list[NodeGroup] = []
    files_left = MAX_FILES_BYTES
    stored: set[bytes] = set()  # contents already counted: the recording holds each once
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
        args = tuple(expect_str(a, args_at.index(j))
                     for j, a in enumerate(expect_list(table.get("args", []), args_at)))
        problem = exec_arguments_problem([a.encode() for a in args],
                                         [f"{k}={v}".encode() for k, v in env])
        if problem:
            args_at.fail(problem)
        out.append(NodeGroup(
            program=expect_str(table["program"], g_at.key("program"), nonempty=True),
            count=expect_int(table.get("count", 1), g_at.key("count"), minimum=1, maximum=1024),
            args=args,
            env=tuple(env),
            name=expect_str(table.get("name", ""), g_at.key("name")),
            expect_exit=_parse_expect_exit(table.get("expect_exit", [0]),
                                           g_at.key("expect_exit")),
            stderr_is_failure=_parse_stderr_is_failure(table, g_at),
            **_group_files(table, g_at, base_dir, files_left, roots),
        ))
        new = _new_bytes(out[-1].root + out[-1].files, stored)
        if new > files_left:
            g_at.key("root").fail(f"with its files, {new:,} bytes: more than the "
                                  f"{MAX_FILES_BYTES:,} a recording embeds")
        files_left -= new
    return tuple(out)


def _new_bytes(entries: tuple[DiskEntry, ...], stored: set[bytes]) -> int:
    """Content bytes of the entries not stored yet (large contents are stored once)."""
    new = 0
    for e in entries:
        if len(e.data) < SHARED_CONTENT:
            new += len(e.data)
            continue
        digest = hashlib.sha256(e.data).digest()
        if digest not in stored:
            stored.add(digest)
            new += len(e.data)
    return new


def _group_files(table: Mapping[str, Any], at: KeyPath, base_dir: Path | None,
                 budget: int, roots: Mapping[str, tuple[DiskEntry, ...]],
                 ) -> dict[str, tuple[DiskEntry, ...]]:
    """A group's `root` (the entries its `files` do not replace) and its `files`."""
    root = _parse_root(table, at, base_dir, budget, roots)
    both = parse_files(table.get("files", []), at.key("files"), base_dir,
                       budget - files_bytes(root), root, at.key("root"))
    from_root = {id(e) for e in root}  # parse_files keeps the root's entries themselves
    return {"root": tuple(e for e in both if id(e) in from_root),
            "files": tuple(e for e in both if id(e) not in from_root)}


def _parse_root(table: Mapping[str, Any], at: KeyPath, base_dir: Path | None,
                budget: int, roots: Mapping[str, tuple[DiskEntry, ...]],
                ) -> tuple[DiskEntry, ...]:
    """A group's `root`, expanded into disk entries sorted by path.

    "host": what the group's program loads (its interpreter and shared libraries, from
    this host); {host = [programs...]} also those programs at their host paths and what
    they load; {dir = "path"} or {tar = "file"} (relative to the scenario file) a tree,
    with `host` too if given (host entries replace the tree's at the same path). The
    canonical scenario (a manifest) names the root by its digest in `roots`.
    """
    if "root" not in table:
        return ()
    root_at = at.key("root")
    value = table["root"]
    if isinstance(value, str) and _DIGEST.fullmatch(value):
        if value not in roots:
            root_at.fail(f"names no root of roots: {show(value)}")
        return roots[value]
    extra: list[str] | None = []
    tree: list[DiskEntry] = []
    if isinstance(value, Mapping):
        check_keys(value, ["host", "dir", "tar"], root_at)
        if "dir" in value and "tar" in value:
            root_at.fail("expected one of dir and tar, got both")
        extra = None if "host" not in value and ("dir" in value or "tar" in value) else [
            expect_str(p, root_at.key("host").index(j), nonempty=True)
            for j, p in enumerate(expect_list(value.get("host", []), root_at.key("host")))]
    elif value != "host":
        root_at.fail('expected "host", { host = ["/usr/bin/tool", ...] }, { dir = "path" } or '
                     f'{{ tar = "rootfs.tar" }}, got {show(value)}')
    if base_dir is None:
        root_at.fail("reads host files, which only a scenario file may do (a recording "
                     "carries the files themselves)")
    for key, read in (("dir", read_dir_root), ("tar", read_tar_root)):
        if isinstance(value, Mapping) and key in value:
            name = Path(expect_str(value[key], root_at.key(key), nonempty=True))
            tree = read(name if name.is_absolute() else base_dir / name, root_at.key(key),
                        budget, MAX_DISK_PATHS).entries
    if extra is None:
        return tuple(tree)
    program = str(table.get("program", ""))
    if program.startswith("builtin:"):
        root_at.fail("the built-in demo is static: it needs no root")
    path = Path(program) if Path(program).is_absolute() else base_dir / program
    try:
        host = host_closure([path], [p if Path(p).is_absolute() else base_dir / p
                                     for p in extra])
    except ConfigError as exc:
        root_at.fail(str(exc))
    if not tree:
        return tuple(host)
    merged = {e.path: e for e in tree} | {e.path: e for e in host}
    return tuple(merged[p] for p in sorted(merged))


def _parse_expect_exit(value: Any, at: KeyPath) -> tuple[ExpectedExit, ...]:
    """A list of exit statuses (0..255) and signal names ("SIGTERM")."""
    out: list[ExpectedExit] = []
    for j, item in enumerate(expect_list(value, at)):
        item_at = at.index(j)
        if isinstance(item, str):
            if item not in _SIGNAL_NAMES.values():
                item_at.fail(f"expected an exit status 0..255 or a signal name like "
                             f'"SIGTERM", got {show(item)}')
            out.append(item)
        else:
            out.append(expect_int(item, item_at, minimum=0, maximum=255, what="exit status"))
    return tuple(out)


def _parse_stderr_is_failure(table: dict[str, Any], at: KeyPath) -> bool:
    """A node group's `stderr_is_failure` (default false): triage counts stderr as failing."""
    return expect_bool(table.get("stderr_is_failure", False), at.key("stderr_is_failure"))


def _link_value(name: str, value: Any, at: KeyPath) -> Any:
    """One link parameter, checked and normalised."""
    if name.endswith("_ns"):
        return expect_ns(value, at)
    if name == "bandwidth_bps":
        return expect_int(value, at, minimum=0, what="integer of bits per second (0 = unlimited)")
    return expect_probability(value, at)


def _parse_network(value: Any, at: KeyPath, node_count: int) -> NetworkConfig:
    table = expect_table(value, at)
    check_keys(table, [*LINK_PARAM_NAMES, "overrides", "tcp"], at)
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
    tcp = _parse_tcp(table["tcp"], at.key("tcp")) if "tcp" in table else TcpSettings()
    return NetworkConfig(defaults, tuple(overrides), tcp)


def _parse_tcp(value: Any, at: KeyPath) -> TcpSettings:
    table = expect_table(value, at)
    names = [f.name for f in fields(TcpSettings)]
    check_keys(table, names, at)
    given = {}
    for name in names:
        if name not in table:
            continue
        if name in TCP_COUNTS:
            given[name] = expect_int(table[name], at.key(name), minimum=0, maximum=255)
        elif name == "keepalive_probes":
            given[name] = expect_int(table[name], at.key(name), minimum=1,
                                     maximum=KEEPALIVE_PROBES_MAX)
        elif name in KEEPALIVE_TIMES:
            given[name] = expect_ns(table[name], at.key(name))
            seconds, rest = divmod(given[name], 1_000_000_000)
            if rest or not 1 <= seconds <= KEEPALIVE_SECONDS_MAX:
                at.key(name).fail(f"expected a whole number of seconds from 1s to "
                                  f"{KEEPALIVE_SECONDS_MAX}s (what TCP_KEEPIDLE takes)")
        else:
            given[name] = expect_ns(table[name], at.key(name))
            if given[name] == 0 and name != "time_wait_ns":
                at.key(name).fail("expected more than 0 ns")
    settings = TcpSettings(**given)
    if not settings.rto_min_ns <= settings.rto_initial_ns <= settings.rto_max_ns:
        at.fail("expected rto_min_ns <= rto_initial_ns <= rto_max_ns")
    return settings


# -- the documented key list ----------------------------------------------------------------

# How nested configuration maps to keys: a field that is a table, an array of tables, or a
# table whose keys sit directly in the parent (NetworkConfig.defaults, LinkOverride.params).
_NESTED: dict[tuple[type, str], tuple[str, type]] = {
    (Scenario, "nodes"): ("array", NodeGroup),
    (Scenario, "network"): ("table", NetworkConfig),
    (Scenario, "faults"): ("table", FaultPlan),
    (NetworkConfig, "defaults"): ("inline", LinkParams),
    (NetworkConfig, "overrides"): ("array", LinkOverride),
    (NetworkConfig, "tcp"): ("table", TcpSettings),
    (LinkOverride, "params"): ("inline", LinkParams),
    (FaultPlan, "random"): ("table", RandomFaults),
    (Scenario, "disk"): ("table", DiskSettings),
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
        elif (cls, f.name) == (Scenario, "scheduler"):  # quantum in µs, not the config's ns
            keys += [f"{path}.{k}" for k in _SCHEDULER_KEYS]
        elif nested is None and (cls, f.name) == (NodeGroup, "files"):
            keys += [f"{path}[].{k}" for k in FILE_KEYS]
        elif nested is None:
            keys.append(path)
        elif nested[0] == "inline":
            keys += documented_keys(nested[1], prefix)
        elif nested[0] == "array":
            keys += documented_keys(nested[1], f"{path}[].")
        else:
            keys += documented_keys(nested[1], f"{path}.")
    return keys
