"""Persisted usage survives ``kill -9`` of the endpoint in the middle of a send burst.

On the line testbed (ep - r1 - r2 - r3 - target) an endpoint in ``ep`` serves a controller
(both in ep's namespace, burst_experiment.py) that sends UDP datagrams to ``target``, where a
bound socket in the test counts every one (each carries its phase and sequence number). The
guardian's leases are small (16 packets / 1024 bytes, growing to 4 times that), the certified
buckets are raised so that nothing is shaped, and the experiment's exppriv certificate
carries max_send_pkt = LIMIT.

1. A burst of up to 20,000 datagrams in windows of WINDOW. At a random instant (up to
   KILL_JITTER_S) after KILL_AFTER have arrived, the endpoint process and its packet I/O
   child get SIGKILL, the session process first, so it never sees its child die and never
   gives its lease back. Then, in ``usage.sqlite``, the experiment's row (keyed by sha256 of
   the exppriv certificate's DER) must show:

   - stored >= received: every datagram that reached the target was counted durably.
   - stored - received <= LEASE_PACKETS_MAX + WINDOW. The bound: the guardian counts a
     datagram in the session process when it accepts it, before handing it to the packet I/O
     process, drawing on a lease reserved in SQLite beforehand. At the kill, stored =
     counted + the unused rest of the lease (<= lease_packets_max); counted - sent is what
     was accepted and not yet sent: at most one window, because a window is issued only once
     the ntag (kernel TX stamp) of the previous window's last datagram is back; sent -
     received is what the path lost, checked to be nothing (the target saw a gap-free prefix
     of sequence numbers). Likewise for bytes, with the byte lease.

   Without that pacing the bound does not hold: a session process can accept and count
   sends far faster than its packet I/O process sends them, and the backlog between the
   two is not bounded by the controller's window.

2. A new endpoint on the same state directory serves a session that sends M datagrams and
   ends normally: stored grows by exactly M (and M times the packet's size in bytes):
   nothing counted twice, the new lease's rest given back.

3. Another session sends until refused: exactly LIMIT - stored are accepted and sent, then
   sends are refused with ESKTPKTDENY and stored == LIMIT: the chain limit holds across the
   kill and the restart.

When the endpoint dies with the controller's requests unread, the controller's connection is
reset: the session must end ("session gone"), failing the waiting requests.

Root only (network namespaces); about 6 s.
"""

from __future__ import annotations

import hashlib
import random
import re
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from netns_session import (
    PACKETLAB,
    SO_RCVBUFFORCE,
    NodeSession,
    Recorder,
    descendants,
    endpoint_config,
    init_home,
    kill9,
)
from packetlab import pki
from packetlab.guardian.usage import Usage, UsageStore

SCRIPT = Path(__file__).resolve().parent / "burst_experiment.py"
LEASE_PACKETS = 16
LEASE_PACKETS_MAX = 64
LEASE_BYTES = 1024
LEASE_SCALE = LEASE_PACKETS_MAX // LEASE_PACKETS
WINDOW = 64
BURST = 20_000
KILL_AFTER = 3_000
KILL_JITTER_S = 0.005
M = 1_000
LIMIT = 8_000
TARGET_PORT = 40_000
PACKET_SIZE = 8 + 8 + 20  # payload, UDP header, IPv4 header: the guardian's probe size
PAYLOAD = struct.Struct(">II")
STEP_TIMEOUT_S = 20.0
RECEIVE_LIMIT_S = 180.0  # far beyond every step's time-out: reaching it fails the test

GUARDIAN = f"""
[guardian]
lease_packets = {LEASE_PACKETS}
lease_packets_max = {LEASE_PACKETS_MAX}
lease_bytes = {LEASE_BYTES}

[guardian.profiles.certified]
dest_pkts_per_s = 1000000
dest_burst_pkts = 1000000
dest_bytes_per_s = 100000000
dest_burst_bytes = 100000000
source_bytes_per_s = 100000000
source_burst_bytes = 100000000
"""

_SUMMARY = re.compile(
    r"issued=(\d+) confirmed=(\d+) accepted=(\d+) refused=(\d+) errids=(\S+) end=(.*)$",
    re.MULTILINE,
)


