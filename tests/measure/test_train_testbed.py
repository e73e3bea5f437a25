"""send_train on the line testbed (ep — r1 — r2 — r3 — target), from a real endpoint in ep:
traceroute-style UDP trains find each hop, echo trains match with endpoint timestamps and
honour their delays, guardian refusals come back per probe, and an endpoint without raw
sockets is refused up front. One endpoint session runs every train of the module."""

from __future__ import annotations

import itertools
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from packetlab.testbed.sessions import serve_in_node as run_on_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns_session import PacketCapture, endpoint_config, init_home
from packetlab import packets
from packetlab import wire as w
from packetlab.controller.api import EndpointHandle
from packetlab.measure.errors import EndpointCannot
from packetlab.measure.results import ProbeRecord
from packetlab.measure.train import send_train

SPORT, DPORT = 40123, 33434
DELAYS = (0.0, 0.02, 0.01, 0.03)


@dataclass
class Runs:
    tb: Any
    trace: dict[int, list[ProbeRecord]]
    echo: dict[int, list[ProbeRecord]]
    refused: list[ProbeRecord]
    tcp: list[ProbeRecord]
    clock: tuple[int, int]
    """Endpoint clock before the first train and after the last."""
    arrivals: list[tuple[int, bytes]]
    """(kernel RX time, IP packet) of every echo reply reaching ep, seen by our own capture."""
    home: Path
    echo_s: float
    """Wall time of both echo trains (each 60 ms of delays, 1 s timeout)."""


def hops(tb: Any, version: int) -> list[str]:
    return [
        tb.addr("r1", "ep", version),
        tb.addr("r2", "r1", version),
        tb.addr("r3", "r2", version),
        tb.addr("target", "r3", version),
    ]


def paris_udp(src: str, dst: str, ttl: int) -> bytes:
    """One flow (same ports) for every TTL; the payload varies the UDP checksum."""
    return packets.udp_probe(src, dst, SPORT, DPORT, bytes([ttl, 0]), ttl)


def is_echo_reply(packet: bytes) -> bool:
    if packet[0] >> 4 == 4:
        return len(packet) > 20 and packet[9] == 1 and packet[20] == 0
    return len(packet) > 40 and packet[6] == 58 and packet[40] == 129


@pytest.fixture(scope="module")
def runs(testbed_module: Any, tmp_path_factory: pytest.TempPathFactory) -> Runs:
    tb = testbed_module("line")
    home = init_home(tmp_path_factory.mktemp("train") / "home")
    config = endpoint_config(home, tb, "ep")
    src = {v: tb.addr("ep", "r1", v) for v in (4, 6)}
    target = {v: tb.addr("target", "r3", v) for v in (4, 6)}

    def trace(v: int) -> list[tuple[float, bytes]]:
        return [(0, paris_udp(src[v], target[v], ttl)) for ttl in range(1, 5)]

    def echo(v: int) -> list[tuple[float, bytes]]:
        return [
            (delay, packets.icmp_echo(src[v], target[v], 0x4242, seq, b"x" * 16))
            for seq, delay in enumerate(DELAYS, 1)
        ]

    refusing = [
        (0, packets.icmp_echo(src[4], target[4], 7, 1)),
        (0, packets.udp_probe(src[4], "127.0.0.1", SPORT, DPORT)),  # the local host
        (0, packets.icmp_echo(src[4], target[4], 7, 2)),
        (0, packets.udp_probe(src[4], target[4], SPORT, 7)),  # a privileged port
    ]
    syns = [(0, packets.tcp_syn(src[4], target[4], SPORT, 8080, 1000 + i)) for i in (0, 1)]

    async def measurement(ep: EndpointHandle) -> Runs:
        before = await ep.now()
        traces = {v: await send_train(ep, trace(v), 1.0) for v in (4, 6)}
        started = time.monotonic()
        echoes = {v: await send_train(ep, echo(v), 1.0) for v in (4, 6)}
        echo_s = time.monotonic() - started
        refused = await send_train(ep, refusing, 0.3)
        tcp = await send_train(ep, syns, 1.0)
        clock = (before, await ep.now())
        return Runs(tb, traces, echoes, refused, tcp, clock, [], home, echo_s)

    arrivals: list[tuple[int, bytes]] = []

    def keep(stamp: int, packet: bytes) -> None:
        if is_echo_reply(packet):
            arrivals.append((stamp, packet))

    capture = PacketCapture(tb, "ep", keep, limit_s=60)
    try:
        result = run_on_node(tb, "ep", home, config, measurement)
    except BaseException:
        capture.close()
        raise
    capture.stop()
    result.arrivals = arrivals
    return result


