"""Our results as RIPE Atlas JSON, read back by ripe.atlas.sagan (the community's parser).

Results are built by hand (the serializer is pure); every check compares what sagan reads with
what went in.
"""

from __future__ import annotations

import json
import statistics
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest
from ripe.atlas.sagan import Result
from ripe.atlas.sagan.dns import DnsResult as SaganDns
from ripe.atlas.sagan.http import HttpResult as SaganHttp
from ripe.atlas.sagan.ping import PingResult as SaganPing
from ripe.atlas.sagan.traceroute import TracerouteResult as SaganTrace

from packetlab.measure.atlas import (
    ATLAS_FW,
    atlas_err,
    atlas_line,
    dns_json,
    http_json,
    ping_json,
    to_atlas,
    trace_json,
)
from packetlab.measure.errors import MeasurementError
from packetlab.measure.results import (
    BandwidthResult,
    DnsResult,
    Hop,
    HttpResult,
    Origin,
    PingResult,
    Reply,
    TraceResult,
)

T0 = 1_700_000_000_123_456_789  # endpoint clock, ns
ORIGIN = Origin(
    "ep-1", "198.18.0.2", clock_offset_ns=2_500_000_000, clock_rtt_ns=400_000, offset_age_s=7
)
ORIGIN6 = Origin("ep-6", "2001:db8::2", clock_offset_ns=-1_000_000, offset_age_s=-1)
R1, R2, R2B, TARGET = "198.18.1.1", "198.18.2.1", "198.18.2.9", "198.18.4.2"


def parsed(result: object, msm_id: int = 0) -> Any:
    """Our JSON line through sagan; it must parse cleanly as Atlas output."""
    line = atlas_line(result, msm_id)
    assert "\n" not in line
    assert json.loads(line) == to_atlas(result, msm_id)
    got = Result.get(line)
    assert not got.is_malformed
    return got


def expected_timestamp(ns: int, origin: Origin) -> int:
    return (ns - origin.clock_offset_ns) // 1_000_000_000


def echo(seq: int, rtt: float | None, ttl: int = 62, **kw: Any) -> Reply:
    if rtt is None:
        return Reply(seq, None, **kw)
    kw.setdefault("icmp_type", 0)
    return Reply(seq, rtt, responder=kw.pop("responder", TARGET), reply_ttl=ttl, size=84, **kw)


def a_ping(replies: list[Reply], **kw: Any) -> PingResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "target": TARGET,
        "target_name": "target.test",
        "proto": "ICMP",
        "af": 4,
        "size": 84,
        "ttl": 64,
        "started_ns": T0,
        "interval_ms": 200.0,
    }
    fields.update(kw)
    return PingResult(replies=replies, **fields)


# --- ping ---------------------------------------------------------------------------------


def test_ping_reads_back_with_losses_duplicates_errors_and_ttl_changes() -> None:
    replies = [
        echo(1, 1.5),
        echo(2, None),
        echo(3, 2.5, ttl=61, duplicates=1),
        Reply(4, 0.9, responder=R1, reply_ttl=255, size=56, icmp_type=3, icmp_code=1),
        Reply(5, None, error="not sent: ERR_NOPERM"),
        echo(6, 2.25),
    ]
    r = a_ping(replies)
    got = parsed(r, msm_id=42)
    assert isinstance(got, SaganPing)
    answered = [1.5, 2.5, 2.25]
    assert got.packets_sent == r.sent == 5
    assert got.packets_received == len(answered)  # the ICMP error is not a reply
    assert got.duplicates == r.dup == 1
    assert got.rtt_min == min(answered)
    assert got.rtt_max == max(answered)
    assert got.rtt_median == statistics.median(answered)
    assert got.rtt_average == round(statistics.mean(answered), 3)
    assert got.packet_size == 84 - 20 - 8  # Atlas counts the ICMP payload
    assert (got.af, got.protocol) == (4, "ICMP")
    assert (got.destination_address, got.destination_name) == (TARGET, "target.test")
    assert (got.probe_id, got.origin) == (ORIGIN.prb_id, ORIGIN.src_addr)
    assert got.measurement_id == 42
    assert got.firmware == ATLAS_FW
    assert got.seconds_since_sync == ORIGIN.offset_age_s
    assert got.created_timestamp == expected_timestamp(T0, ORIGIN)
    assert got.step is None
    assert [p.rtt for p in got.packets] == [1.5, None, 2.5, None, None, 2.25]
    assert [p.ttl for p in got.packets] == [62, None, 61, None, None, 62]
    assert all(p.source_address == ORIGIN.src_addr for p in got.packets)


