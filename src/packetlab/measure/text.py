"""Results as people read them: ping(8) and traceroute(8) output (Linux iputils ping,
traceroute 2.x with -n), and one short line or block for DNS, HTTP, bandwidth and aliases.

Tagging: with ``tag`` (an endpoint's host id) every line of a block starts with ``[tag] ``, so
output of many endpoints can interleave line by line and still be grepped apart (an empty line
becomes ``[tag]``). Without a tag the text is exactly what the classic tool prints.

Addresses are printed numerically (as ``ping -n`` / ``traceroute -n``). Lost probes print
nothing in ping (Linux ping does not); duplicates appear in the statistics only, since their
RTTs are not recorded.
"""

from __future__ import annotations

import math

import dns.exception
import dns.message
import dns.rcode

from packetlab.measure.atlas import (
    TIME_EXCEEDED,
    check_af,
    ip_header_len,
    probe_payload,
    transport_header_len,
)
from packetlab.measure.results import (
    ECHO_REPLY,
    UNREACH,
    AliasResult,
    BandwidthResult,
    DnsResult,
    HttpResult,
    PingResult,
    Reply,
    TraceResult,
    is_answer,
)

# traceroute(8)'s annotations for destination-unreachable codes ("" : arrived, no mark).
_TRACE_FLAG = {
    4: {0: "!N", 6: "!N", 11: "!N", 1: "!H", 7: "!H", 12: "!H", 2: "!P", 3: "", 4: "!F",
        5: "!S", 9: "!X", 10: "!X", 13: "!X", 14: "!V", 15: "!C"},
    6: {0: "!N", 1: "!X", 2: "!H", 3: "!H", 4: ""},
}  # fmt: skip
_PACKET_TOO_BIG6 = 2

# What ping(8) says about ICMP errors.
_UNREACH4 = {
    0: "Destination Net Unreachable",
    1: "Destination Host Unreachable",
    2: "Destination Protocol Unreachable",
    3: "Destination Port Unreachable",
    4: "Frag needed and DF set",
    5: "Source Route Failed",
    6: "Destination Net Unknown",
    7: "Destination Host Unknown",
    8: "Source Host Isolated",
    9: "Destination Net Prohibited",
    10: "Destination Host Prohibited",
    11: "Destination Net Unreachable for Type of Service",
    12: "Destination Host Unreachable for Type of Service",
    13: "Packet filtered",
    14: "Precedence Violation",
    15: "Precedence Cutoff",
}
_UNREACH6 = {
    0: "No route",
    1: "Administratively prohibited",
    2: "Beyond scope of source address",
    3: "Address unreachable",
    4: "Port unreachable",
}


def ping_text(r: PingResult, tag: str | None = None) -> str:
    """What ``ping -n`` prints for this result: header, one line per answer, statistics."""
    payload = probe_payload(r.size, r.af, r.proto)
    if r.af == 4:
        lines = [f"PING {r.target_name} ({r.target}) {payload}({r.size}) bytes of data."]
    else:
        lines = [f"PING {r.target_name}({r.target}) {payload} data bytes"]
    seq_word = "icmp_seq" if r.proto == "ICMP" else "seq"
    rtts: list[float] = []
    errors = 0
    for reply in r.replies:
        if reply.error is not None:
            lines.append(f"ping: {seq_word}={reply.seq} {reply.error}")
        elif reply.rtt_ms is None:
            continue
        elif is_answer(reply, r.proto, r.af):
            rtts.append(reply.rtt_ms)
            size = _answer_bytes(reply, r.af, payload + transport_header_len(r.proto))
            ttl = f" ttl={reply.reply_ttl}" if reply.reply_ttl is not None else ""
            lines.append(
                f"{size} bytes from {reply.responder}: {seq_word}={reply.seq}{ttl}"
                f" time={_ping_ms(reply.rtt_ms)} ms"
            )
        else:
            errors += 1
            lines.append(
                f"From {reply.responder} {seq_word}={reply.seq} {_icmp_error(reply, r.af)}"
            )
    sent = r.sent
    summary = f"{sent} packets transmitted, {len(rtts)} received"
    if r.dup:
        summary += f", +{r.dup} duplicates"
    if errors:
        summary += f", +{errors} errors"
    if sent:
        loss = (sent - len(rtts)) * 100.0 / sent
        summary += f", {loss:g}% packet loss, time {round(max(0, sent - 1) * r.interval_ms)}ms"
    lines += ["", f"--- {r.target_name} ping statistics ---", summary]
    if rtts:
        avg = sum(rtts) / len(rtts)
        mdev = math.sqrt(max(0.0, sum(x * x for x in rtts) / len(rtts) - avg * avg))
        lines.append(
            f"rtt min/avg/max/mdev = {min(rtts):.3f}/{avg:.3f}/{max(rtts):.3f}/{mdev:.3f} ms"
        )
    return _tagged(lines, tag)


def trace_text(r: TraceResult, tag: str | None = None, max_hops: int | None = None) -> str:
    """What ``traceroute -n`` prints: header, then per hop the addresses (again when they
    change within the hop), RTTs, ``*`` for silence and ``!H``-style unreachable marks."""
    check_af(r.af)
    hops_max = r.max_ttl if max_hops is None else max_hops
    lines = [
        f"traceroute to {r.target_name} ({r.target}), {hops_max} hops max, {r.size} byte packets"
    ]
    for hop in r.hops:
        parts = [f"{hop.ttl:2d} "]
        previous: str | None = None
        for reply in hop.replies:
            if reply.responder is None or reply.error is not None:
                parts.append(" *")
                continue
            if reply.responder != previous:
                parts.append(f" {reply.responder}")
                previous = reply.responder
            if reply.rtt_ms is not None:
                parts.append(f"  {reply.rtt_ms:.3f} ms")
            flag = _trace_flag(reply, r.af)
            if flag:
                parts.append(f" {flag}")
        lines.append("".join(parts))
    return _tagged(lines, tag)


