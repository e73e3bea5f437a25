"""summarize: agrees with scapy on valid packets, rejects each malformed class, never crashes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pktgen import packets_with_scapy, scapy_bytes
from scapy.layers import inet as si
from scapy.layers import inet6 as s6

from packetlab import packets as p

V4 = ("198.18.0.1", "198.18.0.2")
V6 = ("2001:db8::1", "2001:db8::2")
UDP4 = p.udp_probe(*V4, 1234, 53, bytes(32))  # 60 bytes
UDP6 = p.udp_probe(*V6, 1234, 53, bytes(12))
TCP4 = p.tcp_syn(*V4, 40000, 80, 1)
TCP6 = p.tcp_syn(*V6, 40000, 80, 1)
ICMP4 = p.icmp_echo(*V4, 1, 2, b"ping")
ICMP6 = p.icmp_echo(*V6, 1, 2, b"ping")


def _set(data: bytes, at: int, value: bytes) -> bytes:
    return data[:at] + value + data[at + len(value) :]


def _v4(proto: int, body: bytes, **kw: Any) -> bytes:
    return p.IPv4(*V4, proto, body, **kw).build()


def _v6(nh: int, body: bytes, **kw: Any) -> bytes:
    return p.IPv6(*V6, nh, body, **kw).build()


MALFORMED: list[tuple[str, bytes, str]] = [
    ("empty", b"", "shorter than any IP header"),
    ("19 bytes", UDP4[:19], "shorter than any IP header"),
    ("version 5", _set(UDP4, 0, b"\x55"), "version 5"),
    ("version 0", bytes(60), "version 0"),
    ("IHL 4", _set(UDP4, 0, b"\x44"), "IHL 4 is below 5"),
    ("IHL past the packet", b"\x4f\x00\x00\x18" + UDP4[4:24], "header length 60 runs past"),
    ("total length > size", UDP4[:-1], "total length 60 but the packet is 59"),
    ("total length < size", UDP4 + b"\0", "total length 60 but the packet is 61"),
    ("UDP header truncated", _v4(17, bytes(7)), "UDP header truncated: 7"),
    ("UDP length too big", _set(UDP4, 24, b"\x00\x29"), "UDP length 41 but the datagram is 40"),
    ("UDP length too small", _set(UDP4, 24, b"\x00\x08"), "UDP length 8"),
    ("TCP header truncated", _v4(6, bytes(19)), "TCP header truncated: 19"),
    ("TCP data offset 4", _set(TCP4, 32, b"\x40"), "data offset 4 is below 5"),
    ("TCP data offset past end", _set(TCP4, 32, b"\x60"), "points past the 20-byte"),
    ("ICMP truncated", _v4(1, bytes(7)), "ICMP header truncated: 7"),
    ("IPv6 39 bytes", UDP6[:39], "IPv6 packet truncated: 39"),
    ("IPv6 payload length > size", UDP6[:-1], "payload length 20 but the payload is 19"),
    ("IPv6 payload length < size", UDP6 + b"\0", "payload length 20 but the payload is 21"),
    ("IPv6 jumbo (length 0)", _set(UDP6, 4, b"\x00\x00"), "payload length 0"),
    ("IPv6 extension truncated", _v6(0, b"\x11\x01" + bytes(6)), "extension header 0 runs past"),
    ("IPv6 UDP truncated", _v6(17, bytes(5)), "UDP header truncated: 5"),
    ("IPv6 UDP length wrong", _set(UDP6, 44, b"\x00\x13"), "UDP length 19"),
    ("IPv6 TCP truncated", _v6(6, bytes(12)), "TCP header truncated"),
    ("ICMPv6 truncated", _v6(58, bytes(4)), "ICMP header truncated: 4"),
    (
        "UDP truncated after extension",
        _v6(60, b"\x11\x00" + bytes(6) + bytes(4)),
        "UDP header truncated: 4",
    ),
]


@pytest.mark.parametrize(("case", "data", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_summarize_rejects(case: str, data: bytes, message: str) -> None:
    with pytest.raises(p.PacketError, match=message):
        p.summarize(data)


def _scapy_summary(wire: bytes) -> p.Summary:
    """The Summary scapy's dissection implies (independent of our parser)."""
    if wire[0] >> 4 == 4:
        ip: Any = si.IP(wire)
        version, ttl, proto, hl = 4, ip.ttl, ip.proto, ip.ihl * 4
        fragment = bool(ip.flags.MF) or ip.frag != 0
        src, dst = ip.src, ip.dst
        layer = ip.payload
    else:
        ip = s6.IPv6(wire)
        version, ttl, src, dst = 6, ip.hlim, ip.src, ip.dst
        layer, hl, fragment = ip.payload, 40, False
        while isinstance(
            layer,
            s6.IPv6ExtHdrHopByHop
            | s6.IPv6ExtHdrRouting
            | s6.IPv6ExtHdrFragment
            | s6.IPv6ExtHdrDestOpt,
        ):
            fragment |= isinstance(layer, s6.IPv6ExtHdrFragment)
            hl += len(bytes(layer)) - len(bytes(layer.payload))
            layer = layer.payload
        proto = ip.nh if layer is ip.payload else layer.underlayer.nh
    sport = dport = flags = 0
    icmp_type = icmp_code = -1
    if isinstance(layer, si.UDP | si.TCP):
        sport, dport = layer.sport, layer.dport
        if isinstance(layer, si.TCP):
            flags = int(layer.flags) | layer.reserved << 9
    elif isinstance(layer, si.ICMP) or (
        layer.__class__.__module__.endswith("inet6") and proto == 58
    ):
        icmp_type, icmp_code = layer.type, layer.code
    return p.Summary(
        version,
        p.addr_bytes(src),
        p.addr_bytes(dst),
        proto,
        len(wire),
        ttl,
        hl,
        fragment,
        sport,
        dport,
        icmp_type,
        icmp_code,
        flags,
    )


