"""Build and parse: byte-exact agreement with scapy and dpkt, round trips, crafted fields."""

from __future__ import annotations

import dataclasses
from typing import Any

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pktgen import (
    ipv4_with_scapy,
    ipv6_with_scapy,
    packets_with_scapy,
    scapy_bytes,
    tcps,
    u16,
    udps,
    v4addr,
    v6addr,
)
from scapy.layers import inet as si
from scapy.layers import inet6 as s6

from packetlab import packets as p

EXAMPLES = settings(max_examples=120, deadline=None)
AUTO = {"checksum": None, "length": None, "data_offset": None}


def _auto_fields(obj: Any) -> Any:
    """``obj`` with its filled-in fields (lengths, checksums) reset to None, options padded."""
    names = {f.name for f in dataclasses.fields(obj)}
    obj = dataclasses.replace(obj, **{k: v for k, v in AUTO.items() if k in names})
    if isinstance(obj, p.TCP):
        obj = dataclasses.replace(obj, options=obj.options + bytes(-len(obj.options) % 4))
    return obj


@EXAMPLES
@given(packets_with_scapy)
def test_our_bytes_equal_scapys(pair: tuple[p.IPv4 | p.IPv6, Any]) -> None:
    ours, theirs = pair
    if isinstance(ours, p.IPv4):
        theirs.id = ours.ident  # scapy would otherwise keep its default id 1
    assert ours.build() == scapy_bytes(theirs)


@EXAMPLES
@given(packets_with_scapy)
def test_scapy_reads_our_fields_and_agrees_on_checksums(pair: tuple[Any, Any]) -> None:
    ours, _ = pair
    wire = ours.build()
    if isinstance(ours, p.IPv4):
        dissected: Any = si.IP(wire)
        assert (dissected.src, dissected.dst) == (p.addr_text(ours.src), p.addr_text(ours.dst))
        assert (dissected.ttl, dissected.id, dissected.tos) == (ours.ttl, ours.ident, ours.tos)
        assert dissected.proto == ours.proto
        assert dissected.len == len(wire)
    else:
        dissected = s6.IPv6(wire)
        assert (dissected.hlim, dissected.fl, dissected.tc, dissected.nh) == (
            ours.hop_limit,
            ours.flow_label,
            ours.traffic_class,
            ours.next_header,
        )
        assert dissected.plen == len(wire) - 40
    layer = dissected.payload
    transport = ours.payload
    if isinstance(transport, p.UDP | p.TCP):
        assert (layer.sport, layer.dport) == (transport.sport, transport.dport)
        assert bytes(layer.payload) == transport.payload
    if isinstance(transport, p.TCP):
        assert (layer.seq, layer.ack, layer.window, layer.urgptr) == (
            transport.seq,
            transport.ack,
            transport.window,
            transport.urgent,
        )
        assert int(layer.flags) == transport.flags
    if isinstance(transport, p.ICMP | p.ICMPv6):
        assert (layer.type, layer.id, layer.seq) == (transport.type, transport.ident, transport.seq)
    # scapy recomputes every checksum it is not given: the bytes must not change
    rebuilt = dissected.copy()
    for layer_obj in (rebuilt, rebuilt.payload):
        for name in ("chksum", "cksum"):
            if name in layer_obj.fields:
                delattr(layer_obj, name)
    assert scapy_bytes(rebuilt) == wire


@EXAMPLES
@given(packets_with_scapy)
def test_we_parse_what_scapy_builds(pair: tuple[Any, Any]) -> None:
    ours, theirs = pair
    wire = scapy_bytes(theirs)
    parsed = p.parse_ip(wire)
    assert parsed.build() == wire
    assert type(parsed) is type(ours)
    assert parsed.src == ours.src and parsed.dst == ours.dst
    assert _auto_fields(parsed.payload) == _auto_fields(ours.payload)
    assert p.transport_checksum_ok(wire)


