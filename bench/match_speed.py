"""Cost of send_train's response matching (sans-IO, no endpoint needed).

A 1000-probe Paris UDP train (one flow: the same ports on every probe, told apart by IP ID and
UDP checksum) and, for each probe, an ICMP time exceeded quoting it; and a 1000-probe ICMP
echo train with its replies. Times building the index (per probe) and feeding the responses
(per response), best of --repeat runs. Every response must match its own probe.
Last line: {"index_us_per_probe": A, "te_us_per_response": B, "echo_us_per_response": C}
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from packetlab import packets
from packetlab.measure.matching import TrainMatcher
from packetlab.packets.ip import IPv4
from packetlab.packets.transport import ICMP

SRC, DST, ROUTER = "198.18.1.1", "198.18.4.2", "198.18.2.2"
MS = 1_000_000


def paris_train(n: int) -> tuple[list[bytes], list[bytes]]:
    probes = [
        packets.udp_probe(SRC, DST, 33000, 33435, i.to_bytes(2, "big"), 1 + i % 30, 1 + i)
        for i in range(n)
    ]
    errors = [IPv4(ROUTER, SRC, 1, ICMP(11, 0, payload=p[:28]), 64).build() for p in probes]
    return probes, errors


def echo_train(n: int) -> tuple[list[bytes], list[bytes]]:
    probes = [packets.icmp_echo(SRC, DST, 4242, i, b"x" * 8) for i in range(n)]
    replies = [IPv4(DST, SRC, 1, ICMP(0, 0, 4242, i, b"x" * 8), 61).build() for i in range(n)]
    return probes, replies


def timed(probes: list[bytes], responses: list[bytes]) -> tuple[float, float]:
    sent = [i * MS for i in range(len(probes))]
    start = time.perf_counter()
    matcher = TrainMatcher(probes, sent, 2_000 * MS)
    built = time.perf_counter()
    for i, response in enumerate(responses):
        matcher.feed(i * MS + 40 * MS, response)
    done = time.perf_counter()
    if matcher.answered != len(probes) or any(
        m.response != r for m, r in zip(matcher.results, responses, strict=True)
    ):
        sys.exit("a response did not match its own probe")  # fmt: skip
    n = len(probes)
    return (built - start) / n * 1e6, (done - built) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--probes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    te, echo = paris_train(args.probes), echo_train(args.probes)
    te_runs = [timed(*te) for _ in range(args.repeat)]
    echo_runs = [timed(*echo) for _ in range(args.repeat)]
    index = min(r[0] for r in te_runs + echo_runs)
    te_us = min(r[1] for r in te_runs)
    echo_us = min(r[1] for r in echo_runs)
    print(f"{args.probes}-probe trains, best of {args.repeat}: index {index:.2f} us/probe, "
          f"time exceeded {te_us:.2f} us/response, echo {echo_us:.2f} us/response")  # fmt: skip
    print(json.dumps({"index_us_per_probe": round(index, 3), "te_us_per_response": round(te_us, 3),
                      "echo_us_per_response": round(echo_us, 3)}))  # fmt: skip


if __name__ == "__main__":
    main()
