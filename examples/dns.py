"""A DNS lookup through an endpoint: what the reference's test_dns mlet does.

    packetlab controller examples/dns.py [DOMAIN [RESOLVER[:PORT]]]

Prints "DOMAIN is ADDRESS" and the round trip measured with the endpoint's kernel timestamps.
"""

from __future__ import annotations

import dns.message
import dns.rdatatype

from packetlab.controller.api import EndpointHandle
from packetlab.wire import Ndata, Ntag
from packetlab.wire.hostport import split_host_port

SKTID = 1
TAG = 1234


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    domain = args[0] if args else "www.example.com"
    resolver, port = split_host_port(args[1] if len(args) > 1 else "127.0.0.1", 53)
    query = dns.message.make_query(domain, dns.rdatatype.A)
    await endpoint.open_udp(SKTID)
    try:
        await endpoint.send_udp(SKTID, resolver, port, query.to_wire(), tag=TAG)
        sent = await endpoint.next(Ntag, sktid=SKTID, timeout=5)
        reply = await endpoint.next(Ndata, sktid=SKTID, timeout=5)
    finally:
        await endpoint.close(SKTID)
    answer = dns.message.from_wire(reply.data)
    addresses = [
        item.to_text()
        for rrset in answer.answer
        if rrset.rdtype == dns.rdatatype.A
        for item in rrset
    ]
    found = ", ".join(addresses) if addresses else "not found"
    print(f"{domain} is {found}")
    print(f"  round trip {(reply.time - sent.time) / 1e6:.3f} ms (endpoint kernel timestamps)")
