"""packetlab.packets: build and parse IPv4/IPv6/ICMP/ICMPv6/UDP/TCP with ``struct`` (layer 0:
no I/O, stdlib only), checksums, a fast ``summarize`` for the guardian, and ``quoted_probe``
for matching ICMP errors to probes.

Errors: PacketError (a ValueError) for malformed bytes and for field values that do not fit.
"""

from packetlab.packets._addr import addr_bytes, addr_text
from packetlab.packets._errors import PacketError
from packetlab.packets._trusted import trusted_constructor
from packetlab.packets.builders import icmp_echo, ip_packet, tcp_syn, udp_probe
from packetlab.packets.checksum import (
    internet_checksum,
    ipv4_header_checksum_ok,
    ones_complement_sum,
    pseudo_header_sum,
    transport_checksum,
)
from packetlab.packets.constants import (
    ACK,
    AE,
    CWR,
    ECE,
    FIN,
    ICMP_ERROR_TYPES,
    ICMPV6_ERROR_TYPES,
    IPV6_EXTENSION_HEADERS,
    PSH,
    RST,
    SYN,
    URG,
    ICMPType,
    ICMPUnreachCode,
    ICMPv6Type,
    ICMPv6UnreachCode,
    Proto,
    TCPFlag,
    TimeExceededCode,
)
from packetlab.packets.ip import IPv4, IPv6, parse_ip
from packetlab.packets.ipv6ext import IPv6Extension
from packetlab.packets.quoted import Quoted, quoted_probe
from packetlab.packets.summary import Summary, summarize, transport_checksum_ok
from packetlab.packets.transport import ICMP, TCP, UDP, ICMPv6, Transport

__all__ = [
    "ACK",
    "AE",
    "CWR",
    "ECE",
    "FIN",
    "ICMP",
    "ICMPV6_ERROR_TYPES",
    "ICMP_ERROR_TYPES",
    "IPV6_EXTENSION_HEADERS",
    "PSH",
    "RST",
    "SYN",
    "TCP",
    "UDP",
    "URG",
    "ICMPType",
    "ICMPUnreachCode",
    "ICMPv6",
    "ICMPv6Type",
    "ICMPv6UnreachCode",
    "IPv4",
    "IPv6",
    "IPv6Extension",
    "PacketError",
    "Proto",
    "Quoted",
    "Summary",
    "TCPFlag",
    "TimeExceededCode",
    "Transport",
    "addr_bytes",
    "addr_text",
    "icmp_echo",
    "internet_checksum",
    "ip_packet",
    "ipv4_header_checksum_ok",
    "ones_complement_sum",
    "parse_ip",
    "pseudo_header_sum",
    "quoted_probe",
    "summarize",
    "tcp_syn",
    "transport_checksum",
    "transport_checksum_ok",
    "trusted_constructor",
    "udp_probe",
]
