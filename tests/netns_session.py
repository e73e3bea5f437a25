"""Run one measurement inside a testbed node: `packetlab controller` and `packetlab endpoint`
both in that node's namespace (the controller on the node's loopback), the endpoint exporting
the node's testbed addresses with raw sockets on."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKETLAB = [sys.executable, "-m", "packetlab"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PORT = 7777  # inside the node's own namespace: nothing else listens there


def init_home(path: Path) -> Path:
    subprocess.run([*PACKETLAB, "init", str(path)], check=True, capture_output=True)
    return path


def endpoint_config(home: Path, tb: Any, node: str, guardian: str = "") -> Path:
    """An endpoint.toml for ``node``: its testbed addresses, raw sockets, the given
    [guardian] TOML (default policy when empty)."""
    text = (home / "endpoint.toml").read_text()
    text = text[: text.index("[guardian")]  # drop init's loopback allowance
    v4 = [f"{a}/24" for a in tb.addrs(node, 4)]
    v6 = [f"{a}/64" for a in tb.addrs(node, 6)]
    text = re.sub(r"local_ipv4 = .*", f"local_ipv4 = {v4!r}".replace("'", '"'), text)
    text = re.sub(r"local_ipv6 = .*", f"local_ipv6 = {v6!r}".replace("'", '"'), text)
    text = re.sub(r"transports = .*", 'transports = ["raw", "tcp", "udp"]', text)
    path = home / f"endpoint-{node}.toml"
    path.write_text(text + "\n" + guardian)
    return path


def measure(
    tb: Any,
    node: str,
    home: Path,
    config: Path,
    experiment: str | Path,
    *args: str,
    timeout: float = 60,
) -> str:
    """Run ``experiment`` (an examples/ name or a path) on an endpoint in ``node``; return
    what the controller printed. Raises AssertionError with both logs when it fails."""
    script = experiment if isinstance(experiment, Path) else EXAMPLES / experiment
    controller = tb.popen(
        node,
        [*PACKETLAB, "--home", str(home), "controller", "-a", f"127.0.0.1:{PORT}", "-n", "1",
         str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    endpoint = tb.popen(
        node,
        [*PACKETLAB, "--home", str(home), "endpoint", "-c", str(config), f"127.0.0.1:{PORT}",
         "--sessions", "1", "--attempts", "20"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        out, err = controller.communicate(timeout=timeout)
        _, eerr = endpoint.communicate(timeout=30)
    finally:
        for process in (controller, endpoint):
            if process.poll() is None:
                process.kill()
                process.wait()
    if controller.returncode != 0:
        raise AssertionError(f"controller failed:\n{out}\n{err}\nendpoint:\n{eerr}")
    return str(out)
