"""IPv4 and IPv6 packets: frozen dataclasses with ``build`` and ``parse``, and ``parse_ip``.

Addresses are given as text or raw bytes and kept as raw bytes. The payload is raw bytes or a
transport object (UDP, TCP, ICMP, ICMPv6), built with this packet's addresses for its
checksum. Fields left as None (lengths, header length, checksum) are filled in by ``build``;
``parse`` keeps every field as it is on the wire, so ``parse(b).build() == b`` for a packet
whose length fields match its size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self

from packetlab.packets._addr import addr_bytes
from packetlab.packets._errors import PacketError
from packetlab.packets._fields import U4, U8, U13, U16, U20, check, explain, pad4
from packetlab.packets._trusted import trusted_constructor
from packetlab.packets.checksum import internet_checksum
from packetlab.packets.ipv6ext import IPv6Extension, final_destination, walk_extensions
from packetlab.packets.transport import (
    TRANSPORT_TYPES,
    Transport,
    parse_transport,
    protocol_number,
)

_V4 = struct.Struct("!BBHHHBBH4s4s")
_V6 = struct.Struct("!IHBB16s16s")


def _address(name: str, address: str | bytes, size: int) -> bytes:
    if type(address) is bytes and len(address) == size:
        return address
    raw = addr_bytes(address)
    if len(raw) != size:
        raise PacketError(f"{name} {address!r} is not an IPv{4 if size == 4 else 6} address")
    return raw


def _proto(proto: int | None, payload: bytes | Transport, field: str) -> int:
    if proto is not None:
        if not (type(proto) is int and 0 <= proto <= U8):
            check(field, proto, U8)
        return proto
    if isinstance(payload, TRANSPORT_TYPES):
        return protocol_number(payload)
    raise PacketError(f"{field} is required when the payload is raw bytes")


def _body(payload: bytes | Transport, src: bytes, dst: bytes) -> bytes:
    return payload.build(src, dst) if isinstance(payload, TRANSPORT_TYPES) else bytes(payload)


@dataclass(frozen=True, slots=True, init=False)
class IPv4:
    """An IPv4 packet. ``frag_offset`` is in 8-byte units; ``options`` are zero-padded to a
    multiple of 4; ``ihl`` (None: from the options) is in 32-bit words."""

    src: bytes
    dst: bytes
    proto: int
    payload: bytes | Transport
    ttl: int
    ident: int
    tos: int
    df: bool
    mf: bool
    frag_offset: int
    options: bytes
    total_length: int | None
    checksum: int | None
    ihl: int | None
    reserved_flag: bool

    def __init__(
        self,
        src: str | bytes,
        dst: str | bytes,
        proto: int | None = None,
        payload: bytes | Transport = b"",
        ttl: int = 64,
        ident: int = 0,
        tos: int = 0,
        df: bool = False,
        mf: bool = False,
        frag_offset: int = 0,
        options: bytes = b"",
        total_length: int | None = None,
        checksum: int | None = None,
        ihl: int | None = None,
        reserved_flag: bool = False,
    ) -> None:
        try:
            ok = (
                (ttl | tos) >> 8 == 0
                and (ident | (total_length or 0) | (checksum or 0)) >> 16 == 0
                and frag_offset >> 13 == 0
                and (ihl or 0) >> 4 == 0
            )
        except TypeError:
            ok = False
        if not ok:
            explain(
                "IPv4",
                [
                    ("ttl", ttl, U8),
                    ("ident", ident, U16),
                    ("tos", tos, U8),
                    ("frag_offset", frag_offset, U13),
                    ("total_length", total_length, U16),
                    ("checksum", checksum, U16),
                    ("ihl", ihl, U4),
                ],
            )
        if len(options) > 40:
            raise PacketError(f"IPv4 options of {len(options)} bytes exceed 40")
        init = object.__setattr__
        init(self, "src", _address("IPv4 src", src, 4))
        init(self, "dst", _address("IPv4 dst", dst, 4))
        init(self, "proto", _proto(proto, payload, "IPv4 proto"))
        init(self, "payload", payload)
        init(self, "ttl", ttl)
        init(self, "ident", ident)
        init(self, "tos", tos)
        init(self, "df", bool(df))
        init(self, "mf", bool(mf))
        init(self, "frag_offset", frag_offset)
        init(self, "options", bytes(options))
        init(self, "total_length", total_length)
        init(self, "checksum", checksum)
        init(self, "ihl", ihl)
        init(self, "reserved_flag", bool(reserved_flag))

    def build(self) -> bytes:
        """Wire bytes, with the total length, IHL and header checksum filled in when None."""
        body = _body(self.payload, self.src, self.dst)
        options = pad4(self.options)
        ihl = 5 + len(options) // 4 if self.ihl is None else self.ihl
        total = 20 + len(options) + len(body) if self.total_length is None else self.total_length
        if total > U16:
            raise PacketError(f"IPv4 packet of {total} bytes exceeds 65535")
        flags = self.reserved_flag << 15 | self.df << 14 | self.mf << 13 | self.frag_offset
        fields = (0x40 | ihl, self.tos, total, self.ident, flags, self.ttl, self.proto)
        if self.checksum is not None:
            return _V4.pack(*fields, self.checksum, self.src, self.dst) + options + body
        header = _V4.pack(*fields, 0, self.src, self.dst) + options
        checksum = internet_checksum(header).to_bytes(2, "big")
        return header[:10] + checksum + header[12:] + body

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read an IPv4 packet; the payload (up to the total length) becomes a transport object
        for ICMP/TCP/UDP unless this is a later fragment, or a first fragment too short for it."""
        if len(data) < 20:
            raise PacketError(f"IPv4 packet truncated: {len(data)} bytes, need 20")
        vihl, tos, total, ident, flags, ttl, proto, checksum, src, dst = _V4.unpack_from(data)
        if vihl >> 4 != 4:
            raise PacketError(f"IP version {vihl >> 4} where 4 was expected")
        ihl = vihl & 15
        if ihl < 5 or ihl * 4 > len(data):
            raise PacketError(f"IPv4 header length {ihl * 4} is not within 20..{len(data)}")
        if total < ihl * 4:
            raise PacketError(f"IPv4 total length {total} is below the header length {ihl * 4}")
        body = bytes(data[ihl * 4 : total])
        payload: bytes | Transport = body
        mf, offset = bool(flags & 0x2000), flags & 0x1FFF
        if offset == 0:
            try:
                payload = parse_transport(4, proto, body) or body
            except PacketError:
                if not mf:
                    raise
        return trusted_constructor(cls)(
            src,
            dst,
            proto,
            payload,
            ttl,
            ident,
            tos,
            bool(flags & 0x4000),
            mf,
            offset,
            bytes(data[20 : ihl * 4]),
            total,
            checksum,
            ihl,
            bool(flags & 0x8000),
        )


