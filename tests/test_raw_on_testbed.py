"""The reference's raw-socket mlets, done with our controller API, on the line testbed
(ep — r1 — r2 — r3 — target): ICMP echo (test_icmp_echo) and UDP traceroute
(test_pktif_traceroute), IPv4 and IPv6 (the reference has no raw IPv6), every packet through
the guardian with its default policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from netns_session import endpoint_config, init_home, measure


@pytest.fixture
def line(testbed: Any, tmp_path: Path) -> tuple[Any, Path, Path]:
    tb = testbed("line")
    home = init_home(tmp_path / "home")
    return tb, home, endpoint_config(home, tb, "ep")


@pytest.mark.parametrize("version", [4, 6])
def test_traceroute_finds_every_hop_of_the_line(line: tuple[Any, Path, Path], version: int) -> None:
    tb, home, config = line
    target = tb.addr("target", "r3", version)
    out = measure(tb, "ep", home, config, "traceroute.py", target, "8")
    hops = re.findall(r"^\s*(\d+)\s+(\S+)\s+([\d.]+) ms$", out, re.MULTILINE)
    expected = [
        tb.addr("r1", "ep", version),
        tb.addr("r2", "r1", version),
        tb.addr("r3", "r2", version),
        target,
    ]
    assert [address for _, address, _ in hops] == expected, out
    assert [int(ttl) for ttl, _, _ in hops] == [1, 2, 3, 4]
    rtts = [float(rtt) for _, _, rtt in hops]
    assert all(0 < rtt < 100 for rtt in rtts), out


@pytest.mark.parametrize("version", [4, 6])
def test_icmp_echo_gets_each_reply(line: tuple[Any, Path, Path], version: int) -> None:
    tb, home, config = line
    target = tb.addr("target", "r3", version)
    out = measure(tb, "ep", home, config, "icmp_echo.py", target, "3")
    replies = re.findall(rf"bytes from {re.escape(target)}: seq=(\d) time=([\d.]+) ms", out)
    assert [seq for seq, _ in replies] == ["1", "2", "3"], out
    assert all(0 < float(rtt) < 100 for _, rtt in replies)
