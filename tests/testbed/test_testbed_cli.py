"""`packetlab testbed` as a user runs it: real processes, detached instances, crash cleanup."""

from __future__ import annotations

import json
import os
import secrets
import signal
import string
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from packetlab.testbed import Names, preflight
from packetlab.testbed._netns import list_netns
from packetlab.testbed._procs import is_relay_of
from packetlab.testbed.cleanup import known_instances, teardown

ENTRY = "from packetlab.cli.testbed_cmd import testbed; testbed(prog_name='packetlab testbed')"
needs_root = pytest.mark.skipif(
    preflight(need_tc=True) is not None, reason=str(preflight(need_tc=True))
)


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", ENTRY, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


@pytest.fixture
def own_prefix(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A namespace prefix and run dir of this test alone: `down --all` here touches nothing else."""
    prefix = "plt" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(4))
    env = {"PACKETLAB_TESTBED_PREFIX": prefix, "PACKETLAB_TESTBED_RUN_DIR": str(tmp_path / "run")}
    names = Names(prefix, tmp_path / "run")
    try:
        yield env
    finally:
        if preflight() is None:
            for instance in known_instances(names):
                teardown(names, instance)


def test_help_lists_the_commands_with_examples() -> None:
    result = cli("--help")
    assert result.returncode == 0
    for word in ("up", "down", "status", "exec", "show", "packetlab testbed up line"):
        assert word in result.stdout
    up_help = cli("up", "--help").stdout
    assert "--detach" in up_help and "--name" in up_help


def test_show_prints_addresses_and_routes_without_building() -> None:
    result = cli("show", "line", "--routes", "--delay-ms", "2")
    assert result.returncode == 0, result.stderr
    assert "198.18.1.1/24" in result.stdout and "2001:db8:0:4::2/64" in result.stdout
    assert "198.18.4.0/24 via 198.18.1.2 dev plt1-r1" in result.stdout
    assert "2 ms" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "nonesuch"), "neither a topology file nor a bundled topology"),
        (("up", "line", "--name", "Bad-Name"), "instance name 'Bad-Name'"),
        (("down",), "give an INSTANCE or --all"),
        (("down", "x", "--all"), "give an INSTANCE or --all"),
    ],
)
def test_bad_input_is_one_clear_line(args: tuple[str, ...], message: str) -> None:
    result = cli(*args)
    assert result.returncode == 2
    assert result.stderr.startswith("packetlab: error: ")
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_not_root_is_reported_clearly(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        result = cli("up", "line")
    else:  # drop to nobody for this one command
        setpriv = "/usr/bin/setpriv"
        if not Path(setpriv).exists():
            pytest.skip("setpriv is not installed")
        result = subprocess.run(
            [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
             sys.executable, "-c", ENTRY, "up", "line"],
            capture_output=True, text=True, timeout=60, check=False,
            env={**os.environ, "HOME": str(tmp_path)},
        )  # fmt: skip
        if "ModuleNotFoundError" in result.stderr or "Permission denied" in result.stderr:
            pytest.skip("the package is not readable by nobody here")
    assert result.returncode == 1
    assert "needs root" in result.stderr


@needs_root
def test_detached_instance_lives_on_and_down_all_removes_everything(
    own_prefix: dict[str, str],
) -> None:
    prefix = own_prefix["PACKETLAB_TESTBED_PREFIX"]
    up = cli("up", "line", "--name", "det", "--delay-ms", "1", "--detach", env=own_prefix)
    assert up.returncode == 0, up.stderr
    assert "testbed det is up" in up.stdout and "198.18.4.2/24" in up.stdout
    state_path = Path(own_prefix["PACKETLAB_TESTBED_RUN_DIR"]) / f"{prefix}-det.json"
    state = json.loads(state_path.read_text())
    pids = [r["pid"] for r in state["relays"]]
    tag = f"{prefix}-det"
    assert len(pids) == 4 and all(is_relay_of(p, tag) for p in pids)  # outlived `up`
    assert f"{tag}-ep" in list_netns()

    status = cli("status", env=own_prefix)
    assert status.returncode == 0 and "det" in status.stdout and "4/4" in status.stdout

    run = cli("exec", "det", "ep", "--", "ip", "-br", "addr", env=own_prefix)
    assert run.returncode == 0 and "198.18.1.1/24" in run.stdout
    missing = cli("exec", "det", "nope", "--", "true", env=own_prefix)
    assert missing.returncode == 2 and "has no node 'nope'" in missing.stderr
    clash = cli("up", "line", "--name", "det", env=own_prefix)
    assert clash.returncode == 2 and "already up" in clash.stderr

    down = cli("down", "--all", env=own_prefix)
    assert down.returncode == 0, down.stderr
    assert "removed 9 namespace(s), stopped 4 relay(s)" in down.stdout
    assert not [n for n in list_netns() if n.startswith(f"{prefix}-")]
    assert not any(is_relay_of(p, tag) for p in pids)
    assert not state_path.exists()
    assert cli("status", env=own_prefix).stdout.strip() == "no testbed instances"


@needs_root
def test_down_finds_a_crashed_instance_without_its_state_file(own_prefix: dict[str, str]) -> None:
    prefix = own_prefix["PACKETLAB_TESTBED_PREFIX"]
    up = cli("up", "line", "--name", "crash", "--delay-ms", "1", "--detach", env=own_prefix)
    assert up.returncode == 0, up.stderr
    state_path = Path(own_prefix["PACKETLAB_TESTBED_RUN_DIR"]) / f"{prefix}-crash.json"
    pids = [r["pid"] for r in json.loads(state_path.read_text())["relays"]]
    state_path.unlink()  # the crash lost the state
    status = cli("status", env=own_prefix)
    assert "no state file" in status.stdout
    down = cli("down", "crash", env=own_prefix)
    assert down.returncode == 0, down.stderr
    assert "stopped 4 relay(s)" in down.stdout  # found inside the namespaces, verified
    assert not [n for n in list_netns() if n.startswith(f"{prefix}-crash-")]
    assert not any(is_relay_of(p, f"{prefix}-crash") for p in pids)
    again = cli("down", "crash", env=own_prefix)
    assert again.returncode == 2 and "no testbed instance 'crash'" in again.stderr


@needs_root
def test_foreground_up_tears_down_on_sigterm(own_prefix: dict[str, str]) -> None:
    prefix = own_prefix["PACKETLAB_TESTBED_PREFIX"]
    proc = subprocess.Popen(
        [sys.executable, "-c", ENTRY, "up", "line", "--name", "fg", "--delay-ms", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **own_prefix},
    )
    try:
        deadline = time.monotonic() + 20
        while f"{prefix}-fg-target" not in list_netns() and time.monotonic() < deadline:
            time.sleep(0.05)
        state_path = Path(own_prefix["PACKETLAB_TESTBED_RUN_DIR"]) / f"{prefix}-fg.json"
        while time.monotonic() < deadline and (
            not state_path.exists() or json.loads(state_path.read_text())["status"] != "up"
        ):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=5)
    assert proc.returncode == 0, err
    assert "removed 9 namespace(s), stopped 4 relay(s)" in out
    assert not [n for n in list_netns() if n.startswith(f"{prefix}-")]
