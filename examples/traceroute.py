"""UDP traceroute through an endpoint's raw socket: what the reference's test_pktif_traceroute
mlet does.

    packetlab controller examples/traceroute.py TARGET [MAX_TTL]

Sends one UDP probe per TTL (1..MAX_TTL) as whole IP packets over a raw socket, all in one
batch, captures the ICMP time-exceeded and port-unreachable answers with the traceroute receive
filter (ncap), matches each answer to its probe by the quoted destination port and prints the
hops with round trips from the endpoint's kernel timestamps. Needs raw sockets on the endpoint.
"""

from __future__ import annotations

import os

from packetlab import packets
from packetlab import wire as w
from packetlab.controller.api import EndpointHandle
from packetlab.programs.builtin import traceroute_recv

SKTID = 1
BASE_PORT = 33434
WAIT_S = 2.0


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    target = args[0] if args else "127.0.0.1"
    max_ttl = int(args[1]) if len(args) > 1 else 16
    for hop, address, rtt_ms in await trace(endpoint, target, max_ttl):
        shown = f"{address}  {rtt_ms:.3f} ms" if address else "*"
        print(f"{hop:2d}  {shown}")


async def trace(
    endpoint: EndpointHandle, target: str, max_ttl: int = 16
) -> list[tuple[int, str | None, float]]:
    """[(ttl, responder or None, rtt in ms)] up to the target (or max_ttl)."""
    family = 6 if ":" in target else 4
    v4, v6 = await endpoint.addresses()
    local = (v6 if family == 6 else v4) or ["::" if family == 6 else "0.0.0.0"]
    sport = 40000 + os.getpid() % 20000
    await endpoint.open_raw(SKTID, family)
    try:
        await endpoint.capture(SKTID, traceroute_recv(family), family=family)
        probes = [
            w.Nsend(
                SKTID,
                family,
                w.Proto.RAW,
                0,
                ttl,
                packets.udp_probe(local[0], target, sport, BASE_PORT + ttl, b"pl", ttl, ttl),
            )
            for ttl in range(1, max_ttl + 1)
        ]
        await endpoint.call_many(probes)
        sent = {n.tag: n.time for n in await endpoint.collect(w.Ntag, max_ttl, sktid=SKTID)}
        answers = await endpoint.collect(w.Ndata, max_ttl, sktid=SKTID, timeout=WAIT_S)
    finally:
        await endpoint.close(SKTID)
    hops: dict[int, tuple[str, float]] = {}
    for note in answers:
        quoted = packets.quoted_probe(note.data)
        if quoted is None or quoted.sport != sport:
            continue
        ttl = quoted.dport - BASE_PORT
        if ttl in sent and ttl not in hops:
            hops[ttl] = (packets.addr_text(quoted.responder), (note.time - sent[ttl]) / 1e6)
    last = min((t for t, (a, _) in hops.items() if a == target), default=max_ttl)
    return [(t, *hops[t]) if t in hops else (t, None, 0.0) for t in range(1, last + 1)]
