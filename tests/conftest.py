"""Shared fixtures: the KVM marker's skip rule and built guest programs."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import guests
import program_cache
import pytest


def _kvm_unusable_reason() -> str | None:
    """Why /dev/kvm cannot be used here, or None when it can."""
    path = "/dev/kvm"
    if not os.path.exists(path):
        return "/dev/kvm does not exist on this host"
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
    except OSError as exc:
        return f"/dev/kvm cannot be opened: {exc.strerror}"
    os.close(fd)
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = _kvm_unusable_reason()
    if reason is None:
        return
    skip = pytest.mark.skip(reason=f"needs KVM: {reason}")
    for item in items:
        if "kvm" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def guest_bin() -> Callable[[str, str], Path]:
    """`guest_bin(libc, name)`: path of a built guest program; skips if its compiler is missing."""

    def get(libc: str, name: str) -> Path:
        reason = guests.missing_compiler(libc)
        if reason is not None:
            pytest.skip(reason)
        return guests.guest_path(libc, name)

    return get


@pytest.fixture(scope="session")
def dynamic_pthreads() -> Path:
    """tests/programs/pthreads.c linked dynamically against the host's glibc (skips
    without gcc)."""
    return program_cache.built("pthreads.c", "dynamic")
