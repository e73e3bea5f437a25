"""The guardian's public surface is pinned, and the core reads no clock and opens no socket."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from packetlab import guardian

MODULES = {
    "buckets",
    "config",
    "experiment",
    "guard",
    "optout",
    "packet_log",
    "pcapng",
    "policy",
    "prefixes",
    "probe",
    "traffic_index",
    "usage",
}


def test_public_surface() -> None:
    public = {name for name in dir(guardian) if not name.startswith("_")} - MODULES
    assert set(guardian.__all__) == public
    for name in ("Guardian", "ExperimentGuard", "ExperimentIdentity", "Probe", "Verdict",
                 "GuardianConfig", "SourcePolicy", "OptOutSource", "PacketLog", "UsageStore",
                 "TrafficIndex", "GuardianError"):  # fmt: skip
        assert name in guardian.__all__


NO_IMPORT = {"time", "socket", "selectors"}
"""Modules the guardian must not import: clocks and network I/O."""
CLOCK_READS = {
    "now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
    "perf_counter_ns", "process_time", "clock_gettime", "clock_gettime_ns",
}  # fmt: skip
"""Attributes that read a clock (``datetime.datetime.now``, ``loop.time`` ...)."""


def clock_and_socket_uses(source: str) -> list[str]:
    """Every import of NO_IMPORT and every use of a CLOCK_READS attribute in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if a.name.split(".")[0] in NO_IMPORT]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module.split(".")[0] in NO_IMPORT:
                found.append(f"from {node.module} import")
        elif isinstance(node, ast.Attribute) and node.attr in CLOCK_READS:
            found.append(f"line {node.lineno}: .{node.attr}")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import time",
        "import socket as s",
        "from time import monotonic",
        "from socket import socket",
        "import datetime\nx = datetime.datetime.now()",
        "from datetime import date\nx = date.today()",
        "import asyncio\nx = asyncio.get_running_loop().time()",
    ],
)
def test_the_check_finds_clock_reads_and_sockets(source: str) -> None:
    assert clock_and_socket_uses(source)


def test_no_clock_reads_and_no_sockets() -> None:
    modules = sorted(Path(guardian.__file__).parent.glob("*.py"))
    assert {m.stem for m in modules} >= MODULES
    assert clock_and_socket_uses("import datetime\nx = datetime.datetime.fromtimestamp(0)") == []
    for module in modules:
        assert clock_and_socket_uses(module.read_text()) == [], module.name