def test_ping_without_answers_has_no_rtts() -> None:
    got = parsed(a_ping([echo(1, None), echo(2, None)]))
    assert (got.packets_sent, got.packets_received) == (2, 0)
    assert got.rtt_min is got.rtt_max is got.rtt_average is got.rtt_median is None
    raw = to_atlas(a_ping([echo(1, None)]))
    assert (raw["min"], raw["max"], raw["avg"]) == (-1, -1, -1)  # Atlas's "none"
    assert "ttl" not in raw


def test_udp_ping_over_ipv6_counts_port_unreachable_as_the_answer() -> None:
    answer = {
        "responder": "2001:db8::4",
        "reply_ttl": 62,
        "size": 104,
        "icmp_type": 1,
        "icmp_code": 4,
    }
    elsewhere = {
        "responder": "2001:db8::1",
        "reply_ttl": 64,
        "size": 104,
        "icmp_type": 1,
        "icmp_code": 3,
    }
    r = a_ping(
        [Reply(1, 0.7, **answer), Reply(2, 0.3, **elsewhere), Reply(3, 0.8, **answer)],
        origin=ORIGIN6,
        target="2001:db8::4",
        target_name="2001:db8::4",
        proto="UDP",
        af=6,
        size=40 + 8 + 56,
    )
    got = parsed(r)
    assert (got.af, got.protocol, got.packet_size) == (6, "UDP", 56)
    assert (got.packets_sent, got.packets_received) == (3, 2)
    assert got.rtt_median == statistics.median([0.7, 0.8])
    assert got.seconds_since_sync is None  # lts -1: clock offset never measured
    assert got.created_timestamp == expected_timestamp(T0, ORIGIN6)


def test_tcp_ping_counts_tcp_answers() -> None:
    syn_ack = {"responder": TARGET, "reply_ttl": 62, "size": 44}  # no ICMP type: a TCP segment
    r = a_ping([Reply(1, 1.0, **syn_ack), Reply(2, None)], proto="TCP", size=40)
    got = parsed(r)
    assert (got.protocol, got.packet_size, got.packets_received) == ("TCP", 0, 1)


def test_clock_offset_moves_timestamps_onto_the_controller_clock() -> None:
    late = Origin("ep-1", "198.18.0.2", clock_offset_ns=ORIGIN.clock_offset_ns + 3_000_000_000)
    a, b = to_atlas(a_ping([])), to_atlas(a_ping([], origin=late))
    assert a["timestamp"] - b["timestamp"] == 3
    assert a["packetlab"] == {
        "host_id": "ep-1",
        "clock_offset_ns": ORIGIN.clock_offset_ns,
        "clock_rtt_ns": ORIGIN.clock_rtt_ns,
        "started_ns": T0,
        "interval_ms": 200.0,
    }


def test_sagan_ignores_our_packetlab_object() -> None:
    r = a_ping([echo(1, 1.25), echo(2, None)])
    with_ours = to_atlas(r)
    without = {k: v for k, v in with_ours.items() if k != "packetlab"}
    a, b = Result.get(with_ours), Result.get(without)
    assert [p.rtt for p in a.packets] == [p.rtt for p in b.packets]
    assert (a.rtt_min, a.packets_received, a.is_malformed) == (b.rtt_min, b.packets_received, False)


# --- traceroute ---------------------------------------------------------------------------


def te(rtt: float, addr: str, ttl: int = 64) -> Reply:
    """An ICMP time-exceeded answer (IPv4, 56 bytes: the 20+8 quoted header of a 28-byte probe)"""
    return Reply(1, rtt, responder=addr, reply_ttl=ttl, size=56, icmp_type=11, icmp_code=0)


def silent() -> Reply:
    return Reply(1, None)


