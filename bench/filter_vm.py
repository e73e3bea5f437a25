"""Cost of the userspace eBPF VM: the shipped traceroute receive filter, translated once to
Python, run over a realistic mix of received IPv4 packets (ICMP time-exceeded quoting a UDP
probe, ICMP echo replies, TCP SYN-ACKs, and unrelated UDP). Goal: <= 2 us per packet.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import struct
import time

from packetlab.programs import compile_filter
from packetlab.programs.builtin import builtin_program


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF


def _ipv4(proto: int, src: str, dst: str, payload: bytes, ttl: int = 64) -> bytes:
    addr = [bytes(int(x) for x in a.split(".")) for a in (src, dst)]
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), 1, 0, ttl, proto, 0, *addr)
    header = header[:10] + struct.pack("!H", _checksum(header)) + header[12:]
    return header + payload


def _icmp(kind: int, code: int, rest: bytes) -> bytes:
    body = struct.pack("!BBH", kind, code, 0) + rest
    return body[:2] + struct.pack("!H", _checksum(body)) + body[4:]


def packet_mix(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    probe = _ipv4(
        17, "198.18.1.2", "198.18.3.2", struct.pack("!HHHH", 40000, 33434, 16, 0) + bytes(8), ttl=1
    )
    kinds = [
        _ipv4(1, "198.18.1.1", "198.18.1.2", _icmp(11, 0, bytes(4) + probe[:28])),  # time exceeded
        _ipv4(
            1, "198.18.3.2", "198.18.1.2", _icmp(3, 3, bytes(4) + probe[:28])
        ),  # port unreachable
        _ipv4(1, "198.18.3.2", "198.18.1.2", _icmp(0, 0, struct.pack("!HH", 7, 1) + bytes(56))),
        _ipv4(
            6,
            "198.18.3.2",
            "198.18.1.2",
            struct.pack("!HHIIBBHHH", 80, 40000, 1, 2, 0x50, 0x12, 65535, 0, 0),
        ),
        _ipv4(17, "198.18.9.9", "198.18.1.2", struct.pack("!HHHH", 53, 5353, 72, 0) + bytes(64)),
    ]
    weights = [0.35, 0.1, 0.2, 0.15, 0.2]
    return [rng.choices(kinds, weights)[0] for _ in range(count)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7, help="best of this many passes")
    args = parser.parse_args()
    function = compile_filter(builtin_program("traceroute_recv"))
    packets = packet_mix(args.packets)
    accepted = sum(1 for p in packets if function(p))
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        for p in packets:
            function(p)
        best = min(best, time.perf_counter() - start)
    us = best / len(packets) * 1e6
    print(
        f"traceroute_recv filter, translated eBPF: {us:.3f} us per packet "
        f"({len(packets)} packets, {accepted} accepted, best of {args.rounds})"
    )
    print(json.dumps({"us_per_packet": round(us, 3)}))


if __name__ == "__main__":
    main()
