"""Text output has the shape ping(8) and traceroute(8) users know.

The patterns below are checked against real output first (iputils ping 20221126 and
traceroute 2.1.2 on loopback, plus traceroute's documented mixed-hop shape), then against ours.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

import dns.message
import dns.rcode
import dns.rrset
import pytest

from packetlab.measure.results import (
    AliasResult,
    BandwidthResult,
    DnsResult,
    Hop,
    HttpResult,
    Origin,
    PingResult,
    Reply,
    TraceResult,
)
from packetlab.measure.text import (
    alias_text,
    bw_text,
    dns_text,
    http_text,
    ping_text,
    trace_text,
)

REAL_PING4 = """\
PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.
64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.041 ms
64 bytes from 127.0.0.1: icmp_seq=2 ttl=64 time=0.043 ms
64 bytes from 127.0.0.1: icmp_seq=3 ttl=64 time=0.045 ms

--- 127.0.0.1 ping statistics ---
3 packets transmitted, 3 received, 0% packet loss, time 407ms
rtt min/avg/max/mdev = 0.041/0.043/0.045/0.001 ms"""
REAL_PING6 = """\
PING ::1(::1) 56 data bytes
64 bytes from ::1: icmp_seq=1 ttl=64 time=0.080 ms
64 bytes from ::1: icmp_seq=2 ttl=64 time=0.048 ms

