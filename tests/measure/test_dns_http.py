"""DNS, HTTP GET and TCP connect time from an endpoint in the line testbed, against real servers
in the target: NSD (UDP and TCP, IPv4 and IPv6) and ``python -m http.server``.

Every link delays 5 ms each way, so the endpoint-target round trip is 40 ms; the tools' times
(endpoint kernel stamps) must land on it within a few ms. The response reader is tested
without I/O at the end.
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from packetlab.testbed.sessions import serve_in_node as run_on_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns_session import descendants, endpoint_config, init_home, kill9
from packetlab.controller.api import EndpointHandle
from packetlab.measure.dns import MessageStream, answer_to, dns_query, make_query
from packetlab.measure.errors import EndpointCannot, MeasurementError
from packetlab.measure.http import (
    ConnectFailed,
    HttpParseError,
    ResponseParser,
    http_get,
    http_target,
    tcp_connect,
)
from packetlab.measure.results import DnsResult, HttpResult
from packetlab.testbed import Topology

DELAY_MS = 5.0
RTT_MS = 8 * DELAY_MS  # 4 links, both ways
SLACK_MS = 3.0  # kernel-stamped times: eight relay hops, the server's work
CONNECT_SLACK_MS = 6.0  # one connect time: also the endpoint's wake-up on ESTABLISHED
ZONE = "pl.test."
BODY_SIZE = 100_000
TXT_RECORDS = 24  # a TXT RRset of ~5 KB: more than one TCP segment
SILENT_UDP_PORT = 5353  # a UDP socket that reads and never answers
CLOSED_PORT = 8080  # nothing listens: TCP gets a RST, UDP an ICMP port unreachable
SLOW_TCP_PORT = 5300  # a DNS-over-TCP server that writes its answers in three pieces
PIECE_GAP_S = 0.02
SLOW_DNS = f"""
import socket, sys, time
import dns.message, dns.rrset

listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind((sys.argv[1], {SLOW_TCP_PORT}))
listener.listen(4)
listener.settimeout(300)
while True:
    conn, _ = listener.accept()
    with conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        data = b""
        while len(data) < 2 or len(data) < 2 + int.from_bytes(data[:2], "big"):
            more = conn.recv(4096)
            if not more:
                break
            data += more
        try:
            query = dns.message.from_wire(data[2:])
        except Exception:
            continue
        answer = dns.message.make_response(query)
        name = query.question[0].name
        answer.answer.append(dns.rrset.from_text(name, 60, "IN", "A", sys.argv[1]))
        wire = answer.to_wire()
        out = len(wire).to_bytes(2, "big") + wire
        for piece in (out[:1], out[1:12], out[12:]):
            conn.sendall(piece)
            time.sleep({PIECE_GAP_S})
"""


@dataclass(frozen=True)
class Bed:
    tb: Any
    home: Path
    config: Path
    v4: str
    v6: str
    www: Path

    def run(self, measurement: Any, config: Path | None = None) -> Any:
        return run_on_node(self.tb, "ep", self.home, config or self.config, measurement)


def _zone(v4: str, v6: str) -> str:
    txt = "\n".join(f'big IN TXT "{i:03d} {"x" * 200}"' for i in range(TXT_RECORDS))
    return (
        f"$ORIGIN {ZONE}\n$TTL 60\n"
        f"@ IN SOA ns.{ZONE} admin.{ZONE} 1 3600 600 86400 60\n"
        f"@ IN NS ns.{ZONE}\nns IN A {v4}\nwww IN A {v4}\nwww IN AAAA {v6}\n{txt}\n"
    )


def _nsd_conf(root: Path, v4: str, v6: str) -> str:
    return f"""server:
    ip-address: {v4}
    ip-address: {v6}
    port: 53
    username: ""
    chroot: ""
    zonesdir: "{root}"
    database: ""
    zonelistfile: "{root}/zone.list"
    pidfile: "{root}/nsd.pid"
    xfrdfile: "{root}/xfrd.state"
    xfrdir: "{root}"
    logfile: "{root}/nsd.log"
    server-count: 1
    rrl-ratelimit: 0
    rrl-whitelist-ratelimit: 0