def a_trace(hops: list[list[Reply]], **kw: Any) -> TraceResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "target": TARGET,
        "target_name": "target.test",
        "proto": "UDP",
        "af": 4,
        "paris_id": 5,
        "size": 60,
        "started_ns": T0,
        "ended_ns": T0 + 3_200_000_000,
        "stop_reason": "COMPLETED",
    }
    fields.update(kw)
    return TraceResult(hops=[Hop(ttl, replies) for ttl, replies in enumerate(hops, 1)], **fields)


def test_udp_traceroute_reads_back_hop_by_hop() -> None:
    port_unreach = Reply(
        1, 3.0004, responder=TARGET, reply_ttl=61, size=88, icmp_type=3, icmp_code=3
    )
    hops = [
        [te(0.1234, R1), te(0.1, R1), te(0.2, R1)],
        [te(1.0, R2, 254), te(1.1, R2B, 254), silent()],
        [silent(), silent(), silent()],
        [port_unreach, port_unreach, port_unreach],
    ]
    r = a_trace(hops)
    got = parsed(r, msm_id=7)
    assert isinstance(got, SaganTrace)
    assert (got.af, got.protocol, got.paris_id) == (4, "UDP", 5)
    assert got.size == 60 - 20 - 8  # Atlas counts the UDP payload
    assert (got.source_address, got.destination_address) == (ORIGIN.src_addr, TARGET)
    assert got.total_hops == len(hops)
    assert [h.index for h in got.hops] == [1, 2, 3, 4]
    assert got.ip_path == [[x.responder for x in hop] for hop in hops]
    first = got.hops[0].packets[0]
    assert (first.origin, first.rtt, first.ttl) == (R1, round(0.1234, 3), 64)
    assert first.size == 56 - 20 - 8  # Atlas: bytes after the ICMP header
    assert got.hops[3].packets[0].rtt == round(3.0004, 3)
    assert got.destination_ip_responded and got.last_hop_responded and got.is_success
    assert got.last_hop_errors == []  # a port unreachable from the target is arrival
    assert got.last_median_rtt == round(3.0004, 3)
    assert got.end_time_timestamp == expected_timestamp(r.ended_ns, ORIGIN)
    assert got.created_timestamp == expected_timestamp(T0, ORIGIN)
    assert not any(p.is_error for h in got.hops for p in h.packets)


def test_traceroute_that_ends_in_an_unreachable() -> None:
    host_unreach = Reply(1, 2.0, responder=R2, reply_ttl=254, size=56, icmp_type=3, icmp_code=1)
    r = a_trace([[te(0.5, R1)], [host_unreach, silent()]], stop_reason="UNREACH")
    got = parsed(r)
    assert not got.destination_ip_responded
    assert got.last_hop_responded and not got.is_success
    assert got.hops[1].packets[0].is_error
    assert got.last_hop_errors == ["Destination unreachable"]  # Atlas "err": "H"
    assert to_atlas(r)["packetlab"]["stop_reason"] == "UNREACH"


@pytest.mark.parametrize(
    ("af", "proto", "icmp_type", "code", "err"),
    [
        (4, "UDP", 3, 0, "N"),
        (4, "UDP", 3, 1, "H"),
        (4, "UDP", 3, 2, "P"),
        (4, "UDP", 3, 3, None),  # port unreachable: the UDP probe arrived
        (4, "ICMP", 3, 3, "p"),  # ... but an echo request should not get one
        (4, "UDP", 3, 4, None),  # fragmentation needed: Atlas writes "mtu", not "err"
        (4, "TCP", 3, 13, "A"),
        (4, "UDP", 3, 10, 10),  # codes without a letter are given as numbers
        (4, "UDP", 11, 0, None),
        (6, "UDP", 1, 0, "N"),
        (6, "UDP", 1, 1, "A"),
        (6, "UDP", 1, 2, "h"),
        (6, "UDP", 1, 3, "H"),
        (6, "ICMP", 1, 4, None),
        (6, "UDP", 1, 5, 5),
        (6, "UDP", 3, 0, None),
    ],
)
def test_unreachable_codes_become_atlas_err(
    af: int, proto: str, icmp_type: int, code: int, err: str | int | None
) -> None:
    reply = Reply(
        1, 1.0, responder="x", reply_ttl=60, size=100, icmp_type=icmp_type, icmp_code=code
    )
    assert atlas_err(reply, af, proto) == err


