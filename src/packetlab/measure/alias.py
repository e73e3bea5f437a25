"""Alias resolution, Ally-style: do two addresses belong to one router?

Probes go to A and B in turn, a few ms apart, in one train. A router that numbers all its
packets from one IP-ID counter answers with IDs that rise in the order the answers were sent,
across both addresses: A's, then B's, then A's again, each step small. Two routers (or
per-destination counters) give two sequences that interleave badly. Only IPv4 has an ID in
every packet; answers with IDs that do not behave like a counter (zero, constant, random) give
"unknown". Linux hashes its ICMP ID counters by source and destination, so two addresses of a
Linux router look like two routers to this test: an honest limit of the method.
"""

from __future__ import annotations

import itertools
import secrets

from packetlab import packets
from packetlab.controller.api import EndpointHandle
from packetlab.measure.errors import MeasurementError
from packetlab.measure.prepare import family_of, prepare
from packetlab.measure.results import AliasResult, ClockOffset
from packetlab.measure.train import send_train

FUDGE = 200
"""Largest step between consecutive IDs of one counter (Ally's default)."""


def ally_verdict(ids: list[tuple[str, int, int]], a: str, b: str) -> tuple[str, str]:
    """(verdict, reason) from (address, receive time, IP ID) answers in arrival order."""
    per = {a: [i for addr, _, i in ids if addr == a], b: [i for addr, _, i in ids if addr == b]}
    if min(len(per[a]), len(per[b])) < 2:
        return "unknown", "fewer than two answers from each address"
    for addr, seq in per.items():
        steps = [(y - x) % 0x10000 for x, y in itertools.pairwise(seq)]
        if not all(0 < s <= FUDGE * 4 for s in steps):
            return "unknown", f"{addr}'s IP IDs do not behave like a counter: {seq}"
    merged = [i for _, _, i in ids]
    steps = [(y - x) % 0x10000 for x, y in itertools.pairwise(merged)]
    if all(0 < s <= FUDGE for s in steps):
        return "alias", f"one counter: IDs {merged} rise across both addresses"
    return "not-alias", f"two counters: IDs {merged} do not rise in arrival order"


async def alias(
    endpoint: EndpointHandle,
    addr_a: str,
    addr_b: str,
    *,
    rounds: int = 3,
    spacing: float = 0.01,
    port: int = 33435,
    timeout: float = 2.0,
    clock: ClockOffset | None = None,
) -> AliasResult:
    """Ally's test on ``addr_a`` and ``addr_b`` (IPv4) with UDP probes to a closed port."""
    if family_of(addr_a) != 4 or family_of(addr_b) != 4:
        raise MeasurementError("alias resolution by IP ID needs two IPv4 addresses")
    if addr_a == addr_b:
        raise MeasurementError("alias resolution needs two different addresses")
    if not 1 <= rounds <= 50 or spacing < 0:
        raise MeasurementError("alias rounds 1..50 and spacing >= 0 please")
    caps, who = await prepare(endpoint, "alias", addr_a, raw=True, clock=clock)
    sport = 40000 + secrets.randbelow(20000)
    train = []
    for n in range(rounds * 2 + 1):  # A B A B ... A: every B sits between two A's
        dst = addr_a if n % 2 == 0 else addr_b
        body = n.to_bytes(2, "big")
        train.append((spacing if n else 0.0, packets.udp_probe(who.src_addr, dst, sport, port,
                                                             body, 64, 1000 + n)))  # fmt: skip
    records = await send_train(endpoint, train, timeout, caps=caps)
    answers = sorted(
        (r.received_ns, r.responder, int.from_bytes(r.response[4:6], "big"))
        for r in records
        if r.response is not None and r.received_ns is not None and r.responder
    )
    ids = [(addr, t, ip_id) for t, addr, ip_id in answers]
    verdict, reason = ally_verdict(ids, addr_a, addr_b)
    return AliasResult(who, addr_a, addr_b, verdict, ids, reason)
