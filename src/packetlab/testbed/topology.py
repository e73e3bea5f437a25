"""Topology descriptions: nodes (hosts and routers) and point-to-point links, loaded from TOML.

The format (one file per topology; unknown keys are errors, so typos do not pass silently)::

    name = "line"            # optional, default: the file's stem
    seed = 1                 # optional, seeds the loss generators of the links
    [nodes.ep]               # a host
    [nodes.r1]
    router = true            # forwards packets (IPv4 and IPv6)
    [[links]]
    a = "ep"
    b = "r1"
    delay_ms = 5             # optional one-way delay (user-space relay)
    loss = 0.01              # optional drop probability per frame and direction (relay)
    rate = "10mbit"          # optional rate per direction (tbf)
    subnet4 = "198.18.9.0/24"        # optional; default: automatic from 198.18.0.0/15
    subnet6 = "2001:db8:0:9::/64"    # optional; default: automatic from 2001:db8::/32

Bundled topologies (`line`, `tree`) live in ``packetlab/testbed/topologies/``.
"""

from __future__ import annotations

import ipaddress
import math
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from packetlab.testbed._errors import TopologyError

__all__ = ["LinkSpec", "NodeSpec", "Topology", "bundled_names", "parse_rate"]

NODE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
TOPOLOGY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
MAX_DELAY_MS = 10_000.0
MIN_RATE_BPS = 8_000
MAX_RATE_BPS = 100_000_000_000
MAX_LINKS = 500
_RATE = re.compile(r"(\d+(?:\.\d+)?)\s*(bit|kbit|mbit|gbit)", re.IGNORECASE)
_RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000}
_NODE_KEYS = {"router"}
_LINK_KEYS = {"a", "b", "delay_ms", "loss", "rate", "subnet4", "subnet6"}
_TOP_KEYS = {"name", "seed", "nodes", "links"}


