"""What send_train accepts as probes (bytes, packetlab.packets objects, scapy packets), the
capture filter it derives from them (run here in the userspace eBPF VM on crafted
responses), and the input it refuses before talking to any endpoint."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from scapy.compat import raw
from scapy.layers import inet as si
from scapy.layers import inet6 as s6
from scapy.layers import l2

from packetlab import packets
from packetlab.measure.errors import MeasurementError
from packetlab.measure.probes import (
    MAX_HOSTS,
    MAX_PORTS,
    capture_expression,
    probe_bytes,
    train_bytes,
)
from packetlab.measure.train import MAX_PROBES, send_train
from packetlab.programs.filters import compile_filter
from packetlab.programs.pcap import compile_expression

ME4, DST4, ME6, DST6 = "198.18.0.2", "198.18.4.2", "2001:db8::2", "2001:db8:0:4::2"


def test_every_kind_of_packet_becomes_the_same_bytes() -> None:
    wire = packets.udp_probe(ME4, DST4, 40000, 33434, b"pl", 3)
    obj = packets.IPv4(ME4, DST4, payload=packets.UDP(40000, 33434, b"pl"), ttl=3)
    scapy_packet = si.IP(src=ME4, dst=DST4, ttl=3, id=0) / si.UDP(sport=40000, dport=33434) / b"pl"
    for given in (wire, bytearray(wire), memoryview(wire), obj, scapy_packet):
        assert probe_bytes(given) == wire, type(given)
    v6 = s6.IPv6(src=ME6, dst=DST6) / s6.ICMPv6EchoRequest(id=1, seq=2)
    assert train_bytes([v6, packets.icmp_echo(ME6, DST6, 1, 2)]) == (6, [raw(v6)] * 2)


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        (packets.UDP(1, 2), r"probe 3 is a bare UDP header: wrap it in packets.IPv4"),
        ("198.18.4.2", r"probe 3: a str is not a packet"),
        (42, r"probe 3: a int is not a packet"),
        (b"\x45\x00", r"probe 3 is not one well-formed IP packet"),
        (l2.Ether() / si.IP(dst=DST4), r"probe 3 is not one well-formed IP packet"),
        (packets.udp_probe(ME4, DST4, 1, 2)[:-1], r"probe 3 is not one well-formed IP packet"),
    ],
)
def test_what_is_not_a_probe_is_named(probe: Any, message: str) -> None:
    with pytest.raises(MeasurementError, match=message):
        probe_bytes(probe, 3)


def test_a_train_is_of_one_family() -> None:
    mixed = [packets.icmp_echo(ME4, DST4, 1, 1)] * 2 + [packets.icmp_echo(ME6, DST6, 1, 1)]
    with pytest.raises(MeasurementError, match="probe 0 is IPv4, probe 2 is IPv6"):
        train_bytes(mixed)


def _filter(family: int, probes: list[bytes]) -> Any:
    return compile_filter(compile_expression(capture_expression(family, probes)))


@pytest.mark.parametrize("version", [4, 6])
def test_the_capture_lets_responses_in_and_keeps_other_traffic_out(version: int) -> None:
    me, dst = (ME4, DST4) if version == 4 else (ME6, DST6)
    other = "198.18.9.9" if version == 4 else "2001:db8:0:9::9"
    v4 = version == 4
    probes = [
        packets.udp_probe(me, dst, 40000, 33434, b"u", 1),
        packets.tcp_syn(me, dst, 40001, 8080, 7),
        packets.icmp_echo(me, dst, 9, 1),
    ]
    keep = _filter(version, probes)
    ip: Any = (lambda s, d: si.IP(src=s, dst=d)) if v4 else (lambda s, d: s6.IPv6(src=s, dst=d))
    errors: list[Any] = (
        [si.ICMP(type=11), si.ICMP(type=3, code=3)]
        if v4
        else [s6.ICMPv6TimeExceeded(), s6.ICMPv6DestUnreach(code=4)]
    )
    wanted = [ip("198.18.2.1" if v4 else "2001:db8:0:2::1", me) / e / probes[0] for e in errors]
    wanted += [
        ip(dst, me) / (si.ICMP(type=0, id=9, seq=1) if v4 else s6.ICMPv6EchoReply(id=9, seq=1)),
        ip(dst, me) / si.UDP(sport=33434, dport=40000),
        ip(dst, me) / si.TCP(sport=8080, dport=40001, flags="RA"),
    ]
    unwanted = [
        ip("127.0.0.1" if v4 else "::1", "127.0.0.1" if v4 else "::1")
        / si.TCP(sport=7777, dport=51000, flags="A"),  # e.g. the endpoint's own session
        ip(other, me) / si.UDP(sport=33434, dport=40000),
        ip(dst, me) / si.UDP(sport=33434, dport=40001),
        ip(dst, me) / si.TCP(sport=8080, dport=40002, flags="SA"),
        ip(dst, me) / (si.ICMP(type=8) if v4 else s6.ICMPv6EchoRequest()),
    ]
    if not v4:
        unwanted.append(ip("fe80::1", me) / s6.ICMPv6ND_NS(tgt=me))
    assert all(keep(raw(p)) for p in wanted)
    assert not any(keep(raw(p)) for p in unwanted)


def test_the_capture_stays_bounded_with_many_destinations_and_ports() -> None:
    count = 4 * max(MAX_HOSTS, MAX_PORTS)
    probes = [
        packets.udp_probe(ME4, f"198.18.{4 + i // 200}.{1 + i % 200}", 40000 + i, 33434, b"x")
        for i in range(count)
    ]
    expression = capture_expression(4, probes)
    assert "198.18.4.1" not in expression and "dst portrange 40000-40063" in expression
    keep = _filter(4, probes)
    reply = lambda src, dport: raw(si.IP(src=src, dst=ME4) / si.UDP(sport=33434, dport=dport))  # noqa: E731
    assert keep(reply("198.18.4.9", 40063))
    assert not keep(reply("198.18.4.9", 40064))


@pytest.mark.parametrize(
    ("train", "kwargs", "message"),
    [
        ([(-1, b"")], {}, r"delay of train item 0 must be a finite number of seconds >= 0"),
        ([(float("nan"), b"")], {}, r"delay of train item 0"),
        ([(True, b"")], {}, r"delay of train item 0"),
        ([b"packet"], {}, r"train item 0 is not a \(delay, packet\) pair"),
        (b"abc", {}, r"a train is a sequence of \(delay, packet\) pairs"),
        ([(0, packets.icmp_echo(ME4, DST4, 1, 1))], {"timeout": -1}, r"timeout must be"),
        ([(0, packets.icmp_echo(ME4, DST4, 1, 1))], {"lead": float("inf")}, r"lead must be"),
        ([(0, packets.icmp_echo(ME4, DST4, 1, 1))], {"sktid": 256}, r"sktid 256"),
        ([(0, b"junk")], {}, r"probe 0 is not one well-formed IP packet"),
        (
            [(0, packets.icmp_echo(ME4, DST4, 1, 1))],
            {"capture": "icmp and bogus"},
            r"capture filter 'icmp and bogus'",
        ),
        (
            [(0, packets.icmp_echo(ME4, DST4, 1, 1))] * (MAX_PROBES + 1),
            {},
            rf"at most {MAX_PROBES} probes, not {MAX_PROBES + 1}",
        ),
    ],
)
def test_bad_trains_are_refused_before_any_request(
    train: Any, kwargs: dict[str, Any], message: str
) -> None:
    no_endpoint: Any = None  # never reached: the train is judged first
    with pytest.raises(MeasurementError, match=message):
        asyncio.run(send_train(no_endpoint, train, **kwargs))


def test_an_empty_train_sends_nothing() -> None:
    no_endpoint: Any = None
    assert asyncio.run(send_train(no_endpoint, [])) == []
