"""ping over send_train: ICMP echo, UDP to a closed port, or TCP SYN, scheduled on the
endpoint's clock ``interval`` apart in one train; RTTs from the endpoint's kernel stamps.

    result = await ping(endpoint, "198.18.4.2", count=5, interval=0.2)
"""

from __future__ import annotations

import os
import secrets
import time

from packetlab import packets
from packetlab.controller.api import EndpointHandle
from packetlab.measure.errors import MeasurementError
from packetlab.measure.prepare import prepare
from packetlab.measure.results import ClockOffset, PingResult, ProbeRecord, Reply
from packetlab.measure.train import send_train
from packetlab.wire import ErrId

PROTOS = ("ICMP", "UDP", "TCP")
DEFAULT_PORT = {"UDP": 33434, "TCP": 80}
MAX_COUNT = 10_000


def reply_of(seq: int, record: ProbeRecord) -> Reply:
    """A :class:`Reply` from a send-train record (the answer's TTL, size, ICMP type)."""
    if record.error:
        try:
            name = ErrId(record.error).name
        except ValueError:
            name = f"0x{record.error:x}"
        return Reply(seq, None, error=f"not sent: {name}")
    if record.response is None:
        return Reply(seq, None)
    summary = packets.summarize(record.response)
    return Reply(
        seq,
        record.rtt_ms,
        responder=record.responder,
        reply_ttl=summary.ttl,
        size=summary.length,
        icmp_type=summary.icmp_type if summary.icmp_type >= 0 else None,
        icmp_code=summary.icmp_code if summary.icmp_code >= 0 else None,
        duplicates=record.duplicates,
    )


async def ping(
    endpoint: EndpointHandle,
    target: str,
    *,
    count: int = 5,
    interval: float = 1.0,
    proto: str = "ICMP",
    size: int = 56,
    ttl: int = 64,
    port: int | None = None,
    timeout: float = 2.0,
    target_name: str | None = None,
    clock: ClockOffset | None = None,
) -> PingResult:
    """``count`` probes to ``target`` ``interval`` seconds apart. ``size`` is the payload
    bytes of each ICMP echo / UDP probe (as ping -s; TCP SYNs carry none)."""
    proto = proto.upper()
    if proto not in PROTOS:
        raise MeasurementError(f"ping protocol {proto!r}: use one of {', '.join(PROTOS)}")
    if not 1 <= count <= MAX_COUNT:
        raise MeasurementError(f"ping count {count}: use 1..{MAX_COUNT}")
    if interval < 0 or timeout <= 0:
        raise MeasurementError("ping interval must be >= 0 and timeout > 0 seconds")
    if not 0 <= size <= 1400:
        raise MeasurementError(f"ping size {size}: use 0..1400 bytes")
    if not 1 <= ttl <= 255:
        raise MeasurementError(f"ping ttl {ttl}: use 1..255")
    caps, who = await prepare(endpoint, "ping", target, raw=True, clock=clock)
    source = who.src_addr
    ident = os.getpid() & 0xFFFF
    dport = port or DEFAULT_PORT.get(proto, 0)
    sport = 40000 + secrets.randbelow(20000)
    payload = bytes(size)
    train: list[tuple[float, bytes]] = []
    for seq in range(1, count + 1):
        delay = 0.0 if seq == 1 else interval
        ip_id = (ident + seq) & 0xFFFF or 1
        if proto == "ICMP":
            probe = packets.icmp_echo(source, target, ident, seq, payload, ttl)
        elif proto == "UDP":
            # the sequence number in the payload makes each probe's checksum its own
            body = seq.to_bytes(2, "big") + payload[2:] if size >= 2 else payload
            probe = packets.udp_probe(source, target, sport, dport, body, ttl, ip_id)
        else:
            seq_no = secrets.randbits(32)
            probe = packets.tcp_syn(source, target, sport, dport, seq_no, ttl, ident=ip_id)
        train.append((delay, probe))
    start = time.time_ns() + who.clock_offset_ns  # the endpoint's clock, without asking it
    records = await send_train(endpoint, train, timeout, caps=caps)
    result = PingResult(
        origin=who,
        target=target,
        target_name=target_name or target,
        proto=proto,
        af=6 if ":" in target else 4,
        size=len(train[0][1]),
        ttl=ttl,
        started_ns=next((r.sent_ns for r in records if r.sent_ns), start),
        interval_ms=interval * 1000,
    )
    result.replies = [reply_of(seq, rec) for seq, rec in enumerate(records, 1)]
    return result
