"""Run an in-process experiment against a real `packetlab endpoint` inside a testbed node.

The controller listens on a socket made in the node's namespace (its loopback), so the
endpoint process, started in that namespace, dials 127.0.0.1:PORT and measures from there;
the experiment function runs here and can return Python objects to the test.

    result = run_on_node(tb, "ep", home, config, lambda ep: ping(ep, "198.18.4.2"))
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from netns_session import PACKETLAB, descendants, kill9  # noqa: E402
from packetlab.controller.api import EndpointHandle  # noqa: E402
from packetlab.controller.config import load_controller_config  # noqa: E402
from packetlab.controller.server import Controller  # noqa: E402
from packetlab.testbed._netns import netns_socket  # noqa: E402

T = TypeVar("T")


def run_on_node(
    tb: Any,
    node: str,
    home: Path,
    config: Path,
    measurement: Callable[[EndpointHandle], Awaitable[T]],
    *,
    timeout: float = 60,
    endpoint_args: tuple[str, ...] = (),
) -> T:
    """Serve ``measurement`` to one endpoint process in ``node`` (config ``config``); return
    what it returned. Raises what it raised, or AssertionError with the endpoint's log."""
    return asyncio.run(
        _serve(tb, node, home, config, measurement, timeout=timeout, endpoint_args=endpoint_args)
    )


async def _serve(
    tb: Any,
    node: str,
    home: Path,
    config: Path,
    measurement: Callable[[EndpointHandle], Awaitable[T]],
    *,
    timeout: float,
    endpoint_args: tuple[str, ...],
) -> T:
    results: list[T] = []

    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        results.append(await measurement(endpoint))

    listener = netns_socket(tb.netns(node), socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    controller = Controller(
        load_controller_config(home / "controller.toml"), experiment, [], max_endpoints=1
    )
    log = home.parent / f"endpoint-{node}-{port}.err"
    with log.open("w") as err:
        proc = tb.popen(
            node,
            [*PACKETLAB, "--home", str(home), "endpoint", *endpoint_args, "-c", str(config),
             f"127.0.0.1:{port}", "--sessions", "1", "--attempts", "20"],
            stdout=subprocess.DEVNULL, stderr=err, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    try:
        await asyncio.wait_for(controller.serve(listen_socket=listener), timeout)
        if controller.results and controller.results[0] is not None:
            raise controller.results[0]
        assert results, "the endpoint never connected:\n" + log.read_text()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.to_thread(proc.wait), 30)
        return results[0]
    finally:
        if proc.poll() is None:
            kill9([proc.pid, *descendants(proc.pid)])
        proc.wait(timeout=10)
        listener.close()
