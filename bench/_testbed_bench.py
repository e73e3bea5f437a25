"""Shared set-up of the benches that measure over a testbed (root only): the line topology
with a one-way delay on every link, a packetlab home, and an endpoint config for node "ep"."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from _harness import BENCH_PROFILE, PACKETLAB
from packetlab.testbed import Testbed, Topology, preflight
from packetlab.testbed.sessions import node_endpoint_config

LINK_DELAY_MS = 5.0


def need_root() -> None:
    reason = "needs root (network namespaces)" if os.geteuid() else preflight(need_tc=False)
    if reason:
        sys.exit(f"skipped: {reason}")


@contextlib.contextmanager
def line_testbed(delay_ms: float = LINK_DELAY_MS) -> Iterator[tuple[Testbed, Path, Path]]:
    """(testbed, home, endpoint config for "ep"); everything is removed on exit."""
    need_root()
    with tempfile.TemporaryDirectory(prefix="packetlab-bench-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([*PACKETLAB, "init", str(home)], check=True, capture_output=True)
        topology = Topology.load("line").with_link_delay(delay_ms)
        with Testbed.up(topology, name=f"bench{os.getpid() % 100000}") as tb:
            config = node_endpoint_config(home, tb, "ep", guardian=BENCH_PROFILE)
            text = config.read_text()  # an endpoint that polls for its controller every 20 ms
            fast = "[endpoint]\nretry_delay_s = 0.02\nretry_delay_max_s = 0.02\n"
            config.write_text(text.replace("[endpoint]\n", fast, 1))
            yield tb, home, config


def path_rtt_ms(tb: Testbed, delay_ms: float = LINK_DELAY_MS) -> float:
    """The configured round trip from ep to target: every link twice."""
    return 2 * delay_ms * len(tb.plan.topology.links)
