"""Result records of the measurement tools: plain dataclasses, times in endpoint ns or ms.

Serializers (RIPE Atlas JSON, ping(8)/traceroute(8) text) live in atlas.py and text.py.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field


def probe_number(host_id: str) -> int:
    """A stable positive number for an endpoint's host id: Atlas tools want ``prb_id`` an int."""
    return zlib.crc32(host_id.encode()) & 0x7FFFFFFF or 1


@dataclass(frozen=True, slots=True)
class Origin:
    """The endpoint that measured and how well its clock is known."""

    host_id: str
    src_addr: str
    """The endpoint address the probes left from."""
    clock_offset_ns: int = 0
    """Endpoint clock minus controller clock (NTP-style estimate)."""
    clock_rtt_ns: int = 0
    """Round trip of the sample the offset comes from: the offset is good to +- half of it."""
    offset_age_s: int = 0
    """Seconds between the offset estimate and the measurement (Atlas ``lts``)."""

    @property
    def prb_id(self) -> int:
        return probe_number(self.host_id)


@dataclass(slots=True)
class ProbeRecord:
    """One probe of a send train and what came back for it."""

    index: int
    probe: object
    """The probe as given (bytes, a packetlab.packets object or a scapy packet)."""
    data: bytes
    """The probe's bytes as sent (a whole IP packet)."""
    sent_ns: int | None = None
    """Endpoint kernel TX timestamp (ntag); None if it was not sent."""
    error: int = 0
    """The endpoint's error code when the send was refused or failed (0: sent)."""
    response: bytes | None = None
    """The first matching response, a whole IP packet."""
    received_ns: int | None = None
    """Endpoint kernel RX timestamp of ``response`` (ndata)."""
    responder: str | None = None
    """Source address of ``response``."""
    duplicates: int = 0
    """Further responses that matched this probe."""

    @property
    def rtt_ns(self) -> int | None:
        if self.sent_ns is None or self.received_ns is None:
            return None
        return self.received_ns - self.sent_ns

    @property
    def rtt_ms(self) -> float | None:
        rtt = self.rtt_ns
        return None if rtt is None else rtt / 1e6


@dataclass(frozen=True, slots=True)
class Reply:
    """One probe of a ping or one attempt at a traceroute hop."""

    seq: int
    rtt_ms: float | None
    """None: no answer in time."""
    responder: str | None = None
    reply_ttl: int | None = None
    """TTL (hop limit) of the answer as received."""
    size: int | None = None
    """Length of the answer's IP packet."""
    icmp_type: int | None = None
    icmp_code: int | None = None
    duplicates: int = 0
    error: str | None = None
    """Why the probe was not sent (the endpoint's refusal), if it was not."""


ECHO_REPLY = {4: 0, 6: 129}
UNREACH = {4: 3, 6: 1}
PORT_UNREACH = {4: 3, 6: 4}


def is_answer(reply: Reply, proto: str, af: int) -> bool:
    """The target answered this probe (echo reply, port unreachable to UDP, TCP segment to TCP),
    as opposed to no answer or an ICMP error from somewhere."""
    if reply.rtt_ms is None:
        return False
    if proto == "ICMP":
        return reply.icmp_type == ECHO_REPLY[af]
    if proto == "UDP":
        return reply.icmp_type == UNREACH[af] and reply.icmp_code == PORT_UNREACH[af]
    return reply.icmp_type is None


@dataclass(slots=True)
class PingResult:
    origin: Origin
    target: str
    target_name: str
    proto: str
    """"ICMP", "UDP" or "TCP" (SYN)."""
    af: int
    size: int
    """Bytes of each probe's IP packet."""
    ttl: int
    started_ns: int
    interval_ms: float
    replies: list[Reply] = field(default_factory=list)

    @property
    def sent(self) -> int:
        return sum(1 for r in self.replies if r.error is None)

    @property
    def rcvd(self) -> int:
        """Probes the target answered (ICMP errors from elsewhere do not count)."""
        return sum(1 for r in self.replies if is_answer(r, self.proto, self.af))

    @property
    def dup(self) -> int:
        return sum(r.duplicates for r in self.replies)

    def rtts(self) -> list[float]:
        """Round trips of the target's answers, ms."""
        return [r.rtt_ms for r in self.replies if r.rtt_ms is not None
                and is_answer(r, self.proto, self.af)]  # fmt: skip


@dataclass(slots=True)
class Hop:
    ttl: int
    replies: list[Reply] = field(default_factory=list)


@dataclass(slots=True)
class TraceResult:
    origin: Origin
    target: str
    target_name: str
    proto: str
    af: int
    paris_id: int
    size: int
    started_ns: int
    ended_ns: int = 0
    hops: list[Hop] = field(default_factory=list)
    max_ttl: int = 30
    stop_reason: str = ""
    """"COMPLETED" (the target answered), "UNREACH", "GAPLIMIT" or "MAXTTL"."""

    def responders(self) -> list[str | None]:
        """Per hop, the first address that answered (None for a silent hop)."""
        return [next((r.responder for r in h.replies if r.responder), None) for h in self.hops]


@dataclass(slots=True)
class DnsResult:
    origin: Origin
    server: str
    port: int
    proto: str
    """"UDP" or "TCP"."""
    af: int
    qname: str
    qtype: str
    started_ns: int
    rt_ms: float | None = None
    response: bytes | None = None
    """The answer's DNS message (wire format)."""
    error: str | None = None


@dataclass(slots=True)
class HttpResult:
    origin: Origin
    url: str
    dst_addr: str
    port: int
    af: int
    method: str
    started_ns: int
    status: int | None = None
    version: str = ""
    header_bytes: int = 0
    body_bytes: int = 0
    rt_ms: float | None = None
    """Connect start to the last byte."""
    ttc_ms: float | None = None
    """Time to connect."""
    ttfb_ms: float | None = None
    """Request sent to the first byte of the answer."""
    error: str | None = None


@dataclass(slots=True)
class BandwidthResult:
    origin: Origin
    receiver: str
    port: int
    size: int
    """Bytes of UDP payload per packet."""
    sent: int
    received: int
    bytes_received: int
    duration_s: float
    """First to last arrival (receiver's kernel timestamps)."""
    rate_bps: float
    """Bits per second (IP level) over the arrivals used for the estimate."""
    started_ns: int = 0


@dataclass(slots=True)
class AliasResult:
    origin: Origin
    addr_a: str
    addr_b: str
    verdict: str
    """"alias", "not-alias" or "unknown" (too few answers, or IDs that are not counters)."""
    ids: list[tuple[str, int, int]] = field(default_factory=list)
    """(address, endpoint receive time ns, IP ID) of each answer, in arrival order."""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ClockOffset:
    offset_ns: int
    """Endpoint clock minus controller clock."""
    rtt_ns: int
    """Round trip of the best sample: the offset is good to +- rtt/2."""
    samples: int
    measured_ns: int
    """Controller clock when it was measured."""
