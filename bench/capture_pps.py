"""Capture throughput: packets matched by an ncap filter on a raw socket and delivered to the
controller as ndata, each with its kernel RX timestamp.

A flood process sends --packets UDP datagrams to 127.0.0.1:PORT (a bound sink) at --rate per
second; the endpoint's raw socket carries the filter "udp dst port PORT" (a tcpdump expression
compiled with libpcap and sent as pktlab eBPF). The figure is ndata messages per second at the
controller, from the first to the last, and lost = flood packets - ndata.
Goal: >= 50,000 per second. Needs root (raw sockets). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from _harness import fresh_home, one_session
from packetlab import wire as w
from packetlab.controller.api import EndpointHandle

FLOOD = """
import socket, sys, time
port, count, rate = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
payload, target, chunk = bytes(32), ("127.0.0.1", port), 64
start = time.perf_counter()
for first in range(0, count, chunk):
    for _ in range(min(chunk, count - first)):
        sock.sendto(payload, target)
    ahead = (first + chunk) / rate - (time.perf_counter() - start)
    if ahead > 0:
        time.sleep(ahead)
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--rate", type=float, default=80_000, help="flood packets per second")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("capture_pps needs root (raw sockets)")
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.bind(("127.0.0.1", 0))
    with fresh_home() as home:
        text = (home / "endpoint.toml").read_text()
        (home / "endpoint.toml").write_text(text.replace('["tcp", "udp"]', '["raw", "tcp", "udp"]'))
        figures = asyncio.run(run(home, sink.getsockname()[1], args.packets, args.rate))
    sink.close()
    print(
        f"{args.packets} flood packets at {args.rate:,.0f}/s: {figures['pps']:,} ndata per second"
        f" delivered, {figures['lost']} lost"
    )
    print(json.dumps({"pps": figures["pps"]}))


async def run(home: Path, port: int, packets: int, rate: float) -> dict[str, int]:
    figures: dict[str, int] = {}

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        await endpoint.open_raw(1)
        await endpoint.capture(1, f"udp dst port {port}")
        flood = subprocess.Popen([sys.executable, "-c", FLOOD, str(port), str(packets), str(rate)])
        try:
            got = await endpoint.collect(w.Ndata, packets, sktid=1, timeout=5 + packets / rate)
        finally:
            flood.wait(timeout=60)
        # the kernel drops what the endpoint cannot take (a full socket buffer): delivered
        # packets over the endpoint-clock time they span is the rate it sustained
        span = (got[-1].time - got[0].time) / 1e9 if len(got) > 1 else 0
        assert all(len(n.data) == 60 for n in got), "filter passed a packet it should not"
        figures["pps"] = round((len(got) - 1) / span) if span > 0 else 0
        figures["lost"] = packets - len(got)
        await endpoint.close(1)

    await one_session(home, experiment)
    return figures


if __name__ == "__main__":
    main()
