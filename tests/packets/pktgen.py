"""Hypothesis strategies for packets, and the same packets built by scapy (the oracle)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers import inet as si
from scapy.layers import inet6 as s6

from packetlab import packets as p

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
payloads = st.binary(max_size=80)
v4addr = st.binary(min_size=4, max_size=4)
v6addr = st.binary(min_size=16, max_size=16)

# TCP options as (our bytes, scapy's list), from options scapy encodes byte for byte.
_TCP_OPTIONS: list[tuple[bytes, tuple[str, Any]]] = [
    (b"\x02\x04\x05\xb4", ("MSS", 1460)),
    (b"\x01", ("NOP", None)),
    (b"\x04\x02", ("SAckOK", b"")),
    (b"\x03\x03\x07", ("WScale", 7)),
    (b"\x08\x0a" + (1).to_bytes(4, "big") + (2).to_bytes(4, "big"), ("Timestamp", (1, 2))),
]


@st.composite
def tcp_options(draw: st.DrawFn) -> tuple[bytes, list[tuple[str, Any]]]:
    chosen = draw(st.lists(st.sampled_from(_TCP_OPTIONS), max_size=3))
    return b"".join(o for o, _ in chosen), [s for _, s in chosen]


@st.composite
def udps(draw: st.DrawFn) -> p.UDP:
    return p.UDP(draw(u16), draw(u16), draw(payloads))


@st.composite
def tcps(draw: st.DrawFn, options: bytes = b"") -> p.TCP:
    return p.TCP(
        draw(u16),
        draw(u16),
        draw(u32),
        draw(u32),
        draw(st.integers(0, 0x1FF)),
        draw(u16),
        options,
        draw(payloads),
        draw(u16),
    )


@st.composite
def echoes(draw: st.DrawFn, v6: bool = False) -> p.ICMP | p.ICMPv6:
    if v6:
        return p.ICMPv6(draw(st.sampled_from([128, 129])), 0, draw(u16), draw(u16), draw(payloads))
    return p.ICMP(draw(st.sampled_from([0, 8])), 0, draw(u16), draw(u16), draw(payloads))


@st.composite
def transports_with_scapy(draw: st.DrawFn, v6: bool) -> tuple[p.Transport, Any]:
    """A transport object and the equal scapy layer (checksum left for scapy to fill)."""
    kind = draw(st.sampled_from(["udp", "tcp", "icmp"]))
    if kind == "udp":
        u = draw(udps())
        return u, si.UDP(sport=u.sport, dport=u.dport) / u.payload
    if kind == "tcp":
        raw_opts, scapy_opts = draw(tcp_options())
        t = draw(tcps(raw_opts))
        layer = si.TCP(
            sport=t.sport,
            dport=t.dport,
            seq=t.seq,
            ack=t.ack,
            flags=t.flags,
            window=t.window,
            urgptr=t.urgent,
            options=scapy_opts,
        )
        return t, layer / t.payload
    e = draw(echoes(v6))
    if v6:
        cls = s6.ICMPv6EchoRequest if e.type == 128 else s6.ICMPv6EchoReply
        return e, cls(id=e.ident, seq=e.seq, data=e.payload)
    return e, si.ICMP(type=e.type, code=0, id=e.ident, seq=e.seq) / e.payload


@st.composite
def ipv4_with_scapy(draw: st.DrawFn) -> tuple[p.IPv4, Any]:
    transport, layer = draw(transports_with_scapy(v6=False))
    ip = p.IPv4(
        draw(v4addr),
        draw(v4addr),
        payload=transport,
        ttl=draw(u8),
        ident=draw(u16),
        tos=draw(u8),
        df=draw(st.booleans()),
    )
    header = si.IP(
        src=p.addr_text(ip.src),
        dst=p.addr_text(ip.dst),
        ttl=ip.ttl,
        id=ip.ident,
        tos=ip.tos,
        flags="DF" if ip.df else 0,
    )
    return ip, header / layer


@st.composite
def ipv6_with_scapy(draw: st.DrawFn) -> tuple[p.IPv6, Any]:
    transport, layer = draw(transports_with_scapy(v6=True))
    ip = p.IPv6(
        draw(v6addr),
        draw(v6addr),
        payload=transport,
        hop_limit=draw(u8),
        traffic_class=draw(u8),
        flow_label=draw(st.integers(0, 0xFFFFF)),
    )
    header = s6.IPv6(
        src=p.addr_text(ip.src),
        dst=p.addr_text(ip.dst),
        hlim=ip.hop_limit,
        tc=ip.traffic_class,
        fl=ip.flow_label,
    )
    return ip, header / layer


packets_with_scapy = st.one_of(ipv4_with_scapy(), ipv6_with_scapy())


def scapy_bytes(packet: Any) -> bytes:
    return bytes(raw(packet))
