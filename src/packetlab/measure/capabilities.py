"""What an endpoint can do, read from its memory (TRANSSUP, IP4LS/IP6LS), and each tool's needs.

caps = await capabilities(endpoint)
caps.require("traceroute", raw=True, family=6)   # EndpointCannot with a clear message
"""

from __future__ import annotations

from dataclasses import dataclass

from packetlab.controller.api import EndpointHandle
from packetlab.measure.errors import EndpointCannot
from packetlab.wire import memmap as vmem


@dataclass(frozen=True, slots=True)
class Capabilities:
    host_id: str
    raw: bool
    tcp: bool
    udp: bool
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]

    def source(self, family: int) -> str:
        """The endpoint's first address of ``family`` (what probes leave from)."""
        addresses = self.ipv6 if family == 6 else self.ipv4
        if not addresses:
            raise EndpointCannot(f"endpoint {self.host_id!r} has no IPv{family} address")
        return addresses[0]

    def require(
        self, tool: str, *, raw: bool = False, tcp: bool = False, udp: bool = False,
        family: int | None = None,
    ) -> None:  # fmt: skip
        """Raise :class:`EndpointCannot` naming what ``tool`` needs and the endpoint lacks."""
        missing = [
            name
            for name, wanted, have in (
                (
                    "raw sockets (TRANSSUP raw; run the endpoint with CAP_NET_RAW and "
                    'transports including "raw")',
                    raw,
                    self.raw,
                ),
                ("TCP sockets (TRANSSUP tcp)", tcp, self.tcp),
                ("UDP sockets (TRANSSUP udp)", udp, self.udp),
            )
            if wanted and not have
        ]
        if family is not None and not (self.ipv6 if family == 6 else self.ipv4):
            missing.append(f"an IPv{family} address (IP{family}LS is empty)")
        if missing:
            raise EndpointCannot(f"{tool} needs {' and '.join(missing)}; endpoint "
                                 f"{self.host_id!r} has none")  # fmt: skip


async def capabilities(endpoint: EndpointHandle) -> Capabilities:
    transsup = int.from_bytes(await endpoint.mread(vmem.TRANSSUP, 4), "big")
    v4, v6 = await endpoint.addresses()
    return Capabilities(
        host_id=await endpoint.host_id(),
        raw=bool(transsup & vmem.TRANSSUP_RAW),
        tcp=bool(transsup & vmem.TRANSSUP_TCP),
        udp=bool(transsup & vmem.TRANSSUP_UDP),
        ipv4=tuple(v4),
        ipv6=tuple(v6),
    )
