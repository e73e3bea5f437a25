"""packetlab itself inside a testbed: an endpoint config for a node, and a controller here
serving one measurement to an endpoint process running in a node.

    config = node_endpoint_config(home, tb, "ep")      # home from `packetlab init`
    result = serve_in_node(tb, "ep", home, config, lambda ep: ping(ep, "198.18.4.2"))

The controller listens on a socket made in the node's namespace (its loopback): the endpoint,
started in that namespace, dials 127.0.0.1:PORT and measures from the node, while the
measurement function runs in this process and returns Python objects.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from packetlab.controller.api import EndpointHandle
from packetlab.controller.config import load_controller_config
from packetlab.controller.server import Controller
from packetlab.testbed._errors import TestbedError

if TYPE_CHECKING:
    from packetlab.testbed.testbed import Testbed

T = TypeVar("T")
PACKETLAB = [sys.executable, "-m", "packetlab"]


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (from /proc/PID/task/TID/children), parents first."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                text = Path(f"/proc/{parent}/task/{tid}/children").read_text()
            except OSError:
                continue
            for child in map(int, text.split()):
                if child not in found:
                    found.append(child)
                    todo.append(child)
    return found


def node_endpoint_config(home: Path, tb: Testbed, node: str, guardian: str = "") -> Path:
    """An endpoint.toml for ``node`` (written into ``home``) from init's: the node's testbed
    addresses, raw sockets, and the given ``[guardian]`` TOML (the default policy when empty;
    init's loopback allowance is dropped)."""
    text = (home / "endpoint.toml").read_text()
    if "[guardian" in text:
        text = text[: text.index("[guardian")]
    v4 = ", ".join(f'"{a}/24"' for a in tb.addrs(node, 4))
    v6 = ", ".join(f'"{a}/64"' for a in tb.addrs(node, 6))
    text = re.sub(r"local_ipv4 = .*", f"local_ipv4 = [{v4}]", text)
    text = re.sub(r"local_ipv6 = .*", f"local_ipv6 = [{v6}]", text)
    text = re.sub(r"transports = .*", 'transports = ["raw", "tcp", "udp"]', text)
    path = home / f"endpoint-{node}.toml"
    path.write_text(text + "\n" + guardian)
    return path


def serve_in_node(
    tb: Testbed,
    node: str,
    home: Path,
    config: Path,
    measurement: Callable[[EndpointHandle], Awaitable[T]],
    *,
    timeout: float = 60,
    endpoint_args: tuple[str, ...] = (),
) -> T:
    """Serve ``measurement`` to one endpoint process in ``node``; return what it returned.
    Raises what it raised, or TestbedError with the endpoint's stderr when the session failed."""
    return asyncio.run(
        serve_in_node_async(
            tb, node, home, config, measurement, timeout=timeout, endpoint_args=endpoint_args
        )
    )


async def serve_in_node_async(
    tb: Testbed,
    node: str,
    home: Path,
    config: Path,
    measurement: Callable[[EndpointHandle], Awaitable[T]],
    *,
    timeout: float = 60,
    endpoint_args: tuple[str, ...] = (),
) -> T:
    results: list[T] = []

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        results.append(await measurement(endpoint))

    listener = tb.socket(node, socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    controller = Controller(
        load_controller_config(home / "controller.toml"), experiment, [], max_endpoints=1
    )
    log = home / f"endpoint-{node}-{port}.err"
    with log.open("w") as err:
        proc = tb.popen(
            node,
            [*PACKETLAB, "--home", str(home), "endpoint", *endpoint_args, "-c", str(config),
             f"127.0.0.1:{port}", "--sessions", "1", "--attempts", "20"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        try:
            await asyncio.wait_for(controller.serve(listen_socket=listener), timeout)
        except TimeoutError:
            raise TestbedError(
                f"no measurement within {timeout} s; endpoint said:\n{log.read_text()}"
            ) from None
        if controller.results and controller.results[0] is not None:
            raise controller.results[0]
        if not results:
            raise TestbedError(f"the endpoint never connected:\n{log.read_text()}")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 30)
        return results[0]
    finally:
        if proc.poll() is None:
            for pid in [proc.pid, *descendants(proc.pid)]:  # ours, by pid
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 10)
        listener.close()
