"""Probing helpers for the testbed tests: ICMP echo with kernel timestamps, TTL-limited probes.

Sockets are made inside a node's namespace (``Testbed.socket``); every loop is bounded in
count and time, and traffic goes only to addresses of the testbed under test.
"""

from __future__ import annotations

import random
import select
import socket
import struct
import time
from dataclasses import dataclass

from packetlab.endpoint.timestamps import drain_tx, rx_time
from packetlab.testbed import Testbed

SO_TIMESTAMPING = 37
SO_TIMESTAMPNS = 35
TS_TX_SOFTWARE = 1 << 1
TS_RX_SOFTWARE = 1 << 3
TS_SOFTWARE = 1 << 4
TS_OPT_TSONLY = 1 << 11
ICMP_ECHO, ICMP_ECHO_REPLY, ICMP_TIME_EXCEEDED, ICMP_UNREACH = 8, 0, 11, 3
ICMP6_ECHO, ICMP6_ECHO_REPLY, ICMP6_TIME_EXCEEDED, ICMP6_UNREACH = 128, 129, 3, 1


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def echo_request(ident: int, seq: int, v6: bool = False, size: int = 56) -> bytes:
    head = struct.pack("!BBHHH", ICMP6_ECHO if v6 else ICMP_ECHO, 0, 0, ident, seq)
    body = head + bytes(size)
    if v6:
        return body  # the kernel fills the ICMPv6 checksum
    return body[:2] + struct.pack("!H", checksum(body)) + body[4:]


def _tx_stamp(sock: socket.socket) -> int | None:
    stamps = [stamp for _, stamp in drain_tx(sock) if stamp]
    return stamps[-1] if stamps else None


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
            TS_TX_SOFTWARE | TS_RX_SOFTWARE | TS_SOFTWARE | TS_OPT_TSONLY,
        )
        sock.setblocking(False)
        ident = rng.randrange(1, 0xFFFF)
        for seq in range(count):
            sock.sendto(echo_request(ident, seq), (dst, 0))
            sent_ns = _tx_stamp(sock)
            deadline = time.monotonic() + timeout_s
            while (left := deadline - time.monotonic()) > 0:
                if not select.select([sock], [], [], left)[0]:
                    break
                try:
                    data, anc, _, _ = sock.recvmsg(2048, 512)
                except BlockingIOError:
                    continue
                offset = (data[0] & 0x0F) * 4
                if data[offset] == ICMP_ECHO_REPLY and struct.unpack_from(
                    "!HH", data, offset + 4
                ) == (ident, seq):
                    got = rx_time(anc)
                    sent_ns = sent_ns or _tx_stamp(sock)
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


def _quoted_port(data: bytes, v6: bool) -> int | None:
    """Destination port of the UDP header quoted in an ICMP error (v4 data starts with IP)."""
    if v6:
        inner = 8  # ICMPv6 raw sockets deliver the ICMPv6 message only
        if len(data) < inner + 40 + 4 or data[inner + 6] != socket.IPPROTO_UDP:
            return None
        return int(struct.unpack_from("!H", data, inner + 40 + 2)[0])
    outer = (data[0] & 0x0F) * 4
    inner = outer + 8
    if len(data) < inner + 20 + 4 or data[inner + 9] != socket.IPPROTO_UDP:
        return None
    inner_len = (data[inner] & 0x0F) * 4
    return int(struct.unpack_from("!H", data, inner + inner_len + 2)[0])


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
            if _quoted_port(data, v6) != port:
                continue
            offset = 0 if v6 else (data[0] & 0x0F) * 4
            return Hop(address[0], data[offset], data[offset + 1])
        return None
    finally:
        listener.close()
        sender.close()


def echo_once(tb: Testbed, node: str, dst: str, v6: bool = False, timeout_s: float = 1.0) -> bool:
    """One ICMP(v6) echo from ``node`` to ``dst``; True when the reply came."""
    family = socket.AF_INET6 if v6 else socket.AF_INET
    proto = socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP
    sock = tb.socket(node, family, socket.SOCK_RAW, proto)
    ident, want = random.randrange(1, 0xFFFF), ICMP6_ECHO_REPLY if v6 else ICMP_ECHO_REPLY
    try:
        sock.setblocking(False)
        sock.sendto(echo_request(ident, 1, v6), (dst, 0))
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([sock], [], [], left)[0]:
                return False
            data = sock.recv(2048)
            offset = 0 if v6 else (data[0] & 0x0F) * 4
            if data[offset] == want and struct.unpack_from("!H", data, offset + 4)[0] == ident:
                return True
        return False
    finally:
        sock.close()
