"""Addressing and static routes (pure): every address reachable hop by hop, no transit via hosts."""

from __future__ import annotations

import ipaddress
import random

import pytest

from packetlab.testbed import Names, Topology, make_plan
from packetlab.testbed._errors import InstanceError
from packetlab.testbed.naming import default_instance_name
from packetlab.testbed.plan import AUTO_V4, AUTO_V6, Plan, interface_name


def _owner(plan: Plan) -> dict[str, str]:
    return {
        str(ip): iface.node
        for ifaces in plan.interfaces.values()
        for iface in ifaces
        for ip in (iface.addr4.ip, iface.addr6.ip)
    }


def walk(plan: Plan, source: str, dst: str) -> list[str]:
    """The nodes a packet from ``source`` to ``dst`` visits, following the plan's routes."""
    owner = _owner(plan)
    routers = {n.name for n in plan.topology.nodes if n.router}
    address = ipaddress.ip_address(dst)
    path, here = [source], source
    for _ in range(len(plan.topology.nodes) + 1):
        if owner[dst] == here:
            return path
        assert here == source or here in routers, f"host {here} asked to forward to {dst}"
        ifaces = plan.interfaces[here]
        attached = [
            i for i in ifaces for net in (i.addr4.network, i.addr6.network) if address in net
        ]
        if attached:
            nxt = attached[0].peer
        else:
            routes = [r for r in plan.routes[here] if address in r.dest]
            assert len(routes) == 1, f"{here}: {len(routes)} routes for {dst}"
            via = routes[0]
            iface = next(i for i in ifaces if i.name == via.dev)
            assert via.via in (iface.peer_addr4, iface.peer_addr6)
            nxt = iface.peer
        path.append(nxt)
        here = nxt
    raise AssertionError(f"loop from {source} to {dst}: {path}")


def test_line_addresses_and_the_path_of_every_probe() -> None:
    plan = make_plan(Topology.load("line"))
    ep = plan.interface("ep", "r1")
    assert str(ep.addr4) == "198.18.1.1/24"
    assert str(ep.addr6) == "2001:db8:0:1::1/64"
    assert str(plan.interface("target", "r3").addr4) == "198.18.4.2/24"
    target = str(plan.interface("target", "r3").addr4.ip)
    assert walk(plan, "ep", target) == ["ep", "r1", "r2", "r3", "target"]
    assert walk(plan, "target", str(ep.addr6.ip)) == ["target", "r3", "r2", "r1", "ep"]
    # hosts have a route to every link subnet they are not on, and no default route
    assert len(plan.routes["ep"]) == 2 * 3
    assert all(r.dest.prefixlen > 0 for routes in plan.routes.values() for r in routes)
    assert plan.warnings == ()


@pytest.mark.parametrize("name", ["line", "tree"])
def test_every_node_reaches_every_address(name: str) -> None:
    plan = make_plan(Topology.load(name))
    owner = _owner(plan)
    for source in plan.topology.node_names:
        for dst in owner:
            walk(plan, source, dst)


def test_tree_paths_converge_on_the_shared_chain() -> None:
    plan = make_plan(Topology.load("tree"))
    target = str(plan.interface("target", "c2").addr4.ip)
    paths = {ep: walk(plan, ep, target) for ep in ("ep1", "ep2", "ep3", "ep4")}
    assert paths["ep1"] == ["ep1", "a1", "g1", "c1", "c2", "target"]
    assert paths["ep4"] == ["ep4", "a4", "g2", "c1", "c2", "target"]
    assert len({tuple(p[1:3]) for p in paths.values()}) == 4  # distinct routers first


def test_addresses_are_unique_inside_the_ranges_and_names_fit() -> None:
    plan = make_plan(Topology.load("tree"))
    addresses = list(_owner(plan))
    assert len(addresses) == len(set(addresses)) == 4 * len(plan.links)
    for link in plan.links:
        assert link.subnet4.subnet_of(AUTO_V4)
        assert link.subnet6.subnet_of(AUTO_V6)
        assert link.end_a.addr4.network == link.end_b.addr4.network == link.subnet4
        assert link.end_a.peer_mac == link.end_b.mac and link.end_b.peer_mac == link.end_a.mac
    for node, ifaces in plan.interfaces.items():
        names = [i.name for i in ifaces]
        assert len(names) == len(set(names)), node
        assert all(len(n) <= 15 and n.startswith("plt") for n in names)


