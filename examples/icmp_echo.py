"""ICMP echo through an endpoint's raw socket: what the reference's test_icmp_echo mlet does.

    packetlab controller examples/icmp_echo.py [TARGET [COUNT]]

Opens a raw socket, installs the traceroute receive filter as the socket's capture filter
(ncap), sends whole IPv4/IPv6 echo requests (nsend) and prints each reply with the round trip
measured by the endpoint's kernel timestamps (ntag = sent, ndata = received). Needs an endpoint
with raw sockets (TRANSSUP raw).
"""

from __future__ import annotations

import os

from packetlab import packets
from packetlab.controller.api import EndpointHandle
from packetlab.programs.builtin import traceroute_recv
from packetlab.wire import Ndata, Ntag

SKTID = 1


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    target = args[0] if args else "127.0.0.1"
    count = int(args[1]) if len(args) > 1 else 3
    family = 6 if ":" in target else 4
    v4, v6 = await endpoint.addresses()
    local = (v6 if family == 6 else v4) or ["::" if family == 6 else "0.0.0.0"]
    ident = os.getpid() & 0xFFFF
    await endpoint.open_raw(SKTID, family)
    try:
        await endpoint.capture(SKTID, traceroute_recv(family), family=family)
        for seq in range(1, count + 1):
            probe = packets.icmp_echo(local[0], target, ident, seq, b"packetlab echo")
            await endpoint.send_raw(SKTID, probe, tag=seq)
            sent = await endpoint.next(Ntag, sktid=SKTID, timeout=5)
            reply = await _reply(endpoint, ident, seq)
            if reply is None:
                print(f"seq={seq}: no reply")
                continue
            rtt = (reply.time - sent.time) / 1e6
            print(f"{len(reply.data)} bytes from {target}: seq={seq} time={rtt:.3f} ms")
    finally:
        await endpoint.close(SKTID)


async def _reply(endpoint: EndpointHandle, ident: int, seq: int) -> Ndata | None:
    """The echo reply to (ident, seq); other captured packets are skipped."""
    while True:
        try:
            note = await endpoint.next(Ndata, sktid=SKTID, timeout=2)
        except TimeoutError:
            return None
        try:
            packet = packets.parse_ip(note.data)
        except packets.PacketError:
            continue
        echo = packet.payload
        if (
            isinstance(echo, packets.ICMP | packets.ICMPv6)
            and echo.type in (0, 129)
            and (echo.ident, echo.seq) == (ident, seq)
        ):
            return note
