"""Results as RIPE Atlas JSON: one object per result, read by ripe.atlas.sagan and Atlas tooling.

Field names, types and units follow the Atlas result format (version 5000, the current one) and
what the Atlas probe code writes: RTTs in ms (floats), ``timestamp``/``endtime`` in Unix seconds
(ints), sizes as Atlas counts them (probe payload after the transport header; answer bytes after
the ICMP/TCP header). Mapping of our records:

- ``prb_id``: :meth:`Origin.prb_id` (a stable number for the host id); ``from`` and
  ``src_addr``: the endpoint address the probes left from; ``lts``: seconds since our clock-offset
  estimate (-1: none, as Atlas says "not known to be in sync").
- ``timestamp``/``endtime``: endpoint kernel times moved onto the controller's clock with the
  offset estimate (endpoint minus controller), then whole seconds.
- ``step`` (ping): Atlas's repeat period of a periodic measurement in seconds; ours are one-offs,
  so it is null as in Atlas one-off results (the probe spacing is ``packetlab.interval_ms``).
- ``packetlab``: our own identity and clock, which Atlas has no field for (sagan ignores unknown
  keys): host_id, clock_offset_ns, clock_rtt_ns, started_ns (endpoint clock) and per tool extras.

ICMP errors answering a ping are not replies (Atlas ping only counts echo replies): they appear as
``{"error": ...}`` entries and are not in ``rcvd``. Duplicates are counted in ``dup``; their own
RTTs are not recorded by send_train, so no ``{"dup": 1, "rtt": ...}`` entries are written.
"""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

from packetlab.measure.errors import MeasurementError
from packetlab.measure.results import (
    PORT_UNREACH,
    UNREACH,
    DnsResult,
    HttpResult,
    Origin,
    PingResult,
    Reply,
    TraceResult,
    is_answer,
)

ATLAS_FW = 5080
"""Firmware number we claim: the 5000 result format (sagan picks legacy parsers below 4570)."""

PROBE_PROTOS = ("ICMP", "UDP", "TCP")

# ICMP types and codes we read, per address family.
TIME_EXCEEDED = {4: 11, 6: 3}

# Atlas traceroute "err" letters for destination-unreachable codes (probe code, not guessed):
# IPv4 port unreachable is "p" for ICMP probes only (for UDP/TCP it means "arrived").
_ATLAS_ERR = {
    4: {0: "N", 1: "H", 2: "P", 13: "A"},
    6: {0: "N", 1: "A", 2: "h", 3: "H"},
}
_NO_ATLAS_ERR = {4: {3, 4}, 6: {4}}  # port unreachable; need-frag (Atlas writes "mtu" instead)


def ip_header_len(af: int) -> int:
    """Bytes of an IP header without options (what Atlas and ping assume)."""
    check_af(af)
    return 20 if af == 4 else 40


def transport_header_len(proto: str) -> int:
    """Bytes of the probe's transport header: ICMP echo and UDP 8, TCP (no options) 20."""
    _check_proto(proto)
    return 20 if proto == "TCP" else 8


def probe_payload(ip_size: int, af: int, proto: str) -> int:
    """Payload bytes of a probe whose IP packet is ``ip_size`` bytes (0 stays 0: unknown)."""
    if ip_size == 0:
        return 0
    payload = ip_size - ip_header_len(af) - transport_header_len(proto)
    if payload < 0:
        raise MeasurementError(
            f"a {proto} probe of {ip_size} bytes cannot be a whole IPv{af} packet "
            f"(result sizes count the probe's IP packet, headers included)"
        )
    return payload


def atlas_err(reply: Reply, af: int, proto: str) -> str | int | None:
    """Atlas's ``err`` for a traceroute answer: a letter, the raw code, or None (no error)."""
    if reply.icmp_type != UNREACH[af] or reply.icmp_code is None:
        return None
    code = reply.icmp_code
    if af == 4 and code == PORT_UNREACH[4] and proto == "ICMP":
        return "p"
    if code in _NO_ATLAS_ERR[af]:
        return None
    return _ATLAS_ERR[af].get(code, code)


