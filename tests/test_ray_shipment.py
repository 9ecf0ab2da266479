"""Scenario and programs travel content-addressed: each distinct piece put once, fetched
once per worker process, checked against its digest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import ray_cluster

from chaosreplay.sim.demo import demo_scenario
from chaosreplay.sim.programs import resolve_images


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A local cluster (ray.init) shared by the module's tests."""
    with ray_cluster.local_cluster():
        yield


def test_each_piece_is_put_once_and_fetched_once(local_ray, monkeypatch):
    import ray

    from chaosreplay.scaleout import shipment as mod

    scenario = demo_scenario()
    images = resolve_images(scenario, Path.cwd()) * 2  # two groups of one program
    shipped = mod.ship(ray, scenario, images)
    assert len(shipped.refs) == 2 and len(shipped.programs) == 2  # the scenario, one ELF
    fetched: list[object] = []
    real_get = ray.get
    monkeypatch.setattr(ray, "get", lambda ref: fetched.append(ref) or real_get(ref))
    monkeypatch.setattr(mod, "_UNPACKED", {})
    first_scenario, first_images = mod.unpack(shipped)
    again_scenario, again_images = mod.unpack(shipped)
    assert len(fetched) == 2, "a piece was fetched twice by one process"
    assert first_scenario == scenario and again_scenario is first_scenario
    assert [i.sha256 for i in first_images] == [i.sha256 for i in images]
    assert first_images[0].segments == images[0].segments
    assert again_images[0] is first_images[0]


def test_a_piece_that_does_not_match_its_digest_is_refused(local_ray):
    import ray

    from chaosreplay.scaleout.shipment import fetch

    with pytest.raises(ValueError, match="does not match its SHA-256"):
        fetch({"00" * 32: ray.put(b"not what the digest names")}, "00" * 32)
