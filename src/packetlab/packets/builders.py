"""Whole probe packets in one call, IPv4 or IPv6 by the address family of ``src``/``dst``.

``ident`` is the IPv4 identification, or the IPv6 flow label (what ``Quoted.ip_id`` reports
back); ``ttl`` is the TTL or hop limit.

``udp_probe``, ``tcp_syn`` and ``icmp_echo`` pack their few headers directly (about 2x faster
than building the objects, see bench/packets_speed.py). When a value is out of the fast path's
plain ranges they fall back to the object builders, which give the precise PacketError; the
tests check both paths give the same bytes.
"""

from __future__ import annotations

import struct

from packetlab.packets._addr import addr_bytes
from packetlab.packets._errors import PacketError
from packetlab.packets.checksum import internet_checksum, transport_checksum
from packetlab.packets.ip import IPv4, IPv6
from packetlab.packets.transport import ICMP, TCP, UDP, ICMPv6, Transport

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIHHHH")
_ICMP = struct.Struct("!BBHHH")
_MAX_SEGMENT = 0xFFFF - 20


def _family(src: str | bytes, dst: str | bytes) -> tuple[bytes, bytes]:
    s = src if type(src) is bytes and len(src) in (4, 16) else addr_bytes(src)
    d = dst if type(dst) is bytes and len(dst) in (4, 16) else addr_bytes(dst)
    if len(s) != len(d):
        raise PacketError(f"src {src!r} and dst {dst!r} are of different address families")
    return s, d


def ip_packet(
    src: str | bytes,
    dst: str | bytes,
    transport: Transport | bytes,
    *,
    proto: int | None = None,
    ttl: int = 64,
    ident: int = 0,
    tos: int = 0,
    df: bool = False,
) -> bytes:
    """An IPv4 or IPv6 packet carrying ``transport`` (an object, or raw bytes with ``proto``).
    ``tos`` is the IPv6 traffic class; ``df`` is ignored for IPv6."""
    s, d = _family(src, dst)
    if len(s) == 4:
        if isinstance(transport, ICMPv6):
            raise PacketError("ICMPv6 in an IPv4 packet: use ICMP")
        return IPv4(s, d, proto, transport, ttl, ident, tos, df).build()
    if isinstance(transport, ICMP):
        raise PacketError("ICMP in an IPv6 packet: use ICMPv6")
    return IPv6(s, d, proto, transport, ttl, tos, ident).build()


def _fits(ttl: int, ident: int, v4: bool, *u16: int) -> bool:
    """Whether the fast path may pack these values (anything odd takes the checked path)."""
    return (
        type(ttl) is int
        and type(ident) is int
        and 0 <= ttl <= 0xFF
        and 0 <= ident <= (0xFFFF if v4 else 0xFFFFF)
        and all(type(value) is int and 0 <= value <= 0xFFFF for value in u16)
    )


def _wrap(s: bytes, d: bytes, proto: int, segment: bytes, ttl: int, ident: int) -> bytes:
    """``segment`` (checksum filled) inside a plain IPv4 or IPv6 header."""
    if len(s) == 4:
        fields = (0x45, 0, 20 + len(segment), ident, 0, ttl, proto)
        checksum = internet_checksum(_V4.pack(*fields, 0, s, d))
        return _V4.pack(*fields, checksum, s, d) + segment
    return _V6.pack(0x60000000 | ident, len(segment), proto, ttl, s, d) + segment


def icmp_echo(
    src: str | bytes,
    dst: str | bytes,
    ident: int,
    seq: int,
    payload: bytes = b"",
    ttl: int = 64,
) -> bytes:
    """An ICMP echo request (IPv4) or ICMPv6 echo request (IPv6); the IP ident is 0."""
    s, d = _family(src, dst)
    v4 = len(s) == 4
    if not (_fits(ttl, 0, v4, ident, seq) and len(payload) <= _MAX_SEGMENT - 8):
        if v4:
            return IPv4(s, d, 1, ICMP(8, 0, ident, seq, payload), ttl).build()
        return IPv6(s, d, 58, ICMPv6(128, 0, ident, seq, payload), ttl).build()
    kind, proto = (8, 1) if v4 else (128, 58)
    message = _ICMP.pack(kind, 0, 0, ident, seq) + payload
    checksum = internet_checksum(message) if v4 else transport_checksum(s, d, 58, message)
    return _wrap(s, d, proto, _ICMP.pack(kind, 0, checksum, ident, seq) + payload, ttl, 0)


def udp_probe(
    src: str | bytes,
    dst: str | bytes,
    sport: int,
    dport: int,
    payload: bytes = b"",
    ttl: int = 64,
    ident: int = 0,
) -> bytes:
    """A UDP datagram in an IPv4 or IPv6 packet."""
    s, d = _family(src, dst)
    if not (_fits(ttl, ident, len(s) == 4, sport, dport) and len(payload) <= _MAX_SEGMENT - 8):
        return ip_packet(s, d, UDP(sport, dport, payload), ttl=ttl, ident=ident)
    length = 8 + len(payload)
    checksum = transport_checksum(s, d, 17, _UDP.pack(sport, dport, length, 0) + payload)
    segment = _UDP.pack(sport, dport, length, checksum or 0xFFFF) + payload
    return _wrap(s, d, 17, segment, ttl, ident)


def tcp_syn(
    src: str | bytes,
    dst: str | bytes,
    sport: int,
    dport: int,
    seq: int = 0,
    ttl: int = 64,
    *,
    ident: int = 0,
    window: int = 65535,
    options: bytes = b"",
) -> bytes:
    """A TCP SYN in an IPv4 or IPv6 packet (``options`` zero-padded to a multiple of 4)."""
    s, d = _family(src, dst)
    fast = type(seq) is int and 0 <= seq <= 0xFFFFFFFF and len(options) in (0, 4, 8, 12)
    if not (fast and _fits(ttl, ident, len(s) == 4, sport, dport, window)):
        syn = TCP(sport, dport, seq, 0, 0x002, window, options)
        return ip_packet(s, d, syn, ttl=ttl, ident=ident)
    offset_flags = (5 + len(options) // 4) << 12 | 0x002
    fields = (sport, dport, seq, 0, offset_flags, window)
    checksum = transport_checksum(s, d, 6, _TCP.pack(*fields, 0, 0) + options)
    return _wrap(s, d, 6, _TCP.pack(*fields, checksum, 0) + options, ttl, ident)
