"""Protocol numbers, ICMP/ICMPv6 types and codes, TCP flags (IANA names)."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import Final


class Proto(IntEnum):
    """IP protocol numbers (IPv4 protocol, IPv6 next header)."""

    HOPOPT = 0
    ICMP = 1
    TCP = 6
    UDP = 17
    IPV6_ROUTE = 43
    IPV6_FRAG = 44
    ICMPV6 = 58
    IPV6_NONXT = 59
    IPV6_OPTS = 60


class ICMPType(IntEnum):
    """ICMP (IPv4) message types."""

    ECHO_REPLY = 0
    DEST_UNREACH = 3
    SOURCE_QUENCH = 4
    REDIRECT = 5
    ECHO_REQUEST = 8
    TIME_EXCEEDED = 11
    PARAM_PROBLEM = 12
    TIMESTAMP = 13
    TIMESTAMP_REPLY = 14


class ICMPUnreachCode(IntEnum):
    """Codes of ICMP destination unreachable."""

    NET = 0
    HOST = 1
    PROTOCOL = 2
    PORT = 3
    FRAG_NEEDED = 4
    SOURCE_ROUTE_FAILED = 5
    NET_PROHIBITED = 9
    HOST_PROHIBITED = 10
    ADMIN_PROHIBITED = 13


class ICMPv6Type(IntEnum):
    """ICMPv6 message types."""

    DEST_UNREACH = 1
    PACKET_TOO_BIG = 2
    TIME_EXCEEDED = 3
    PARAM_PROBLEM = 4
    ECHO_REQUEST = 128
    ECHO_REPLY = 129
    ROUTER_SOLICIT = 133
    ROUTER_ADVERT = 134
    NEIGHBOR_SOLICIT = 135
    NEIGHBOR_ADVERT = 136
    REDIRECT = 137


class ICMPv6UnreachCode(IntEnum):
    """Codes of ICMPv6 destination unreachable."""

    NO_ROUTE = 0
    ADMIN_PROHIBITED = 1
    BEYOND_SCOPE = 2
    ADDRESS = 3
    PORT = 4
    SOURCE_POLICY = 5
    REJECT_ROUTE = 6


class TimeExceededCode(IntEnum):
    """Codes of time exceeded (same values in ICMP and ICMPv6)."""

    TTL = 0
    REASSEMBLY = 1


class TCPFlag(IntFlag):
    """TCP flag bits as they sit in the 12 bits after the data offset (AE is the old NS bit)."""

    FIN = 0x001
    SYN = 0x002
    RST = 0x004
    PSH = 0x008
    ACK = 0x010
    URG = 0x020
    ECE = 0x040
    CWR = 0x080
    AE = 0x100


# Plain-int copies for hot paths and defaults.
FIN: Final = 0x001
SYN: Final = 0x002
RST: Final = 0x004
PSH: Final = 0x008
ACK: Final = 0x010
URG: Final = 0x020
ECE: Final = 0x040
CWR: Final = 0x080
AE: Final = 0x100

ICMP_ERROR_TYPES: Final = frozenset({3, 4, 5, 11, 12})
"""ICMP types whose body quotes the offending datagram."""
ICMPV6_ERROR_TYPES: Final = frozenset({1, 2, 3, 4})
"""ICMPv6 types whose body quotes the offending packet."""
IPV6_EXTENSION_HEADERS: Final = frozenset({0, 43, 44, 60})
"""IPv6 extension headers walked by the parsers: hop-by-hop, routing, fragment, destination."""