def answer_size(reply: Reply, af: int) -> int | None:
    """Atlas's per-answer ``size``: bytes after the ICMP header (or the TCP header)."""
    if reply.size is None:
        return None
    header = ip_header_len(af) + (20 if reply.icmp_type is None else 8)
    return max(0, reply.size - header)


def ping_json(r: PingResult, msm_id: int = 0) -> dict[str, Any]:
    """An Atlas ping result."""
    check_af(r.af)
    _check_proto(r.proto)
    entries: list[dict[str, Any]] = []
    rtts: list[float] = []
    first_ttl: int | None = None
    for reply in r.replies:
        if reply.error is not None:
            entries.append({"error": reply.error})
        elif reply.rtt_ms is None:
            entries.append({"x": "*"})
        elif is_answer(reply, r.proto, r.af):
            rtts.append(reply.rtt_ms)
            entry: dict[str, Any] = {"rtt": round(reply.rtt_ms, 6)}
            if first_ttl is None:
                first_ttl = reply.reply_ttl
            elif reply.reply_ttl is not None and reply.reply_ttl != first_ttl:
                entry["ttl"] = reply.reply_ttl
            entries.append(entry)
        else:
            entries.append({"error": _icmp_error_text(reply)})
    out = _common("ping", "Ping", r.origin, r.started_ns, msm_id)
    out["packetlab"]["interval_ms"] = r.interval_ms
    out.update(
        af=r.af,
        dst_addr=r.target,
        dst_name=r.target_name,
        src_addr=r.origin.src_addr,
        proto=r.proto,
        size=probe_payload(r.size, r.af, r.proto),
        step=None,
        sent=r.sent,
        rcvd=len(rtts),
        dup=r.dup,
        min=round(min(rtts), 6) if rtts else -1,
        max=round(max(rtts), 6) if rtts else -1,
        avg=round(sum(rtts) / len(rtts), 6) if rtts else -1,
        result=entries,
    )
    if first_ttl is not None:
        out["ttl"] = first_ttl
    return out


def trace_json(r: TraceResult, msm_id: int = 0) -> dict[str, Any]:
    """An Atlas traceroute result: one ``{"hop": n, "result": [...]}`` per TTL."""
    check_af(r.af)
    _check_proto(r.proto)
    hops = [
        {"hop": hop.ttl, "result": [_trace_entry(reply, r.af, r.proto) for reply in hop.replies]}
        for hop in r.hops
    ]
    out = _common("traceroute", "Traceroute", r.origin, r.started_ns, msm_id)
    out["packetlab"].update(ended_ns=r.ended_ns, stop_reason=r.stop_reason)
    out.update(
        af=r.af,
        dst_addr=r.target,
        dst_name=r.target_name,
        src_addr=r.origin.src_addr,
        proto=r.proto,
        paris_id=r.paris_id,
        size=probe_payload(r.size, r.af, r.proto),
        endtime=_unix_s(max(r.ended_ns, r.started_ns), r.origin),
        result=hops,
    )
    return out


def dns_json(r: DnsResult, msm_id: int = 0) -> dict[str, Any]:
    """An Atlas DNS result: ``result`` with the answer (``abuf``) or ``error``."""
    check_af(r.af)
    if r.proto not in ("UDP", "TCP"):
        raise MeasurementError(f"DNS over {r.proto!r}: Atlas knows UDP and TCP")
    out = _common("dns", "Tdig", r.origin, r.started_ns, msm_id)
    out["packetlab"].update(qname=r.qname, qtype=r.qtype)
    out.update(
        af=r.af,
        dst_addr=r.server,
        dst_port=str(r.port),
        src_addr=r.origin.src_addr,
        proto=r.proto,
    )
    if r.response is not None:
        answer: dict[str, Any] = {}
        if r.rt_ms is not None:
            answer["rt"] = round(r.rt_ms, 3)
        answer["size"] = len(r.response)
        answer["abuf"] = base64.b64encode(r.response).decode("ascii")
        if len(r.response) >= 12:
            ident, _flags, qd, an, ns, ar = struct.unpack("!6H", r.response[:12])
            answer.update(ID=ident, ANCOUNT=an, QDCOUNT=qd, NSCOUNT=ns, ARCOUNT=ar)
        out["result"] = answer
    elif r.error is None or "timeout" in r.error.lower() or "timed out" in r.error.lower():
        out["error"] = {"timeout": round(r.rt_ms) if r.rt_ms is not None else 0}
    else:
        out["error"] = {"socket": r.error}
    return out


