"""Shared fixtures. `testbed`: a network-namespace topology for a test, in one line.

    def test_something(testbed):
        tb = testbed("line")            # or a Topology, or a path to a TOML file
        tb.exec("ep", ["ip", "route"])

Skips (with the reason) when the host cannot build testbeds (not root, no `ip netns`); every
testbed made is taken down when the test ends, passed or failed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def testbed() -> Iterator[Callable[..., Any]]:
    from packetlab.testbed import Testbed, Topology, default_instance_name, preflight

    reason = preflight(need_tc=True)
    if reason:
        pytest.skip(reason)
    made: list[Testbed] = []

    def make(topology: str | Path | Topology = "line", **kwargs: Any) -> Testbed:
        topo = topology if isinstance(topology, Topology) else Topology.load(topology)
        name = (
            kwargs.pop("name", None)
            or f"{default_instance_name(topo.name)[:16]}_{secrets.token_hex(3)}"
        )
        bed = Testbed.start(topo, name=name, **kwargs)
        made.append(bed)
        return bed

    try:
        yield make
    finally:
        for bed in reversed(made):
            bed.down()
