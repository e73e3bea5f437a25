"""Scheduled-send precision: |kernel TX stamp - requested time| over scheduled UDP sends.

Needs root: it makes two network namespaces joined by a veth pair (198.18.0.1 <-> 198.18.0.2),
runs a controller and an endpoint in the first, a sink in the second, schedules N sends at a
fixed spacing on the endpoint's clock, and reads the actual send times from the ntags.
Everything it creates is removed at the end. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys

PACKETLAB = [sys.executable, "-m", "packetlab"]
NS_A, NS_B = "plbench-a", "plbench-b"
ADDR_A, ADDR_B = "198.18.0.1", "198.18.0.2"
SINK_PORT = 9999


def ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


def make_namespaces() -> None:
    ip("netns", "add", NS_A)
    ip("netns", "add", NS_B)
    ip(
        "link",
        "add",
        "plbench-va",
        "netns",
        NS_A,
        "type",
        "veth",
        "peer",
        "plbench-vb",
        "netns",
        NS_B,
    )
    for ns, dev, addr in ((NS_A, "plbench-va", ADDR_A), (NS_B, "plbench-vb", ADDR_B)):
        ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")
        ip("-n", ns, "link", "set", "lo", "up")


def remove_namespaces() -> None:
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)


def outer(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        print("sched_send: needs root (network namespaces); skipped")
        print(json.dumps({"p50_us": None, "p99_us": None, "skipped": "not root"}))
        return
    remove_namespaces()
    make_namespaces()
    sink = None
    try:
        sink = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                NS_B,
                sys.executable,
                "-c",
                "import socket,time\ns=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)\n"
                f"s.bind(('{ADDR_B}',{SINK_PORT}))\ns.settimeout(1)\nend=time.time()+{args.timeout}\n"
                "while time.time()<end:\n  try: s.recv(2048)\n  except OSError: pass\n",
            ],
        )
        inner = subprocess.run(
            [
                "ip",
                "netns",
                "exec",
                NS_A,
                sys.executable,
                __file__,
                "--inner",
                "--sends",
                str(args.sends),
                "--spacing-ms",
                str(args.spacing_ms),
            ],
            capture_output=True,
            text=True,
            timeout=args.timeout,
            check=False,
        )
        sys.stdout.write(inner.stdout)
        if inner.returncode != 0:
            sys.stderr.write(inner.stderr)
            raise SystemExit("sched_send: the run failed")
    finally:
        if sink is not None:
            sink.kill()
            sink.wait()
        remove_namespaces()


def inner(args: argparse.Namespace) -> None:
    from _harness import fresh_home, one_session
    from packetlab.controller.api import EndpointHandle
    from packetlab.wire import Ntag

    errors: list[int] = []
    signed: list[int] = []

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        await endpoint.open_udp(1)
        start = await endpoint.now() + 200_000_000
        spacing = int(args.spacing_ms * 1_000_000)
        wanted = {i + 1: start + i * spacing for i in range(args.sends)}
        for tag, when in wanted.items():
            await endpoint.send_udp(1, ADDR_B, SINK_PORT, b"x" * 64, at=when, tag=tag)
        for _ in range(args.sends):
            note = await endpoint.next(Ntag, sktid=1, timeout=5)
            signed.append(note.time - wanted[note.tag])
            errors.append(abs(signed[-1]))
        await endpoint.close(1)

    with fresh_home() as home:
        asyncio.run(one_session(home, experiment))
    ordered = sorted(errors)
    p50 = statistics.median(ordered) / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    print(
        f"{len(errors)} sends at {args.spacing_ms} ms spacing: |error| p50 {p50:.1f} us, "
        f"p99 {p99:.1f} us, max {ordered[-1] / 1000:.1f} us; signed p50 "
        f"{statistics.median(signed) / 1000:.1f} us, {sum(e < 0 for e in signed)} early"
    )
    print(json.dumps({"p50_us": round(p50, 1), "p99_us": round(p99, 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--spacing-ms", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--inner", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    (inner if args.inner else outer)(args)


if __name__ == "__main__":
    main()