def test_unreachable_marks_read_back_as_sagan_errors() -> None:
    net = Reply(1, 1.0, responder=R1, reply_ttl=255, size=56, icmp_type=3, icmp_code=0)
    got = parsed(a_trace([[net]]))
    packet = got.hops[0].packets[0]
    assert packet.is_error and packet.error_message == "Network unreachable"


def test_icmp_traceroute_over_ipv6() -> None:
    te6 = Reply(
        1, 0.3, responder="2001:db8:1::1", reply_ttl=64, size=40 + 8 + 48, icmp_type=3, icmp_code=0
    )
    reply6 = Reply(
        1, 0.9, responder="2001:db8::4", reply_ttl=62, size=40 + 8 + 16, icmp_type=129, icmp_code=0
    )
    r = a_trace(
        [[te6, te6], [reply6, silent()]],
        origin=ORIGIN6,
        target="2001:db8::4",
        target_name="2001:db8::4",
        proto="ICMP",
        af=6,
        size=40 + 8 + 16,
    )
    got = parsed(r)
    assert (got.af, got.protocol, got.size) == (6, "ICMP", 16)
    assert got.hops[0].packets[0].size == 48
    assert got.hops[1].packets[0].size == 16
    assert got.destination_ip_responded and got.is_success
    assert got.hops[1].packets[1].origin is None and got.hops[1].packets[1].rtt is None


def test_tcp_traceroute_answer_sizes_count_after_the_tcp_header() -> None:
    syn_ack = Reply(1, 1.0, responder=TARGET, reply_ttl=62, size=44)
    got = parsed(a_trace([[te(0.4, R1)], [syn_ack]], proto="TCP", size=40))
    assert (got.protocol, got.size) == ("TCP", 0)
    assert got.hops[1].packets[0].size == 44 - 20 - 20
    assert got.is_success


def test_probes_not_sent_are_atlas_errors() -> None:
    refused = Reply(1, None, error="not sent: ERR_NOPERM")
    raw = to_atlas(a_trace([[refused, te(0.2, R1)]]))
    assert raw["result"][0]["result"][0] == {"error": "not sent: ERR_NOPERM"}
    got = Result.get(raw)
    assert got.hops[0].packets[1].origin == R1


# --- DNS ----------------------------------------------------------------------------------


def an_answer(rcode: int = dns.rcode.NOERROR) -> tuple[dns.message.Message, bytes]:
    query = dns.message.make_query("example.test.", "A")
    response = dns.message.make_response(query)
    response.set_rcode(rcode)
    if rcode == dns.rcode.NOERROR:
        response.answer.append(
            dns.rrset.from_text("example.test.", 300, "IN", "A", "192.0.2.1", "192.0.2.7")
        )
    return response, response.to_wire()


def a_dns(**kw: Any) -> DnsResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "server": "198.18.0.53",
        "port": 53,
        "proto": "UDP",
        "af": 4,
        "qname": "example.test.",
        "qtype": "A",
        "started_ns": T0,
    }
    fields.update(kw)
    return DnsResult(**fields)


def test_dns_answer_reads_back_through_abuf() -> None:
    message, wire = an_answer()
    got = parsed(a_dns(rt_ms=4.56789, response=wire))
    assert isinstance(got, SaganDns)
    assert not got.is_error
    (response,) = got.responses
    assert (response.af, response.protocol) == (4, "UDP")
    assert (response.destination_address, response.source_address) == (
        "198.18.0.53",
        ORIGIN.src_addr,
    )
    assert response.response_time == round(4.56789, 3)
    assert response.response_size == len(wire)
    abuf = response.abuf
    assert not response.is_error
    assert abuf.header.id == message.id
    assert abuf.header.ancount == 2 and abuf.header.return_code == "NOERROR"
    assert [q.name for q in abuf.questions] == ["example.test."]
    assert sorted(a.address for a in abuf.answers) == ["192.0.2.1", "192.0.2.7"]
    assert {a.ttl for a in abuf.answers} == {300}
    raw = to_atlas(a_dns(rt_ms=4.5, response=wire))["result"]
    assert (raw["ID"], raw["ANCOUNT"], raw["QDCOUNT"], raw["NSCOUNT"], raw["ARCOUNT"]) == (
        message.id,
        2,
        1,
        0,
        0,
    )