def parse_rate(text: str) -> int:
    """Bits per second from a tc-style rate such as ``"10mbit"`` (units: bit, kbit, mbit, gbit)."""
    match = _RATE.fullmatch(text.strip())
    if not match:
        raise ValueError(
            f"rate {text!r}: give a number and one of bit, kbit, mbit, gbit, e.g. '10mbit'"
        )
    bps = round(float(match.group(1)) * _RATE_UNITS[match.group(2).lower()])
    if not MIN_RATE_BPS <= bps <= MAX_RATE_BPS:
        raise ValueError(f"rate {text!r}: must lie between 8kbit and 100gbit")
    return bps


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str
    router: bool = False
    """Routers forward IPv4 and IPv6; hosts never carry transit traffic."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    a: str
    b: str
    delay_ms: float = 0.0
    """One-way delay added in each direction by a user-space relay (0: no relay)."""
    loss: float = 0.0
    """Probability that the relay drops an IP frame, per frame and direction."""
    rate_bps: int | None = None
    """Rate limit per direction, bits per second (tbf on both ends), None: unlimited."""
    subnet4: ipaddress.IPv4Network | None = None
    subnet6: ipaddress.IPv6Network | None = None

    @property
    def needs_relay(self) -> bool:
        return self.delay_ms > 0 or self.loss > 0

    @property
    def label(self) -> str:
        return f"{self.a}-{self.b}"

    def joins(self, x: str, y: str) -> bool:
        return {self.a, self.b} == {x, y}

    def other(self, node: str) -> str:
        return self.b if node == self.a else self.a


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    nodes: tuple[NodeSpec, ...]
    links: tuple[LinkSpec, ...]
    seed: int = 0
    source: str = "<topology>"

    # -- loading ---------------------------------------------------------------------------

    @classmethod
    def load(cls, path_or_name: str | Path) -> Topology:
        """Read a topology file, or a bundled topology by name (``"line"``, ``"tree"``)."""
        path = Path(path_or_name)
        if path.is_file():
            try:
                text = path.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise TopologyError(f"{path}: cannot read: {exc}") from None
            return cls.parse(text, source=str(path), default_name=path.stem)
        name = str(path_or_name)
        if name in bundled_names():
            text = _bundled_dir().joinpath(f"{name}.toml").read_text()
            return cls.parse(text, source=f"bundled:{name}", default_name=name)
        if path.suffix == ".toml" or "/" in name:
            raise TopologyError(f"{path}: no such topology file")
        raise TopologyError(
            f"{name!r}: neither a topology file nor a bundled topology "
            f"(bundled: {', '.join(bundled_names())})"
        )

    @classmethod
    def parse(cls, text: str, source: str = "<string>", default_name: str = "topology") -> Topology:
        """A topology from TOML text."""
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise TopologyError(f"{source}: not valid TOML: {exc}") from None
        return cls.from_dict(data, source=source, default_name=default_name)

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], source: str = "<dict>", default_name: str = "topology"
    ) -> Topology:
        """A topology from the parsed TOML structure; every problem raises TopologyError."""
        return _TopologyReader(source).read(data, default_name)

    # -- queries ---------------------------------------------------------------------------

    def node(self, name: str) -> NodeSpec:
        for node in self.nodes:
            if node.name == name:
                return node
        raise TopologyError(f"{self.source}: no node named {name!r}")

    @property
    def node_names(self) -> tuple[str, ...]:
        return tuple(n.name for n in self.nodes)

    def link(self, a: str, b: str) -> LinkSpec:
        for link in self.links:
            if link.joins(a, b):
                return link
        raise TopologyError(f"{self.source}: no link between {a!r} and {b!r}")

    def neighbours(self, name: str) -> Iterator[tuple[str, int]]:
        """(neighbour, link index) pairs of a node, in link order."""
        for index, link in enumerate(self.links):
            if name in (link.a, link.b):
                yield link.other(name), index

    # -- variants --------------------------------------------------------------------------

    def with_link_delay(self, delay_ms: float, between: tuple[str, str] | None = None) -> Topology:
        """A copy with a one-way delay on every link, or on the link ``between`` two nodes."""
        return self.with_link_changes(between, delay_ms=delay_ms)

    def with_link_changes(self, between: tuple[str, str] | None, **changes: Any) -> Topology:
        """A copy with fields (delay_ms, loss, rate) changed on every link or on one link."""
        unknown = set(changes) - {"delay_ms", "loss", "rate"}
        if unknown:
            raise TopologyError(f"cannot change link field(s) {sorted(unknown)}")
        if between is not None:
            self.link(*between)
        raw = self.to_dict()
        for entry in raw["links"]:
            if between is None or {entry["a"], entry["b"]} == set(between):
                entry.update(changes)
                if entry.get("rate") is None:
                    entry.pop("rate", None)
        return Topology.from_dict(raw, source=self.source, default_name=self.name)

    def to_dict(self) -> dict[str, Any]:
        """The TOML structure of this topology (``from_dict(t.to_dict()) == t``)."""
        nodes: dict[str, Any] = {n.name: ({"router": True} if n.router else {}) for n in self.nodes}
        links = []
        for link in self.links:
            entry: dict[str, Any] = {"a": link.a, "b": link.b}
            if link.delay_ms:
                entry["delay_ms"] = link.delay_ms
            if link.loss:
                entry["loss"] = link.loss
            if link.rate_bps is not None:
                entry["rate"] = f"{link.rate_bps}bit"
            if link.subnet4 is not None:
                entry["subnet4"] = str(link.subnet4)
            if link.subnet6 is not None:
                entry["subnet6"] = str(link.subnet6)
            links.append(entry)
        return {"name": self.name, "seed": self.seed, "nodes": nodes, "links": links}


def bundled_names() -> tuple[str, ...]:
    """Names of the topologies shipped in the package."""
    return tuple(
        sorted(
            entry.name.removesuffix(".toml")
            for entry in _bundled_dir().iterdir()
            if entry.name.endswith(".toml")
        )
    )


def _bundled_dir() -> Any:
    return resources.files("packetlab.testbed").joinpath("topologies")


class _TopologyReader:
    """Validates the parsed structure; every error names the source and the entry."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, where: str, message: str) -> TopologyError:
        return TopologyError(f"{self.source}: {where}: {message}")

    def read(self, data: Mapping[str, Any], default_name: str) -> Topology:
        if not isinstance(data, Mapping):
            raise TopologyError(f"{self.source}: a topology is a table")
        unknown = set(data) - _TOP_KEYS
        if unknown:
            raise self.fail(
                "top level", f"unknown key(s) {sorted(unknown)} (known: {sorted(_TOP_KEYS)})"
            )
        name = data.get("name", default_name)
        if not isinstance(name, str) or not TOPOLOGY_NAME.fullmatch(name):
            raise self.fail("name", f"{name!r} is not a name (letters, digits, _ . -; 1-64 chars)")
        seed = data.get("seed", 0)
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise self.fail("seed", f"must be an integer >= 0, got {seed!r}")
        nodes = self.read_nodes(data.get("nodes"))
        links = self.read_links(data.get("links", []), {n.name for n in nodes})
        return Topology(name=name, nodes=nodes, links=links, seed=seed, source=self.source)

    def read_nodes(self, raw: Any) -> tuple[NodeSpec, ...]:
        if not isinstance(raw, Mapping) or not raw:
            raise self.fail("nodes", "give at least one node as a [nodes.NAME] table")
        nodes = []
        for name, body in raw.items():
            where = f"nodes.{name}"
            if not NODE_NAME.fullmatch(name):
                raise self.fail(
                    where,
                    "node names are 1-32 chars of a-z 0-9 _ -, starting with a letter or digit",
                )
            if not isinstance(body, Mapping):
                raise self.fail(where, "must be a table")
            unknown = set(body) - _NODE_KEYS
            if unknown:
                raise self.fail(where, f"unknown key(s) {sorted(unknown)} (known: router)")
            router = body.get("router", False)
            if not isinstance(router, bool):
                raise self.fail(where, f"router must be true or false, got {router!r}")
            nodes.append(NodeSpec(name=name, router=router))
        return tuple(nodes)

    def read_links(self, raw: Any, names: set[str]) -> tuple[LinkSpec, ...]:
        if not isinstance(raw, list):
            raise self.fail("links", "must be an array of tables ([[links]])")
        if len(raw) > MAX_LINKS:
            raise self.fail("links", f"at most {MAX_LINKS} links")
        links: list[LinkSpec] = []
        for index, body in enumerate(raw):
            link = self.read_link(index, body, names)
            for other in links:
                if other.joins(link.a, link.b):
                    raise self.fail(
                        f"links[{index}]", f"a second link between {link.a} and {link.b}"
                    )
            links.append(link)
        self.check_subnets(links)
        return tuple(links)

    def read_link(self, index: int, body: Any, names: set[str]) -> LinkSpec:
        where = f"links[{index}]"
        if not isinstance(body, Mapping):
            raise self.fail(where, "must be a table")
        unknown = set(body) - _LINK_KEYS
        if unknown:
            raise self.fail(
                where, f"unknown key(s) {sorted(unknown)} (known: {sorted(_LINK_KEYS)})"
            )
        ends = []
        for key in ("a", "b"):
            value = body.get(key)
            if not isinstance(value, str):
                raise self.fail(where, f"{key} must name a node")
            if value not in names:
                raise self.fail(where, f"{key} = {value!r} is not a node (nodes: {sorted(names)})")
            ends.append(value)
        a, b = ends
        where = f"links[{index}] ({a}-{b})"
        if a == b:
            raise self.fail(where, "a link joins two different nodes")
        delay = self.number(where, "delay_ms", body.get("delay_ms", 0.0), 0.0, MAX_DELAY_MS)
        loss = self.number(where, "loss", body.get("loss", 0.0), 0.0, 1.0)
        if loss >= 1.0:
            raise self.fail(where, "loss must be below 1")
        rate = body.get("rate")
        rate_bps: int | None = None
        if rate is not None:
            if not isinstance(rate, str):
                raise self.fail(where, f"rate must be a string such as '10mbit', got {rate!r}")
            try:
                rate_bps = parse_rate(rate)
            except ValueError as exc:
                raise self.fail(where, str(exc)) from None
        subnet4 = self.subnet(where, "subnet4", body.get("subnet4"), 4)
        subnet6 = self.subnet(where, "subnet6", body.get("subnet6"), 6)
        assert subnet4 is None or isinstance(subnet4, ipaddress.IPv4Network)
        assert subnet6 is None or isinstance(subnet6, ipaddress.IPv6Network)
        return LinkSpec(
            a=a,
            b=b,
            delay_ms=delay,
            loss=loss,
            rate_bps=rate_bps,
            subnet4=subnet4,
            subnet6=subnet6,
        )

    def number(self, where: str, key: str, value: Any, low: float, high: float) -> float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if not ok or not math.isfinite(value) or not low <= value <= high:
            raise self.fail(
                where, f"{key} must be a number from {low:g} to {high:g}, got {value!r}"
            )
        return float(value)

    def subnet(
        self, where: str, key: str, value: Any, version: int
    ) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
        if value is None:
            return None
        try:
            net = ipaddress.ip_network(value)
        except (TypeError, ValueError) as exc:
            raise self.fail(where, f"{key}: {exc}") from None
        if net.version != version:
            raise self.fail(where, f"{key} must be an IPv{version} network, got {value!r}")
        longest = 30 if version == 4 else 126
        if net.prefixlen > longest:
            raise self.fail(
                where, f"{key} {net}: needs room for two hosts (prefix /{longest} or shorter)"
            )
        return net

    def check_subnets(self, links: list[LinkSpec]) -> None:
        seen: list[tuple[int, ipaddress.IPv4Network | ipaddress.IPv6Network]] = []
        for index, link in enumerate(links):
            for net in (link.subnet4, link.subnet6):
                if net is None:
                    continue
                for other_index, other in seen:
                    if other.version == net.version and other.overlaps(net):
                        raise self.fail(
                            f"links[{index}] ({link.label})",
                            f"subnet {net} overlaps {other} of links[{other_index}]",
                        )
                seen.append((index, net))
