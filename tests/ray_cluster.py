"""A Ray cluster of this machine for the tests: `ray start --head` in its own session,
with 2 CPUs and 2 units of `kvm`, the worktree's chaosreplay on the workers' path."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-c", "from chaosreplay.cli import main; main()"]


def ray_or_skip() -> None:
    """Skip the calling test when ray cannot be imported; before importing it, turn on the
    token authentication `ray start` uses (ray reads the setting once, at import)."""
    os.environ["RAY_AUTH_MODE"] = "token"
    pytest.importorskip("ray", reason="ray is not installed (pip install 'chaosreplay[ray]')")


def env() -> dict[str, str]:
    """The environment of CLI subprocesses and Ray workers: this checkout first, and the
    token authentication `ray start` turns on (its token is in ~/.ray/auth_token)."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT),
            "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token"}


def free_port() -> int:
    """A TCP port nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def head_node(kvm: int = 2) -> Iterator[str]:
    """A one-node cluster (`ray start --head --block`); its address, for --ray ADDRESS.

    Stopped by killing its process session, never with `ray stop` (which would stop every
    cluster of the machine)."""
    ray_bin = shutil.which("ray") or str(Path(sys.executable).with_name("ray"))
    temp = tempfile.mkdtemp(prefix="cr-ray-", dir="/tmp")  # short: it holds unix sockets
    port = free_port()
    resources = json.dumps({"kvm": kvm} if kvm else {})
    proc = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         f"--resources={resources}", "--include-dashboard=false", f"--temp-dir={temp}",
         "--disable-usage-stats"],
        env=env(), start_new_session=True, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"ray start --head did not come up (exit {proc.poll()})")
                time.sleep(0.3)
        yield address
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # gcs_server and raylet outlive TERM
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=3)
            time.sleep(0.5)
        shutil.rmtree(temp, ignore_errors=True)


@contextmanager
def local_cluster() -> Iterator[None]:
    """ray.init of a local cluster in this process: 2 CPUs, 2 units of kvm, this checkout on
    the workers' path (they inherit the environment)."""
    ray_or_skip()
    import ray

    os.environ["PYTHONPATH"] = env()["PYTHONPATH"]
    ray.init(num_cpus=2, resources={"kvm": 2}, include_dashboard=False,
             logging_level="ERROR", log_to_driver=False)
    try:
        yield
    finally:
        ray.shutdown()


def planted_bug_toml(folder: Path, duration: str = "7s") -> Path:
    """A copy of examples/raft-demo.toml with the no_truncate bug, as the README's chase."""
    text = (ROOT / "examples" / "raft-demo.toml").read_text()
    text = text.replace('name = "raft"', 'name = "raft"\nargs = ["no_truncate"]')
    text = text.replace('duration = "60s"', f'duration = "{duration}"')
    path = folder / "my-raft.toml"
    path.write_text(text)
    return path


def cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run the CLI of this checkout in a subprocess."""
    return subprocess.run([*CLI, *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)