def test_explicit_subnets_are_kept_and_automatic_ones_avoid_them() -> None:
    text = """
    [nodes.a]
    [nodes.r]
    router = true
    [nodes.b]
    [[links]]
    a = "a"
    b = "r"
    [[links]]
    a = "r"
    b = "b"
    subnet4 = "198.18.1.0/24"
    subnet6 = "2001:db8:ffff::/48"
    """
    plan = make_plan(Topology.parse(text))
    assert str(plan.links[1].subnet4) == "198.18.1.0/24"
    assert str(plan.interface("b", "r").addr6) == "2001:db8:ffff::2/48"
    assert not plan.links[0].subnet4.overlaps(plan.links[1].subnet4)
    assert walk(plan, "a", "2001:db8:ffff::2") == ["a", "r", "b"]


def test_long_names_are_cut_and_relay_ends_stay_distinct() -> None:
    text = """
    [nodes.router_east_number_1]
    router = true
    [nodes.router_east_number_2]
    router = true
    [[links]]
    a = "router_east_number_1"
    b = "router_east_number_2"
    delay_ms = 1
    """
    plan = make_plan(Topology.parse(text))
    link = plan.links[0]
    assert link.end_a.name == "plt1-router_eas" == interface_name(0, "router_east_number_2")
    assert link.relay_ifnames == ("plt1-a", "plt1-b")


def test_hosts_never_carry_transit_and_warnings_say_what_is_cut_off() -> None:
    # r1 - h - r2: h is a host, so r1 and r2 cannot reach each other's far links
    text = """
    [nodes.r1]
    router = true
    [nodes.h]
    [nodes.r2]
    router = true
    [nodes.x]
    [nodes.y]
    [[links]]
    a = "r1"
    b = "h"
    [[links]]
    a = "h"
    b = "r2"
    [[links]]
    a = "x"
    b = "y"
    """
    plan = make_plan(Topology.parse(text))
    assert not plan.routes["r1"] or all(r.dev == "plt1-h" for r in plan.routes["r1"])
    joined = " | ".join(plan.warnings)
    assert "not connected: 2 parts" in joined
    assert "r1 has no route to link(s) h-r2" in joined
    assert "x has no route" not in joined  # x-y is its own part; nothing is missing there


def _random_topology(rng: random.Random) -> Topology:
    routers = [f"r{i}" for i in range(rng.randint(1, 7))]
    hosts = [f"h{i}" for i in range(rng.randint(1, 5))]
    edges: set[frozenset[str]] = set()
    for index, router in enumerate(routers[1:], start=1):  # a random tree of routers ...
        edges.add(frozenset((router, rng.choice(routers[:index]))))
    for _ in range(rng.randint(0, 4)):  # ... plus some cycles
        a, b = rng.sample(routers, 2) if len(routers) > 1 else (routers[0], routers[0])
        if a != b:
            edges.add(frozenset((a, b)))
    for host in hosts:  # hosts hang off one or two routers
        for router in rng.sample(routers, min(len(routers), rng.randint(1, 2))):
            edges.add(frozenset((host, router)))
    nodes = {r: {"router": True} for r in routers} | {h: {} for h in hosts}
    links = [dict(zip(("a", "b"), sorted(e), strict=True)) for e in sorted(edges, key=sorted)]
    return Topology.from_dict({"nodes": nodes, "links": links})


@pytest.mark.parametrize("seed", range(20))
def test_random_connected_topologies_route_everything_without_loops(seed: int) -> None:
    plan = make_plan(_random_topology(random.Random(seed)))
    assert plan.warnings == ()
    owner = _owner(plan)
    for source in plan.topology.node_names:
        for dst in owner:
            walk(plan, source, dst)


def test_names_and_their_validation() -> None:
    names = Names("plt")
    assert names.netns("line_1", "ep") == "plt-line_1-ep"
    assert names.relay_netns("line_1", "r2", "r3") == "plt-line_1-@r2~r3"
    assert names.instance_of_netns("plt-line_1-ep") == "line_1"
    assert names.instance_of_netns("plt-line_1-@r2~r3") == "line_1"
    assert names.instance_of_netns("pltx-line-ep") is None
    assert names.instance_of_netns("other") is None
    assert default_instance_name("My Topo-2") == "my_topo_2"
    for bad in ("", "UPPER", "with-dash", "x" * 25, "_lead"):
        with pytest.raises(InstanceError):
            Names.check_instance(bad)
