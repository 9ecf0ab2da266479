"""Connecting to a Ray cluster for `--ray`, and the `kvm` resource that marks usable workers.

Ray is imported only when a command asks for it, so that everything else works without
it installed. Every task asks for one unit of the custom `kvm` resource: a node gets work
only when its `ray start` advertised that resource (`python -m chaosreplay.scaleout.cluster`
prints the resources this machine can advertise; docs/scale-out.md).
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from chaosreplay.errors import ChaosReplayError

KVM = "kvm"  # the custom resource of nodes that can run VMs
RAY_MISSING = "ray is not installed: pip install 'chaosreplay[ray]'"
AUTO = "auto"  # --ray without an address
PROBE_SECONDS = 5.0


class ScaleOutError(ChaosReplayError):
    """A Ray cluster that cannot be used (not installed, unreachable, no KVM worker)."""


def import_ray() -> ModuleType:
    """The ray module, or a ScaleOutError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise ScaleOutError(RAY_MISSING) from None
    return ray


def kvm_slots() -> int:
    """How many runs this machine can carry at once: one per CPU if /dev/kvm opens, else 0."""
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC))
    except OSError:
        return 0
    return max(1, len(os.sched_getaffinity(0)))


def advertised_resources() -> dict[str, int]:
    """The custom resources `ray start --resources` should give this machine."""
    slots = kvm_slots()
    return {KVM: slots} if slots else {}


def _probe(address: str) -> None:
    """Refuse an address nothing listens on (ray.init would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ScaleOutError(f"--ray {address}: expected HOST:PORT of the cluster's head "
                            "(the address `ray start --head` printed)")
    try:
        socket.create_connection((host, int(port)), timeout=PROBE_SECONDS).close()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ScaleOutError(f"cannot reach the Ray cluster at {address}: {reason}") from None


def _init(ray: ModuleType, address: str) -> None:
    """ray.init: the given cluster, else the one this machine runs, else a new local one."""
    quiet = {"logging_level": logging.ERROR, "log_to_driver": False}
    if address != AUTO:
        _probe(address)
        ray.init(address=address, **quiet)
        return
    try:
        ray.init(address=AUTO, **quiet)
    except ConnectionError:  # no cluster here: start one, with this machine's KVM slots
        ray.init(num_cpus=max(1, len(os.sched_getaffinity(0))),
                 resources=advertised_resources(), include_dashboard=False, **quiet)


@contextmanager
def connected(address: str) -> Iterator[ModuleType]:
    """ray, connected to the cluster for the duration (disconnected after, unless the caller
    had connected already); a ScaleOutError when no node advertises `kvm`."""
    ray = import_ray()
    owned = not ray.is_initialized()
    if owned:
        try:
            _init(ray, address)
        except ScaleOutError:
            raise
        except Exception as exc:  # ray raises several kinds; one line says which
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ScaleOutError(f"cannot connect to the Ray cluster at {address}: "
                                f"{first}") from None
    try:
        if ray.cluster_resources().get(KVM, 0) < 1:
            raise ScaleOutError(
                "no node of the Ray cluster advertises the kvm resource: start each worker "
                "that can open /dev/kvm with ray start --resources "
                f"'{json.dumps({KVM: 2})}' (docs/scale-out.md)")
        yield ray
    finally:
        if owned:
            ray.shutdown()


def worker_name() -> str:
    """This worker as progress shows it: node address and process id."""
    import ray

    return f"{ray.util.get_node_ip_address()}:{os.getpid()}"


if __name__ == "__main__":
    print(json.dumps(advertised_resources()))
