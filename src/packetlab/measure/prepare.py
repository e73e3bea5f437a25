"""What every tool does first: check the endpoint can do it and note who measures."""

from __future__ import annotations

import ipaddress

from packetlab.controller.api import EndpointHandle
from packetlab.measure.capabilities import Capabilities, capabilities
from packetlab.measure.clock import clock_offset, origin
from packetlab.measure.errors import MeasurementError
from packetlab.measure.results import ClockOffset, Origin


def family_of(address: str) -> int:
    """4 or 6 for an IP address literal; MeasurementError for anything else."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        raise MeasurementError(f"{address!r} is not an IPv4 or IPv6 address") from None


async def prepare(
    endpoint: EndpointHandle,
    tool: str,
    target: str,
    *,
    raw: bool = False,
    tcp: bool = False,
    udp: bool = False,
    clock: ClockOffset | None = None,
) -> tuple[Capabilities, Origin]:
    """The endpoint's capabilities (EndpointCannot when it lacks what ``tool`` needs for
    ``target``'s family) and the :class:`Origin` for the results (clock offset measured now
    unless given)."""
    family = family_of(target)
    caps = await capabilities(endpoint)
    caps.require(tool, raw=raw, tcp=tcp, udp=udp, family=family)
    if clock is None:
        clock = await clock_offset(endpoint)
    return caps, origin(caps, family, clock)