@dataclass(frozen=True)
class Summary:
    """What burst_experiment.py printed."""

    issued: int
    confirmed: int
    accepted: int
    refused: int
    errids: str
    end: str


class Receiver:
    """Counts the datagrams arriving on a socket, by phase: distinct sequence numbers and
    duplicates. ``stop()`` raises when the reading ended early (error or RECEIVE_LIMIT_S)."""

    def __init__(self, sock: socket.socket) -> None:
        self.seqs: dict[int, set[int]] = {}
        self.duplicates = 0
        self.other = 0
        self.first_at: dict[int, float] = {}
        self._lock = threading.Lock()
        self._recorder = Recorder(sock, self._take, limit_s=RECEIVE_LIMIT_S, bufsize=64)

    def _take(self, data: bytes, ancillary: object, address: object) -> None:
        if len(data) != PAYLOAD.size:
            self.other += 1
            return
        phase, seq = PAYLOAD.unpack(data)
        with self._lock:
            if phase not in self.first_at:
                self.first_at[phase] = time.monotonic()
            seen = self.seqs.setdefault(phase, set())
            if seq in seen:
                self.duplicates += 1
            seen.add(seq)

    def count(self, phase: int) -> int:
        self._recorder.check()
        with self._lock:
            return len(self.seqs.get(phase, ()))

    def highest(self, phase: int) -> int:
        with self._lock:
            return max(self.seqs.get(phase, {-1}))

    def settle(self, phase: int, quiet_s: float = 0.3) -> int:
        """The count once nothing more arrived for ``quiet_s``."""
        deadline = time.monotonic() + 5
        last, since = self.count(phase), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            now = self.count(phase)
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                break
        return last

    def stop(self) -> None:
        self._recorder.stop()


def alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def session(tb: Any, home: Path, config: Path, state: Path, port: int, *args: str) -> NodeSession:
    """burst_experiment.py served to an endpoint in ``ep`` keeping its state in ``state``."""
    return NodeSession(
        tb, "ep", home, config, SCRIPT, *args, port=port,
        endpoint_args=("--state-dir", str(state)), log_dir=home.parent / f"session-{port}",
    )  # fmt: skip


def summary(run: NodeSession) -> Summary:
    """What the experiment printed at its end."""
    match = _SUMMARY.search(run.log("controller", "out"))
    assert match, f"no summary from the experiment\n{run.logs_text()}"
    issued, confirmed, accepted, refused = (int(match[i]) for i in range(1, 5))
    return Summary(issued, confirmed, accepted, refused, match[5], match[6])


@pytest.fixture
def line(testbed: Any, tmp_path: Path) -> Iterator[tuple[Any, Path, Path, Receiver]]:
    tb = testbed("line")
    home = init_home(tmp_path / "home")
    # the experiment's grant, with a packet limit
    subprocess.run(
        [*PACKETLAB, "--home", str(home), "pki", "generate", "cert", "exppriv", "k_eop", "0",
         "2147483647", str(home / "certs" / "exppriv_eop_exper.cert"), "-k", "k_exper.pub",
         "--max_send_pkt", str(LIMIT), "-y"],
        check=True, capture_output=True,
    )  # fmt: skip
    config = endpoint_config(home, tb, "ep", GUARDIAN)
    sock = tb.socket("target")
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20)
        sock.bind((tb.addr("target", "r3"), TARGET_PORT))
    except OSError:
        sock.close()
        raise
    receiver = Receiver(sock)
    try:
        yield tb, home, config, receiver
    finally:
        receiver.stop()


def stored(state: Path, experiment_id: str) -> Usage:
    store = UsageStore(state / "usage.sqlite")
    try:
        usage = store.usage(experiment_id)
    finally:
        store.close()
    assert usage is not None, f"no usage row for experiment {experiment_id}"
    return usage


