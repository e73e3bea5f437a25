"""How close ping's RTT (endpoint kernel stamps) is to the testbed's configured path delay.

On the line testbed (ep - r1 - r2 - r3 - target, 5 ms one way on every link: 40 ms round
trip), an endpoint in "ep" pings the target; each RTT minus 40 ms is the error of the whole
chain (testbed relays, kernel stamps, our matching). Prints the error's p50 and p99 for ICMP
(and, before the last line, for UDP and TCP probes). Root only. Last line:
{"p50_ms": X, "p99_ms": Y}
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _testbed_bench import line_testbed, path_rtt_ms
from packetlab.measure.ping import ping
from packetlab.testbed.sessions import serve_in_node


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="probes per protocol")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between probes")
    args = parser.parse_args()
    figures: dict[str, dict[str, float]] = {}
    with line_testbed() as (tb, home, config):
        target = tb.addr("target", "r3", 4)
        expected = path_rtt_ms(tb)
        for proto in ("UDP", "TCP", "ICMP"):
            result = serve_in_node(
                tb, "ep", home, config,
                lambda ep, proto=proto: ping(ep, target, count=args.count,
                                             interval=args.interval, proto=proto, timeout=1.0),
                timeout=120,
            )  # fmt: skip
            errors = [rtt - expected for rtt in result.rtts()]
            if not errors:
                sys.exit(f"{proto}: no answers")
            figures[proto] = {
                "p50_ms": round(percentile(errors, 0.5), 4),
                "p99_ms": round(percentile(errors, 0.99), 4),
                "mean_ms": round(statistics.fmean(errors), 4),
                "answered": len(errors),
            }
            print(f"{proto:4s} {len(errors)}/{args.count} answered; RTT - {expected:g} ms: "
                  f"p50 {figures[proto]['p50_ms']} p99 {figures[proto]['p99_ms']} ms")  # fmt: skip
    icmp = figures["ICMP"]
    print(json.dumps({"p50_ms": icmp["p50_ms"], "p99_ms": icmp["p99_ms"]}))


if __name__ == "__main__":
    main()
