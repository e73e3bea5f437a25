"""DNS queries through an endpoint's UDP or TCP socket (no raw sockets needed).

    result = await dns_query(endpoint, "198.18.4.2", "www.example.net", "AAAA", proto="TCP")

The query is built with dnspython like dig's (random id, RD, EDNS0 with a 1232-byte UDP
payload). rt_ms is the answer's RX stamp minus the query's TX stamp, both endpoint kernel
stamps: over TCP that is the request's last byte leaving to the answer's last segment arriving
(the connect is not in it). Datagrams that are not the answer (another source, id or question)
are ignored; a truncated UDP answer (TC) is returned as it came (ask again over TCP). The
endpoint reports no ICMP errors on UDP sockets, so a UDP query to a closed port ends as
"timeout"; over TCP a closed port is "connection refused".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.rdatatype

from packetlab import wire as w
from packetlab.controller.api import EndpointError, EndpointHandle
from packetlab.measure.errors import MeasurementError
from packetlab.measure.http import (
    ConnectFailed,
    address_family,
    check_port,
    check_sktid,
    check_timeout,
    refusal,
    release_socket,
    timed_open_tcp,
)
from packetlab.measure.prepare import prepare
from packetlab.measure.results import ClockOffset, DnsResult

QUERY_TAG = 0x444E  # "DN": the ntag of the query carries its TX stamp
EDNS_PAYLOAD = 1232  # what dig offers (DNS flag day 2020)


def make_query(qname: str, qtype: str = "A") -> dns.message.Message:
    """A dig-like query: random id, RD, EDNS0 offering EDNS_PAYLOAD bytes over UDP."""
    try:
        rdtype = dns.rdatatype.from_text(qtype)
    except dns.rdatatype.UnknownRdatatype:
        raise MeasurementError(f"{qtype!r} is not a DNS record type") from None
    try:
        name = dns.name.from_text(qname)
    except dns.exception.DNSException as exc:
        raise MeasurementError(f"{qname!r} is not a DNS name: {exc}") from None
    return dns.message.make_query(
        name, rdtype, use_edns=0, payload=EDNS_PAYLOAD, flags=dns.flags.RD
    )


class MessageStream:
    """Sans-IO splitter of DNS messages on a TCP stream (RFC 1035 4.2.2: each message behind
    a two-byte length): ``feed`` bytes as they come, get the messages they complete."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buffer = self._buffer
        buffer += data
        messages = []
        while len(buffer) >= 2:
            end = 2 + int.from_bytes(buffer[:2], "big")
            if len(buffer) < end:
                break
            messages.append(bytes(buffer[2:end]))
            del buffer[:end]
        return messages


def answer_to(query: dns.message.Message, data: bytes) -> dns.message.Message | None:
    """``data`` parsed if it is the answer to ``query`` (id, QR, opcode, question), else None."""
    try:
        answer = dns.message.from_wire(data)
    except dns.exception.DNSException:
        return None
    return answer if query.is_response(answer) else None


async def dns_query(
    endpoint: EndpointHandle,
    server: str,
    qname: str,
    qtype: str = "A",
    *,
    proto: str = "UDP",
    port: int = 53,
    timeout: float = 5.0,
    sktid: int = 240,
    clock: ClockOffset | None = None,
    query: dns.message.Message | None = None,
) -> DnsResult:
    """Ask ``server`` (an IP address) for ``qname``/``qtype`` over ``proto`` ("UDP" or "TCP")
    from the endpoint; ``query``, if given, is sent instead of a new query (the result names
    its question). The answer's wire bytes are in ``response``; a failure is a result with
    ``error`` set ("timeout", "connection refused", ...). ``timeout`` (seconds) covers the
    whole exchange, connect included."""
    transport = proto.upper()
    if transport not in ("UDP", "TCP"):
        raise MeasurementError(f"proto must be UDP or TCP, got {proto!r}")
    family = address_family(server, "DNS server")
    check_port(port)
    check_timeout(timeout)
    check_sktid(sktid)
    message = make_query(qname, qtype) if query is None else query
    if not message.question:
        raise MeasurementError("the DNS query has no question")
    question = message.question[0]
    _, who = await prepare(endpoint, f"DNS over {transport}", server, udp=transport == "UDP",
                           tcp=transport == "TCP", clock=clock)  # fmt: skip
    result = DnsResult(
        origin=who, server=server, port=port, proto=transport,
        af=family, qname=question.name.to_text(), qtype=dns.rdatatype.to_text(question.rdtype),
        started_ns=0,
    )  # fmt: skip
    deadline = asyncio.get_running_loop().time() + timeout
    if transport == "UDP":
        await _over_udp(endpoint, sktid, message, deadline, result)
    else:
        await _over_tcp(endpoint, sktid, message, timeout, deadline, result)
    return result


