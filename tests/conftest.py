"""Shared fixtures. `testbed`: a network-namespace topology for a test, in one line.

    def test_something(testbed):
        tb = testbed("line")            # or a Topology, or a path to a TOML file
        tb.exec("ep", ["ip", "route"])

`testbed_module` is the same for module-scoped fixtures (one testbed shared by a module's
tests). Skips (with the reason) when the host cannot build testbeds (not root, no `ip netns`,
no `tc` for a topology with rate-limited links); every testbed made is taken down when the
test (module) ends, passed or failed.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest


@contextmanager
def testbeds() -> Iterator[Callable[..., Any]]:
    """A factory of testbeds (skips when none can be built); all taken down on exit."""
    from packetlab.testbed import Testbed, Topology, default_instance_name, preflight

    reason = preflight(need_tc=False)
    if reason:
        pytest.skip(reason)
    made: list[Testbed] = []

    def make(topology: str | Path | Topology = "line", **kwargs: Any) -> Testbed:
        topo = topology if isinstance(topology, Topology) else Topology.load(topology)
        if any(link.rate_bps for link in topo.links) and (why := preflight(need_tc=True)):
            pytest.skip(why)  # Testbed.start would refuse it: shaped links need `tc`
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


@pytest.fixture
def testbed() -> Iterator[Callable[..., Any]]:
    with testbeds() as make:
        yield make


@pytest.fixture(scope="module")
def testbed_module() -> Iterator[Callable[..., Any]]:
    with testbeds() as make:
        yield make
