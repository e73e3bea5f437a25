"""UDP, TCP, ICMP and ICMPv6 headers: frozen dataclasses with ``build`` and ``parse``.

``build(src, dst)`` takes the addresses of the enclosing IP packet for the pseudo-header
checksum; UDP, TCP and ICMPv6 need them unless ``checksum`` is given (ICMP ignores them).
Lengths, data offsets and checksums left as None are filled in; values given explicitly are
written as they are, so bad ones can be crafted. ``parse`` reads a header as it is on the wire
(every field explicit, payload = the rest of the bytes), so ``parse(b).build() == b``; it
skips the constructor's checks, which values read from a header always pass.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Self, TypeAlias

from packetlab.packets._addr import addr_bytes
from packetlab.packets._errors import PacketError
from packetlab.packets._fields import U4, U8, U16, U32, explain, pad4
from packetlab.packets._trusted import trusted_constructor
from packetlab.packets.checksum import internet_checksum, transport_checksum
from packetlab.packets.constants import SYN

_UDP = struct.Struct("!HHHH")
_TCP = struct.Struct("!HHIIHHHH")
_ICMP = struct.Struct("!BBHHH")


def _addresses(kind: str, src: str | bytes | None, dst: str | bytes | None) -> tuple[bytes, bytes]:
    if type(src) is bytes and type(dst) is bytes and len(src) == len(dst) in (4, 16):
        return src, dst
    if src is None or dst is None:
        raise PacketError(f"{kind} checksum needs the IP src and dst (or an explicit checksum)")
    s, d = addr_bytes(src), addr_bytes(dst)
    if len(s) != len(d):
        raise PacketError(f"{kind} pseudo-header: src and dst are of different address families")
    return s, d


@dataclass(frozen=True, slots=True)
class UDP:
    """A UDP datagram. ``length`` is the header's length field (None: 8 + payload)."""

    sport: int
    dport: int
    payload: bytes = b""
    checksum: int | None = None
    length: int | None = None

    def __post_init__(self) -> None:
        checksum, length = self.checksum, self.length
        try:
            ok = (self.sport | self.dport | (checksum or 0) | (length or 0)) >> 16 == 0
        except TypeError:
            ok = False
        if not ok:
            fields = [("sport", self.sport, U16), ("dport", self.dport, U16)]
            explain("UDP", [*fields, ("checksum", checksum, U16), ("length", length, U16)])
        if length is None and len(self.payload) > U16 - 8:
            raise PacketError(f"UDP payload of {len(self.payload)} bytes is too long")

    def build(self, src: str | bytes | None = None, dst: str | bytes | None = None) -> bytes:
        """Wire bytes; the checksum (None) is computed over the pseudo-header of src/dst."""
        length = 8 + len(self.payload) if self.length is None else self.length
        if self.checksum is not None:
            return _UDP.pack(self.sport, self.dport, length, self.checksum) + self.payload
        s, d = _addresses("UDP", src, dst)
        segment = _UDP.pack(self.sport, self.dport, length, 0) + self.payload
        checksum = transport_checksum(s, d, 17, segment) or 0xFFFF
        return segment[:6] + checksum.to_bytes(2, "big") + segment[8:]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read a UDP header (8 bytes at least); the payload is every byte after it."""
        if len(data) < 8:
            raise PacketError(f"UDP header truncated: {len(data)} bytes, need 8")
        sport, dport, length, checksum = _UDP.unpack_from(data)
        return trusted_constructor(cls)(sport, dport, bytes(data[8:]), checksum, length)


@dataclass(frozen=True, slots=True)
class TCP:
    """A TCP segment. ``flags`` holds the 12 bits after the data offset (TCPFlag); ``options``
    are zero-padded to a multiple of 4; ``data_offset`` (None: from the options) in words."""

    sport: int
    dport: int
    seq: int = 0
    ack: int = 0
    flags: int = SYN
    window: int = 65535
    options: bytes = b""
    payload: bytes = b""
    urgent: int = 0
    checksum: int | None = None
    data_offset: int | None = None

    def __post_init__(self) -> None:
        checksum, offset = self.checksum, self.data_offset
        try:
            ok = (
                (self.sport | self.dport | self.window | self.urgent | (checksum or 0)) >> 16 == 0
                and (self.seq | self.ack) >> 32 == 0
                and self.flags >> 12 == 0
                and (offset or 0) >> 4 == 0
            )
        except TypeError:
            ok = False
        if not ok:
            explain(
                "TCP",
                [
                    ("sport", self.sport, U16),
                    ("dport", self.dport, U16),
                    ("seq", self.seq, U32),
                    ("ack", self.ack, U32),
                    ("flags", self.flags, 0xFFF),
                    ("window", self.window, U16),
                    ("urgent", self.urgent, U16),
                    ("checksum", checksum, U16),
                    ("data_offset", offset, U4),
                ],
            )
        if len(self.options) > 40:
            raise PacketError(f"TCP options of {len(self.options)} bytes exceed 40")

    def build(self, src: str | bytes | None = None, dst: str | bytes | None = None) -> bytes:
        """Wire bytes; the checksum (None) is computed over the pseudo-header of src/dst."""
        options = pad4(self.options)
        offset = 5 + len(options) // 4 if self.data_offset is None else self.data_offset
        fields = (self.sport, self.dport, self.seq, self.ack, offset << 12 | self.flags)
        if self.checksum is not None:
            header = _TCP.pack(*fields, self.window, self.checksum, self.urgent)
            return header + options + self.payload
        s, d = _addresses("TCP", src, dst)
        segment = _TCP.pack(*fields, self.window, 0, self.urgent) + options + self.payload
        checksum = transport_checksum(s, d, 6, segment)
        return segment[:16] + checksum.to_bytes(2, "big") + segment[18:]

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read a TCP header and its options; the payload is every byte after them."""
        if len(data) < 20:
            raise PacketError(f"TCP header truncated: {len(data)} bytes, need 20")
        sport, dport, seq, ack, offset_flags, window, checksum, urgent = _TCP.unpack_from(data)
        offset = offset_flags >> 12
        if offset < 5:
            raise PacketError(f"TCP data offset {offset} is below 5")
        if offset * 4 > len(data):
            raise PacketError(f"TCP data offset {offset} points past the {len(data)}-byte segment")
        options, payload = bytes(data[20 : offset * 4]), bytes(data[offset * 4 :])
        flags, make = offset_flags & 0xFFF, trusted_constructor(cls)
        fields = (sport, dport, seq, ack, flags, window, options, payload, urgent, checksum)
        return make(*fields, offset)