def http_json(r: HttpResult, msm_id: int = 0) -> dict[str, Any]:
    """An Atlas HTTP result: ``uri`` and one response in ``result``.

    Atlas's ``ttfb`` counts from the start of the TCP connect; ours from the request, so the
    two are added (the request leaves as soon as the connection is up)."""
    check_af(r.af)
    response: dict[str, Any] = {
        "af": r.af,
        "dst_addr": r.dst_addr,
        "src_addr": r.origin.src_addr,
        "method": r.method,
    }
    if r.ttc_ms is not None:
        response["ttc"] = round(r.ttc_ms, 3)
    if r.status is None or r.error is not None:
        response["err"] = r.error or "no response"
    else:
        response.update(
            res=r.status,
            ver=r.version.removeprefix("HTTP/"),
            hsize=r.header_bytes,
            bsize=r.body_bytes,
        )
        if r.rt_ms is not None:
            response["rt"] = round(r.rt_ms, 3)
        if r.ttfb_ms is not None:
            response["ttfb"] = round(r.ttfb_ms + (r.ttc_ms or 0.0), 3)
    out = _common("http", "HTTPGet", r.origin, r.started_ns, msm_id)
    out["packetlab"]["port"] = r.port
    out.update(uri=r.url, result=[response])
    return out


def to_atlas(result: object, msm_id: int = 0) -> dict[str, Any]:
    """The Atlas object for a ping, traceroute, DNS or HTTP result."""
    if isinstance(result, PingResult):
        return ping_json(result, msm_id)
    if isinstance(result, TraceResult):
        return trace_json(result, msm_id)
    if isinstance(result, DnsResult):
        return dns_json(result, msm_id)
    if isinstance(result, HttpResult):
        return http_json(result, msm_id)
    raise TypeError(f"no RIPE Atlas format for {type(result).__name__}")


def atlas_line(result: object, msm_id: int = 0) -> str:
    """One line of JSON (no newline) for a result, as Atlas result files hold them."""
    return json.dumps(to_atlas(result, msm_id), separators=(",", ":"), allow_nan=False)


def _common(kind: str, name: str, origin: Origin, started_ns: int, msm_id: int) -> dict[str, Any]:
    return {
        "fw": ATLAS_FW,
        "lts": origin.offset_age_s,
        "timestamp": _unix_s(started_ns, origin),
        "msm_id": msm_id,
        "msm_name": name,
        "prb_id": origin.prb_id,
        "from": origin.src_addr,
        "type": kind,
        "packetlab": {
            "host_id": origin.host_id,
            "clock_offset_ns": origin.clock_offset_ns,
            "clock_rtt_ns": origin.clock_rtt_ns,
            "started_ns": started_ns,
        },
    }


def _trace_entry(reply: Reply, af: int, proto: str) -> dict[str, Any]:
    if reply.error is not None:
        return {"error": reply.error}
    if reply.responder is None:
        return {"x": "*"}
    entry: dict[str, Any] = {"from": reply.responder}
    if reply.reply_ttl is not None:
        entry["ttl"] = reply.reply_ttl
    size = answer_size(reply, af)
    if size is not None:
        entry["size"] = size
    if reply.rtt_ms is not None:
        entry["rtt"] = round(reply.rtt_ms, 3)
    err = atlas_err(reply, af, proto)
    if err is not None:
        entry["err"] = err
    return entry


def _icmp_error_text(reply: Reply) -> str:
    return f"ICMP type {reply.icmp_type} code {reply.icmp_code} from {reply.responder}"


def _unix_s(endpoint_ns: int, origin: Origin) -> int:
    return max(0, (endpoint_ns - origin.clock_offset_ns) // 1_000_000_000)


def check_af(af: int) -> None:
    if af not in (4, 6):
        raise MeasurementError(f"address family {af!r}: use 4 or 6")


def _check_proto(proto: str) -> None:
    if proto not in PROBE_PROTOS:
        raise MeasurementError(f"probe protocol {proto!r}: use one of {', '.join(PROBE_PROTOS)}")