remote-control:
    control-enable: no
zone:
    name: {ZONE}
    zonefile: pl.test.zone
"""


def _wait_until(what: str, ready: Any, limit_s: float = 10.0) -> None:
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, dns.exception.DNSException):
            if ready():
                return
        time.sleep(0.05)
    raise AssertionError(f"{what} did not come up in {limit_s} s")


def _stop(procs: list[subprocess.Popen[Any]]) -> None:
    """End the servers we started, by pid: SIGTERM (NSD stops its own workers), then SIGKILL
    for whatever of them and their children is still there."""
    children = {proc.pid: descendants(proc.pid) for proc in procs}
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            kill9([proc.pid])
            proc.wait(timeout=5)
        left = [pid for pid in children.get(proc.pid, []) if os.path.exists(f"/proc/{pid}")]
        kill9(left)


@pytest.fixture(scope="module")
def bed(testbed_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bed]:
    tb = testbed_module(Topology.load("line").with_link_delay(DELAY_MS))
    root = tmp_path_factory.mktemp("dns_http")
    home = init_home(root / "home")
    config = endpoint_config(home, tb, "ep")
    v4, v6 = tb.addr("target", "r3", 4), tb.addr("target", "r3", 6)
    (root / "pl.test.zone").write_text(_zone(v4, v6))
    (root / "nsd.conf").write_text(_nsd_conf(root, v4, v6))
    www = root / "www"
    www.mkdir()
    (www / "file.bin").write_bytes(
        bytes(range(256)) * (BODY_SIZE // 256) + b"!" * (BODY_SIZE % 256)
    )
    procs: list[subprocess.Popen[Any]] = []
    quiet = {
        "stdin": subprocess.DEVNULL,
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
    }
    try:
        procs.append(tb.popen("target", ["nsd", "-d", "-c", str(root / "nsd.conf")], **quiet))
        for addr in (v4, v6):
            procs.append(tb.popen("target", [sys.executable, "-m", "http.server", "--bind", addr,
                                             "80", "--directory", str(www)], **quiet))  # fmt: skip
        silent = (
            "import socket, sys, time\n"
            "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
            f"s.bind((sys.argv[1], {SILENT_UDP_PORT}))\n"
            "time.sleep(300)\n"
        )
        procs.append(tb.popen("target", [sys.executable, "-c", silent, v4], **quiet))
        procs.append(tb.popen("target", [sys.executable, "-c", SLOW_DNS, v4], **quiet))

        def nsd_answers() -> bool:
            query = dns.message.make_query(f"www.{ZONE}", "A")
            return all(
                dns.query.udp(query, addr, timeout=0.5).rcode() == dns.rcode.NOERROR
                and dns.query.tcp(query, addr, timeout=0.5).rcode() == dns.rcode.NOERROR
                for addr in (v4, v6)
            )

        def tcp_accepts() -> bool:
            for addr, port in ((v4, 80), (v6, 80), (v4, SLOW_TCP_PORT)):
                with socket.create_connection((addr, port), timeout=0.5):
                    pass
            return True

        _wait_until("NSD", lambda: tb.call("target", nsd_answers))
        _wait_until("the TCP servers", lambda: tb.call("target", tcp_accepts))
        yield Bed(tb, home, config, v4, v6, www)
    finally:
        _stop(procs)


def _near_rtt(ms: float | None, slack: float = SLACK_MS) -> bool:
    return ms is not None and RTT_MS <= ms <= RTT_MS + slack


# DNS ------------------------------------------------------------------------------------------


def test_dns_over_udp_and_tcp_answers_in_one_round_trip(bed: Bed) -> None:
    async def measure(ep: EndpointHandle) -> list[DnsResult]:
        return [
            await dns_query(ep, bed.v4, f"www.{ZONE}", "A"),
            await dns_query(ep, bed.v4, f"www.{ZONE}", "A", proto="TCP"),
            await dns_query(ep, bed.v6, f"www.{ZONE}", "AAAA"),
            await dns_query(ep, bed.v6, f"big.{ZONE}", "TXT", proto="tcp"),
            await dns_query(ep, bed.v4, f"nothing-here.{ZONE}", "A"),
            await dns_query(ep, bed.v4, f"slow.{ZONE}", proto="TCP", port=SLOW_TCP_PORT),
        ]

    results = bed.run(measure)
    udp4, tcp4, udp6, big6, missing, slow = results
    # the answer is complete with its last piece: rt runs to that piece's RX stamp
    assert slow.error is None and slow.response is not None
    assert slow.rt_ms is not None and _near_rtt(slow.rt_ms - 2000 * PIECE_GAP_S, 2 * SLACK_MS)
    assert [str(rd) for rrset in dns.message.from_wire(slow.response).answer for rd in rrset] == [
        bed.v4
    ]
    for result in results[:-1]:
        assert result.error is None, result
        assert _near_rtt(result.rt_ms), (result.proto, result.qname, result.rt_ms)
        assert result.response is not None
        assert result.started_ns > 1_600_000_000 * 10**9  # an endpoint epoch time
    for result, want in ((udp4, bed.v4), (tcp4, bed.v4), (udp6, bed.v6)):
        assert result.response is not None
        answer = dns.message.from_wire(result.response)
        assert answer.rcode() == dns.rcode.NOERROR and answer.flags & dns.flags.QR
        assert [rd.to_text() for rrset in answer.answer for rd in rrset] == [want]
    assert (udp4.proto, tcp4.proto, big6.proto) == ("UDP", "TCP", "TCP")
    assert (udp4.af, udp6.af, udp6.qtype, udp4.qname) == (4, 6, "AAAA", f"www.{ZONE}")
    assert udp4.origin.src_addr == bed.tb.addr("ep", "r1", 4)
    assert udp6.origin.src_addr == bed.tb.addr("ep", "r1", 6)
    assert big6.response is not None and len(big6.response) > 4000  # more than one segment
    big = dns.message.from_wire(big6.response)
    assert sorted(rd.to_text()[1:4] for rrset in big.answer for rd in rrset) == [
        f"{i:03d}" for i in range(TXT_RECORDS)
    ]
    assert missing.response is not None
    assert dns.message.from_wire(missing.response).rcode() == dns.rcode.NXDOMAIN
    print("dns rt ms:", [(r.proto, r.af, r.qtype, r.qname, r.rt_ms) for r in results])


def test_dns_silence_is_a_timeout_and_a_closed_tcp_port_is_refused(bed: Bed) -> None:
    async def measure(ep: EndpointHandle) -> list[tuple[DnsResult, float]]:
        out = []
        for port, proto in ((SILENT_UDP_PORT, "UDP"), (CLOSED_PORT, "UDP"), (CLOSED_PORT, "TCP")):
            began = time.monotonic()
            result = await dns_query(ep, bed.v4, f"www.{ZONE}", proto=proto, port=port, timeout=0.5)
            out.append((result, time.monotonic() - began))
        again = await dns_query(ep, bed.v4, f"www.{ZONE}", proto="TCP", sktid=240)
        return [*out, (again, 0.0)]

    (silent, s_silent), (closed_udp, s_udp), (closed_tcp, s_tcp), (again, _) = bed.run(measure)
    assert silent.error == "timeout" and silent.rt_ms is None and silent.response is None
    assert 0.5 <= s_silent < 1.5
    # the endpoint reports no ICMP errors on UDP sockets: a closed UDP port reads as silence
    assert closed_udp.error == "timeout" and 0.5 <= s_udp < 1.5
    assert closed_tcp.error == "connection refused" and s_tcp < 0.5
    assert closed_tcp.started_ns > 0
    assert again.error is None and _near_rtt(again.rt_ms)  # the socket ids were released


def test_dns_arguments_are_checked_before_the_endpoint_is_used() -> None:
    import asyncio

    nowhere: Any = None  # any use of the endpoint would fail with AttributeError
    with pytest.raises(MeasurementError, match="proto must be UDP or TCP"):
        asyncio.run(dns_query(nowhere, "198.18.4.2", "a.test", proto="SCTP"))
    with pytest.raises(MeasurementError, match="not an IP address"):
        asyncio.run(dns_query(nowhere, "ns.example.net", "a.test"))
    with pytest.raises(MeasurementError, match="not a DNS record type"):
        asyncio.run(dns_query(nowhere, "198.18.4.2", "a.test", "BOGUS"))
    with pytest.raises(MeasurementError, match="port"):
        asyncio.run(dns_query(nowhere, "198.18.4.2", "a.test", port=70000))


# HTTP and TCP connect ---------------------------------------------------------------------------


async def _resolve(ep: EndpointHandle, bed: Bed, qtype: str = "A") -> str:
    """www's address, asked from the endpoint like a client would before connecting. It also
    makes sure the endpoint's packet I/O process is up (it starts with the session): a TCP
    socket that reaches it after the handshake gets a late ESTABLISHED stamp."""
    result = await dns_query(ep, bed.v4, f"www.{ZONE}", qtype)
    assert result.response is not None, result
    return str(dns.message.from_wire(result.response).answer[0][0])


def test_http_get_status_sizes_and_times(bed: Bed) -> None:
    async def measure(ep: EndpointHandle) -> list[HttpResult]:
        v4, v6 = await _resolve(ep, bed), await _resolve(ep, bed, "AAAA")
        return [
            await http_get(ep, f"http://www.{ZONE[:-1]}/file.bin", address=v4),
            await http_get(ep, f"http://[{v6}]/file.bin"),
            await http_get(ep, f"http://{v4}/missing?x=1"),
            await http_get(ep, f"http://{v4}/file.bin", max_bytes=10_000),
        ]

    ok4, ok6, missing, capped = bed.run(measure)
    size = (bed.www / "file.bin").stat().st_size
    for result in (ok4, ok6):
        assert result.error is None, result
        assert (result.status, result.version, result.body_bytes) == (200, "1.0", size)
        assert result.header_bytes > 50
    for result in (ok4, ok6, missing, capped):
        assert _near_rtt(result.ttc_ms, CONNECT_SLACK_MS), result
        assert result.ttfb_ms is not None and result.ttfb_ms >= RTT_MS, result
        assert result.rt_ms is not None and result.ttc_ms is not None
        assert result.rt_ms >= result.ttc_ms + result.ttfb_ms
    assert ok4.rt_ms is not None and ok4.rt_ms > 3 * RTT_MS  # 100 KB takes a few windows
    assert (ok6.af, ok6.dst_addr, ok4.af, ok4.dst_addr) == (6, bed.v6, 4, bed.v4)
    assert missing.error is None and missing.status == 404 and missing.body_bytes > 0
    assert capped.error is not None and "max_bytes" in capped.error
    assert capped.status == 200 and capped.body_bytes < size
    print("http ttc/ttfb/rt ms:", [(r.ttc_ms, r.ttfb_ms, r.rt_ms) for r in (ok4, ok6, missing)])


def test_http_refused_and_unanswered_connects_are_results(bed: Bed) -> None:
    silent_host = bed.v4.rsplit(".", 1)[0] + ".99"  # on the target's link, nobody there

    async def measure(ep: EndpointHandle) -> list[HttpResult | str]:
        out: list[HttpResult | str] = [
            await http_get(ep, f"http://{bed.v4}:{CLOSED_PORT}/"),
            await http_get(ep, f"http://{silent_host}/", timeout=0.5),
        ]
        try:
            await tcp_connect(ep, bed.v4, CLOSED_PORT)
        except ConnectFailed as exc:
            out.append(exc.reason)
        return out

    refused, unanswered, connect_refused = bed.run(measure)
    assert isinstance(refused, HttpResult) and isinstance(unanswered, HttpResult)
    assert refused.error == "connection refused" and refused.status is None
    assert refused.ttc_ms is None and refused.started_ns > 0
    assert unanswered.error == "timeout" and unanswered.status is None
    assert connect_refused == "connection refused"


def _kernel_handshake_rtt_ms(bed: Bed, address: str) -> float:
    """The kernel's own SYN to SYN-ACK time (TCP_INFO tcpi_rtt, the first RTT sample) for a
    connect from the endpoint's node: what tcp_connect estimates from outside the kernel."""

    def connect() -> float:
        with socket.create_connection((address, 80), timeout=2) as sock:
            info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return float(struct.unpack_from("I", info, 68)[0]) / 1000

    return float(bed.tb.call("ep", connect))


