"""Network-namespace testbeds: hosts, routers, links with delay, loss and rate, on one machine.

    from packetlab.testbed import Testbed, Topology

    with Testbed.up(Topology.load("line").with_link_delay(5)) as tb:
        tb.exec("ep", ["ip", "route"])

Layer 4: built on the standard library and iproute2 (`ip`, `tc`); needs root. See
``topology`` for the TOML format, ``plan`` for addressing and routing, ``relay`` for delay and
loss (a user-space relay per link, since this machine kind has no netem).
"""

from packetlab.testbed._errors import InstanceError, SetupError, TestbedError, TopologyError
from packetlab.testbed.build import preflight
from packetlab.testbed.cleanup import Cleanup, down_all, known_instances, teardown
from packetlab.testbed.naming import Names, default_instance_name
from packetlab.testbed.plan import Interface, Plan, Route, make_plan
from packetlab.testbed.testbed import Testbed
from packetlab.testbed.topology import LinkSpec, NodeSpec, Topology, bundled_names

__all__ = [
    "Cleanup",
    "InstanceError",
    "Interface",
    "LinkSpec",
    "Names",
    "NodeSpec",
    "Plan",
    "Route",
    "SetupError",
    "Testbed",
    "TestbedError",
    "Topology",
    "TopologyError",
    "bundled_names",
    "default_instance_name",
    "down_all",
    "known_instances",
    "make_plan",
    "preflight",
    "teardown",
]
