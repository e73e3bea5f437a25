"""Tools learn what an endpoint can do from its memory, and say clearly what is missing."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from packetlab.testbed.sessions import serve_in_node as run_on_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns_session import endpoint_config, init_home
from packetlab.measure.capabilities import Capabilities, capabilities
from packetlab.measure.errors import EndpointCannot


def test_capabilities_of_a_testbed_endpoint(testbed: Any, tmp_path: Path) -> None:
    tb = testbed("line")
    home = init_home(tmp_path / "home")
    config = endpoint_config(home, tb, "ep")
    caps = run_on_node(tb, "ep", home, config, capabilities)
    assert caps.raw and caps.tcp and caps.udp
    assert caps.ipv4 == tuple(tb.addrs("ep", 4))
    assert caps.ipv6 == tuple(tb.addrs("ep", 6))
    assert caps.source(4) == tb.addr("ep", "r1", 4)
    caps.require("traceroute", raw=True, family=6)  # has all of it


def test_require_names_what_is_missing() -> None:
    caps = Capabilities("ep-1", raw=False, tcp=True, udp=True, ipv4=("198.18.1.1",), ipv6=())
    with pytest.raises(EndpointCannot, match=r"traceroute needs raw sockets.*IPv6.*'ep-1'"):
        caps.require("traceroute", raw=True, family=6)
    with pytest.raises(EndpointCannot, match="no IPv6 address"):
        caps.source(6)
    caps.require("dig", udp=True, family=4)