def test_tcp_connect_time_is_the_path_round_trip(bed: Bed) -> None:
    async def measure(ep: EndpointHandle) -> list[float]:
        v4, v6 = await _resolve(ep, bed), await _resolve(ep, bed, "AAAA")
        times = [await tcp_connect(ep, v4, 80) for _ in range(6)]
        return times + [await tcp_connect(ep, v6, 80) for _ in range(2)]

    times = bed.run(measure)
    kernel = [_kernel_handshake_rtt_ms(bed, bed.v4) for _ in range(3)]
    print(f"tcp_connect ms: {[round(t, 3) for t in times]}; kernel handshake {kernel} ms")
    # never below the kernel's own handshake time; typically a few tenths of a ms above it
    # (the endpoint's work before connect() and its wake-up on ESTABLISHED), a busy moment
    # of the endpoint's process adds milliseconds
    assert all(t >= min(kernel) - 0.05 for t in times), (times, kernel)
    assert statistics.median(times) <= max(kernel) + 1.0, (times, kernel)
    assert all(_near_rtt(t, CONNECT_SLACK_MS) for t in times), times


def test_endpoint_without_tcp_is_told_clearly(bed: Bed) -> None:
    config = bed.home / "endpoint-ep-udp-only.toml"
    text = bed.config.read_text().replace(
        'transports = ["raw", "tcp", "udp"]', 'transports = ["udp"]'
    )
    config.write_text(text)

    async def measure(ep: EndpointHandle) -> list[str]:
        out = []
        for attempt in (
            http_get(ep, f"http://{bed.v4}/"),
            tcp_connect(ep, bed.v4, 80),
            dns_query(ep, bed.v4, f"www.{ZONE}", proto="TCP"),
        ):
            with pytest.raises(EndpointCannot) as caught:
                await attempt
            out.append(str(caught.value))
        udp = await dns_query(ep, bed.v4, f"www.{ZONE}")
        out.append(str(udp.error))
        return out

    http_msg, connect_msg, dns_msg, udp_error = bed.run(measure, config)
    assert "http needs TCP sockets" in http_msg
    assert "tcp connect needs TCP sockets" in connect_msg
    assert "DNS over TCP needs TCP sockets" in dns_msg
    assert udp_error == "None"