def test_usage_survives_kill9_mid_burst(line: tuple[Any, Path, Path, Receiver]) -> None:
    tb, home, config, receiver = line
    state = home.parent / "state"
    grant = pki.load_certificates(home / "certs" / "exppriv_eop_exper.cert")[0]
    experiment_id = hashlib.sha256(grant.der).hexdigest()
    target = tb.addr("target", "r3")
    window = str(WINDOW)
    started = time.monotonic()

    # 1. the burst, killed
    first = session(tb, home, config, state, 7781, "burst", target, str(TARGET_PORT), "1",
                    str(BURST), window)  # fmt: skip
    try:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while receiver.count(1) < KILL_AFTER:
            if first.endpoint.poll() is not None or first.controller.poll() is not None:
                raise AssertionError(f"session ended before the kill\n{first.logs_text()}")
            assert time.monotonic() < deadline, f"burst too slow\n{first.logs_text()}"
            time.sleep(0.001)
        # any instant will do: land anywhere in a window, not just after one arrived
        delay = random.uniform(0, KILL_JITTER_S)
        time.sleep(delay)
        children = descendants(first.endpoint.pid)
        kill9([first.endpoint.pid, *children])
        at_kill = receiver.count(1)
        rate = at_kill / (time.monotonic() - receiver.first_at[1])
        first.endpoint.wait(timeout=10)
        assert first.endpoint.returncode == -signal.SIGKILL
        assert children, "no packet I/O process under the endpoint"
        gone = time.monotonic() + 5
        while any(alive(pid) for pid in children) and time.monotonic() < gone:
            time.sleep(0.01)
        assert not any(alive(pid) for pid in children)
        received1 = receiver.settle(1)
        first.controller.wait(timeout=STEP_TIMEOUT_S)
    finally:
        first.close()
    burst = summary(first)
    usage1 = stored(state, experiment_id)
    sent1, bytes1 = usage1.send_pkt, usage1.send_byte
    report = (
        f"stored={sent1} received={received1} (at kill {at_kill}) issued={burst.issued}"
        f" confirmed={burst.confirmed} stored_bytes={bytes1} ({rate:.0f}/s,"
        f" kill {delay * 1e3:.2f} ms after {KILL_AFTER} arrived; controller: {burst.end})"
    )
    print(f"\nafter kill -9: {report}, difference {sent1 - received1}")
    # cut by the kill: the session ended and the waiting requests failed
    assert "session gone" in burst.end, burst
    assert receiver.duplicates == 0
    assert receiver.highest(1) + 1 == received1, f"the path lost datagrams: {report}"
    assert received1 >= burst.confirmed, report
    assert sent1 >= received1, f"sent but not counted: {report}"
    assert sent1 - received1 <= LEASE_PACKETS_MAX + WINDOW, f"counted but not sent: {report}"
    assert sent1 <= burst.issued + LEASE_PACKETS_MAX, report
    assert bytes1 >= received1 * PACKET_SIZE, report
    byte_bound = LEASE_BYTES * LEASE_SCALE + WINDOW * PACKET_SIZE
    assert bytes1 - received1 * PACKET_SIZE <= byte_bound, report

    # 2. a new endpoint, same state: M more, a clean end
    with session(tb, home, config, state, 7782, "burst", target, str(TARGET_PORT), "2",
                 str(M), window) as second:  # fmt: skip
        second.finish(STEP_TIMEOUT_S, STEP_TIMEOUT_S)
    assert summary(second) == Summary(M, M, M, 0, "-", "'done'"), second.logs_text()
    assert receiver.settle(2) == M
    usage2 = stored(state, experiment_id)
    print(f"after {M} more: stored={usage2.send_pkt} (was {sent1})")
    assert usage2.send_pkt == sent1 + M
    assert usage2.send_byte == bytes1 + M * PACKET_SIZE
    assert usage2.first_ns == usage1.first_ns

    # 3. until the chain's max_send_pkt refuses
    with session(tb, home, config, state, 7783, "until-refused", target, str(TARGET_PORT),
                 "3", str(LIMIT), window) as third:  # fmt: skip
        third.finish(STEP_TIMEOUT_S, STEP_TIMEOUT_S)
    last = summary(third)
    usage3 = stored(state, experiment_id)
    print(f"until refused: accepted={last.accepted} refused={last.refused} {last.errids}"
          f" stored={usage3.send_pkt} limit={LIMIT}")  # fmt: skip
    assert last.accepted == LIMIT - usage2.send_pkt, last
    assert last.refused >= 1 and last.errids == "ESKTPKTDENY", last
    assert usage3.send_pkt == LIMIT
    assert receiver.settle(3) == last.accepted
    assert receiver.duplicates == 0 and receiver.other == 0
    print(f"runtime {time.monotonic() - started:.1f} s")
