"""`make demo`: a real measurement on one machine, no root, loopback only.

1. `packetlab init` into a temporary directory;
2. a DNS responder and an HTTP server on 127.0.0.1;
3. our controller running examples/dns.py, then examples/http_get.py, and our endpoint dialing
   it each time (both as real `packetlab` processes over TLS with the init certificates);
4. the results as the experiments print them.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from local_services import DnsResponder, HttpServer

HERE = Path(__file__).resolve().parent.parent / "examples"
PACKETLAB = [sys.executable, "-m", "packetlab"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def measure(
    home: Path,
    experiment: str,
    *args: str,
    endpoint_config: Path | None = None,
    endpoint_args: Sequence[str] = (),
) -> str:
    port = free_port()
    controller = subprocess.Popen(
        [
            *PACKETLAB,
            "--home",
            str(home),
            "controller",
            "-a",
            f"127.0.0.1:{port}",
            "-n",
            "1",
            str(HERE / experiment),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    endpoint = subprocess.run(
        [
            *PACKETLAB,
            "--home",
            str(home),
            "endpoint",
            *(["-c", str(endpoint_config)] if endpoint_config else []),
            *endpoint_args,
            f"127.0.0.1:{port}",
            "--sessions",
            "1",
            "--attempts",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        out, err = controller.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        controller.kill()
        out, err = controller.communicate()
    if controller.returncode != 0 or endpoint.returncode != 0:
        sys.stderr.write(err + endpoint.stderr)
        raise SystemExit(f"demo: {experiment} failed")
    return out


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="packetlab-demo-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([*PACKETLAB, "init", str(home)], check=True, capture_output=True)
        print(f"packetlab init {home}: keys, certificates and configs created")
        site = Path(tmp) / "site"
        site.mkdir()
        (site / "index.html").write_text("<html><body>Hello from packetlab.</body></html>\n")
        dns_server = DnsResponder({"www.example.org": "10.1.2.3"})
        http_server = HttpServer(site)
        try:
            print(f"\n== examples/dns.py www.example.org 127.0.0.1:{dns_server.port} ==")
            print(
                measure(home, "dns.py", "www.example.org", f"127.0.0.1:{dns_server.port}"), end=""
            )
            print(f"\n== examples/http_get.py 127.0.0.1:{http_server.port} /index.html ==")
            print(
                measure(home, "http_get.py", f"127.0.0.1:{http_server.port}", "/index.html"), end=""
            )
        finally:
            dns_server.close()
            http_server.close()


if __name__ == "__main__":
    main()
