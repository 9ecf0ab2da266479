"""The guest SDK run natively (not under chaosreplay) falls back to local behaviour."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from guests import compile_with_sdk

FALLBACK_PROGRAM = r"""
#include <stdio.h>
#include "chaosreplay.h"

int main(void)
{
    CR_ALWAYS(1 + 1 == 2, "arithmetic holds");
    CR_ALWAYS(1 + 1 == 3, "arithmetic is broken");
    CR_SOMETIMES(0, "never true natively");
    CR_REACHABLE("main was reached");
    CR_UNREACHABLE("the unreachable line");
    printf("send %d\n", cr_send(1, "x", 1));
    int src = -1;
    char buf[8];
    printf("recv %ld src %d\n", cr_recv(buf, sizeof buf, 1000, &src), src);
    printf("event %d\n", cr_send_event("e", "d", 1));
    printf("node %d/%d\n", cr_node_id(), cr_node_count());
    int seen[4] = {0};
    for (int i = 0; i < 400; i++)
        seen[cr_random_choice(4)]++;
    printf("choices %d %d %d %d\n", seen[0], seen[1], seen[2], seen[3]);
    printf("zero-bound %llu\n", (unsigned long long)cr_random_choice(0));
    return 0;
}
"""


@pytest.fixture(scope="module")
def fallback_binary(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The program above, built with gcc against the SDK header."""
    try:
        return compile_with_sdk(FALLBACK_PROGRAM, tmp_path_factory.mktemp("sdk"), "fallback")
    except FileNotFoundError:
        pytest.skip("gcc is not installed")


def _run(binary: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CR_")}
    return subprocess.run(
        [str(binary)], env={**clean, **env}, capture_output=True, text=True, check=True
    )


def test_failed_always_and_reached_unreachable_print_one_line_each(fallback_binary: Path) -> None:
    result = _run(fallback_binary)
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("chaosreplay: assertion failed: arithmetic is broken (")
    assert lines[1].startswith("chaosreplay: assertion failed: the unreachable line (")
    assert all(line.endswith(")") and ".c:" in line for line in lines), lines


def test_network_calls_return_enosys_and_events_are_dropped(fallback_binary: Path) -> None:
    out = _run(fallback_binary).stdout
    assert "send -38\n" in out, out
    assert "recv -38 src -1\n" in out, out
    assert "event 0\n" in out, out


def test_node_identity_comes_from_the_environment(fallback_binary: Path) -> None:
    assert "node 0/1\n" in _run(fallback_binary).stdout
    assert "node 2/5\n" in _run(fallback_binary, CR_NODE_ID="2", CR_NODE_COUNT="5").stdout
    assert "node 0/1\n" in _run(fallback_binary, CR_NODE_ID="x", CR_NODE_COUNT="-3").stdout


def test_random_choice_covers_its_range_from_getrandom(fallback_binary: Path) -> None:
    out = _run(fallback_binary).stdout
    counts = [int(x) for x in out.split("choices ")[1].split("\n")[0].split()]
    assert sum(counts) == 400 and all(c > 50 for c in counts), counts
    assert "zero-bound 0\n" in out


@pytest.mark.parametrize("libc", ["musl", "glibc"])
def test_sdk_all_guest_runs_natively(guest_bin: Callable[[str, str], Path], libc: str) -> None:
    """The same binary chaosreplay runs also runs on plain Linux and draws real randomness."""
    path = guest_bin(libc, "sdk_all")
    first, second = _run(path, CR_NODE_ID="1", CR_NODE_COUNT="3"), _run(path)
    assert first.stdout.startswith("node 1 of 3\n"), first.stdout
    assert first.stderr == "", first.stderr
    assert "sdk_all done" in first.stdout
    random_line = [line for line in first.stdout.splitlines() if line.startswith("random ")]
    assert random_line and random_line != [
        line for line in second.stdout.splitlines() if line.startswith("random ")
    ]
