"""Probes of a send train as bytes, and the capture filter that lets their responses in.

A probe is a whole IPv4 or IPv6 packet given as bytes (or bytearray, memoryview), as a
:class:`packetlab.packets.IPv4` / :class:`~packetlab.packets.IPv6` object, or as anything
``bytes()`` turns into a packet, such as a scapy ``IP()/UDP()`` (scapy is never imported here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from packetlab.measure.errors import MeasurementError
from packetlab.packets import (
    ICMP,
    TCP,
    UDP,
    ICMPv6,
    IPv4,
    IPv6,
    PacketError,
    Summary,
    addr_text,
    summarize,
)

MAX_HOSTS = 16
"""Past this many destinations of one protocol, the filter stops naming them."""
MAX_PORTS = 16
"""Past this many source ports of one protocol, the filter takes their range."""

# what can answer a probe: echo replies and the error types quoted_probe reads
_ICMP4 = (
    "icmp and (icmp[0] == 0 or (icmp[0] >= 3 and icmp[0] <= 5) or icmp[0] == 11 or icmp[0] == 12)"
)
_ICMP6 = "icmp6 and (icmp6[0] == 129 or (icmp6[0] >= 1 and icmp6[0] <= 4))"


def probe_bytes(probe: object, index: int = 0) -> bytes:
    """The wire bytes of one probe; MeasurementError (naming probe ``index``) when it is not
    one well-formed IPv4/IPv6 packet."""
    if isinstance(probe, bytes):
        data = probe
    elif isinstance(probe, bytearray | memoryview):
        data = bytes(probe)
    elif isinstance(probe, IPv4 | IPv6):
        try:
            data = probe.build()
        except PacketError as exc:
            raise MeasurementError(f"probe {index}: {exc}") from None
    elif isinstance(probe, UDP | TCP | ICMP | ICMPv6):
        raise MeasurementError(
            f"probe {index} is a bare {type(probe).__name__} header: wrap it in "
            "packets.IPv4(...) or packets.IPv6(...)"
        )
    elif isinstance(probe, str) or not hasattr(type(probe), "__bytes__"):
        raise MeasurementError(
            f"probe {index}: a {type(probe).__name__} is not a packet (give bytes, a "
            "packetlab.packets IPv4/IPv6 object or a scapy IP/IPv6 packet)"
        )
    else:
        try:
            data = bytes(probe)  # type: ignore[call-overload]
        except Exception as exc:  # a third-party packet that fails to build
            raise MeasurementError(f"probe {index}: could not build it: {exc}") from exc
    try:
        summarize(data)
    except PacketError as exc:
        raise MeasurementError(f"probe {index} is not one well-formed IP packet: {exc}") from None
    return data


def train_bytes(probes: Sequence[object]) -> tuple[int, list[bytes]]:
    """(IP version, the probes' bytes); MeasurementError unless all are of one family."""
    data = [probe_bytes(probe, i) for i, probe in enumerate(probes)]
    if not data:
        return 4, data
    family = data[0][0] >> 4
    for i, packet in enumerate(data):
        if packet[0] >> 4 != family:
            raise MeasurementError(
                f"a train is of one IP family: probe 0 is IPv{family}, probe {i} is "
                f"IPv{packet[0] >> 4}"
            )
    return family, data


def capture_expression(family: int, probes: Sequence[bytes]) -> str:
    """A tcpdump expression for the responses to ``probes``: ICMP echo replies and errors
    from anywhere, and TCP/UDP from the probes' destinations to their source ports (by
    port range and without hosts when there are many, so the filter stays small)."""
    flows: dict[int, tuple[set[bytes], set[int]]] = {}
    for data in probes:
        info: Summary = summarize(data)
        if info.proto in (6, 17):
            hosts, ports = flows.setdefault(info.proto, (set(), set()))
            hosts.add(info.dst)
            ports.add(info.sport)
    parts = [_ICMP6 if family == 6 else _ICMP4]
    for proto, (hosts, ports) in sorted(flows.items()):
        clause = ["tcp" if proto == 6 else "udp"]
        if len(hosts) <= MAX_HOSTS:
            clause.append(_any(f"src host {addr_text(h)}" for h in sorted(hosts)))
        if len(ports) <= MAX_PORTS:
            clause.append(_any(f"dst port {p}" for p in sorted(ports)))
        else:
            clause.append(f"dst portrange {min(ports)}-{max(ports)}")
        parts.append(" and ".join(clause))
    return _any(parts) if len(parts) > 1 else parts[0]


def _any(alternatives: Iterable[str]) -> str:
    items = list(alternatives)
    return items[0] if len(items) == 1 else "(" + " or ".join(f"({a})" for a in items) + ")"
