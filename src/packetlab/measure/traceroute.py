"""Paris traceroute over send_train: UDP, ICMP echo or TCP SYN probes whose flow identifiers
(ports; ICMP type, code and checksum) stay constant, so per-flow load balancers route every
probe alike. Probes differ only where load balancers do not look: the IPv4 ID, the UDP
checksum (set through two payload bytes), the ICMP sequence number (with two payload bytes
that keep the checksum constant) or the TCP sequence number; send_train matches answers by them.

Each round sends one probe per TTL as one train, scheduled on the endpoint; the first round
covers first_ttl..max_ttl, later rounds stop at the hop where the first one ended. The trace
ends at the target (it answered), at an unreachable, after ``gap_limit`` silent hops in a row,
or at max_ttl.
"""

from __future__ import annotations

import secrets

from packetlab import packets
from packetlab.controller.api import EndpointHandle
from packetlab.measure.errors import MeasurementError
from packetlab.measure.ping import reply_of
from packetlab.measure.prepare import prepare
from packetlab.measure.results import PORT_UNREACH, UNREACH, ClockOffset, Hop, Reply, TraceResult
from packetlab.measure.train import send_train

PROTOS = ("UDP", "ICMP", "TCP")
DEFAULT_PORT = {"UDP": 33435, "TCP": 80, "ICMP": 0}


def paris_icmp_payload(seq: int, constant: int, size: int) -> bytes:
    """Payload whose first two bytes make seq + them a constant one's-complement sum, so the
    echo request's checksum is the same whatever ``seq``."""
    word = (constant - seq) % 0xFFFF
    return word.to_bytes(2, "big") + bytes(max(0, size - 2))


def _probe(
    proto: str, source: str, target: str, ttl: int, number: int, flow: int, dport: int, size: int
) -> bytes:
    ip_id = (flow * 251 + number) & 0xFFFF or 1
    if proto == "UDP":
        body = number.to_bytes(2, "big") + bytes(max(0, size - 2))
        return packets.udp_probe(source, target, flow, dport, body, ttl, ip_id)
    if proto == "ICMP":
        payload = paris_icmp_payload(number, 0x5A5A, max(size, 2))
        return packets.icmp_echo(source, target, flow, number, payload, ttl)
    seq_no = (secrets.randbits(16) << 16) | number
    return packets.tcp_syn(source, target, flow, dport, seq_no, ttl, ident=ip_id)


def _ends_trace(reply: Reply, target: str, af: int) -> str | None:
    """Why the trace ends at this reply's hop (None: it goes on)."""
    if reply.responder is None:
        return None
    if reply.responder == target:
        return "COMPLETED"
    if reply.icmp_type == UNREACH[af] and reply.icmp_code != PORT_UNREACH[af]:
        return "UNREACH"
    return None


async def traceroute(
    endpoint: EndpointHandle,
    target: str,
    *,
    proto: str = "UDP",
    first_ttl: int = 1,
    max_ttl: int = 30,
    attempts: int = 3,
    gap_limit: int = 5,
    timeout: float = 2.0,
    port: int | None = None,
    paris_id: int = 0,
    size: int = 0,
    target_name: str | None = None,
    clock: ClockOffset | None = None,
) -> TraceResult:
    """Trace the path to ``target``; ``attempts`` probes per hop (one per round)."""
    proto = proto.upper()
    if proto not in PROTOS:
        raise MeasurementError(f"traceroute protocol {proto!r}: use one of {', '.join(PROTOS)}")
    if not 1 <= first_ttl <= max_ttl <= 255:
        raise MeasurementError(f"TTLs {first_ttl}..{max_ttl}: need 1 <= first <= max <= 255")
    if not 1 <= attempts <= 10 or gap_limit < 1 or timeout <= 0:
        raise MeasurementError("attempts 1..10, gap limit >= 1 and timeout > 0 please")
    if not 0 <= paris_id <= 0xFF or not 0 <= size <= 1400:
        raise MeasurementError("paris_id 0..255 and size 0..1400 bytes please")
    caps, who = await prepare(endpoint, "traceroute", target, raw=True, clock=clock)
    af = 6 if ":" in target else 4
    dport = port or DEFAULT_PORT[proto]
    flow = (33000 + (secrets.randbelow(64) << 8) + paris_id) & 0xFFFF  # constant per trace
    hops = {ttl: Hop(ttl) for ttl in range(first_ttl, max_ttl + 1)}
    last_ttl, reason = max_ttl, "MAXTTL"
    number = 0
    started: int | None = None
    ended = 0
    probe_size = 0
    for _ in range(attempts):
        ttls = list(range(first_ttl, last_ttl + 1))
        train = []
        for ttl in ttls:
            number += 1
            probe = _probe(proto, who.src_addr, target, ttl, number, flow, dport, size)
            probe_size = len(probe)
            train.append((0.0, probe))
        records = await send_train(endpoint, train, timeout, caps=caps)
        for ttl, record in zip(ttls, records, strict=True):
            hops[ttl].replies.append(reply_of(len(hops[ttl].replies) + 1, record))
            if record.sent_ns and (started is None or record.sent_ns < started):
                started = record.sent_ns
            ended = max(ended, record.received_ns or 0, record.sent_ns or 0)
        last_ttl, reason = _stop(hops, first_ttl, last_ttl, target, af, gap_limit)
    return TraceResult(
        origin=who,
        target=target,
        target_name=target_name or target,
        proto=proto,
        af=af,
        paris_id=paris_id,
        size=probe_size,
        started_ns=started or 0,
        ended_ns=ended,
        hops=[hops[ttl] for ttl in range(first_ttl, last_ttl + 1)],
        max_ttl=max_ttl,
        stop_reason=reason,
    )


def _stop(
    hops: dict[int, Hop], first: int, last: int, target: str, af: int, gap_limit: int
) -> tuple[int, str]:
    """(the last TTL worth keeping, why the trace stops there)."""
    silent = 0
    for ttl in range(first, last + 1):
        replies = hops[ttl].replies
        for reply in replies:
            reason = _ends_trace(reply, target, af)
            if reason:
                return ttl, reason
        silent = 0 if any(r.responder for r in replies) else silent + 1
        if silent >= gap_limit:
            return ttl, "GAPLIMIT"
    return last, "MAXTTL"