@EXAMPLES
@given(ipv4_with_scapy())
def test_dpkt_agrees_on_ipv4(pair: tuple[p.IPv4, Any]) -> None:
    ours, _ = pair
    wire = ours.build()
    packet = dpkt.ip.IP(wire)
    assert (packet.src, packet.dst, packet.ttl, packet.id, packet.p) == (
        ours.src,
        ours.dst,
        ours.ttl,
        ours.ident,
        ours.proto,
    )
    # zeroed checksums make dpkt recompute them: header, then UDP/TCP (pseudo-header) or ICMP
    packet.sum = 0
    packet.data.sum = 0
    assert bytes(packet) == wire


@EXAMPLES
@given(ipv6_with_scapy())
def test_dpkt_agrees_on_ipv6(pair: tuple[p.IPv6, Any]) -> None:
    ours, _ = pair
    wire = ours.build()
    packet = dpkt.ip6.IP6(wire)
    assert (packet.src, packet.dst, packet.hlim, packet.nxt) == (
        ours.src,
        ours.dst,
        ours.hop_limit,
        ours.next_header,
    )
    packet.data.sum = 0
    redone = bytes(packet)
    if isinstance(ours.payload, p.UDP) and redone[46:48] == b"\0\0":
        redone = redone[:46] + b"\xff\xff" + redone[48:]  # dpkt does not send 0 as 0xFFFF
    assert redone == wire


@EXAMPLES
@given(
    st.one_of(v4addr, v6addr).flatmap(
        lambda a: st.tuples(st.just(a), st.binary(min_size=len(a), max_size=len(a)))
    ),
    st.one_of(udps(), tcps(b"\x02\x04\x05\xb4\x01\x03\x03\x07")),
)
def test_round_trip_keeps_every_field(addrs: tuple[bytes, bytes], transport: p.Transport) -> None:
    src, dst = addrs
    wire = p.ip_packet(src, dst, transport, ttl=7, ident=99)
    parsed = p.parse_ip(wire)
    assert parsed.build() == wire
    assert _auto_fields(parsed.payload) == _auto_fields(transport)
    again = p.parse_ip(parsed.build())
    assert again == parsed


def test_parse_is_exact_for_crafted_fields() -> None:
    udp = p.UDP(1, 2, b"abc", checksum=0x1234, length=99)
    ip = p.IPv4(
        "198.18.0.1",
        "198.18.0.2",
        payload=udp,
        total_length=31,
        checksum=0xBEEF,
        ident=5,
        df=True,
        reserved_flag=True,
    )
    wire = ip.build()
    assert wire[2:4] == (31).to_bytes(2, "big") and wire[10:12] == b"\xbe\xef"
    assert wire[6] & 0xC0 == 0xC0
    parsed = p.IPv4.parse(wire)
    assert parsed.payload == udp
    assert parsed.total_length == 31 and parsed.checksum == 0xBEEF and parsed.reserved_flag
    assert not p.ipv4_header_checksum_ok(wire)
    tcp = p.TCP(1, 2, options=b"\x02\x04\x05\xb4", data_offset=15, checksum=7)
    assert p.TCP.parse(tcp.build() + bytes(36)).data_offset == 15


def test_options_are_padded_and_lengths_follow() -> None:
    tcp = p.TCP(1, 2, options=b"\x04\x02")
    wire = tcp.build("198.18.0.1", "198.18.0.2")
    assert wire[12] >> 4 == 6 and wire[20:24] == b"\x04\x02\x00\x00"
    ip = p.IPv4("198.18.0.1", "198.18.0.2", 253, b"", options=b"\x01\x01\x01")
    header = ip.build()
    assert header[0] == 0x46 and len(header) == 24 and header[20:24] == b"\x01\x01\x01\x00"
    parsed = p.IPv4.parse(header)
    assert parsed.options == b"\x01\x01\x01\x00" and parsed.ihl == 6
    assert dpkt.ip.IP(header).opts == b"\x01\x01\x01\x00"


