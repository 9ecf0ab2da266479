"""The built-in demo: what `chaosreplay record` runs without a scenario file.

Three nodes of the Raft demo (guest/src/raft.c, documented in docs/demo.md) for 60 virtual
seconds on a slightly jittery network, under random partitions, crashes with restarts,
pauses, restarts, packet loss, duplication, reordering, corruption, latency spikes and
clock skew. The same text is examples/raft-demo.toml, which a test keeps identical.
"""

from __future__ import annotations

from chaosreplay.sim.scenario import Scenario, loads_scenario

DEMO_SCENARIO_TOML = """\
# The built-in demo: `chaosreplay record` without a scenario runs exactly this.
# Pick a planted bug with args, e.g. args = ["figure8"] (see docs/demo.md).
seed = 0
duration = "60s"
checkpoint_interval = "1s"

[[nodes]]
program = "builtin:demo"
count = 3
name = "raft"

[network]
latency_ns = "1ms"
jitter_ns = "1ms"

[faults.random]
max_concurrent = 2

[faults.random.rates]  # faults per virtual second
partition = 0.1
kill = 0.05
pause = 0.05
restart = 0.03
loss = 0.05
latency = 0.05
reorder = 0.05
duplicate = 0.05
corrupt = 0.03
clock_skew = 0.03
"""


def demo_scenario() -> Scenario:
    """The built-in demo scenario."""
    return loads_scenario(DEMO_SCENARIO_TOML, "builtin demo scenario")
