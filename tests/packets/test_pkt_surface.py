"""The public surface of packetlab.packets is pinned, and the package stays sans-IO and stdlib."""

from __future__ import annotations

import ast
from pathlib import Path

from packetlab import packets

MODULES = {"builders", "checksum", "constants", "ip", "ipv6ext", "quoted", "summary", "transport"}
STDLIB = {"__future__", "array", "collections", "dataclasses", "enum", "functools", "ipaddress"}
STDLIB |= {"struct", "typing"}


def test_all_lists_every_public_name() -> None:
    public = {name for name in dir(packets) if not name.startswith("_")} - MODULES
    assert set(packets.__all__) == public
    for name in ("IPv4", "IPv6", "UDP", "TCP", "ICMP", "ICMPv6", "PacketError", "Summary"):
        assert name in packets.__all__
    assert issubclass(packets.PacketError, ValueError)


def test_imports_only_stdlib_and_itself() -> None:
    for module in Path(packets.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                assert top in STDLIB or name.startswith("packetlab.packets"), (module.name, name)
