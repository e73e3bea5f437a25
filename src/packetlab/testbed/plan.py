"""From a topology to concrete interfaces, addresses and static routes (pure: no I/O).

Addressing: link number k (1, 2, ... in file order, skipping explicit subnets) gets
198.18.0.0/15's k-th /24 (198.18.k.0/24 for k < 256) and 2001:db8:0:k::/64; end ``a`` takes
host 1, end ``b`` host 2.

Routing: every node gets a route to every link subnet it is not attached to, via the first hop
of a shortest path in which only routers carry transit traffic. A subnet is routed towards its
nearest *router* end, since a router end delivers to both addresses on the link; a link joining
two hosts is reachable from its ends only. There are no default routes: a destination outside
the topology is unreachable, so nothing can leave the namespaces.
"""

from __future__ import annotations

import ipaddress
from collections import deque
from dataclasses import dataclass

from packetlab.testbed._errors import TopologyError
from packetlab.testbed.topology import LinkSpec, Topology

__all__ = ["Interface", "LinkPlan", "Plan", "Route", "interface_name", "make_plan"]

AUTO_V4 = ipaddress.IPv4Network("198.18.0.0/15")
AUTO_V6 = ipaddress.IPv6Network("2001:db8::/32")
IFNAME_MAX = 15

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Interface:
    """One end of a link, inside its node."""

    node: str
    peer: str
    link_index: int
    name: str
    mac: str
    addr4: ipaddress.IPv4Interface
    addr6: ipaddress.IPv6Interface
    peer_addr4: ipaddress.IPv4Address
    peer_addr6: ipaddress.IPv6Address
    peer_mac: str


@dataclass(frozen=True, slots=True)
class Route:
    dest: IPNetwork
    via: IPAddress
    dev: str


@dataclass(frozen=True, slots=True)
class LinkPlan:
    index: int
    spec: LinkSpec
    subnet4: ipaddress.IPv4Network
    subnet6: ipaddress.IPv6Network
    end_a: Interface
    end_b: Interface
    relay_ifnames: tuple[str, str] | None
    """Names of the relay's interfaces facing a and b, when the link has a relay."""


@dataclass(frozen=True, slots=True)
class Plan:
    topology: Topology
    links: tuple[LinkPlan, ...]
    interfaces: dict[str, tuple[Interface, ...]]
    routes: dict[str, tuple[Route, ...]]
    warnings: tuple[str, ...]

    def interface(self, node: str, peer: str) -> Interface:
        for iface in self.interfaces.get(node, ()):
            if iface.peer == peer:
                return iface
        raise TopologyError(f"{node!r} has no link to {peer!r}")


def interface_name(link_index: int, peer: str) -> str:
    """``plt<link number>-<peer>``, cut to the kernel's 15 characters."""
    return f"plt{link_index + 1}-{peer}"[:IFNAME_MAX]


def _mac(link_index: int, side: int) -> str:
    number = link_index + 1
    return f"02:70:6c:{number >> 8:02x}:{number & 0xFF:02x}:{0x0A + side:02x}"


def _auto_subnets(topology: Topology) -> list[tuple[ipaddress.IPv4Network, ipaddress.IPv6Network]]:
    fixed: list[IPNetwork] = [
        net for link in topology.links for net in (link.subnet4, link.subnet6) if net is not None
    ]
    candidates4 = AUTO_V4.subnets(new_prefix=24)
    candidates6 = AUTO_V6.subnets(new_prefix=64)
    next(candidates4)  # k = 0 is skipped: link k sits on 198.18.k.0/24
    next(candidates6)
    out = []
    for link in topology.links:
        while True:
            try:
                net4, net6 = next(candidates4), next(candidates6)
            except StopIteration:
                raise TopologyError(
                    f"{topology.source}: too many links for 198.18.0.0/15"
                ) from None
            clash = any(net4.overlaps(f) for f in fixed if f.version == 4) or any(
                net6.overlaps(f) for f in fixed if f.version == 6
            )
            if not clash:
                break
        out.append((link.subnet4 or net4, link.subnet6 or net6))
    return out


def _relay_ifnames(link_index: int, link: LinkSpec) -> tuple[str, str]:
    names = (interface_name(link_index, link.a), interface_name(link_index, link.b))
    if names[0] == names[1]:
        names = (f"plt{link_index + 1}-a", f"plt{link_index + 1}-b")
    return names