def test_ipv6_extension_headers_build_parse_and_checksum_with_scapy() -> None:
    hop = p.IPv6Extension(0, b"\x01\x04" + bytes(4))  # PadN
    route = p.IPv6Extension(43, b"\x00\x01" + bytes(4) + p.addr_bytes("2001:db8::99"))
    dest = p.IPv6Extension(60, b"\x01\x04" + bytes(4))
    udp = p.UDP(5000, 53, b"query")
    ip = p.IPv6("2001:db8::1", "2001:db8::2", payload=udp, extensions=(hop, route, dest))
    wire = ip.build()
    theirs: Any = s6.IPv6(wire)
    assert theirs.nh == 0 and theirs[s6.IPv6ExtHdrRouting].addresses == ["2001:db8::99"]
    assert theirs[si.UDP].dport == 53
    # the pseudo-header takes the routing header's last address: scapy must agree
    del theirs[si.UDP].chksum
    assert scapy_bytes(theirs) == wire
    parsed = p.parse_ip(wire)
    assert isinstance(parsed, p.IPv6) and parsed.extensions == (hop, route, dest)
    assert _auto_fields(parsed.payload) == udp
    assert parsed.build() == wire
    assert p.transport_checksum_ok(wire)


def test_ipv6_fragments() -> None:
    first = p.IPv6Extension.fragment(0, True, 0xABCDEF)
    ip = p.IPv6("2001:db8::1", "2001:db8::2", 17, p.UDP(1, 2, bytes(100)), extensions=(first,))
    wire = ip.build()
    theirs: Any = s6.IPv6(wire)
    frag = theirs[s6.IPv6ExtHdrFragment]
    assert (frag.offset, frag.m, frag.id, frag.nh) == (0, 1, 0xABCDEF, 17)
    assert first.fragment_fields == (0, True, 0xABCDEF)
    assert isinstance(p.parse_ip(wire).payload, p.UDP)
    later = p.IPv6Extension.fragment(13, False, 7)
    tail = p.IPv6("2001:db8::1", "2001:db8::2", 17, b"\x00" * 3, extensions=(later,)).build()
    parsed = p.parse_ip(tail)
    assert isinstance(parsed, p.IPv6)
    assert parsed.payload == b"\x00" * 3 and parsed.next_header == 17
    assert parsed.extensions[0].fragment_fields == (13, False, 7)


def test_ipv4_fragments_keep_raw_payload() -> None:
    later = p.IPv4("198.18.0.1", "198.18.0.2", 6, b"\x01\x02", frag_offset=3).build()
    assert p.parse_ip(later).payload == b"\x01\x02"
    first = p.IPv4("198.18.0.1", "198.18.0.2", 6, b"\x01\x02\x03", mf=True).build()
    assert p.parse_ip(first).payload == b"\x01\x02\x03"  # too short for TCP: kept raw
    scapy_first: Any = si.IP(first)
    assert scapy_first.flags == "MF"
    with pytest.raises(p.PacketError, match="TCP header truncated"):
        p.parse_ip(p.IPv4("198.18.0.1", "198.18.0.2", 6, b"\x01\x02\x03").build())


@settings(max_examples=60, deadline=None)
@given(v4addr, v4addr, u16, u16, st.binary(max_size=40), st.integers(1, 255), u16)
def test_convenience_builders_equal_scapy_v4(
    src: bytes, dst: bytes, sport: int, dport: int, data: bytes, ttl: int, ident: int
) -> None:
    s, d = p.addr_text(src), p.addr_text(dst)
    ip = si.IP(src=s, dst=d, ttl=ttl, id=ident)
    assert p.udp_probe(s, d, sport, dport, data, ttl, ident) == scapy_bytes(
        ip / si.UDP(sport=sport, dport=dport) / data
    )
    syn = si.TCP(sport=sport, dport=dport, seq=ident * 3, flags="S", window=65535)
    assert p.tcp_syn(src, dst, sport, dport, ident * 3, ttl, ident=ident) == scapy_bytes(ip / syn)
    ip.id = 0
    echo = si.ICMP(type=8, id=sport, seq=dport) / data
    assert p.icmp_echo(src, dst, sport, dport, data, ttl) == scapy_bytes(ip / echo)