@pytest.mark.parametrize("version", [4, 6])
def test_udp_train_finds_every_hop(runs: Runs, version: int) -> None:
    records = runs.trace[version]
    assert [r.responder for r in records] == hops(runs.tb, version)
    kinds = [packets.quoted_probe(r.response or b"") for r in records]
    time_exceeded, unreachable = (11, 3) if version == 4 else (3, 1)
    assert [q.icmp_type if q else None for q in kinds] == [time_exceeded] * 3 + [unreachable]
    for r in records:
        assert r.error == 0 and r.duplicates == 0
        assert r.sent_ns is not None and r.rtt_ns is not None
        assert 0 < r.rtt_ns < 1_000_000_000


@pytest.mark.parametrize("version", [4, 6])
def test_echo_train_matches_with_endpoint_kernel_stamps(runs: Runs, version: int) -> None:
    records = runs.echo[version]
    before, after = runs.clock
    target = runs.tb.addr("target", "r3", version)
    replies = {stamp: packet for stamp, packet in runs.arrivals if packet[0] >> 4 == version}
    for r in records:
        assert r.responder == target and r.response is not None
        assert r.sent_ns is not None and r.received_ns is not None
        assert before < r.sent_ns < r.received_ns < after
        assert r.rtt_ms is not None and 0 < r.rtt_ms < 100
        # the endpoint reports the kernel's RX stamp: our own capture saw the same packet then
        assert replies.get(r.received_ns) == r.response
    replies_in_order = [packets.parse_ip(r.response or b"").payload for r in records]
    assert [getattr(icmp, "seq", None) for icmp in replies_in_order] == [1, 2, 3, 4]


def test_a_train_ends_once_every_probe_is_answered(runs: Runs) -> None:
    assert all(r.response for v in (4, 6) for r in runs.echo[v])
    assert runs.echo_s < 1.0  # two trains, each well before its 1 s timeout


@pytest.mark.parametrize("version", [4, 6])
def test_scheduled_sends_honour_the_delays(runs: Runs, version: int) -> None:
    sent = [r.sent_ns for r in runs.echo[version]]
    assert None not in sent
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(sent)]  # type: ignore[operator]
    for gap, asked in zip(gaps, DELAYS[1:], strict=True):
        assert gap == pytest.approx(asked, abs=0.002), (gaps, DELAYS)


def test_refused_probes_carry_the_error_and_no_response(runs: Runs) -> None:
    ok_a, local, ok_b, privileged = runs.refused
    for r in (local, privileged):
        assert r.error == w.ErrId.ESKTPKTDENY
        assert r.sent_ns is None and r.response is None and r.rtt_ns is None
    for r in (ok_a, ok_b):
        assert r.error == 0 and r.responder == runs.tb.addr("target", "r3", 4)


def test_tcp_syn_gets_the_targets_rst(runs: Runs) -> None:
    acks = []
    for r in runs.tcp:
        assert r.responder == runs.tb.addr("target", "r3", 4) and r.response is not None
        tcp = packets.parse_ip(r.response).payload
        assert isinstance(tcp, packets.TCP)
        assert tcp.flags & packets.RST and tcp.sport == 8080 and tcp.dport == SPORT
        acks.append(tcp.ack)
    assert acks == [1001, 1002]  # each SYN's seq + 1


def test_endpoint_without_raw_sockets_is_refused(runs: Runs) -> None:
    tb, home = runs.tb, runs.home
    config = endpoint_config(home, tb, "ep")
    with_raw, without = 'transports = ["raw", "tcp", "udp"]', 'transports = ["tcp", "udp"]'
    text = config.read_text()
    assert with_raw in text
    text = text.replace(with_raw, without)
    no_raw = home / "endpoint-noraw.toml"
    no_raw.write_text(text)
    probe = paris_udp(tb.addr("ep", "r1", 4), tb.addr("target", "r3", 4), 1)

    async def measurement(ep: EndpointHandle) -> None:
        await send_train(ep, [(0, probe)], 0.2)

    with pytest.raises(EndpointCannot, match="send_train needs raw sockets"):
        run_on_node(tb, "ep", home, no_raw, measurement)
