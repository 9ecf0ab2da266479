"""Test helper (not a test module): programs run natively beside their simulated runs
(free ports, waiting for a server), and the two-node TCP scenario of the socket tests."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

from chaosreplay.sim.scenario import Scenario


def native(path: Path, *args: str, cwd: Path) -> str:
    """What a program prints run natively (it must exit 0)."""
    result = subprocess.run([str(path), *args], capture_output=True, text=True, timeout=60,
                            cwd=cwd, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout


def free_port() -> int:
    """A TCP and UDP port nothing on this host uses now (sessions may run side by side)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_listener(port: int) -> None:
    """Until a native server accepts on the port (a probe connection it just echoes)."""
    import socket

    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def tcp_scenario(program: Path, server: list[str], client: list[str], *, seed: int = 0,
                 duration: str = "5s", checkpoint_interval: int = 0,
                 faults: list | None = None, **network: Any) -> Scenario:
    """A TCP program's server on node 0 (srv) and its client on node 1 (cli)."""
    data = {"seed": seed, "duration": duration, "checkpoint_interval": checkpoint_interval,
            "memory_per_node": "32MiB", "network": network,
            "nodes": [{"program": str(program), "name": "srv", "args": server},
                      {"program": str(program), "name": "cli", "args": client}]}
    if faults is not None:
        data["faults"] = {"schedule": faults, "wait_for_setup": False}
    return Scenario.from_dict(data)


# tcp_echo.c's server on port 7000 and a client echoing 300 kB through it
ECHO = (["server", "7000"], ["client", "10.0.0.1", "7000", "300000"])