@settings(max_examples=60, deadline=None)
@given(v6addr, v6addr, u16, u16, st.binary(max_size=40), st.integers(1, 255), u16)
def test_convenience_builders_equal_scapy_v6(
    src: bytes, dst: bytes, sport: int, dport: int, data: bytes, ttl: int, label: int
) -> None:
    s, d = p.addr_text(src), p.addr_text(dst)
    ip = s6.IPv6(src=s, dst=d, hlim=ttl, fl=label)
    assert p.udp_probe(s, d, sport, dport, data, ttl, label) == scapy_bytes(
        ip / si.UDP(sport=sport, dport=dport) / data
    )
    syn = si.TCP(sport=sport, dport=dport, seq=7, flags="S", window=65535)
    assert p.tcp_syn(src, dst, sport, dport, 7, ttl, ident=label) == scapy_bytes(ip / syn)
    ip.fl = 0
    echo = s6.ICMPv6EchoRequest(id=sport, seq=dport, data=data)
    assert p.icmp_echo(src, dst, sport, dport, data, ttl) == scapy_bytes(ip / echo)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: p.UDP(70000, 1), "UDP sport=70000"),
        (lambda: p.UDP(1, -1), "UDP dport=-1"),
        (lambda: p.UDP(1.5, 2), "UDP sport must be an int"),  # type: ignore[arg-type]
        (lambda: p.TCP(1, 2, ack=2.0), "TCP ack must be an int"),  # type: ignore[arg-type]
        (lambda: p.IPv6("::1", "::2", 17, hop_limit=-1), "IPv6 hop_limit=-1"),
        (lambda: p.UDP(1, 2, checksum=1 << 16), "UDP checksum"),
        (lambda: p.TCP(1, 2, seq=1 << 32), "TCP seq"),
        (lambda: p.TCP(1, 2, flags=0x1000), "TCP flags"),
        (lambda: p.TCP(1, 2, data_offset=16), "TCP data_offset"),
        (lambda: p.TCP(1, 2, options=bytes(41)), "TCP options"),
        (lambda: p.ICMP(256), "ICMP type"),
        (lambda: p.ICMPv6(1, 0, 1 << 16), "ICMPv6 ident"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2", 17, ttl=256), "IPv4 ttl"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2", 300), "IPv4 proto"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2", 17, frag_offset=1 << 13), "frag_offset"),
        (lambda: p.IPv4("198.18.0.1", "2001:db8::1", 17), "not an IPv4 address"),
        (lambda: p.IPv4("198.18.0.1", "nonsense", 17), "not an IP address"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2"), "proto is required"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2", 17, ttl="x"), "ttl must be an int"),  # type: ignore[arg-type]
        (lambda: p.IPv6("2001:db8::1", "2001:db8::2", 17, flow_label=1 << 20), "flow_label"),
        (lambda: p.IPv6Extension(51, bytes(6)), "kind 51"),
        (lambda: p.IPv6Extension(0, bytes(7)), "need 8n bytes"),
        (lambda: p.IPv6Extension(44, bytes(14)), "fragment header is 8 bytes"),
        (lambda: p.UDP(1, 2).build(), "needs the IP src and dst"),
        (lambda: p.ICMPv6(128).build(), "needs the IP src and dst"),
        (lambda: p.UDP(1, 2).build("198.18.0.1", "2001:db8::1"), "different address families"),
        (lambda: p.udp_probe("198.18.0.1", "2001:db8::1", 1, 2), "different address families"),
        (lambda: p.ip_packet("198.18.0.1", "198.18.0.2", p.ICMPv6(128)), "use ICMP"),
        (lambda: p.ip_packet("2001:db8::1", "2001:db8::2", p.ICMP(8)), "use ICMPv6"),
        (lambda: p.IPv4("198.18.0.1", "198.18.0.2", 17, bytes(65516)).build(), "exceeds 65535"),
        (lambda: p.parse_ip(b""), "empty"),
        (lambda: p.parse_ip(b"\x55" + bytes(40)), "neither 4 nor 6"),
        (lambda: p.IPv4.parse(b"\x60" + bytes(40)), "version 6 where 4"),
        (lambda: p.IPv4.parse(b"\x45\x00\x00\x0a" + bytes(16)), "total length 10"),
        (lambda: p.TCP.parse(bytes(12) + b"\x40" + bytes(7)), "data offset 4"),
        (lambda: p.ICMP.parse(bytes(7)), "ICMP header truncated"),
    ],
)
def test_bad_values_raise_packet_error(make: Any, message: str) -> None:
    with pytest.raises(p.PacketError, match=message):
        make()