def dns_text(r: DnsResult, tag: str | None = None) -> str:
    """One line about the query and its answer (rcode, counts, time), then the answer records."""
    head = f"{r.qname} {r.qtype} @{_hostport(r.server, r.port)} ({r.proto})"
    if r.response is None:
        if r.error is None or "timeout" in r.error.lower() or "timed out" in r.error.lower():
            after = f" after {r.rt_ms:.3f} ms" if r.rt_ms is not None else ""
            return _tagged([f"{head}: no answer (timeout{after})"], tag)
        return _tagged([f"{head}: error: {r.error}"], tag)
    took = f" in {r.rt_ms:.3f} ms" if r.rt_ms is not None else ""
    try:
        message = dns.message.from_wire(r.response)
    except (dns.exception.DNSException, ValueError) as exc:
        return _tagged([f"{head}: unreadable answer of {len(r.response)} bytes{took}: {exc}"], tag)
    count = sum(len(rrset) for rrset in message.answer)
    lines = [
        f"{head}: {dns.rcode.to_text(message.rcode())}, {count} answer"
        f"{'' if count == 1 else 's'}, {len(r.response)} bytes{took}"
    ]
    for rrset in message.answer:
        lines += rrset.to_text().splitlines()
    return _tagged(lines, tag)


def http_text(r: HttpResult, tag: str | None = None) -> str:
    """One line: request, status, sizes and the connect / first byte / total times."""
    head = f"{r.method} {r.url} ({_hostport(r.dst_addr, r.port)})"
    if r.status is None or r.error is not None:
        return _tagged([f"{head}: error: {r.error or 'no response'}"], tag)
    version = r.version if r.version.startswith("HTTP/") else f"HTTP/{r.version}"
    times = [
        f"{name} {value:.3f} ms"
        for name, value in (("connect", r.ttc_ms), ("first byte", r.ttfb_ms), ("total", r.rt_ms))
        if value is not None
    ]
    line = f"{head}: {version} {r.status}, {r.header_bytes} header + {r.body_bytes} body bytes"
    return _tagged([", ".join([line, *times])], tag)


def bw_text(r: BandwidthResult, tag: str | None = None) -> str:
    """One line: packets and bytes that arrived, over how long, and the rate."""
    return _tagged(
        [
            f"UDP burst to {_hostport(r.receiver, r.port)}: {r.received} of {r.sent} packets "
            f"({r.size} bytes of payload each), {r.bytes_received} bytes in "
            f"{r.duration_s:.6f} s: {_rate(r.rate_bps)}"
        ],
        tag,
    )


def alias_text(r: AliasResult, tag: str | None = None) -> str:
    """One line: the two addresses, the verdict, how many IP IDs it rests on and why."""
    why = f"; {r.reason}" if r.reason else ""
    return _tagged([f"{r.addr_a} {r.addr_b}: {r.verdict} ({len(r.ids)} IP IDs{why})"], tag)


def _tagged(lines: list[str], tag: str | None) -> str:
    if tag is None:
        return "\n".join(lines)
    return "\n".join(f"[{tag}] {line}".rstrip() if line else f"[{tag}]" for line in lines)


def _ping_ms(rtt_ms: float) -> str:
    """ping's precision: three significant-ish digits, from microseconds."""
    us = round(rtt_ms * 1000)
    if us >= 100_000 - 50:
        return f"{(us + 500) // 1000}"
    if us >= 10_000 - 5:
        return f"{(us + 50) // 1000}.{(us + 50) % 1000 // 100}"
    if us >= 1000:
        return f"{(us + 5) // 1000}.{(us + 5) % 1000 // 10:02d}"
    return f"{us // 1000}.{us % 1000:03d}"


def _answer_bytes(reply: Reply, af: int, default: int) -> int:
    """ping's "N bytes": the answer after the IP header."""
    if reply.size is None:
        return default
    return max(0, reply.size - ip_header_len(af))


def _icmp_error(reply: Reply, af: int) -> str:
    t, c = reply.icmp_type, reply.icmp_code
    if t == UNREACH[af] and c is not None:
        table = _UNREACH4 if af == 4 else _UNREACH6
        text = table.get(c, f"Dest Unreachable, Bad Code: {c}")
        return text if af == 4 else f"Destination unreachable: {text}"
    if t == TIME_EXCEEDED[af]:
        return "Time to live exceeded" if af == 4 else "Time exceeded: Hop limit"
    if t == ECHO_REPLY[af]:
        return "Echo Reply"
    return f"ICMP type {t} code {c}"


def _trace_flag(reply: Reply, af: int) -> str:
    if af == 6 and reply.icmp_type == _PACKET_TOO_BIG6:
        return "!F"
    if reply.icmp_type != UNREACH[af] or reply.icmp_code is None:
        return ""
    return _TRACE_FLAG[af].get(reply.icmp_code, f"!<{reply.icmp_code}>")


def _hostport(addr: str, port: int) -> str:
    return f"[{addr}]:{port}" if ":" in addr else f"{addr}:{port}"


def _rate(bps: float) -> str:
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.2f} {unit}"
    return f"{bps:.0f} bit/s"