def test_urls_the_endpoint_cannot_fetch_are_refused_clearly() -> None:
    with pytest.raises(MeasurementError, match="https needs TLS"):
        http_target("https://198.18.4.2/")
    with pytest.raises(MeasurementError, match=r"--connect-to"):
        http_target("http://www.example.net/")
    with pytest.raises(MeasurementError, match="not an http"):
        http_target("ftp://198.18.4.2/")
    with pytest.raises(MeasurementError, match="not an IP address"):
        http_target("http://www.example.net/", address="www.example.net")
    with pytest.raises(MeasurementError, match="spaces"):
        http_target("http://198.18.4.2/a b")
    with pytest.raises(MeasurementError, match="not a URL"):
        http_target("http://[::1/")
    target = http_target("http://[2001:db8::1]:8080/x?y=1")
    assert (target.address, target.port, target.family) == ("2001:db8::1", 8080, 6)
    assert target.request().startswith(b"GET /x?y=1 HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n")
    named = http_target("http://www.example.net", address="198.18.4.2")
    assert (named.host, named.path, named.port) == ("www.example.net", "/", 80)


# the response reader, without I/O -----------------------------------------------------------


def _feed_bytewise(parser: ResponseParser, data: bytes) -> None:
    for i in range(len(data)):
        parser.feed(data[i : i + 1])