@dataclass(frozen=True, slots=True, init=False)
class IPv6:
    """An IPv6 packet. ``next_header`` is the protocol of the payload: the header's own
    next-header field and those of ``extensions`` are chained by ``build``."""

    src: bytes
    dst: bytes
    next_header: int
    payload: bytes | Transport
    hop_limit: int
    traffic_class: int
    flow_label: int
    extensions: tuple[IPv6Extension, ...]
    payload_length: int | None

    def __init__(
        self,
        src: str | bytes,
        dst: str | bytes,
        next_header: int | None = None,
        payload: bytes | Transport = b"",
        hop_limit: int = 64,
        traffic_class: int = 0,
        flow_label: int = 0,
        extensions: tuple[IPv6Extension, ...] = (),
        payload_length: int | None = None,
    ) -> None:
        try:
            ok = (
                (hop_limit | traffic_class) >> 8 == 0
                and flow_label >> 20 == 0
                and (payload_length or 0) >> 16 == 0
            )
        except TypeError:
            ok = False
        if not ok:
            explain(
                "IPv6",
                [
                    ("hop_limit", hop_limit, U8),
                    ("traffic_class", traffic_class, U8),
                    ("flow_label", flow_label, U20),
                    ("payload_length", payload_length, U16),
                ],
            )
        init = object.__setattr__
        init(self, "src", _address("IPv6 src", src, 16))
        init(self, "dst", _address("IPv6 dst", dst, 16))
        init(self, "next_header", _proto(next_header, payload, "IPv6 next_header"))
        init(self, "payload", payload)
        init(self, "hop_limit", hop_limit)
        init(self, "traffic_class", traffic_class)
        init(self, "flow_label", flow_label)
        init(self, "extensions", tuple(extensions))
        init(self, "payload_length", payload_length)

    def build(self) -> bytes:
        """Wire bytes, with the payload length filled in when None; a transport payload's
        checksum uses the final destination when a routing header has segments left."""
        body = _body(self.payload, self.src, final_destination(self.dst, self.extensions))
        exts = self.extensions
        following = [ext.kind for ext in exts[1:]] + [self.next_header] if exts else []
        head = b"".join(ext.build(nh) for ext, nh in zip(exts, following, strict=True))
        length = len(head) + len(body) if self.payload_length is None else self.payload_length
        if length > U16:
            raise PacketError(f"IPv6 payload of {length} bytes exceeds 65535 (no jumbograms)")
        first = 0x60000000 | self.traffic_class << 20 | self.flow_label
        nh = exts[0].kind if exts else self.next_header
        return _V6.pack(first, length, nh, self.hop_limit, self.src, self.dst) + head + body

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read an IPv6 packet and walk its extension headers; the payload (up to the payload
        length) becomes a transport object for ICMPv6/TCP/UDP unless it is a later fragment."""
        if len(data) < 40:
            raise PacketError(f"IPv6 packet truncated: {len(data)} bytes, need 40")
        first, length, next_header, hop_limit, src, dst = _V6.unpack_from(data)
        if first >> 28 != 6:
            raise PacketError(f"IP version {first >> 28} where 6 was expected")
        end = 40 + length
        walk = walk_extensions(data, next_header, 40, end)
        if walk.truncated:
            raise PacketError(f"IPv6 extension header {walk.proto} runs past the packet")
        new_ext = trusted_constructor(IPv6Extension)
        extensions = tuple(new_ext(k, bytes(data[s + 2 : e])) for k, s, e in walk.headers)
        body = bytes(data[walk.offset : end])
        payload: bytes | Transport = body
        if not walk.later_fragment:
            try:
                payload = parse_transport(6, walk.proto, body) or body
            except PacketError:
                if not walk.fragment:
                    raise
        return trusted_constructor(cls)(
            src,
            dst,
            walk.proto,
            payload,
            hop_limit,
            first >> 20 & 0xFF,
            first & U20,
            extensions,
            length,
        )


def parse_ip(data: bytes) -> IPv4 | IPv6:
    """Parse an IPv4 or IPv6 packet, chosen by its version nibble."""
    if not data:
        raise PacketError("empty packet")
    version = data[0] >> 4
    if version == 4:
        return IPv4.parse(data)
    if version == 6:
        return IPv6.parse(data)
    raise PacketError(f"IP version {version} is neither 4 nor 6")