def test_dns_nxdomain_is_an_error_once_read() -> None:
    _, wire = an_answer(dns.rcode.NXDOMAIN)
    got = parsed(a_dns(rt_ms=1.0, response=wire, proto="TCP"))
    (response,) = got.responses
    assert response.protocol == "TCP"
    assert response.abuf.header.return_code == "NXDOMAIN"
    assert response.is_error


def test_dns_timeout_and_other_errors() -> None:
    timeout = parsed(a_dns(error="timeout", rt_ms=5000.0))
    assert timeout.is_error and timeout.error_message == "Timeout: 5000"
    assert timeout.responses == []
    refused = parsed(a_dns(proto="TCP", error="connection refused"))
    assert refused.is_error and "connection refused" in refused.error_message


def test_dns_over_an_unknown_transport_is_refused() -> None:
    with pytest.raises(MeasurementError, match="UDP and TCP"):
        dns_json(a_dns(proto="QUIC"))


# --- HTTP ---------------------------------------------------------------------------------


def a_http(**kw: Any) -> HttpResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "url": "http://198.18.4.2/index.html",
        "dst_addr": TARGET,
        "port": 80,
        "af": 4,
        "method": "GET",
        "started_ns": T0,
    }
    fields.update(kw)
    return HttpResult(**fields)


def test_http_response_reads_back() -> None:
    r = a_http(
        status=200,
        version="1.1",
        header_bytes=123,
        body_bytes=4567,
        rt_ms=3.3333,
        ttc_ms=1.25,
        ttfb_ms=1.5,
    )
    got = parsed(r)
    assert isinstance(got, SaganHttp)
    assert (got.uri, got.method, got.is_error) == (r.url, "GET", False)
    (response,) = got.responses
    assert (response.code, response.version) == (200, "1.1")
    assert (response.head_size, response.body_size) == (123, 4567)
    assert response.response_time == round(3.3333, 3)
    assert (response.destination_address, response.source_address) == (TARGET, ORIGIN.src_addr)
    raw = to_atlas(r)["result"][0]
    assert raw["ttc"] == 1.25
    assert raw["ttfb"] == 1.25 + 1.5  # Atlas: from the start of the connection


def test_http_failure_is_an_atlas_err() -> None:
    got = parsed_allowing_malformed(http_json(a_http(error="connection refused", ttc_ms=None)))
    (response,) = got.responses
    assert response.is_error and response.error_message == "connection refused"
    assert response.code is None and response.is_malformed  # as sagan says of Atlas's own


def parsed_allowing_malformed(raw: dict[str, Any]) -> Any:
    """Atlas's own failed HTTP results lack a status code, which sagan calls malformed."""
    return Result.get(json.dumps(raw))


# --- dispatch and bad input ---------------------------------------------------------------


def test_to_atlas_dispatches_on_the_result_type() -> None:
    assert to_atlas(a_ping([]))["type"] == "ping"
    assert to_atlas(a_trace([]))["type"] == "traceroute"
    assert to_atlas(a_dns(error="timeout"))["type"] == "dns"
    assert to_atlas(a_http(error="x"))["type"] == "http"
    bw = BandwidthResult(ORIGIN, TARGET, 5001, 1000, 10, 10, 10_000, 0.1, 1e6)
    for other in (bw, object(), None):
        with pytest.raises(TypeError, match="no RIPE Atlas format"):
            to_atlas(other)


def test_impossible_results_get_a_clear_error() -> None:
    with pytest.raises(MeasurementError, match="IP packet"):
        ping_json(a_ping([], size=20))  # smaller than its own headers
    with pytest.raises(MeasurementError, match="address family"):
        ping_json(a_ping([], af=5))
    with pytest.raises(MeasurementError, match="probe protocol"):
        trace_json(a_trace([], proto="SCTP"))
