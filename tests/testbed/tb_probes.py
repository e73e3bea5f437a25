"""Probing helpers for the testbed tests: ICMP echo with kernel timestamps, TTL-limited probes.

Sockets are made inside a node's namespace (``Testbed.socket``); every loop is bounded in
count and time, and traffic goes only to addresses of the testbed under test.
"""

from __future__ import annotations

import random
import select
import socket
import time
from dataclasses import dataclass

from packetlab import packets
from packetlab.endpoint.timestamps import (
    SO_TIMESTAMPING,
    SOF_OPT_TSONLY,
    SOF_RX_SOFTWARE,
    SOF_SOFTWARE,
    SOF_TX_SOFTWARE,
    latest_tx,
    rx_time,
)
from packetlab.packets import ICMPType, ICMPv6Type
from packetlab.testbed import Testbed

# the ICMP errors a hop answers a TTL-limited probe with (test_testbed_live.py checks them)


def echo_request(ident: int, seq: int, v6: bool = False, size: int = 56) -> bytes:
    """An ICMP (ICMPv6) echo request of ``size`` zero bytes, for a raw socket."""
    if v6:  # checksum 0: the kernel fills it on raw ICMPv6 sockets
        request = packets.ICMPv6(ICMPv6Type.ECHO_REQUEST, 0, ident, seq, bytes(size), checksum=0)
        return request.build()
    return packets.ICMP(ICMPType.ECHO_REQUEST, 0, ident, seq, bytes(size)).build()


def _echo_reply(data: bytes, v6: bool) -> packets.ICMP | packets.ICMPv6 | None:
    """The echo reply a raw ICMP socket read (v4: a whole IP packet; v6: the ICMPv6 message
    only), or None for anything else."""
    try:
        message = packets.ICMPv6.parse(data) if v6 else packets.parse_ip(data).payload
    except packets.PacketError:
        return None
    want = ICMPv6Type.ECHO_REPLY if v6 else ICMPType.ECHO_REPLY
    if isinstance(message, packets.ICMP | packets.ICMPv6) and message.type == want:
        return message
    return None


@dataclass
class EchoResult:
    rtts_ns: list[int]
    sent: int

    @property
    def lost(self) -> int:
        return self.sent - len(self.rtts_ns)


def kernel_rtts(
    tb: Testbed,
    node: str,
    dst: str,
    count: int,
    gap_s: tuple[float, float] = (0.002, 0.005),
    timeout_s: float = 0.5,
) -> EchoResult:
    """``count`` ICMP echoes from ``node`` to ``dst``, one at a time; RTT = kernel RX - TX stamp."""
    sock = tb.socket(node, socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    rng = random.Random(7)
    rtts = []
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            SO_TIMESTAMPING,
            SOF_TX_SOFTWARE | SOF_RX_SOFTWARE | SOF_SOFTWARE | SOF_OPT_TSONLY,
        )
        sock.setblocking(False)
        ident = rng.randrange(1, 0xFFFF)
        for seq in range(count):
            sock.sendto(echo_request(ident, seq), (dst, 0))
            sent_ns = latest_tx(sock)
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                try:
                    data, anc, _, _ = sock.recvmsg(2048, 512)
                except BlockingIOError:
                    continue
                reply = _echo_reply(data, v6=False)
                if reply is not None and (reply.ident, reply.seq) == (ident, seq):
                    got = rx_time(anc)
                    sent_ns = sent_ns or latest_tx(sock)
                    if got and sent_ns:
                        rtts.append(got - sent_ns)
                    break
            time.sleep(rng.uniform(*gap_s))
    finally:
        sock.close()
    return EchoResult(rtts, count)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Hop:
    source: str
    icmp_type: int
    code: int


def udp_ttl_probe(
    tb: Testbed, node: str, dst: str, ttl: int, port: int, v6: bool = False, timeout_s: float = 1.0
) -> Hop | None:
    """One UDP probe with a hop limit; the ICMP error it provokes (matched by quoted port)."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    icmp_proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    listener = tb.socket(node, family, socket.SOCK_RAW, icmp_proto)
    sender = tb.socket(node, family, socket.SOCK_DGRAM)
    try:
        listener.setblocking(False)
        if v6:
            sender.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_UNICAST_HOPS, ttl)
        else:
            sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        sender.sendto(b"probe" * 4, (dst, port))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([listener], [], [], left)[0]:
                return None
            data, address = listener.recvfrom(2048)
            # v4 raw sockets deliver the whole IP packet, ICMPv6 ones the message only
            try:
                quoted = packets.quoted_probe(data)
            except packets.PacketError:
                continue
            if quoted is None or quoted.proto != socket.IPPROTO_UDP or quoted.dport != port:
                continue
            return Hop(address[0], quoted.icmp_type, quoted.icmp_code)
        return None
    finally:
        listener.close()
        sender.close()


def echo_once(tb: Testbed, node: str, dst: str, v6: bool = False, timeout_s: float = 1.0) -> bool:
    """One ICMP(v6) echo from ``node`` to ``dst``; True when the reply came."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = tb.socket(node, family, socket.SOCK_RAW, proto)
    ident = random.randrange(1, 0xFFFF)
    try:
        sock.setblocking(False)
        sock.sendto(echo_request(ident, 1, v6), (dst, 0))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return False
            reply = _echo_reply(sock.recv(2048), v6)
            if reply is not None and reply.ident == ident:
                return True
        return False
    finally:
        sock.close()
