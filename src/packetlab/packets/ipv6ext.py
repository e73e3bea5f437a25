"""IPv6 extension headers: hop-by-hop (0), routing (43), fragment (44), destination options (60).

The walk follows the next-header chain through these four and stops at anything else (the
upper-layer protocol, or a header this package does not walk such as AH or ESP), or after a
fragment header whose offset is not 0: what follows it is the middle of a payload.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import NamedTuple, Self

from packetlab.packets._errors import PacketError
from packetlab.packets._fields import U13, U32, check
from packetlab.packets.constants import IPV6_EXTENSION_HEADERS

_FRAGMENT = struct.Struct("!HI")


@dataclass(frozen=True, slots=True)
class IPv6Extension:
    """One extension header. ``data`` is everything after its first two bytes (next header and
    length, or next header and the reserved byte of a fragment header): 6 bytes for a fragment
    header, 8n + 6 bytes for the others. The next-header byte is filled in by the IPv6 builder."""

    kind: int
    data: bytes

    def __post_init__(self) -> None:
        if self.kind not in IPV6_EXTENSION_HEADERS:
            raise PacketError(f"IPv6 extension header kind {self.kind} is not one of 0, 43, 44, 60")
        size = len(self.data) + 2
        if self.kind == 44:
            if size != 8:
                raise PacketError(f"an IPv6 fragment header is 8 bytes, not {size}")
        elif size % 8 or size > 2048:
            raise PacketError(f"IPv6 extension header of {size} bytes: need 8n bytes, n 1..256")

    @classmethod
    def fragment(cls, offset: int, more: bool, ident: int) -> Self:
        """A fragment header; ``offset`` in 8-byte units."""
        check("IPv6 fragment offset", offset, U13)
        check("IPv6 fragment ident", ident, U32)
        return cls(44, _FRAGMENT.pack(offset << 3 | more, ident))

    @property
    def fragment_fields(self) -> tuple[int, bool, int]:
        """(offset in 8-byte units, more fragments, identification) of a fragment header."""
        if self.kind != 44:
            raise PacketError(f"extension header {self.kind} is not a fragment header")
        word, ident = _FRAGMENT.unpack(self.data)
        return word >> 3, bool(word & 1), ident

    def build(self, next_header: int) -> bytes:
        second = 0 if self.kind == 44 else (len(self.data) + 2) // 8 - 1
        return bytes((next_header, second)) + self.data


class Walk(NamedTuple):
    """Where an IPv6 packet's extension headers end."""

    headers: tuple[tuple[int, int, int], ...]
    """(kind, start, end) of each extension header, in order."""
    proto: int
    """The next header after the last walked extension header."""
    offset: int
    """Where that next header starts (the transport header)."""
    fragment: bool
    """A fragment header is present."""
    later_fragment: bool
    """The fragment offset is not 0: no transport header follows."""
    truncated: bool
    """An extension header runs past ``end``; the other fields describe the walk so far."""


def walk_extensions(data: bytes, next_header: int, offset: int = 40, end: int = -1) -> Walk:
    """Walk the extension headers of ``data[offset:end]`` starting with ``next_header``."""
    end = len(data) if end < 0 else min(end, len(data))
    headers: list[tuple[int, int, int]] = []
    fragment = False
    while next_header in IPV6_EXTENSION_HEADERS:
        size = 8 if next_header == 44 else 0
        if offset + 2 <= end and not size:
            size = (data[offset + 1] + 1) * 8
        if not size or offset + size > end:
            return Walk(tuple(headers), next_header, offset, fragment, False, True)
        headers.append((next_header, offset, offset + size))
        kind, next_header = next_header, data[offset]
        offset += size
        if kind == 44:
            fragment = True
            if int.from_bytes(data[offset - 6 : offset - 4], "big") >> 3:
                return Walk(tuple(headers), next_header, offset, True, True, False)
    return Walk(tuple(headers), next_header, offset, fragment, False, False)


def final_destination(dst: bytes, extensions: tuple[IPv6Extension, ...]) -> bytes:
    """The destination a transport pseudo-header uses (RFC 8200 8.1): with a routing header
    that has segments left, the last address it routes through, else ``dst``."""
    for ext in extensions:
        if ext.kind != 43 or len(ext.data) < 22 or ext.data[1] == 0:
            continue
        routing_type = ext.data[0]
        if routing_type in (0, 2):
            addresses = ext.data[6:]
            return addresses[len(addresses) // 16 * 16 - 16 : len(addresses) // 16 * 16]
        if routing_type == 4:  # segment routing: segment list[0] is the last segment
            return ext.data[6:22]
    return dst