@settings(max_examples=150, deadline=None)
@given(packets_with_scapy)
def test_summarize_agrees_with_scapy(pair: tuple[Any, Any]) -> None:
    wire = scapy_bytes(pair[1])
    summary = p.summarize(wire)
    assert summary == _scapy_summary(wire)
    assert type(summary) is p.Summary


def test_summary_fields_by_protocol() -> None:
    s = p.summarize(UDP4)
    assert (s.version, s.proto, s.length, s.ttl, s.header_len, s.sport, s.dport) == (
        4,
        17,
        60,
        64,
        20,
        1234,
        53,
    )
    assert (s.icmp_type, s.icmp_code, s.tcp_flags, s.fragment) == (-1, -1, 0, False)
    assert p.summarize(TCP4).tcp_flags == p.SYN and p.summarize(TCP6).tcp_flags == p.SYN
    assert (p.summarize(ICMP4).icmp_type, p.summarize(ICMP6).icmp_type) == (8, 128)
    assert p.summarize(ICMP6).sport == 0
    other = p.summarize(_v4(47, bytes(3)))  # GRE: no transport fields
    assert (other.proto, other.sport, other.icmp_type) == (47, 0, -1)
    assert p.summarize(_v6(1, bytes(8))).icmp_type == -1  # ICMP (v4) inside IPv6 is not ICMPv6
    assert p.summarize(_v4(58, bytes(8))).icmp_type == -1


def test_summary_walks_ipv6_extension_headers() -> None:
    hop = p.IPv6Extension(0, b"\x01\x04" + bytes(4))
    dest = p.IPv6Extension(60, b"\x01\x04" + bytes(4))
    wire = p.IPv6(*V6, payload=p.TCP(1, 2, flags=p.RST | p.ACK), extensions=(hop, dest)).build()
    s = p.summarize(wire)
    assert (s.proto, s.header_len, s.tcp_flags, s.fragment) == (6, 56, p.RST | p.ACK, False)
    assert s == _scapy_summary(wire)


