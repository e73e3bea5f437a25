"""`packetlab ping|trace|...`: a controller for one measurement, run against a real endpoint
in the line testbed; results as RIPE Atlas JSON (read back with ripe.atlas.sagan) or text."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from ripe.atlas.sagan import Result

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns_session import PACKETLAB, descendants, init_home, kill9
from packetlab.cli.main import cli
from packetlab.testbed.sessions import node_endpoint_config

PORT = 7799


@pytest.fixture(scope="module")
def bed(testbed_module: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    tb = testbed_module("line")
    home = init_home(tmp_path_factory.mktemp("cli") / "home")
    return tb, home, node_endpoint_config(home, tb, "ep")


def command(tb: Any, home: Path, config: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """`packetlab ARGV` in node ep with an endpoint (``config``) dialling it."""
    proc = tb.popen(
        "ep", [*PACKETLAB, "--home", str(home), *argv, "-a", f"127.0.0.1:{PORT}", "--wait", "20"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    endpoint = tb.popen(
        "ep", [*PACKETLAB, "--home", str(home), "endpoint", "-c", str(config),
               f"127.0.0.1:{PORT}", "--sessions", "1", "--attempts", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, err = proc.communicate(timeout=60)
        endpoint.wait(timeout=30)
    finally:
        for p in (proc, endpoint):
            if p.poll() is None:
                kill9([p.pid, *descendants(p.pid)])
                p.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_ping_prints_atlas_json_that_sagan_reads(bed: Any) -> None:
    tb, home, config = bed
    target = tb.addr("target", "r3", 4)
    done = command(tb, home, config, "ping", target, "-C", "3", "-i", "0.05")
    assert done.returncode == 0, done.stderr
    (line,) = done.stdout.splitlines()
    record = json.loads(line)
    assert record["packetlab"]["host_id"] == "pktendpt"
    parsed = Result.get(line)
    assert not parsed.is_error and not parsed.is_malformed
    assert (parsed.packets_sent, parsed.packets_received) == (3, 3)
    assert parsed.destination_address == target
    assert parsed.origin == tb.addr("ep", "r1", 4)
    assert 0 < parsed.rtt_min <= parsed.rtt_max < 50
    assert "endpoint pktendpt" in done.stderr  # progress, on stderr


def test_trace_text_is_what_traceroute_prints(bed: Any) -> None:
    tb, home, config = bed
    target = tb.addr("target", "r3", 6)
    done = command(tb, home, config, "trace", target, "-q", "2", "--format", "text")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.match(rf"\[pktendpt\] traceroute to {re.escape(target)} \(", lines[0])
    hops = [re.match(r"\[pktendpt\]\s+(\d+)\s+(\S+)(\s+[\d.]+ ms){2}$", line) for line in lines[1:]]
    assert all(hops), lines
    routers = [tb.addr("r1", "ep", 6), tb.addr("r2", "r1", 6), tb.addr("r3", "r2", 6), target]
    assert [(int(m.group(1)), m.group(2)) for m in hops if m] == list(enumerate(routers, 1))


def test_an_endpoint_without_raw_sockets_is_told_clearly(bed: Any) -> None:
    tb, home, config = bed
    no_raw = home / "endpoint-no-raw.toml"  # beside the keys its paths name
    no_raw.write_text(config.read_text().replace('["raw", "tcp", "udp"]', '["tcp", "udp"]'))
    done = command(tb, home, no_raw, "trace", tb.addr("target", "r3", 4))
    assert done.returncode == 1
    assert done.stdout == ""
    assert "traceroute needs raw sockets" in done.stderr
    assert "1 of 1 endpoint(s) failed" in done.stderr


def test_no_endpoint_within_wait_exits_1(tmp_path: Path) -> None:
    home = init_home(tmp_path / "home")
    done = subprocess.run(
        [*PACKETLAB, "--home", str(home), "ping", "127.0.0.1", "-a", "127.0.0.1:0",
         "--wait", "0.5"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "no endpoint connected within 0.5 s" in done.stderr


@pytest.mark.parametrize("name", ["ping", "trace", "dig", "http", "bw", "alias"])
def test_help_has_examples(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output and f"packetlab {name} " in result.output


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["ping", "not an address!"], "cannot resolve"),
        (["ping", "198.18.4.2", "-4", "-6"], "exclude each other"),
        (["trace", "198.18.4.2", "-f", "9", "-m", "3"], "--first-ttl is above --max-ttl"),
        (["dig", "198.18.4.2", "x.test", "NOPE"], "unknown DNS record type"),
        (["ping", "::1", "-4"], "not an IPv4 address"),
    ],
)
def test_bad_arguments_are_refused_before_listening(argv: list[str], message: str) -> None:
    result = CliRunner().invoke(cli, argv)
    assert result.exit_code != 0
    assert message in result.output
