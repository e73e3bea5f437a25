"""quoted_probe on ICMP/ICMPv6 errors built by scapy: full and 8-byte quotes, RFC 4884."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pktgen import scapy_bytes, u16, u32
from scapy.layers import inet as si
from scapy.layers import inet6 as s6

from packetlab import packets as p

ROUTER4, ME4, TARGET4 = "198.18.1.1", "198.18.0.1", "198.19.0.9"
ROUTER6, ME6, TARGET6 = "2001:db8:1::1", "2001:db8::1", "2001:db8:9::9"
MPLS_LIKE = si.ICMPExtension_Header() / si.ICMPExtension_InterfaceInformation(
    has_ipaddr=1, afi=1, ip4=ROUTER4
)


def _error4(icmp: Any, quote: bytes) -> bytes:
    return scapy_bytes(si.IP(src=ROUTER4, dst=ME4) / icmp / quote)


def _error6(icmp: Any, quote: bytes) -> bytes:
    return scapy_bytes(s6.IPv6(src=ROUTER6, dst=ME6) / icmp / quote)


def _check_probe(q: p.Quoted | None, probe: bytes, *, full: bool) -> p.Quoted:
    """The quote describes ``probe`` (as scapy reads it)."""
    assert q is not None
    if probe[0] >> 4 == 4:
        ip: Any = si.IP(probe)
        assert (q.ip_id, q.ttl, q.proto, q.length) == (ip.id, ip.ttl, ip.proto, ip.len)
    else:
        ip = s6.IPv6(probe)
        assert (q.ip_id, q.ttl, q.length) == (ip.fl, ip.hlim, ip.plen + 40)
    assert (q.src, q.dst) == (p.addr_bytes(ip.src), p.addr_bytes(ip.dst))
    layer = _transport_layer(ip)
    if isinstance(layer, si.UDP):
        assert (q.sport, q.dport, q.checksum) == (layer.sport, layer.dport, layer.chksum)
    elif isinstance(layer, si.TCP):
        assert (q.sport, q.dport, q.tcp_seq) == (layer.sport, layer.dport, layer.seq)
        assert q.checksum == (layer.chksum if full else -1)
    else:
        assert (q.icmp_ident, q.icmp_seq) == (layer.id, layer.seq)
        assert q.sport == q.dport == q.tcp_seq == -1
    return q


def _transport_layer(ip: Any) -> Any:
    layer = ip.payload
    while isinstance(layer, s6.IPv6ExtHdrHopByHop | s6.IPv6ExtHdrDestOpt | s6.IPv6ExtHdrRouting):
        layer = layer.payload
    return layer


@st.composite
def probes4(draw: st.DrawFn) -> bytes:
    ttl, ident = draw(st.integers(1, 30)), draw(u16)
    kind = draw(st.sampled_from(["udp", "tcp", "icmp"]))
    if kind == "udp":
        payload = draw(st.binary(max_size=30))
        return p.udp_probe(ME4, TARGET4, draw(u16), draw(u16), payload, ttl, ident)
    if kind == "tcp":
        return p.tcp_syn(ME4, TARGET4, draw(u16), draw(u16), draw(u32), ttl, ident=ident)
    return p.icmp_echo(ME4, TARGET4, draw(u16), draw(u16), draw(st.binary(max_size=30)), ttl)


@st.composite
def probes6(draw: st.DrawFn) -> bytes:
    ttl, label = draw(st.integers(1, 30)), draw(st.integers(0, 0xFFFFF))
    kind = draw(st.sampled_from(["udp", "tcp", "icmp"]))
    if kind == "udp":
        payload = draw(st.binary(max_size=30))
        return p.udp_probe(ME6, TARGET6, draw(u16), draw(u16), payload, ttl, label)
    if kind == "tcp":
        return p.tcp_syn(ME6, TARGET6, draw(u16), draw(u16), draw(u32), ttl, ident=label)
    return p.icmp_echo(ME6, TARGET6, draw(u16), draw(u16), draw(st.binary(max_size=30)), ttl)


@settings(max_examples=80, deadline=None)
@given(probes4(), st.booleans(), st.sampled_from([(11, 0), (3, 3), (3, 10), (12, 0)]))
def test_ipv4_errors_full_and_8_byte_quotes(
    probe: bytes, full: bool, kind: tuple[int, int]
) -> None:
    quote = probe if full else probe[:28]
    wire = _error4(si.ICMP(type=kind[0], code=kind[1]), quote)
    q = _check_probe(p.quoted_probe(wire), probe, full=full)
    assert (q.version, q.icmp_type, q.icmp_code) == (4, *kind)
    assert q.responder == p.addr_bytes(ROUTER4) and q.quote == quote and q.extensions == b""
    bare = p.quoted_probe(wire[20:])  # the ICMP message alone
    assert bare is not None and bare.responder == b"" and bare.src == q.src


@settings(max_examples=80, deadline=None)
@given(probes6(), st.booleans(), st.sampled_from(["time", "unreach", "toobig", "param"]))
def test_ipv6_errors_full_and_8_byte_quotes(probe: bytes, full: bool, kind: str) -> None:
    quote = probe if full else probe[:48]
    icmp = {
        "time": s6.ICMPv6TimeExceeded(),
        "unreach": s6.ICMPv6DestUnreach(code=4),
        "toobig": s6.ICMPv6PacketTooBig(mtu=1280),
        "param": s6.ICMPv6ParamProblem(ptr=6),
    }[kind]
    wire = _error6(icmp, quote)
    q = _check_probe(p.quoted_probe(wire), probe, full=full)
    assert (q.version, q.icmp_type, q.icmp_code) == (6, icmp.type, icmp.code)
    assert q.responder == p.addr_bytes(ROUTER6) and q.quote == quote
    assert q.mtu == (1280 if kind == "toobig" else 0)
    assert p.transport_checksum_ok(wire)


def test_fragmentation_needed_reports_the_mtu() -> None:
    probe = p.udp_probe(ME4, TARGET4, 1, 2, bytes(1400), 64, 9)
    wire = _error4(si.ICMP(type=3, code=4, nexthopmtu=1280), probe[:28])
    q = p.quoted_probe(wire)
    assert q is not None and q.mtu == 1280 and q.sport == 1 and q.length == 1428


def test_quote_shorter_than_8_transport_bytes() -> None:
    probe = p.tcp_syn(ME4, TARGET4, 4000, 80, 12345, 3)
    q = p.quoted_probe(_error4(si.ICMP(type=11), probe[:24]))
    assert q is not None and (q.sport, q.dport, q.tcp_seq) == (4000, 80, -1)
    q = p.quoted_probe(_error4(si.ICMP(type=11), probe[:20]))
    assert q is not None and q.proto == 6 and q.sport == -1


def test_rfc4884_ipv4_length_splits_the_extension() -> None:
    probe = p.udp_probe(ME4, TARGET4, 33434, 33435, b"payload", 1, 77)
    padded = probe + bytes(128 - len(probe))
    wire = _error4(si.ICMP(type=11, length=32, ext=MPLS_LIKE), padded)
    q = _check_probe(p.quoted_probe(wire), probe, full=True)
    assert q.quote == padded and q.extensions == scapy_bytes(MPLS_LIKE)
    # a router that appends the extension but leaves length 0 (pre-RFC 4884): all is quote
    legacy = _error4(si.ICMP(type=11, ext=MPLS_LIKE), probe)
    q = _check_probe(p.quoted_probe(legacy), probe, full=True)
    assert q.extensions == b"" and q.quote.startswith(probe) and len(q.quote) > 128
    # a length that does not fit the message is ignored
    liar = _error4(si.ICMP(type=11, length=200), probe)
    q = _check_probe(p.quoted_probe(liar), probe, full=True)
    assert q.quote == probe and q.extensions == b""


def test_rfc4884_ipv6_length_in_64_bit_words() -> None:
    probe = p.udp_probe(ME6, TARGET6, 33434, 33435, b"payload", 1, 5)
    padded = probe + bytes(128 - len(probe))
    wire = _error6(s6.ICMPv6TimeExceeded(length=16, ext=MPLS_LIKE), padded)
    q = _check_probe(p.quoted_probe(wire), probe, full=True)
    assert q.quote == padded and q.extensions == scapy_bytes(MPLS_LIKE)


def test_quoted_ipv6_extension_headers_are_walked() -> None:
    dest = p.IPv6Extension(60, b"\x01\x04" + bytes(4))
    udp = p.UDP(5555, 33434, b"x")
    probe = p.IPv6(ME6, TARGET6, payload=udp, hop_limit=1, flow_label=3, extensions=(dest,))
    wire = probe.build()
    q = _check_probe(p.quoted_probe(_error6(s6.ICMPv6TimeExceeded(), wire[:56])), wire, full=False)
    assert q.proto == 17
    cut = p.quoted_probe(_error6(s6.ICMPv6TimeExceeded(), wire[:44]))
    assert cut is not None and cut.proto == 60 and cut.sport == -1  # quote ends inside it


@pytest.mark.parametrize(
    "wire",
    [
        p.icmp_echo(TARGET4, ME4, 1, 2, b"reply"),
        scapy_bytes(si.IP(src=TARGET4, dst=ME4) / si.ICMP(type=0, id=1, seq=2)),
        scapy_bytes(s6.IPv6(src=TARGET6, dst=ME6) / s6.ICMPv6EchoReply(id=1, seq=2)),
        p.udp_probe(TARGET4, ME4, 53, 4000, b"answer"),
        p.tcp_syn(TARGET6, ME6, 80, 4000),
        bytes([0, 0, 0, 0, 0, 1, 0, 2]) + b"\x45" + bytes(30),  # bare echo reply
        p.IPv4(ROUTER4, ME4, 1, bytes(40), frag_offset=10).build(),  # later fragment
    ],
)
def test_non_errors_give_none(wire: bytes) -> None:
    assert p.quoted_probe(wire) is None


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"\x0b\x00", "too short"),
        (_error4(si.ICMP(type=11), b"\x45" + bytes(10)), "quotes 11 bytes"),
        (_error4(si.ICMP(type=11), b""), "quotes 0 bytes"),
        (_error6(s6.ICMPv6TimeExceeded(), bytes(40)), "not an IPv6 header"),
        (bytes([11, 0, 0, 0, 0, 0, 0, 0]), "quotes no IPv4/IPv6 header"),
        (
            scapy_bytes(si.IP(src=ROUTER4, dst=ME4) / si.ICMP(type=11))[:24],
            "ICMP message truncated",
        ),
        (b"\x46" + bytes(19), "header length 24"),
    ],
)
def test_malformed_errors_raise(wire: bytes, message: str) -> None:
    with pytest.raises(p.PacketError, match=message):
        p.quoted_probe(wire)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=120),
        st.tuples(probes4(), st.integers(0, 200), st.integers(0, 255)).map(
            lambda t: _mutate(_error4(si.ICMP(type=11), t[0]), t[1], t[2])
        ),
    )
)
def test_any_bytes_quote_or_none_or_packet_error(data: bytes) -> None:
    try:
        q = p.quoted_probe(data)
    except p.PacketError:
        return
    assert q is None or q.version in (4, 6)


def _mutate(data: bytes, at: int, value: int) -> bytes:
    at %= len(data)
    return data[:at] + bytes([value]) + data[at + 1 :]
