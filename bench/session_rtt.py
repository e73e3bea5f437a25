"""Controller-side request latency over a real TLS session on loopback.

- mread_rtt_ms: median time from sending mread(TIME) to receiving its mdata, at the controller.
- dns_overhead_ms: median over UDP DNS queries of (controller-side time from nsend to the reply's
  ndata) minus the endpoint's own RTT (ndata.time - ntag.time): what the session path adds.

The endpoint is a separate `packetlab endpoint` process; the DNS responder is a local thread.
Goal: <= 0.5 ms per request. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

import dns.message

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from local_services import DnsResponder  # noqa: E402

from _harness import fresh_home, one_session  # noqa: E402
from packetlab.controller.api import EndpointHandle  # noqa: E402
from packetlab.wire import Ndata, Ntag, memmap  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mreads", type=int, default=2000)
    parser.add_argument("--queries", type=int, default=500)
    args = parser.parse_args()
    with fresh_home() as home:
        responder = DnsResponder({"bench.example": "10.9.8.7"})
        try:
            figures = asyncio.run(run(home, responder.port, args.mreads, args.queries))
        finally:
            responder.close()
    print(f"mread round trip: median {figures['mread_rtt_ms']:.3f} ms over {args.mreads}")
    print(f"DNS overhead: median {figures['dns_overhead_ms']:.3f} ms over {args.queries}")
    print(json.dumps(figures))


async def run(home: Path, dns_port: int, mreads: int, queries: int) -> dict[str, float]:
    figures: dict[str, float] = {}

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        rtts = []
        for _ in range(mreads):
            start = time.perf_counter_ns()
            await endpoint.mread(memmap.TIME, 8)
            rtts.append(time.perf_counter_ns() - start)
        figures["mread_rtt_ms"] = round(statistics.median(rtts) / 1e6, 4)
        await endpoint.open_udp(1)
        overheads = []
        for i in range(queries):
            query = dns.message.make_query("bench.example", "A", id=i).to_wire()
            start = time.perf_counter_ns()
            await endpoint.send_udp(1, "127.0.0.1", dns_port, query, tag=i + 1)
            reply = await endpoint.next(Ndata, sktid=1, timeout=5)
            controller_rtt = time.perf_counter_ns() - start
            tag = await endpoint.next(Ntag, sktid=1, timeout=5)
            overheads.append(controller_rtt - (reply.time - tag.time))
        figures["dns_overhead_ms"] = round(statistics.median(overheads) / 1e6, 4)
        await endpoint.close(1)

    await one_session(home, experiment)
    return figures


if __name__ == "__main__":
    main()