--- ::1 ping statistics ---
2 packets transmitted, 2 received, 0% packet loss, time 201ms
rtt min/avg/max/mdev = 0.048/0.064/0.080/0.016 ms"""
REAL_PING_UNREACH = """\
From 198.18.0.1 icmp_seq=1 Destination Net Unreachable
2 packets transmitted, 0 received, +2 errors, 100% packet loss, time 201ms"""
REAL_TRACE = """\
traceroute to 127.0.0.1 (127.0.0.1), 30 hops max, 60 byte packets
 1  127.0.0.1  0.041 ms  0.009 ms  0.008 ms"""
REAL_TRACE_HOPS = [
    " 5  108.170.248.185  8.081 ms 108.170.231.103  7.076 ms *",
    " 2  * * *",
    "11  201.21.192.52  164.223 ms !H  166.554 ms !H  164.337 ms !H",
]

PING_HEAD4 = re.compile(r"PING (\S+) \((\S+)\) (\d+)\((\d+)\) bytes of data\.")
PING_HEAD6 = re.compile(r"PING (\S+)\((\S+)\) (\d+) data bytes")
PING_REPLY = re.compile(r"(\d+) bytes from (\S+): icmp_seq=(\d+) ttl=(\d+) time=(\d+(?:\.\d+)?) ms")
PING_ERROR = re.compile(r"From (\S+) icmp_seq=(\d+) (\S.*)")
PING_STATS_HEAD = re.compile(r"--- (\S+) ping statistics ---")
PING_STATS = re.compile(
    r"(\d+) packets transmitted, (\d+) received(?:, \+(\d+) duplicates)?(?:, \+(\d+) errors)?"
    r", (\d+(?:\.\d+)?)% packet loss, time (\d+)ms"
)
PING_RTT = re.compile(
    r"rtt min/avg/max/mdev = (\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3})/(\d+\.\d{3}) ms"
)
TRACE_HEAD = re.compile(r"traceroute to (\S+) \((\S+)\), (\d+) hops max, (\d+) byte packets")
TRACE_HOP = re.compile(r"([ \d]\d) ((?: \*| [0-9a-fA-F.:]+|  \d+\.\d{3} ms| !\S+)*)")
TRACE_TOKEN = re.compile(r" \*| ([0-9a-fA-F.:]+)|  (\d+\.\d{3}) ms| (!\S+)")

ORIGIN = Origin("ep-1", "198.18.0.2")
TARGET, R1, R2, R2B = "198.18.4.2", "198.18.1.1", "198.18.2.1", "198.18.2.9"


def test_the_patterns_fit_real_output() -> None:
    for real, head in ((REAL_PING4, PING_HEAD4), (REAL_PING6, PING_HEAD6)):
        lines = real.splitlines()
        assert head.fullmatch(lines[0])
        assert all(PING_REPLY.fullmatch(line) for line in lines[1:-4])
        assert lines[-4] == "" and PING_STATS_HEAD.fullmatch(lines[-3])
        assert PING_STATS.fullmatch(lines[-2]) and PING_RTT.fullmatch(lines[-1])
    error, stats = REAL_PING_UNREACH.splitlines()
    assert PING_ERROR.fullmatch(error) and PING_STATS.fullmatch(stats)
    head, hop = REAL_TRACE.splitlines()
    assert TRACE_HEAD.fullmatch(head)
    for line in [hop, *REAL_TRACE_HOPS]:
        assert TRACE_HOP.fullmatch(line), line


# --- ping ---------------------------------------------------------------------------------


def echo(seq: int, rtt: float | None, ttl: int = 62, size: int = 84, **kw: Any) -> Reply:
    if rtt is None:
        return Reply(seq, None, **kw)
    return Reply(seq, rtt, responder=TARGET, reply_ttl=ttl, size=size, icmp_type=0, **kw)


def a_ping(replies: list[Reply], **kw: Any) -> PingResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "target": TARGET,
        "target_name": "target.test",
        "proto": "ICMP",
        "af": 4,
        "size": 84,
        "ttl": 64,
        "started_ns": 1,
        "interval_ms": 200.0,
    }
    fields.update(kw)
    return PingResult(replies=replies, **fields)


def parse_ping(text: str, head: re.Pattern[str] = PING_HEAD4) -> dict[str, Any]:
    """Our output, read with the patterns that fit real ping output; every line accounted for."""
    lines = text.splitlines()
    m = head.fullmatch(lines[0])
    assert m, lines[0]
    out: dict[str, Any] = {"head": m.groups(), "replies": [], "errors": [], "rtt": None}
    i = 1
    while lines[i]:
        reply, error = PING_REPLY.fullmatch(lines[i]), PING_ERROR.fullmatch(lines[i])
        if reply:
            out["replies"].append(reply.groups())
        else:
            assert error, lines[i]
            out["errors"].append(error.groups())
        i += 1
    assert PING_STATS_HEAD.fullmatch(lines[i + 1])
    stats = PING_STATS.fullmatch(lines[i + 2])
    assert stats, lines[i + 2]
    out["stats"] = stats.groups()
    rest = lines[i + 3 :]
    if rest:
        (line,) = rest
        rtt = PING_RTT.fullmatch(line)
        assert rtt, line
        out["rtt"] = tuple(float(x) for x in rtt.groups())
    return out


def test_ping_shape_values_and_statistics() -> None:
    rtts = [0.0414, 1.2345, 12.345, 123.4]
    replies = [echo(i, rtt, ttl=60 + i) for i, rtt in enumerate(rtts, 1)]
    text = ping_text(a_ping(replies))
    got = parse_ping(text)
    assert got["head"] == ("target.test", TARGET, "56", "84")
    assert [(n, a, s, t) for n, a, s, t, _ in got["replies"]] == [
        ("64", TARGET, str(i), str(60 + i)) for i in range(1, 5)
    ]
    # ping's precision: three decimals under 1 ms, then two, one, none
    assert [time for *_, time in got["replies"]] == ["0.041", "1.23", "12.3", "123"]
    assert got["stats"] == ("4", "4", None, None, "0", str(round(3 * 200.0)))
    mdev = statistics.pstdev(rtts)
    expected = (min(rtts), statistics.mean(rtts), max(rtts), mdev)
    assert got["rtt"] == tuple(round(x, 3) for x in expected)


def test_losses_print_nothing_and_count_in_the_loss() -> None:
    replies = [echo(1, 0.5), echo(2, None), echo(3, None), echo(4, 0.7), echo(5, None)]
    got = parse_ping(ping_text(a_ping(replies)))
    assert [seq for _, _, seq, _, _ in got["replies"]] == ["1", "4"]
    transmitted, received, _, _, loss, _ = got["stats"]
    assert (transmitted, received, loss) == ("5", "2", "60")
    third = parse_ping(ping_text(a_ping([echo(1, 0.5), echo(2, None), echo(3, None)])))
    assert third["stats"][4] == f"{200 / 3:g}"  # printf %g, as ping


def test_duplicates_and_icmp_errors_in_the_statistics() -> None:
    unreachable = Reply(2, 0.3, responder=R1, reply_ttl=255, size=56, icmp_type=3, icmp_code=1)
    replies = [echo(1, 0.5, duplicates=2), unreachable, echo(3, 0.6)]
    got = parse_ping(ping_text(a_ping(replies)))
    assert got["errors"] == [(R1, "2", "Destination Host Unreachable")]
    assert got["stats"][:5] == ("3", "2", "2", "1", f"{100 / 3:g}")
    assert got["rtt"] is not None and got["rtt"][0] == 0.5


def test_nothing_received_has_no_rtt_line() -> None:
    text = ping_text(a_ping([echo(1, None), echo(2, None)]))
    got = parse_ping(text)
    assert got["replies"] == [] and got["rtt"] is None
    assert got["stats"][1] == "0" and got["stats"][4] == "100"


def test_ipv6_ping() -> None:
    origin6 = Origin("ep-6", "2001:db8::2")
    replies = [
        Reply(1, 0.08, responder="2001:db8::4", reply_ttl=64, size=104, icmp_type=129),
        Reply(2, 0.5, responder="2001:db8::1", reply_ttl=64, size=152, icmp_type=1, icmp_code=3),
    ]
    r = a_ping(
        replies,
        origin=origin6,
        target="2001:db8::4",
        target_name="2001:db8::4",
        af=6,
        size=40 + 8 + 56,
    )
    got = parse_ping(ping_text(r), head=PING_HEAD6)
    assert got["head"] == ("2001:db8::4", "2001:db8::4", "56")
    assert got["replies"] == [("64", "2001:db8::4", "1", "64", "0.080")]
    assert got["errors"] == [("2001:db8::1", "2", "Destination unreachable: Address unreachable")]


def test_udp_and_tcp_pings_say_seq() -> None:
    port_unreach = Reply(1, 0.4, responder=TARGET, reply_ttl=62, size=56, icmp_type=3, icmp_code=3)
    text = ping_text(a_ping([port_unreach], proto="UDP"))
    assert re.search(r"^\d+ bytes from 198\.18\.4\.2: seq=1 ttl=62 time=0\.400 ms$", text, re.M)
    syn_ack = Reply(1, 1.5, responder=TARGET, reply_ttl=62, size=44)
    text = ping_text(a_ping([syn_ack], proto="TCP", size=40))
    assert "PING target.test (198.18.4.2) 0(40) bytes of data." in text
    assert re.search(r"^24 bytes from 198\.18\.4\.2: seq=1 ttl=62 time=1\.50 ms$", text, re.M)


def test_probes_not_sent_are_said_and_not_transmitted() -> None:
    text = ping_text(a_ping([Reply(1, None, error="not sent: ERR_NOPERM"), echo(2, 0.5)]))
    assert "ping: icmp_seq=1 not sent: ERR_NOPERM" in text.splitlines()
    assert "1 packets transmitted, 1 received, 0% packet loss" in text


# --- tags ---------------------------------------------------------------------------------


@pytest.mark.parametrize("tag", ["ep-1", "host.example"])
def test_every_line_of_a_tagged_block_carries_the_host_id(tag: str) -> None:
    r = a_ping([echo(1, 0.5), echo(2, None)])
    plain, tagged = ping_text(r), ping_text(r, tag=tag)
    lines = tagged.splitlines()
    assert len(lines) == len(plain.splitlines())
    assert all(line == f"[{tag}]" or line.startswith(f"[{tag}] ") for line in lines)
    assert "\n".join(line.removeprefix(f"[{tag}]").removeprefix(" ") for line in lines) == plain
    trace = a_trace([[te(0.5, R1)]])
    assert trace_text(trace, tag=tag).splitlines()[1] == f"[{tag}]  1  {R1}  0.500 ms"


# --- traceroute ---------------------------------------------------------------------------


def te(rtt: float, addr: str) -> Reply:
    return Reply(1, rtt, responder=addr, reply_ttl=64, size=56, icmp_type=11, icmp_code=0)


def unreach(rtt: float, addr: str, code: int, af: int = 4) -> Reply:
    return Reply(
        1, rtt, responder=addr, reply_ttl=64, size=56, icmp_type=3 if af == 4 else 1, icmp_code=code
    )


def a_trace(hops: list[list[Reply]], **kw: Any) -> TraceResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "target": TARGET,
        "target_name": "target.test",
        "proto": "UDP",
        "af": 4,
        "paris_id": 0,
        "size": 60,
        "started_ns": 1,
    }
    fields.update(kw)
    return TraceResult(hops=[Hop(ttl, replies) for ttl, replies in enumerate(hops, 1)], **fields)


def parse_trace(text: str) -> tuple[tuple[str, ...], list[list[tuple[str | None, ...]]]]:
    lines = text.splitlines()
    head = TRACE_HEAD.fullmatch(lines[0])
    assert head, lines[0]
    hops = []
    for n, line in enumerate(lines[1:], 1):
        m = TRACE_HOP.fullmatch(line)
        assert m and int(m[1]) == n, line
        hops.append([t.groups() for t in TRACE_TOKEN.finditer(m[2])])
    return head.groups(), hops


def test_traceroute_shape_addresses_stars_and_flags() -> None:
    port_unreach = unreach(3.0, TARGET, 3)
    hops = [
        [te(0.1234, R1), te(0.1, R1), te(0.2, R1)],
        [te(1.0, R2), te(1.1, R2B), Reply(3, None)],
        [Reply(1, None), Reply(2, None), Reply(3, None)],
        [Reply(1, None), te(2.0, R2B), te(2.5, R2B)],
        [port_unreach, port_unreach, port_unreach],
    ]
    head, got = parse_trace(trace_text(a_trace(hops), max_hops=16))
    assert head == ("target.test", TARGET, "16", "60")
    addr, rtt, star = (lambda a: (a, None, None)), (lambda t: (None, t, None)), (None, None, None)
    assert got[0] == [addr(R1), rtt("0.123"), rtt("0.100"), rtt("0.200")]
    assert got[1] == [addr(R2), rtt("1.000"), addr(R2B), rtt("1.100"), star]
    assert got[2] == [star, star, star]
    assert got[3] == [star, addr(R2B), rtt("2.000"), rtt("2.500")]  # printed once after a *
    assert got[4] == [addr(TARGET), rtt("3.000"), rtt("3.000"), rtt("3.000")]  # arrival: no mark


@pytest.mark.parametrize(
    ("af", "code", "flag"),
    [
        (4, 0, "!N"),
        (4, 1, "!H"),
        (4, 2, "!P"),
        (4, 13, "!X"),
        (4, 9, "!X"),
        (4, 5, "!S"),
        (4, 99, "!<99>"),
        (6, 0, "!N"),
        (6, 1, "!X"),
        (6, 3, "!H"),
        (6, 7, "!<7>"),
    ],
)
def test_unreachable_marks(af: int, code: int, flag: str) -> None:
    router = R2 if af == 4 else "2001:db8::9"
    r = a_trace([[unreach(1.5, router, code, af), Reply(2, None)]], af=af)
    _, hops = parse_trace(trace_text(r))
    assert hops[0] == [
        (router, None, None),
        (None, "1.500", None),
        (None, None, flag),
        (None, None, None),
    ]


def test_ipv6_traceroute() -> None:
    te6 = Reply(1, 0.3, responder="2001:db8:1::1", reply_ttl=64, size=96, icmp_type=3, icmp_code=0)
    arrive = Reply(1, 0.9, responder="2001:db8::4", reply_ttl=62, size=96, icmp_type=1, icmp_code=4)
    r = a_trace([[te6], [arrive]], target="2001:db8::4", target_name="2001:db8::4", af=6, size=80)
    text = trace_text(r)
    assert text.splitlines() == [
        "traceroute to 2001:db8::4 (2001:db8::4), 30 hops max, 80 byte packets",
        " 1  2001:db8:1::1  0.300 ms",
        " 2  2001:db8::4  0.900 ms",
    ]
    parse_trace(text)


# --- DNS, HTTP, bandwidth, aliases --------------------------------------------------------


def a_dns(**kw: Any) -> DnsResult:
    fields: dict[str, Any] = {
        "origin": ORIGIN,
        "server": "198.18.0.53",
        "port": 53,
        "proto": "UDP",
        "af": 4,
        "qname": "example.test.",
        "qtype": "A",
        "started_ns": 1,
    }
    fields.update(kw)
    return DnsResult(**fields)


def test_dns_lines() -> None:
    query = dns.message.make_query("example.test.", "A")
    response = dns.message.make_response(query)
    response.answer.append(
        dns.rrset.from_text("example.test.", 300, "IN", "A", "192.0.2.1", "192.0.2.7")
    )
    wire = response.to_wire()
    first, *records = dns_text(a_dns(rt_ms=1.2345, response=wire), tag="ep-1").splitlines()
    assert first == (
        f"[ep-1] example.test. A @198.18.0.53:53 (UDP): NOERROR, 2 answers, {len(wire)} bytes"
        " in 1.234 ms"
    )
    assert sorted(records) == [
        "[ep-1] example.test. 300 IN A 192.0.2.1",
        "[ep-1] example.test. 300 IN A 192.0.2.7",
    ]
    response.answer.clear()
    response.set_rcode(dns.rcode.NXDOMAIN)
    assert "NXDOMAIN, 0 answers" in dns_text(a_dns(rt_ms=1.0, response=response.to_wire()))
    assert dns_text(a_dns(error="timeout")).endswith(": no answer (timeout)")
    tcp = dns_text(a_dns(proto="TCP", error="connection refused", server="2001:db8::53", af=6))
    assert tcp == "example.test. A @[2001:db8::53]:53 (TCP): error: connection refused"
    garbage = dns_text(a_dns(rt_ms=1.0, response=b"\x01\x02\x03"))
    assert "unreadable answer of 3 bytes" in garbage


def test_http_bandwidth_and_alias_lines() -> None:
    ok = HttpResult(
        ORIGIN,
        "http://198.18.4.2/",
        TARGET,
        80,
        4,
        "GET",
        1,
        status=200,
        version="1.1",
        header_bytes=120,
        body_bytes=4096,
        rt_ms=3.5,
        ttc_ms=1.0,
        ttfb_ms=2.0,
    )
    assert http_text(ok) == (
        "GET http://198.18.4.2/ (198.18.4.2:80): HTTP/1.1 200, 120 header + 4096 body bytes, "
        "connect 1.000 ms, first byte 2.000 ms, total 3.500 ms"
    )
    failed = HttpResult(ORIGIN, "http://198.18.4.2/", TARGET, 80, 4, "GET", 1, error="refused")
    assert http_text(failed, tag="ep-1") == (
        "[ep-1] GET http://198.18.4.2/ (198.18.4.2:80): error: refused"
    )
    bw = BandwidthResult(ORIGIN, "198.18.0.1", 5001, 1000, 100, 98, 98_000, 0.0125, 64.1e6)
    line = bw_text(bw)
    assert line.startswith("UDP burst to 198.18.0.1:5001: 98 of 100 packets")
    assert line.endswith(": 64.10 Mbit/s")
    alias = AliasResult(ORIGIN, R1, R2, "alias", ids=[(R1, 1, 10), (R2, 2, 11)], reason="ok")
    assert alias_text(alias) == f"{R1} {R2}: alias (2 IP IDs; ok)"
