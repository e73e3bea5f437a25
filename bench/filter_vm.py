"""Cost of the userspace eBPF VM: the shipped traceroute receive filter, translated once to
Python, run over a realistic mix of received IPv4 packets (ICMP time-exceeded quoting a UDP
probe, ICMP echo replies, TCP SYN-ACKs, and unrelated UDP). Goal: <= 2 us per packet.
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import time

from packetlab import packets as p
from packetlab.programs import compile_filter
from packetlab.programs.builtin import builtin_program


def packet_mix(count: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    me, router, target = "198.18.1.2", "198.18.1.1", "198.18.3.2"
    probe = p.udp_probe(me, target, 40000, 33434, bytes(8), ttl=1)
    kinds = [
        p.IPv4(router, me, payload=p.ICMP(11, 0, payload=probe[:28])).build(),  # time exceeded
        p.IPv4(target, me, payload=p.ICMP(3, 3, payload=probe[:28])).build(),  # port unreachable
        p.IPv4(target, me, payload=p.ICMP(0, 0, 7, 1, bytes(56))).build(),  # echo reply
        p.IPv4(target, me, payload=p.TCP(80, 40000, 1, 2, p.SYN | p.ACK)).build(),  # SYN-ACK
        p.udp_probe("198.18.9.9", me, 53, 5353, bytes(64)),  # unrelated
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
    accepted = sum(1 for packet in packets if function(packet))
    best = float("inf")
    for _ in range(args.rounds):
        start = time.perf_counter()
        for packet in packets:
            function(packet)
        best = min(best, time.perf_counter() - start)
    us = best / len(packets) * 1e6
    print(
        f"traceroute_recv filter, translated eBPF: {us:.3f} us per packet "
        f"({len(packets)} packets, {accepted} accepted, best of {args.rounds})"
    )
    print(json.dumps({"us_per_packet": round(us, 3)}))


if __name__ == "__main__":
    main()