def test_fragments_are_reported_not_judged() -> None:
    first = _v4(17, bytes(3), mf=True)  # UDP header cut by fragmentation: not an error
    s = p.summarize(first)
    assert s.fragment and s.sport == 0 and s.header_len == 20
    later = _v4(6, bytes(3), frag_offset=185)
    assert p.summarize(later).fragment
    whole = p.IPv4(*V4, payload=p.UDP(7, 8, bytes(100)), mf=True).build()
    s = p.summarize(whole)
    assert s.fragment and (s.sport, s.dport) == (7, 8)
    frag = p.IPv6Extension.fragment(0, True, 1)
    s6_first = p.IPv6(*V6, 17, p.UDP(9, 10, bytes(10)), extensions=(frag,)).build()
    s = p.summarize(s6_first)
    assert s.fragment and (s.proto, s.sport, s.header_len) == (17, 9, 48)
    later6 = p.IPv6(*V6, 17, b"\x00", extensions=(p.IPv6Extension.fragment(5, False, 1),))
    s = p.summarize(later6.build())
    assert s.fragment and s.sport == 0 and s.proto == 17


def test_bad_ipv4_header_checksum_is_not_a_summarize_error() -> None:
    bad = _set(UDP4, 10, b"\x00\x00")
    assert p.summarize(bad) == p.summarize(UDP4)
    assert not p.ipv4_header_checksum_ok(bad) and p.ipv4_header_checksum_ok(UDP4)


def test_transport_checksum_ok() -> None:
    for wire in (UDP4, UDP6, TCP4, TCP6, ICMP4, ICMP6):
        assert p.transport_checksum_ok(wire)
        body_at = p.summarize(wire).header_len
        flipped = _set(wire, len(wire) - 1, bytes([wire[-1] ^ 0x10]))
        assert not p.transport_checksum_ok(flipped), wire[body_at:]
    no_checksum = p.IPv4(*V4, payload=p.UDP(1, 2, b"x", checksum=0)).build()
    assert p.transport_checksum_ok(no_checksum)
    with pytest.raises(p.PacketError, match="fragment"):
        p.transport_checksum_ok(_v4(17, bytes(8), mf=True))
    with pytest.raises(p.PacketError, match="protocol 47"):
        p.transport_checksum_ok(_v4(47, bytes(8)))


def test_fast_summary_is_a_real_frozen_summary() -> None:
    s = p.summarize(UDP4)
    assert type(s) is p.Summary and dataclasses.is_dataclass(s)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.ttl = 1  # type: ignore[misc]
    direct = p.Summary(**{f.name: getattr(s, f.name) for f in dataclasses.fields(s)})
    assert direct == s and hash(direct) == hash(s)
    assert [f.name for f in dataclasses.fields(p.Summary)] == [
        "version",
        "src",
        "dst",
        "proto",
        "length",
        "ttl",
        "header_len",
        "fragment",
        "sport",
        "dport",
        "icmp_type",
        "icmp_code",
        "tcp_flags",
    ]


VALID = [UDP4, UDP6, TCP4, TCP6, ICMP4, ICMP6]


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=80),
        st.tuples(st.sampled_from(VALID), st.integers(0, 79), st.integers(0, 255)).map(
            lambda t: _set(t[0], t[1] % len(t[0]), bytes([t[2]]))
        ),
        st.tuples(st.sampled_from(VALID), st.integers(0, 80)).map(lambda t: t[0][: t[1]]),
    )
)
def test_any_bytes_summarize_or_raise_packet_error(data: bytes) -> None:
    """Every input is summarized or refused with PacketError, never another exception; what is
    summarized also parses, and the two agree."""
    try:
        s = p.summarize(data)
    except p.PacketError:
        return
    assert s.length == len(data) and s.header_len <= len(data)
    parsed = p.parse_ip(data)
    assert (parsed.src, parsed.dst) == (s.src, s.dst)
    proto = parsed.proto if isinstance(parsed, p.IPv4) else parsed.next_header
    assert proto == s.proto
