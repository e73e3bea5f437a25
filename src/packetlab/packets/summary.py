"""``summarize``: the fields the guardian decides on, read from one raw IP packet, fast.

Strict by design: a raw send must be exactly one well-formed packet, so a size that differs
from the IP length, a truncated transport header or a UDP length that is not the datagram's
size are errors. A bad IPv4 header checksum is not (the OS recomputes it): see
``ipv4_header_checksum_ok``. Fragments are reported, not judged: only a transport header that
a first fragment carries is read, and lengths are not checked against it.

Speed: a frozen dataclass's generated ``__init__`` costs about 2 us for 13 fields here, so
summaries are made by ``trusted_constructor`` (about 0.4 us).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from packetlab.packets._errors import PacketError
from packetlab.packets._trusted import trusted_constructor
from packetlab.packets.checksum import internet_checksum, transport_checksum
from packetlab.packets.constants import IPV6_EXTENSION_HEADERS
from packetlab.packets.ipv6ext import IPv6Extension, final_destination, walk_extensions


@dataclass(frozen=True, slots=True)
class Summary:
    """What one raw IP packet is, for policy decisions."""

    version: int
    """4 or 6."""
    src: bytes
    dst: bytes
    proto: int
    """IPv4 protocol, or the IPv6 next header after the extension headers."""
    length: int
    """IP total length (= the packet's size)."""
    ttl: int
    """TTL or hop limit."""
    header_len: int
    """Bytes before the transport header (IP header, options, extension headers)."""
    fragment: bool
    """IPv4 MF set or offset not 0, or an IPv6 fragment header present."""
    sport: int
    """0 unless TCP/UDP."""
    dport: int
    """0 unless TCP/UDP."""
    icmp_type: int
    """-1 unless ICMP (in IPv4) or ICMPv6 (in IPv6)."""
    icmp_code: int
    """-1 unless ICMP/ICMPv6."""
    tcp_flags: int
    """The 12 bits after the TCP data offset (TCPFlag); 0 unless TCP."""


_new_summary = trusted_constructor(Summary)

_V4 = struct.Struct("!2xHxxHBB2x4s4s").unpack_from
_V6 = struct.Struct("!4xHBB16s16s").unpack_from
_PORTS_LEN = struct.Struct("!HHH").unpack_from
_PORTS = struct.Struct("!HH").unpack_from


def summarize(data: bytes) -> Summary:
    """Summarize one raw IPv4/IPv6 packet; PacketError says what is malformed."""
    size = len(data)
    if size < 20:
        raise PacketError(f"packet of {size} bytes is shorter than any IP header")
    version = data[0] >> 4
    if version == 4:
        hl = (data[0] & 15) * 4
        if hl < 20:
            raise PacketError(f"IPv4 IHL {hl // 4} is below 5")
        total, flags, ttl, proto, src, dst = _V4(data)
        if total != size:
            raise PacketError(f"IPv4 total length {total} but the packet is {size} bytes")
        if hl > size:
            raise PacketError(f"IPv4 header length {hl} runs past the {size}-byte packet")
        if flags & 0x3FFF:
            return _fragment(data, 4, src, dst, proto, size, ttl, hl, not flags & 0x1FFF)
        if proto == 17:
            if size - hl < 8:
                raise PacketError(f"UDP header truncated: {size - hl} bytes, need 8")
            sport, dport, ulen = _PORTS_LEN(data, hl)
            if ulen != size - hl:
                raise PacketError(f"UDP length {ulen} but the datagram is {size - hl} bytes")
            return _new_summary(4, src, dst, 17, size, ttl, hl, False, sport, dport, -1, -1, 0)
        return _transport(data, 4, src, dst, proto, size, ttl, hl, 1)
    if version == 6:
        if size < 40:
            raise PacketError(f"IPv6 packet truncated: {size} bytes, need 40")
        plen, proto, ttl, src, dst = _V6(data)
        if plen + 40 != size:
            raise PacketError(f"IPv6 payload length {plen} but the payload is {size - 40} bytes")
        hl = 40
        if proto in IPV6_EXTENSION_HEADERS:
            walk = walk_extensions(data, proto)
            if walk.truncated:
                raise PacketError(f"IPv6 extension header {walk.proto} runs past the packet")
            proto, hl = walk.proto, walk.offset
            if walk.fragment:
                return _fragment(data, 6, src, dst, proto, size, ttl, hl, not walk.later_fragment)
        return _transport(data, 6, src, dst, proto, size, ttl, hl, 58)
    raise PacketError(f"IP version {version} is neither 4 nor 6")


def _transport(
    data: bytes,
    version: int,
    src: bytes,
    dst: bytes,
    proto: int,
    size: int,
    ttl: int,
    hl: int,
    icmp: int,
) -> Summary:
    left = size - hl
    sport = dport = flags = 0
    icmp_type = icmp_code = -1
    if proto == 17:
        if left < 8:
            raise PacketError(f"UDP header truncated: {left} bytes, need 8")
        sport, dport, ulen = _PORTS_LEN(data, hl)
        if ulen != left:
            raise PacketError(f"UDP length {ulen} but the datagram is {left} bytes")
    elif proto == 6:
        if left < 20:
            raise PacketError(f"TCP header truncated: {left} bytes, need 20")
        offset = data[hl + 12] >> 4
        if offset < 5:
            raise PacketError(f"TCP data offset {offset} is below 5")
        if offset * 4 > left:
            raise PacketError(f"TCP data offset {offset} points past the {left}-byte segment")
        sport, dport = _PORTS(data, hl)
        flags = (data[hl + 12] & 15) << 8 | data[hl + 13]
    elif proto == icmp:
        if left < 8:
            raise PacketError(f"ICMP header truncated: {left} bytes, need 8")
        icmp_type, icmp_code = data[hl], data[hl + 1]
    return _new_summary(
        version, src, dst, proto, size, ttl, hl, False, sport, dport, icmp_type, icmp_code, flags
    )


def _fragment(
    data: bytes,
    version: int,
    src: bytes,
    dst: bytes,
    proto: int,
    size: int,
    ttl: int,
    hl: int,
    first: bool,
) -> Summary:
    """A fragment: transport fields only from a first fragment that holds the whole header."""
    left = size - hl
    sport = dport = flags = 0
    icmp_type = icmp_code = -1
    if first:
        if proto in (6, 17) and left >= (20 if proto == 6 else 8):
            sport, dport = _PORTS(data, hl)
            if proto == 6:
                flags = (data[hl + 12] & 15) << 8 | data[hl + 13]
        elif proto == (1 if version == 4 else 58) and left >= 8:
            icmp_type, icmp_code = data[hl], data[hl + 1]
    return _new_summary(
        version, src, dst, proto, size, ttl, hl, True, sport, dport, icmp_type, icmp_code, flags
    )


def transport_checksum_ok(data: bytes) -> bool:
    """Whether the UDP/TCP/ICMP/ICMPv6 checksum of an unfragmented packet is right (a UDP
    checksum of 0 over IPv4 means "none" and counts as right). PacketError if malformed, or
    not one of those protocols, or a fragment."""
    info = summarize(data)
    if info.fragment:
        raise PacketError("a fragment's transport checksum covers the reassembled datagram")
    segment = data[info.header_len :]
    if info.version == 4 and info.proto == 1:
        return internet_checksum(segment) == 0
    if info.proto not in (6, 17) and not (info.version == 6 and info.proto == 58):
        raise PacketError(f"protocol {info.proto} has no transport checksum known here")
    if info.proto == 17 and info.version == 4 and segment[6:8] == b"\x00\x00":
        return True
    dst = info.dst
    if info.version == 6:
        walk = walk_extensions(data, data[6])
        routing = [IPv6Extension(k, data[s + 2 : e]) for k, s, e in walk.headers if k == 43]
        dst = final_destination(dst, tuple(routing))
    return transport_checksum(info.src, dst, info.proto, segment) == 0
