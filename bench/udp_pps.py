"""Scheduled 64-byte UDP sends through one endpoint, each with tag != 0 and its ntag.

The controller pipelines nsend requests (all scheduled "now") to a local sink, in batches of
call_many with at most --window unanswered; the figure is nsend requests per second from the
first request to the last ntag, and lost = nsend - ntag.
Goal: >= 50,000 per second, nothing lost. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import time
from pathlib import Path

from _harness import fresh_home, one_session
from packetlab import wire as w
from packetlab.controller.api import EndpointHandle

PAYLOAD = bytes(64)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--packets", type=int, default=50_000)
    parser.add_argument("--window", type=int, default=2000, help="requests in flight at most")
    args = parser.parse_args()
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    with fresh_home() as home:
        figures = asyncio.run(run(home, sink.getsockname()[1], args.packets, args.window))
    sink.close()
    print(f"{args.packets} tagged UDP sends: {figures['pps']:,} per second, {figures['lost']} lost")
    print(json.dumps(figures))


async def run(home: Path, port: int, packets: int, window: int) -> dict[str, int]:
    figures: dict[str, int] = {}
    chunk = max(1, min(500, window // 4))

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        await endpoint.open_udp(1, rbufsz=1 << 20)
        sink = w.addr_bytes("127.0.0.1")
        start = time.perf_counter()
        in_flight: set[asyncio.Future[None]] = set()
        for first in range(0, packets, chunk):
            batch = [
                w.Nsend(1, 4, w.Proto.UDP, 0, i % 65535 + 1, PAYLOAD, sink, port)
                for i in range(first, min(first + chunk, packets))
            ]
            in_flight.add(asyncio.ensure_future(endpoint.call_many(batch)))
            if len(in_flight) * chunk >= window:  # keep at most `window` requests unanswered
                done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    task.result()
        await asyncio.gather(*in_flight)
        tags = await endpoint.collect(w.Ntag, packets, sktid=1, timeout=30)
        elapsed = time.perf_counter() - start
        figures["pps"] = round(packets / elapsed)
        figures["lost"] = packets - len(tags)
        await endpoint.close(1)

    await one_session(home, experiment)
    return figures


if __name__ == "__main__":
    main()