def test_objects_are_frozen_slotted_and_replace_works() -> None:
    ip = p.IPv4("198.18.0.1", "198.18.0.2", payload=p.UDP(1, 2))
    with pytest.raises(dataclasses.FrozenInstanceError):
        ip.ttl = 3  # type: ignore[misc]
    assert not hasattr(ip, "__dict__") and not hasattr(p.UDP(1, 2), "__dict__")
    lower = dataclasses.replace(ip, ttl=3)
    assert lower.ttl == 3 and lower.src == ip.src and lower.proto == 17
    assert p.IPv4(b"\xc6\x12\x00\x01", "198.18.0.2", 17) == p.IPv4("198.18.0.1", "198.18.0.2", 17)


@pytest.mark.parametrize(("src", "dst"), [("198.18.0.1", "198.18.0.2"), ("2001:db8::1", "::2")])
def test_udp_checksum_that_computes_to_zero_is_sent_as_ffff(src: str, dst: str) -> None:
    s, d = p.addr_bytes(src), p.addr_bytes(dst)
    base = p.UDP(1000, 2000, b"\0\0", checksum=0).build()
    partial = p.ones_complement_sum(base, p.pseudo_header_sum(s, d, 17, len(base)))
    filler = (0xFFFF - partial) % 0xFFFF
    udp = p.UDP(1000, 2000, filler.to_bytes(2, "big"))
    assert p.transport_checksum(s, d, 17, udp.build(s, d)[:6] + b"\0\0" + udp.build(s, d)[8:]) == 0
    assert udp.build(s, d)[6:8] == b"\xff\xff"
    ip = si.IP(src=src, dst=dst, id=0) if "." in src else s6.IPv6(src=src, dst=dst)
    layer = si.UDP(sport=1000, dport=2000) / udp.payload
    assert p.ip_packet(src, dst, udp) == scapy_bytes(ip / layer)
    assert p.transport_checksum_ok(p.ip_packet(src, dst, udp))


def _outcome(build: Any) -> bytes | str:
    try:
        return bytes(build())
    except p.PacketError:
        return "PacketError"


wide = st.one_of(st.integers(0, 0xFFFF), st.integers(-2, 1 << 33))


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.tuples(v4addr, v4addr), st.tuples(v6addr, v6addr)),
    st.tuples(wide, wide, wide, wide, wide),
    st.binary(max_size=20),
    st.sampled_from([b"", b"\x02\x04\x05\xb4", b"\x01", bytes(12), bytes(44)]),
)
def test_fast_builders_equal_object_builders(
    addrs: tuple[bytes, bytes], values: tuple[int, ...], data: bytes, options: bytes
) -> None:
    """The direct-pack builders give the object builders' bytes, or the same PacketError."""
    s, d = addrs
    a, b, c, ttl, ident = values
    assert _outcome(lambda: p.udp_probe(s, d, a, b, data, ttl, ident)) == _outcome(
        lambda: p.ip_packet(s, d, p.UDP(a, b, data), ttl=ttl, ident=ident)
    )
    assert _outcome(
        lambda: p.tcp_syn(s, d, a, b, c, ttl, ident=ident, window=b, options=options)
    ) == _outcome(
        lambda: p.ip_packet(s, d, p.TCP(a, b, c, 0, p.SYN, b, options), ttl=ttl, ident=ident)
    )
    echo = p.ICMP if len(s) == 4 else p.ICMPv6
    kind = 8 if len(s) == 4 else 128
    assert _outcome(lambda: p.icmp_echo(s, d, a, b, data, ttl)) == _outcome(
        lambda: p.ip_packet(s, d, echo(kind, 0, a, b, data), ttl=ttl)
    )


def test_builders_refuse_wrong_types() -> None:
    with pytest.raises(p.PacketError, match="seq must be an int"):
        p.tcp_syn("198.18.0.1", "198.18.0.2", 1, 2, "7")  # type: ignore[arg-type]
    with pytest.raises(p.PacketError, match="sport must be an int"):
        p.udp_probe("198.18.0.1", "198.18.0.2", 1.5, 2)  # type: ignore[arg-type]
