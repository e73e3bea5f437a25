"""Scheduled 64-byte UDP sends through one endpoint, each with tag != 0 and its ntag.

The controller pipelines nsend requests (all scheduled "now") to a local sink; the figure is
nsend requests per second from the first request to the last ntag, and lost = nsend - ntag.
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
from packetlab.controller.api import EndpointHandle
from packetlab.wire import Ntag

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

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        await endpoint.open_udp(1, rbufsz=1 << 20)
        start = time.perf_counter()
        sent = 0
        while sent < packets:
            batch = min(window, packets - sent)
            await asyncio.gather(
                *(
                    endpoint.send_udp(1, "127.0.0.1", port, PAYLOAD, tag=(sent + i) % 65535 + 1)
                    for i in range(batch)
                )
            )
            sent += batch
        tags = 0
        deadline = time.monotonic() + 30
        while tags < packets and time.monotonic() < deadline:
            try:
                await endpoint.next(Ntag, sktid=1, timeout=2)
            except TimeoutError:
                break
            tags += 1
        elapsed = time.perf_counter() - start
        figures["pps"] = round(packets / elapsed)
        figures["lost"] = packets - tags
        await endpoint.close(1)

    await one_session(home, experiment)
    return figures


if __name__ == "__main__":
    main()
