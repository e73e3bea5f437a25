"""The operator's source policy (guardian stage 2) and source ownership (stage 5), compiled.

Compiled once per guardian from :class:`~packetlab.guardian.config.SourcePolicy` and the
endpoint's own addresses (address + subnet length). Destination rules depend on the address
alone, so :meth:`SourceFilter.dest_reason` answers are cacheable per address; packet rules
(fragments, ICMP errors, RST, ports) look at the probe's other fields.

An IPv6 destination in ::ffff:0:0/96 (IPv4-mapped) reaches IPv4 through a dual-stack socket, so
the IPv4 destination rules judge its last four bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

from packetlab.guardian.config import SourcePolicy
from packetlab.guardian.prefixes import BITS, Prefix, PrefixSet, parse_prefix
from packetlab.guardian.probe import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TCP_RST

ICMP4_ERRORS = frozenset({3, 4, 5, 11, 12})
ICMP6_ERRORS = frozenset({1, 2, 3, 4})
V4_MAPPED = bytes(10) + b"\xff\xff"
UNSPECIFIED_SET = frozenset((bytes(4), bytes(16)))

_LOCAL_HOST = ("127.0.0.0/8", "0.0.0.0/32", "::1/128", "::/128")
_LINK_LOCAL = ("169.254.0.0/16", "fe80::/10")
_MULTICAST = ("224.0.0.0/4", "ff00::/8")
_LOOPBACK_SOURCES = ("127.0.0.0/8", "::1/128")


def _set(texts: Sequence[str], extra: Sequence[Prefix] = ()) -> PrefixSet:
    return PrefixSet([*(parse_prefix(t) for t in texts), *extra])


class SourceFilter:
    """Compiled source policy for one endpoint process."""

    def __init__(self, policy: SourcePolicy, local_nets: Sequence[tuple[bytes, int]]) -> None:
        self.policy = policy
        own: list[bytes] = []
        subnets: list[Prefix] = []
        broadcasts = {0xFFFFFFFF}
        for addr, length in local_nets:
            if len(addr) not in (4, 16):
                raise ValueError(f"local address {addr.hex()}: not 4 or 16 bytes")
            family = 4 if len(addr) == 4 else 6
            if not 0 <= length <= BITS[family]:
                raise ValueError(f"local address {addr.hex()}/{length}: bad prefix length")
            own.append(addr)
            value = int.from_bytes(addr, "big")
            shift = BITS[family] - length
            subnets.append(Prefix(family, value >> shift << shift, length))
            if family == 4 and length <= 30:
                broadcasts.add(value | ((1 << shift) - 1))
        self.own_addresses: frozenset[bytes] = frozenset(own)
        self._local_host = _set(_LOCAL_HOST)
        self._local_subnet = _set(_LINK_LOCAL, subnets)
        self._multicast = _set(_MULTICAST)
        self._broadcast = frozenset(broadcasts)
        self._allow = PrefixSet(policy.allow_dest)
        self._loopback_sources = _set(_LOOPBACK_SOURCES)
        self._port_exceptions = frozenset(policy.privileged_port_exceptions)

    def dest_reason(self, family: int, dst: bytes) -> str:
        """Why the static destination rules refuse ``dst`` ('' when they do not)."""
        if family == 6 and dst[:12] == V4_MAPPED:
            return self.dest_reason(4, dst[12:])
        p = self.policy
        value = int.from_bytes(dst, "big")
        if p.deny_multicast and self._multicast.matches(family, value):
            return "multicast destination"
        if p.deny_broadcast and family == 4 and value in self._broadcast:
            return "broadcast destination"
        allowed = bool(self._allow) and self._allow.matches(family, value)
        if not allowed:
            if p.deny_local_host and (
                dst in self.own_addresses or self._local_host.matches(family, value)
            ):
                return "destination is the local host"
            if p.deny_local_subnet and self._local_subnet.matches(family, value):
                return "destination is on a local subnet"
        return ""

    def packet_reason(
        self, proto: int, fragment: bool, icmp_type: int, tcp_flags: int, dport: int
    ) -> str:
        """Why the per-packet rules refuse a packet ('' when they do not)."""
        p = self.policy
        if fragment and p.deny_fragments:
            return "IP fragment"
        if proto in (IPPROTO_TCP, IPPROTO_UDP):
            if proto == IPPROTO_TCP and tcp_flags & TCP_RST and p.deny_tcp_rst:
                return "TCP RST"
            if dport < 1024 and p.deny_privileged_ports and dport not in self._port_exceptions:
                return f"privileged destination port {dport}"
        elif p.deny_icmp_errors:
            if proto == IPPROTO_ICMP and icmp_type in ICMP4_ERRORS:
                return f"ICMP error message (type {icmp_type})"
            if proto == IPPROTO_ICMPV6 and icmp_type in ICMP6_ERRORS:
                return f"ICMPv6 error message (type {icmp_type})"
        return ""

    def source_owned(self, src: bytes, dst: bytes | None = None) -> bool:
        """The endpoint's own address, unspecified (filled when sent), or a loopback address
        when the packet stays on this host (``dst`` loopback too, or not given)."""
        if src in self.own_addresses or src in UNSPECIFIED_SET:
            return True
        family = 4 if len(src) == 4 else 6
        loopback = self._loopback_sources
        if not loopback.matches(family, int.from_bytes(src, "big")):
            return False
        return dst is None or loopback.matches(family, int.from_bytes(dst, "big"))