@pytest.mark.parametrize("bytewise", [False, True])
def test_response_reader_finds_the_end_of_each_body_framing(bytewise: bool) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: a\r\n  b\r\n\r\n"
    chunked = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
        b"4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nTrailer: t\r\n\r\n"
    )
    feed = _feed_bytewise if bytewise else ResponseParser.feed

    length = ResponseParser()
    feed(length, head + b"hello" + b"extra ignored")
    assert length.complete and (length.status, length.body_bytes) == (200, 5)
    assert length.header_bytes == len(head) and length.header("x") == "a b"

    chunks = ResponseParser()
    feed(chunks, chunked[:-1])
    assert not chunks.complete and chunks.body_bytes == 14
    feed(chunks, chunked[-1:])
    assert chunks.complete and chunks.status == 200 and chunks.version == "1.1"

    until_close = ResponseParser()
    feed(until_close, b"HTTP/1.0 404 Not Found\r\nServer: t\r\n\r\nnot here")
    assert not until_close.complete
    until_close.eof()
    assert until_close.complete and (until_close.status, until_close.body_bytes) == (404, 8)
    assert until_close.reason == "Not Found"

    interim = ResponseParser()
    feed(interim, b"HTTP/1.1 103 Early Hints\r\nLink: x\r\n\r\n" * (3 if bytewise else 5000))
    feed(interim, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    assert interim.complete and interim.status == 200 and interim.header("link") is None

    empty = ResponseParser()
    feed(empty, b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
    assert empty.complete and empty.body_bytes == 0


def test_response_reader_refuses_what_is_not_a_response() -> None:
    for bad in (
        b"SSH-2.0-OpenSSH\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabX\r\n",
    ):
        with pytest.raises(HttpParseError):
            ResponseParser().feed(bad)
    cut = ResponseParser()
    cut.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    with pytest.raises(HttpParseError, match="3 bytes into the body"):
        cut.eof()
    with pytest.raises(HttpParseError, match="before the end of the response headers"):
        ResponseParser().eof()
    with pytest.raises(HttpParseError, match="no end of the headers"):
        ResponseParser().feed(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000)


def test_tcp_dns_stream_yields_messages_when_their_last_byte_is_in() -> None:
    query = make_query(f"www.{ZONE}", "AAAA")
    assert query.flags & dns.flags.RD and query.edns == 0 and query.payload == 1232
    answer = dns.message.make_response(query).to_wire()
    other = dns.message.make_response(make_query(f"www.{ZONE}", "A")).to_wire()
    stream = b"".join(len(m).to_bytes(2, "big") + m for m in (other, answer))
    split = MessageStream()
    got = [(i, m) for i in range(len(stream)) for m in split.feed(stream[i : i + 1])]
    assert got == [(len(other) + 1, other), (len(stream) - 1, answer)]
    assert answer_to(query, other) is None and answer_to(query, b"junk") is None
    assert answer_to(query, answer) is not None
    assert MessageStream().feed(stream) == [other, answer]
