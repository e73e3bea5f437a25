"""Usage persistence: the lease invariant, kill -9 mid-burst, concurrent endpoint processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from guardian_helpers import MS, T0, S, make_guardian, open_guard, probe

from packetlab.guardian import Lease, UsageStore, UsageStoreError

CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from packetlab.guardian import ExperimentIdentity, Guardian, GuardianConfig, Probe
    from packetlab.pki.limits import parse_limits

    state, lines, count, limits, lease, lease_max = sys.argv[1:7]
    count = int(count)
    config = GuardianConfig.from_toml(
        f"lease_packets = {lease}\\nlease_packets_max = {lease_max}\\n[profiles.certified]\\n"
        "dest_pkts_per_s = 1e9\\ndest_burst_pkts = 1000000000\\n"
        "dest_bytes_per_s = 1e12\\ndest_burst_bytes = 1000000000000\\n"
        "source_bytes_per_s = 1e12\\nsource_burst_bytes = 1000000000000\\n"
        "[log]\\nenabled = false\\n"
    )
    g = Guardian(config, Path(state), [(bytes([198, 18, 0, 1]), 24)])
    parsed = parse_limits(limits) if limits else None
    ident = ExperimentIdentity("shared", "ctl", "certified", parsed)
    now = 1_800_000_000_000_000_000 + os.getpid() * 1000
    guard = g.open_experiment(ident, now)
    probe = Probe(4, 17, bytes([198, 18, 0, 1]), bytes([198, 19, 0, 1]), 40000, 33434, 100)
    fd = os.open(lines, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    sent = 0
    for i in range(count):
        now += 1000
        verdict = guard.check_send(probe, now)
        if not verdict.allowed:
            break
        assert not verdict.wait_until_ns, verdict
        os.write(fd, b"x\\n")  # the packet leaves: what a kill -9 cannot take back
        guard.sent(probe, None, now)
        sent += 1
    g.close(now)
    print(sent)
    """
)
SIZE = 100


def child(
    state: Path, lines: Path, count: int, limits: str = "", lease: int = 64, lease_max: int = 64
) -> list[str]:
    args = [str(state), str(lines), str(count), limits, str(lease), str(lease_max)]
    return [sys.executable, "-c", CHILD, *args]


