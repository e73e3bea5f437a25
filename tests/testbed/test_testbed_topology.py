"""Topology files: what parses, what is refused and how the refusal reads."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from packetlab.testbed import Topology, TopologyError, bundled_names
from packetlab.testbed.topology import parse_rate

PAIR = """
name = "pair"
[nodes.a]
[nodes.b]
router = true
[[links]]
a = "a"
b = "b"
"""


def test_bundled_topologies_load_and_have_the_documented_shape() -> None:
    assert {"line", "tree"} <= set(bundled_names())
    line = Topology.load("line")
    assert line.node_names == ("ep", "r1", "r2", "r3", "target")
    assert [(link.a, link.b) for link in line.links] == [
        ("ep", "r1"),
        ("r1", "r2"),
        ("r2", "r3"),
        ("r3", "target"),
    ]
    assert [n.router for n in line.nodes] == [False, True, True, True, False]
    assert all(link.delay_ms == 0 and not link.needs_relay for link in line.links)
    tree = Topology.load("tree")
    hosts = [n.name for n in tree.nodes if not n.router]
    assert set(hosts) == {"ep1", "ep2", "ep3", "ep4", "target"}
    # each endpoint has its own access router
    access = {next(iter(tree.neighbours(ep)))[0] for ep in ("ep1", "ep2", "ep3", "ep4")}
    assert len(access) == 4


def test_a_file_loads_and_its_stem_is_the_default_name(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(PAIR.replace('name = "pair"', ""))
    topo = Topology.load(path)
    assert topo.name == "mine"
    assert topo.source == str(path)
    assert topo.node("b").router and not topo.node("a").router


def test_link_options_are_read() -> None:
    text = PAIR + 'delay_ms = 2.5\nloss = 0.1\nrate = "1.5mbit"\nsubnet4 = "198.18.200.0/29"\n'
    link = Topology.parse(text).links[0]
    assert link.delay_ms == 2.5
    assert link.loss == 0.1
    assert link.rate_bps == 1_500_000
    assert link.subnet4 == ipaddress.IPv4Network("198.18.200.0/29")
    assert link.needs_relay


@pytest.mark.parametrize(
    ("text", "rate"),
    [("10mbit", 10_000_000), ("64kbit", 64_000), ("1Gbit", 10**9), ("9000bit", 9000)],
)
def test_rates(text: str, rate: int) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("delay_ms = -1\n", "delay_ms must be a number from 0 to 10000"),
        ('delay_ms = "5ms"\n', "delay_ms must be a number"),
        ("delay_ms = true\n", "delay_ms must be a number"),
        ("delay_ms = nan\n", "delay_ms must be a number"),
        ("loss = 1.0\n", "loss must be below 1"),
        ("loss = -0.1\n", "loss must be a number from 0 to 1"),
        ('rate = "10mbps"\n', "rate '10mbps'"),
        ('rate = "fast"\n', "rate 'fast'"),
        ("rate = 10\n", "rate must be a string"),
        ('rate = "1000gbit"\n', "between 8kbit and 100gbit"),
        ('subnet4 = "2001:db8::/64"\n', "subnet4 must be an IPv4 network"),
        ('subnet4 = "198.18.0.0/31"\n', "needs room for two hosts"),
        ('subnet6 = "nonsense"\n', "subnet6"),
        ("colour = 3\n", "unknown key(s) ['colour']"),
    ],
)
def test_bad_link_fields_are_refused_with_the_link_named(extra: str, message: str) -> None:
    with pytest.raises(TopologyError) as info:
        Topology.parse(PAIR + extra, source="t.toml")
    text = str(info.value)
    assert text.startswith("t.toml: links[0]")
    assert message in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[nodes.a]\n[[links]]\na = "a"\nb = "zz"\n', "b = 'zz' is not a node"),
        ('[nodes.a]\n[[links]]\na = "a"\nb = "a"\n', "two different nodes"),
        ('[nodes.a]\n[nodes.b]\n[[links]]\na = "a"\n', "b must name a node"),
        (PAIR + '[[links]]\na = "b"\nb = "a"\n', "a second link between b and a"),
        ("[nodes.a]\n[nodes.a]\n", "not valid TOML"),
        ('[nodes."Bad Name"]\n', "node names are"),
        ("[nodes.a]\nrouter = 1\n", "router must be true or false"),
        ("[nodes.a]\nrole = 'x'\n", "unknown key(s) ['role']"),
        ("name = 'x'\n", "at least one node"),
        ("nodez = 1\n[nodes.a]\n", "unknown key(s) ['nodez']"),
        ("seed = -1\n[nodes.a]\n", "seed: must be an integer"),
        ('name = "a b"\n[nodes.a]\n', "is not a name"),
        ("links = 3\n[nodes.a]\n", "links: must be an array of tables"),
        ("[nodes.a\n", "not valid TOML"),
    ],
)
def test_bad_topologies_are_refused(text: str, message: str) -> None:
    with pytest.raises(TopologyError) as info:
        Topology.parse(text, source="t.toml")
    assert str(info.value).startswith("t.toml: ")
    assert message in str(info.value)


def test_overlapping_explicit_subnets_are_refused() -> None:
    text = (
        "[nodes.a]\n[nodes.b]\n[nodes.c]\n"
        '[[links]]\na = "a"\nb = "b"\nsubnet4 = "198.18.5.0/24"\n'
        '[[links]]\na = "b"\nb = "c"\nsubnet4 = "198.18.5.128/25"\n'
    )
    with pytest.raises(TopologyError, match=r"links\[1\] \(b-c\): subnet 198.18.5.128/25 overlaps"):
        Topology.parse(text)


def test_missing_files_and_unknown_names_say_what_exists(tmp_path: Path) -> None:
    with pytest.raises(TopologyError, match="no such topology file"):
        Topology.load(tmp_path / "absent.toml")
    with pytest.raises(TopologyError, match=r"bundled: .*line.*tree"):
        Topology.load("nonesuch")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[[")
    with pytest.raises(TopologyError, match="not valid TOML"):
        Topology.load(bad)


def test_with_link_delay_changes_all_links_or_one() -> None:
    line = Topology.load("line")
    every = line.with_link_delay(5)
    assert all(link.delay_ms == 5 for link in every.links)
    one = line.with_link_delay(3, ("r3", "r2"))
    assert [link.delay_ms for link in one.links] == [0, 0, 3, 0]
    assert line.links[2].delay_ms == 0  # the original is unchanged
    with pytest.raises(TopologyError, match="no link between 'ep' and 'target'"):
        line.with_link_delay(1, ("ep", "target"))
    with pytest.raises(TopologyError, match="delay_ms must be a number"):
        line.with_link_delay(-4)
    shaped = line.with_link_changes(("ep", "r1"), loss=0.5, rate="2mbit")
    assert shaped.links[0].loss == 0.5
    assert shaped.links[0].rate_bps == 2_000_000


def test_to_dict_round_trips() -> None:
    text = PAIR + 'delay_ms = 1.5\nloss = 0.25\nrate = "3mbit"\nsubnet6 = "2001:db8:77::/64"\n'
    topo = Topology.parse(text, source="x")
    again = Topology.from_dict(topo.to_dict(), source="x")
    assert again == topo


def test_the_public_surface_is_pinned() -> None:
    from packetlab import testbed

    assert set(testbed.__all__) == {
        "Cleanup", "InstanceError", "Interface", "LinkSpec", "Names", "NodeSpec", "Plan", "Route",
        "SetupError", "Testbed", "TestbedError", "Topology", "TopologyError", "bundled_names",
        "default_instance_name", "down_all", "known_instances", "make_plan", "preflight",
        "teardown",
    }  # fmt: skip
    assert all(hasattr(testbed, name) for name in testbed.__all__)