@dataclass(frozen=True, slots=True)
class _IcmpHeader:
    """Type, code, checksum, and the 32-bit rest of the header as two 16-bit halves: echo
    ident/seq, or e.g. the RFC 4884 length and next-hop MTU of an error."""

    type: int
    code: int = 0
    ident: int = 0
    seq: int = 0
    payload: bytes = b""
    checksum: int | None = None

    def __post_init__(self) -> None:
        checksum = self.checksum
        try:
            ok = (self.type | self.code) >> 8 == 0 and (
                self.ident | self.seq | (checksum or 0)
            ) >> 16 == 0
        except TypeError:
            ok = False
        if not ok:
            explain(
                type(self).__name__,
                [
                    ("type", self.type, U8),
                    ("code", self.code, U8),
                    ("ident", self.ident, U16),
                    ("seq", self.seq, U16),
                    ("checksum", checksum, U16),
                ],
            )

    @property
    def rest_of_header(self) -> int:
        """Bytes 4..8 as one 32-bit number."""
        return self.ident << 16 | self.seq

    @classmethod
    def parse(cls, data: bytes) -> Self:
        """Read an 8-byte ICMP/ICMPv6 header; the payload is every byte after it."""
        if len(data) < 8:
            raise PacketError(f"{cls.__name__} header truncated: {len(data)} bytes, need 8")
        icmp_type, code, checksum, ident, seq = _ICMP.unpack_from(data)
        return trusted_constructor(cls)(icmp_type, code, ident, seq, bytes(data[8:]), checksum)


@dataclass(frozen=True, slots=True)
class ICMP(_IcmpHeader):
    """An ICMP (IPv4) message; its checksum needs no pseudo-header."""

    def build(self, src: str | bytes | None = None, dst: str | bytes | None = None) -> bytes:
        """Wire bytes (src and dst are accepted for symmetry and ignored)."""
        if self.checksum is not None:
            head = _ICMP.pack(self.type, self.code, self.checksum, self.ident, self.seq)
            return head + self.payload
        message = _ICMP.pack(self.type, self.code, 0, self.ident, self.seq) + self.payload
        checksum = internet_checksum(message)
        return message[:2] + checksum.to_bytes(2, "big") + message[4:]


@dataclass(frozen=True, slots=True)
class ICMPv6(_IcmpHeader):
    """An ICMPv6 message; its checksum covers the IPv6 pseudo-header (RFC 4443 2.3)."""

    def build(self, src: str | bytes | None = None, dst: str | bytes | None = None) -> bytes:
        """Wire bytes; the checksum (None) is computed over the pseudo-header of src/dst."""
        if self.checksum is not None:
            head = _ICMP.pack(self.type, self.code, self.checksum, self.ident, self.seq)
            return head + self.payload
        s, d = _addresses("ICMPv6", src, dst)
        message = _ICMP.pack(self.type, self.code, 0, self.ident, self.seq) + self.payload
        checksum = transport_checksum(s, d, 58, message)
        return message[:2] + checksum.to_bytes(2, "big") + message[4:]


Transport: TypeAlias = UDP | TCP | ICMP | ICMPv6
"""Any transport header object an IP packet can carry."""

TRANSPORT_TYPES = (UDP, TCP, ICMP, ICMPv6)

_PARSERS: dict[tuple[int, int], type[UDP] | type[TCP] | type[ICMP] | type[ICMPv6]] = {
    (4, 1): ICMP,
    (4, 6): TCP,
    (4, 17): UDP,
    (6, 58): ICMPv6,
    (6, 6): TCP,
    (6, 17): UDP,
}


def protocol_number(transport: Transport) -> int:
    """The IP protocol number of a transport object."""
    if isinstance(transport, UDP):
        return 17
    if isinstance(transport, TCP):
        return 6
    return 58 if isinstance(transport, ICMPv6) else 1


def parse_transport(version: int, proto: int, data: bytes) -> Transport | None:
    """The transport object for ``proto`` inside an IP packet of ``version``, or None when this
    package does not parse that protocol; PacketError when its header is malformed."""
    parser = _PARSERS.get((version, proto))
    return None if parser is None else parser.parse(data)