def count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def test_lease_reserves_ahead_and_gives_back(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage.sqlite")
    try:
        store.open_experiment("e", "c", T0)
        lease = Lease(store, "e", "send", block_pkts=64, block_bytes=1000, max_pkts=100,
                      max_bytes=None)  # fmt: skip
        assert lease.extend(100)
        assert (store.usage("e").send_pkt, store.usage("e").send_byte) == (64, 1000)  # type: ignore[union-attr]
        for _ in range(10):
            lease.use(100)
        assert lease.pkts == 54 and lease.nbytes == 0
        assert lease.extend(100)  # topped up to one block, not more
        usage = store.usage("e")
        assert usage is not None and usage.send_pkt == 74 and usage.send_byte == 2000
        lease.release()
        usage = store.usage("e")
        assert usage is not None and (usage.send_pkt, usage.send_byte) == (10, 1000)
        # the limit caps reservations: 90 packets left
        assert lease.extend(1)
        assert lease.pkts == 64
        other = Lease(store, "e", "send", block_pkts=64, block_bytes=10, max_pkts=100,
                      max_bytes=None)  # fmt: skip
        assert other.extend(1) and other.pkts == 26
        assert not Lease(store, "e", "send", block_pkts=64, block_bytes=10, max_pkts=100,
                         max_bytes=None).extend(1)  # fmt: skip
    finally:
        store.close()


def test_lease_grows_with_the_rate_and_shrinks_when_slow(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage.sqlite")
    try:
        store.open_experiment("e", "c", T0)
        lease = Lease(store, "e", "send", block_pkts=10, block_bytes=100, max_pkts=None,
                      max_bytes=None, max_scale=8)  # fmt: skip
        now, blocks, used = T0, [], 0
        for _ in range(6):  # each lease used up within 1 ms: 10, 20, 40, 80, 80, 80
            assert lease.extend(1, now)
            blocks.append(lease.pkts)
            while lease.pkts:
                lease.use(1, now)
                used += 1
            now += MS
        assert blocks == [10, 20, 40, 80, 80, 80]
        usage = store.usage("e")  # stored: what was used and what is reserved ahead of use
        assert usage is not None and (usage.send_pkt, usage.send_byte) == (used, used + 720)
        lease.extend(1, now + S)  # a slow lease halves
        assert lease.pkts == 40 and lease.nbytes == 720  # bytes left from before: no top-up
        usage = store.usage("e")
        assert usage is not None and (usage.send_pkt, usage.send_byte) == (used + 40, used + 720)
        lease.release()
        usage = store.usage("e")
        assert usage is not None and (usage.send_pkt, usage.send_byte) == (used, used) == (310, 310)
    finally:
        store.close()


def test_use_without_a_check_still_counts(tmp_path: Path) -> None:
    store = UsageStore(tmp_path / "usage.sqlite")
    try:
        store.open_experiment("e", "c", T0)
        lease = Lease(store, "e", "recv", block_pkts=4, block_bytes=100, max_pkts=2,
                      max_bytes=None)  # fmt: skip
        for _ in range(5):
            lease.use(10)  # past the limit: what was received is counted all the same
        lease.release()
        usage = store.usage("e")
        assert usage is not None and (usage.recv_pkt, usage.recv_byte) == (5, 50)
        with pytest.raises(UsageStoreError, match="never opened"):
            store.reserve("nobody", "send", 1, 1, None, None)
        with pytest.raises(ValueError, match="direction"):
            store.add("e", "sideways", 1, 1)
    finally:
        store.close()


def test_unusable_store_is_a_usage_store_error(tmp_path: Path) -> None:
    (tmp_path / "usage.sqlite").write_bytes(b"this is not a database" * 100)
    with pytest.raises(UsageStoreError, match="usage store"):
        UsageStore(tmp_path / "usage.sqlite")


def test_guard_counts_exactly_after_close(tmp_path: Path) -> None:
    g = make_guardian(tmp_path)
    guard = open_guard(g)
    for i in range(1000):
        assert guard.check_send(probe(size=SIZE), T0 + i).allowed
        guard.sent(probe(size=SIZE), None, T0 + i)
    usage = g.usage.usage("exp-a")
    assert usage is not None
    assert 1000 <= usage.send_pkt <= 1000 + g.config.lease_packets_max  # a lease is out
    g.close(T0 + 1000)
    g = make_guardian(tmp_path)
    usage = g.usage.usage("exp-a")
    assert usage is not None and (usage.send_pkt, usage.send_byte) == (1000, 1000 * SIZE)
    g.close(T0)


def test_usage_survives_kill_9_mid_burst(tmp_path: Path) -> None:
    state, lines = tmp_path / "state", tmp_path / "sent.lines"
    # rounds 1 and 2 with fixed leases of 64 packets; round 3 lets a lease grow to 4096
    bound_pkts = bound_bytes = 0
    for round_no, (kill_after, lease_max) in enumerate(((700, 64), (2500, 64), (5000, 4096)), 1):
        bound_pkts += lease_max
        bound_bytes += 65536 * (lease_max // 64)
        proc = subprocess.Popen(
            child(state, lines, 10_000_000, lease_max=lease_max),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 30
            while count_lines(lines) < kill_after * round_no and time.monotonic() < deadline:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)
        finally:
            proc.kill()
            proc.wait(timeout=10)
            if proc.stderr:
                proc.stderr.close()
        assert proc.returncode == -signal.SIGKILL
        sent = count_lines(lines)
        store = UsageStore(state / "usage.sqlite")
        try:
            usage = store.usage("shared")
        finally:
            store.close()
        assert usage is not None
        # stored >= sent, and stored - sent <= one lease per killed session
        assert sent <= usage.send_pkt <= sent + bound_pkts
        assert sent * SIZE <= usage.send_byte <= sent * SIZE + bound_bytes
    # nothing counted twice: a clean session adds exactly what it sends
    before = usage.send_pkt
    done = subprocess.run(child(state, lines, 500), capture_output=True, text=True, timeout=60,
                          check=True)  # fmt: skip
    assert done.stdout.strip() == "500"
    store = UsageStore(state / "usage.sqlite")
    try:
        after = store.usage("shared")
    finally:
        store.close()
    assert after is not None and after.send_pkt == before + 500


def run_parallel(commands: list[list[str]]) -> list[int]:
    procs = [subprocess.Popen(c, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for c in commands]  # fmt: skip
    counts = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
            counts.append(int(out))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return counts


def test_concurrent_processes_lose_no_update(tmp_path: Path) -> None:
    state = tmp_path / "state"
    counts = run_parallel(
        [child(state, tmp_path / f"l{i}", 1500, lease=4, lease_max=4) for i in range(4)]
    )
    assert counts == [1500] * 4
    store = UsageStore(state / "usage.sqlite")
    try:
        usage = store.usage("shared")
    finally:
        store.close()
    assert usage is not None
    assert (usage.send_pkt, usage.send_byte) == (6000, 6000 * SIZE)


def test_limit_holds_across_concurrent_processes(tmp_path: Path) -> None:
    state = tmp_path / "state"
    counts = run_parallel(
        [child(state, tmp_path / f"l{i}", 2000, "max_send_pkt=5000;", 8, 64) for i in range(4)]
    )
    assert sum(counts) <= 5000
    assert sum(counts) >= 5000 - 3 * 64  # only leases held by others at the end can be missed
    store = UsageStore(state / "usage.sqlite")
    try:
        usage = store.usage("shared")
    finally:
        store.close()
    assert usage is not None and usage.send_pkt == sum(counts)