async def _over_udp(
    endpoint: EndpointHandle,
    sktid: int,
    query: dns.message.Message,
    deadline: float,
    result: DnsResult,
) -> None:
    try:
        await endpoint.open_udp(sktid, "::" if result.af == 6 else "0.0.0.0")
    except EndpointError as exc:
        result.started_ns, result.error = await endpoint.now(), refusal(exc, sktid)
        return
    try:
        server = w.addr_bytes(result.server)
        now, sent = await asyncio.gather(
            endpoint.now(),
            endpoint.send_udp(sktid, result.server, result.port, query.to_wire(), tag=QUERY_TAG),
            return_exceptions=True,
        )
        if isinstance(now, BaseException):
            raise now
        result.started_ns = now
        if isinstance(sent, EndpointError):
            result.error = refusal(sent, sktid)
            return
        if isinstance(sent, BaseException):
            raise sent

        def answer(note: w.Ndata) -> bytes | None:
            if note.raddr != server or note.rport != result.port:
                return None
            return note.data if answer_to(query, note.data) else None

        await _await_answer(endpoint, sktid, deadline, answer, result)
    finally:
        await release_socket(endpoint, sktid)


async def _over_tcp(
    endpoint: EndpointHandle,
    sktid: int,
    query: dns.message.Message,
    timeout: float,
    deadline: float,
    result: DnsResult,
) -> None:
    try:
        opened = await timed_open_tcp(endpoint, sktid, result.server, result.port, timeout)
    except ConnectFailed as exc:
        result.started_ns, result.error = exc.start_ns, exc.reason
        return
    result.started_ns = opened.start_ns
    try:
        wire = query.to_wire()
        try:
            await endpoint.send_tcp(sktid, len(wire).to_bytes(2, "big") + wire, tag=QUERY_TAG,
                                    family=result.af)  # fmt: skip
        except EndpointError as exc:
            result.error = refusal(exc, sktid)
            return
        stream = MessageStream()

        def answer(note: w.Ndata) -> bytes | None:
            return next((m for m in stream.feed(note.data) if answer_to(query, m)), None)

        await _await_answer(endpoint, sktid, deadline, answer, result)
    finally:
        await release_socket(endpoint, sktid)


async def _await_answer(
    endpoint: EndpointHandle,
    sktid: int,
    deadline: float,
    answer: Callable[[w.Ndata], bytes | None],
    result: DnsResult,
) -> None:
    """Read notifications until the query's TX stamp and its answer are both in ``result``."""
    loop = asyncio.get_running_loop()
    sent_ns = received_ns = None
    while sent_ns is None or received_ns is None:
        try:
            note = await endpoint.next(
                w.Message, sktid=sktid, timeout=max(0.0, deadline - loop.time())
            )
        except TimeoutError:
            result.error = "timeout"
            return
        if isinstance(note, w.Ntag) and note.tag == QUERY_TAG:
            if note.errid:
                result.error = "the endpoint could not send the query"
                return
            sent_ns = note.time
        elif isinstance(note, w.Ndata) and received_ns is None:
            data = answer(note)
            if data is not None:
                result.response, received_ns = data, note.time
        elif (
            isinstance(note, w.Nstat)
            and note.code != w.NstatCode.ESTABLISHED
            and received_ns is None
        ):
            result.error = "connection closed before the answer"
            return
        elif isinstance(note, w.Nblock):
            result.error = "the endpoint's monitor blocked the answer"
            return
    if result.proto == "UDP":
        result.started_ns = sent_ns
    result.rt_ms = (received_ns - sent_ns) / 1e6
