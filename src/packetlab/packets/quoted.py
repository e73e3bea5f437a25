"""``quoted_probe``: what an ICMP/ICMPv6 error says about the probe that caused it.

Errors handled: ICMP destination unreachable (3), source quench (4), redirect (5), time
exceeded (11), parameter problem (12); ICMPv6 destination unreachable (1), packet too big (2),
time exceeded (3), parameter problem (4). The quote may stop 8 bytes past the IP header
(RFC 792), or anywhere: fields that are not quoted are -1. An RFC 4884 length (ICMP byte 5 in
32-bit words; ICMPv6 byte 4 in 64-bit words) that fits the message splits the quote from the
extension structure; one that does not fit is ignored and everything counts as quote.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from packetlab.packets._errors import PacketError
from packetlab.packets._trusted import trusted_constructor
from packetlab.packets.constants import ICMP_ERROR_TYPES, ICMPV6_ERROR_TYPES
from packetlab.packets.ipv6ext import walk_extensions

_V4 = struct.Struct("!2xHH2xBB2x4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_RFC4884_V4 = frozenset({3, 11, 12})
_RFC4884_V6 = frozenset({1, 3})


@dataclass(frozen=True, slots=True)
class Quoted:
    """An ICMP error and the probe it quotes. Inner-packet fields describe the quoted header
    as the responder saw it; -1 marks a field the quote does not reach or the protocol lacks."""

    version: int
    """4 (ICMP about an IPv4 packet) or 6 (ICMPv6 about an IPv6 packet)."""
    icmp_type: int
    icmp_code: int
    responder: bytes
    """Source address of the error; b"" when only the ICMP message was given."""
    src: bytes
    """Source of the quoted packet (the probe's sender)."""
    dst: bytes
    """Destination of the quoted packet (the probe's target)."""
    proto: int
    """Quoted IPv4 protocol, or IPv6 next header after the quoted extension headers."""
    ip_id: int
    """Quoted IPv4 identification, or the IPv6 flow label."""
    ttl: int
    """Quoted TTL / hop limit (usually 0 or 1 for time exceeded)."""
    length: int
    """Quoted IP total length (IPv6: payload length + 40)."""
    sport: int
    dport: int
    """UDP/TCP ports of the probe."""
    tcp_seq: int
    icmp_ident: int
    icmp_seq: int
    """Ident and sequence of a quoted ICMP/ICMPv6 echo request or reply."""
    checksum: int
    """Quoted UDP/ICMP checksum (TCP's when 18 bytes are quoted): Paris traceroute's tag."""
    mtu: int
    """Next-hop MTU of "fragmentation needed" / ICMPv6 packet too big, else 0."""
    quote: bytes
    """The quoted bytes, without the RFC 4884 extension structure."""
    extensions: bytes
    """The RFC 4884 extension structure (e.g. MPLS labels), b"" when absent."""


_new_quoted = trusted_constructor(Quoted)


def quoted_probe(data: bytes) -> Quoted | None:
    """Read an ICMP/ICMPv6 error given as a whole IP packet (first nibble 4 or 6) or as the
    bare ICMP message (its family then follows from the quoted header). None when the message
    is not an ICMP error; PacketError when it is malformed or quotes less than an IP header."""
    if len(data) < 8:
        raise PacketError(f"{len(data)} bytes are too short for an ICMP message")
    first = data[0] >> 4
    responder = b""
    if first == 4:
        if len(data) < 20:
            raise PacketError(f"IPv4 packet truncated: {len(data)} bytes")
        hl = (data[0] & 15) * 4
        if hl < 20 or hl > len(data):
            raise PacketError(f"IPv4 header length {hl} is not within 20..{len(data)}")
        if data[9] != 1 or int.from_bytes(data[6:8], "big") & 0x1FFF:
            return None
        end = min(int.from_bytes(data[2:4], "big"), len(data))
        responder, icmp, version = bytes(data[12:16]), data[hl:end], 4
    elif first == 6:
        if len(data) < 40:
            raise PacketError(f"IPv6 packet truncated: {len(data)} bytes")
        end = min(40 + int.from_bytes(data[4:6], "big"), len(data))
        walk = walk_extensions(data, data[6], 40, end)
        if walk.truncated:
            raise PacketError(f"IPv6 extension header {walk.proto} runs past the packet")
        if walk.proto != 58 or walk.later_fragment:
            return None
        responder, icmp, version = bytes(data[8:24]), data[walk.offset : end], 6
    else:
        icmp, version = data, data[8] >> 4 if len(data) > 8 else 0
        if version not in (4, 6):
            if data[0] in ICMP_ERROR_TYPES | ICMPV6_ERROR_TYPES:
                raise PacketError(f"ICMP error of type {data[0]} quotes no IPv4/IPv6 header")
            return None
    if len(icmp) < 8:
        raise PacketError(f"ICMP message truncated: {len(icmp)} bytes, need 8")
    icmp_type, code = icmp[0], icmp[1]
    if icmp_type not in (ICMP_ERROR_TYPES if version == 4 else ICMPV6_ERROR_TYPES):
        return None
    quote, extensions = _split(version, icmp)
    mtu = 0
    if version == 4 and icmp_type == 3 and code == 4:
        mtu = int.from_bytes(icmp[6:8], "big")
    elif version == 6 and icmp_type == 2:
        mtu = int.from_bytes(icmp[4:8], "big")
    return _inner(version, icmp_type, code, responder, quote, extensions, mtu)


def _split(version: int, icmp: bytes) -> tuple[bytes, bytes]:
    """(quote, RFC 4884 extension structure) of an error message."""
    body = bytes(icmp[8:])
    if version == 4 and icmp[0] in _RFC4884_V4:
        size = icmp[5] * 4
    elif version == 6 and icmp[0] in _RFC4884_V6:
        size = icmp[4] * 8
    else:
        return body, b""
    if 0 < size <= len(body):
        return body[:size], body[size:]
    return body, b""


def _inner(
    version: int, icmp_type: int, code: int, responder: bytes, quote: bytes, ext: bytes, mtu: int
) -> Quoted:
    if version == 4:
        if len(quote) < 20 or quote[0] >> 4 != 4:
            raise PacketError(f"ICMP error quotes {len(quote)} bytes, not an IPv4 header")
        hl = (quote[0] & 15) * 4
        if hl < 20:
            raise PacketError(f"quoted IPv4 header length {hl} is below 20")
        length, ip_id, ttl, proto, src, dst = _V4.unpack_from(quote)
        later = int.from_bytes(quote[6:8], "big") & 0x1FFF != 0
        icmp_proto = 1
    else:
        if len(quote) < 40 or quote[0] >> 4 != 6:
            raise PacketError(f"ICMPv6 error quotes {len(quote)} bytes, not an IPv6 header")
        first, plen, next_header, ttl, src, dst = _V6.unpack_from(quote)
        walk = walk_extensions(quote, next_header)
        proto, hl, length = walk.proto, walk.offset, plen + 40
        ip_id, later = first & 0xFFFFF, walk.later_fragment or walk.truncated
        icmp_proto = 58
    t = b"" if later else quote[hl:]
    sport = dport = tcp_seq = ident = seq = checksum = -1
    if proto in (6, 17) and len(t) >= 4:
        sport, dport = int.from_bytes(t[0:2], "big"), int.from_bytes(t[2:4], "big")
        if proto == 17 and len(t) >= 8:
            checksum = int.from_bytes(t[6:8], "big")
        elif proto == 6 and len(t) >= 8:
            tcp_seq = int.from_bytes(t[4:8], "big")
            if len(t) >= 18:
                checksum = int.from_bytes(t[16:18], "big")
    elif proto == icmp_proto and len(t) >= 4:
        checksum = int.from_bytes(t[2:4], "big")
        if t[0] in ((0, 8) if version == 4 else (128, 129)) and len(t) >= 8:
            ident, seq = int.from_bytes(t[4:6], "big"), int.from_bytes(t[6:8], "big")
    return _new_quoted(
        version,
        icmp_type,
        code,
        responder,
        bytes(src),
        bytes(dst),
        proto,
        ip_id,
        ttl,
        length,
        sport,
        dport,
        tcp_seq,
        ident,
        seq,
        checksum,
        mtu,
        quote,
        ext,
    )
