"""Shared by the session benches: a controller in this process and a `packetlab endpoint`
process dialing it, over TLS on loopback, with a fresh `packetlab init` home."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from packetlab.controller.config import load_controller_config
from packetlab.controller.server import Controller, Experiment

PACKETLAB = [sys.executable, "-m", "packetlab"]


@contextmanager
def fresh_home() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="packetlab-bench-") as tmp:
        home = Path(tmp) / "home"
        subprocess.run([*PACKETLAB, "init", str(home)], check=True, capture_output=True)
        bench_endpoint_config(home)
        yield home


# Benchmarks measure the endpoint, not the guardian's buckets: the operator config says so
# (DESIGN.md, "The guardian"). Every packet still passes every stage, counted and logged.
BENCH_PROFILE = """
[guardian.profiles.certified]
dest_pkts_per_s = 10000000
dest_burst_pkts = 1000000
dest_bytes_per_s = 10000000000
dest_burst_bytes = 1000000000
source_bytes_per_s = 10000000000
source_burst_bytes = 1000000000
"""


def bench_endpoint_config(home: Path) -> None:
    """Raise the certified profile's buckets in HOME/endpoint.toml."""
    path = home / "endpoint.toml"
    path.write_text(path.read_text() + BENCH_PROFILE)


async def one_session(home: Path, experiment: Experiment, timeout: float = 600) -> None:
    """Serve ``experiment`` to one endpoint process; raise if the session failed."""
    config = load_controller_config(home / "controller.toml")
    controller = Controller(config, experiment, [], listen="127.0.0.1:0", max_endpoints=1)
    bound: list[tuple[str, int]] = []
    serving = asyncio.create_task(controller.serve(ready=bound.append))
    while not bound:
        await asyncio.sleep(0.01)
    endpoint = await asyncio.create_subprocess_exec(
        *PACKETLAB,
        "--home",
        str(home),
        "endpoint",
        f"127.0.0.1:{bound[0][1]}",
        "--sessions",
        "1",
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await asyncio.wait_for(serving, timeout)
    finally:
        if endpoint.returncode is None:
            await asyncio.wait_for(endpoint.wait(), 30)
    if controller.results and controller.results[0] is not None:
        raise SystemExit(f"session failed: {controller.results[0]}")
