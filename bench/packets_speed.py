"""Microseconds per operation of packetlab.packets against scapy and dpkt, on a 60-byte IPv4 UDP
packet (32-byte payload): build, parse, summarize, and the Internet checksum of 1500 bytes.

Each figure is the best of --repeat timeit runs. Goal: summarize < 2 us. The last line is one
JSON object.
"""

from __future__ import annotations

import argparse
import json
import timeit
from array import array
from collections.abc import Callable

import dpkt
from scapy.compat import raw
from scapy.layers.inet import IP as ScapyIP
from scapy.layers.inet import UDP as ScapyUDP

from packetlab import packets as p

SRC, DST = "198.18.0.1", "198.18.0.2"
PAYLOAD = bytes(32)
MTU_BYTES = bytes(range(256)) * 5 + bytes(220)


def _best_us(func: Callable[[], object], number: int, repeat: int) -> float:
    return min(timeit.repeat(func, number=number, repeat=repeat)) / number * 1e6


def _array_checksum(data: bytes) -> int:
    """The usual alternative: sum 16-bit words of an array (native order), fold, swap."""
    if len(data) & 1:
        data += b"\0"
    total = sum(array("H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    folded = ~total & 0xFFFF
    return int.from_bytes(folded.to_bytes(2, "little"), "big")


def _dpkt_build() -> bytes:
    udp = dpkt.udp.UDP(sport=1234, dport=53, data=PAYLOAD, ulen=8 + len(PAYLOAD))
    ip = dpkt.ip.IP(src=p.addr_bytes(SRC), dst=p.addr_bytes(DST), p=17, ttl=64, id=0, data=udp)
    ip.len = 20 + len(udp)
    return bytes(ip)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000, help="calls per timing run")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    n, r = args.number, args.repeat
    wire = p.udp_probe(SRC, DST, 1234, 53, PAYLOAD)
    assert len(wire) == 60
    assert wire == raw(ScapyIP(src=SRC, dst=DST, id=0) / ScapyUDP(sport=1234, dport=53) / PAYLOAD)
    assert wire == _dpkt_build()
    assert _array_checksum(MTU_BYTES) == p.internet_checksum(MTU_BYTES)
    src, dst = p.addr_bytes(SRC), p.addr_bytes(DST)
    error = p.IPv4("198.18.1.1", SRC, payload=p.ICMP(11, 0, payload=wire[:28])).build()

    def build_objects() -> bytes:
        return p.IPv4(src, dst, payload=p.UDP(1234, 53, PAYLOAD)).build()

    def scapy_build() -> bytes:
        return bytes(raw(ScapyIP(src=SRC, dst=DST) / ScapyUDP(sport=1234, dport=53) / PAYLOAD))

    slow = max(n // 50, 100)
    figures = {
        "summarize_us": _best_us(lambda: p.summarize(wire), n, r),
        "build_udp_us": _best_us(lambda: p.udp_probe(SRC, DST, 1234, 53, PAYLOAD), n, r),
        "build_udp_objects_us": _best_us(build_objects, n, r),
        "parse_us": _best_us(lambda: p.parse_ip(wire), n, r),
        "quoted_probe_us": _best_us(lambda: p.quoted_probe(error), n, r),
        "checksum_1500_us": _best_us(lambda: p.internet_checksum(MTU_BYTES), n, r),
        "array_checksum_1500_us": _best_us(lambda: _array_checksum(MTU_BYTES), n, r),
        "scapy_build_udp_us": _best_us(scapy_build, slow, r),
        "scapy_parse_us": _best_us(lambda: ScapyIP(wire).payload.dport, slow, r),
        "dpkt_build_udp_us": _best_us(_dpkt_build, n // 4, r),
        "dpkt_parse_us": _best_us(lambda: dpkt.ip.IP(wire).data.dport, n // 4, r),
    }
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value:9.2f} us")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))


if __name__ == "__main__":
    main()
