"""`make demo`: real measurements with the `packetlab` commands, end to end.

1. `packetlab init` into a temporary directory (keys, certificates, configs);
2. as root: the line testbed (ep - r1 - r2 - r3 - target in network namespaces, 2 ms one
   way per link); from an endpoint in "ep": `packetlab trace` and `packetlab ping` to the
   target, each printed as text (traceroute(8)/ping(8)) and as RIPE Atlas JSON;
3. on loopback (no root needed): `packetlab dig` and `packetlab http` against a DNS
   responder and an HTTP server on 127.0.0.1.
Each command is a controller for its measurement; a `packetlab endpoint` process dials it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from local_services import DnsResponder, HttpServer

PACKETLAB = [sys.executable, "-m", "packetlab"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def run(
    home: Path,
    command: Sequence[str],
    *,
    endpoint_config: Path | None = None,
    netns: str | None = None,
) -> str:
    """`packetlab COMMAND` and an endpoint dialling it (both in ``netns`` when given); the
    command's stdout. Exits with both logs when either fails."""
    port = free_port() if netns is None else 7777
    prefix = ["ip", "netns", "exec", netns] if netns else []
    print(f"\n$ packetlab {' '.join(command)}", flush=True)
    controller = subprocess.Popen(
        [*prefix, *PACKETLAB, "--home", str(home), *command, "-a", f"127.0.0.1:{port}",
         "--wait", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    endpoint = subprocess.Popen(
        [*prefix, *PACKETLAB, "--home", str(home), "endpoint",
         *(["-c", str(endpoint_config)] if endpoint_config else []),
         f"127.0.0.1:{port}", "--sessions", "1", "--attempts", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = controller.communicate(timeout=60)
        if controller.returncode:
            endpoint.kill()  # it would go on dialling a controller that is gone
        _, ep_err = endpoint.communicate(timeout=30)
    finally:
        for proc in (controller, endpoint):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if controller.returncode or endpoint.returncode:
        sys.stderr.write(err + ep_err)
        raise SystemExit(f"demo: packetlab {command[0]} failed")
    return out


def testbed_part(home: Path) -> None:
    from packetlab.testbed import Testbed, Topology, preflight
    from packetlab.testbed.sessions import node_endpoint_config

    why = "not root" if os.geteuid() else preflight(need_tc=False)
    if why:
        print(f"\n(testbed part skipped: {why}; run `make demo` as root for trace and ping)")
        return
    topology = Topology.load("line").with_link_delay(2)
    with Testbed.up(topology, name=f"demo{os.getpid() % 100000}") as tb:
        target = tb.addr("target", "r3", 4)
        config = node_endpoint_config(home, tb, "ep")
        netns = tb.netns("ep")
        print(f"\n== line testbed up: ep {tb.addr('ep', 'r1')} -> r1 -> r2 -> r3 -> target "
              f"{target}, 2 ms one way per link ==")  # fmt: skip
        for command in (["trace", target], ["ping", target, "-C", "5", "-i", "0.2"]):
            for fmt in ("text", "json"):
                print(run(home, [*command, "--format", fmt], endpoint_config=config,
                          netns=netns), end="")  # fmt: skip


def loopback_part(home: Path, tmp: Path) -> None:
    site = tmp / "site"
    site.mkdir()
    (site / "index.html").write_text("<html><body>Hello from packetlab.</body></html>\n")
    dns_server = DnsResponder({"www.example.org": "10.1.2.3"})
    http_server = HttpServer(site)
    print("\n== on loopback: a DNS responder and an HTTP server on 127.0.0.1 ==")
    try:
        for fmt in ("text", "json"):
            print(run(home, ["dig", "127.0.0.1", "www.example.org", "-p", str(dns_server.port),
                             "--format", fmt]), end="")  # fmt: skip
        url = f"http://127.0.0.1:{http_server.port}/index.html"
        print(run(home, ["http", url, "--format", "text"]), end="")
    finally:
        dns_server.close()
        http_server.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="packetlab-demo-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([*PACKETLAB, "init", str(home)], check=True, capture_output=True)
        print(f"packetlab init {home}: keys, certificates and configs created")
        testbed_part(home)
        loopback_part(home, Path(tmp))


if __name__ == "__main__":
    main()