def _ends(
    index: int, link: LinkSpec, net4: ipaddress.IPv4Network, net6: ipaddress.IPv6Network
) -> tuple[Interface, Interface]:
    hosts4 = (net4.network_address + 1, net4.network_address + 2)
    hosts6 = (net6.network_address + 1, net6.network_address + 2)
    macs = (_mac(index, 0), _mac(index, 1))
    nodes = (link.a, link.b)
    ends: list[Interface] = []
    for side in (0, 1):
        other = 1 - side
        ends.append(
            Interface(
                node=nodes[side],
                peer=nodes[other],
                link_index=index,
                name=interface_name(index, nodes[other]),
                mac=macs[side],
                addr4=ipaddress.IPv4Interface(f"{hosts4[side]}/{net4.prefixlen}"),
                addr6=ipaddress.IPv6Interface(f"{hosts6[side]}/{net6.prefixlen}"),
                peer_addr4=hosts4[other],
                peer_addr6=hosts6[other],
                peer_mac=macs[other],
            )
        )
    return ends[0], ends[1]


def _distances(topology: Topology, source: str) -> dict[str, tuple[int, str, int]]:
    """BFS from ``source``: node -> (hops, first neighbour, first link); routers carry transit."""
    routers = {n.name for n in topology.nodes if n.router}
    found: dict[str, tuple[int, str, int]] = {}
    queue: deque[str] = deque()
    for neighbour, index in sorted(topology.neighbours(source)):
        if neighbour not in found:
            found[neighbour] = (1, neighbour, index)
            queue.append(neighbour)
    while queue:
        here = queue.popleft()
        if here not in routers:
            continue
        hops, first, first_link = found[here]
        for neighbour, _ in sorted(topology.neighbours(here)):
            if neighbour != source and neighbour not in found:
                found[neighbour] = (hops + 1, first, first_link)
                queue.append(neighbour)
    return found


def _components(topology: Topology) -> list[list[str]]:
    seen: set[str] = set()
    parts = []
    for start in topology.node_names:
        if start in seen:
            continue
        part, todo = [], [start]
        seen.add(start)
        while todo:
            here = todo.pop()
            part.append(here)
            for neighbour, _ in topology.neighbours(here):
                if neighbour not in seen:
                    seen.add(neighbour)
                    todo.append(neighbour)
        parts.append(sorted(part))
    return parts


def _routes_of(
    topology: Topology, node: str, links: tuple[LinkPlan, ...]
) -> tuple[list[Route], list[tuple[str, str]]]:
    """Routes of ``node``, and the (label, an end) of links it cannot reach."""
    routers = {n.name for n in topology.nodes if n.router}
    found = _distances(topology, node)
    routes: list[Route] = []
    unreachable = []
    for plan in links:
        spec = plan.spec
        if node in (spec.a, spec.b):
            continue
        targets = [end for end in (spec.a, spec.b) if end in routers and end in found]
        if not targets:
            unreachable.append((spec.label, spec.a))
            continue
        target = min(targets, key=lambda end: (found[end][0], end))
        _, first_hop, first_link = found[target]
        hop = (
            links[first_link].end_a
            if links[first_link].end_a.node == node
            else links[first_link].end_b
        )
        assert hop.peer == first_hop
        routes.append(Route(plan.subnet4, hop.peer_addr4, hop.name))
        routes.append(Route(plan.subnet6, hop.peer_addr6, hop.name))
    return routes, unreachable


def make_plan(topology: Topology) -> Plan:
    """Interfaces, addresses, relay interfaces and routes of every node."""
    subnets = _auto_subnets(topology)
    links = []
    for index, (link, (net4, net6)) in enumerate(zip(topology.links, subnets, strict=True)):
        end_a, end_b = _ends(index, link, net4, net6)
        relay = _relay_ifnames(index, link) if link.needs_relay else None
        links.append(LinkPlan(index, link, net4, net6, end_a, end_b, relay))
    link_plans = tuple(links)
    interfaces: dict[str, list[Interface]] = {name: [] for name in topology.node_names}
    for plan in link_plans:
        interfaces[plan.end_a.node].append(plan.end_a)
        interfaces[plan.end_b.node].append(plan.end_b)
    warnings = []
    parts = _components(topology)
    if len(parts) > 1:
        shown = "; ".join("{" + ", ".join(p) + "}" for p in parts)
        warnings.append(f"the topology is not connected: {len(parts)} parts: {shown}")
    routes: dict[str, tuple[Route, ...]] = {}
    for name in topology.node_names:
        node_routes, unreachable = _routes_of(topology, name, link_plans)
        routes[name] = tuple(node_routes)
        part = next(p for p in parts if name in p)
        missing = [label for label, end in unreachable if end in part]
        if missing:
            warnings.append(f"{name} has no route to link(s) {', '.join(missing)}")
    return Plan(
        topology=topology,
        links=link_plans,
        interfaces={k: tuple(v) for k, v in interfaces.items()},
        routes=routes,
        warnings=tuple(warnings),
    )
