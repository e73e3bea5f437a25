"""Stages 4 and 6 through the guard: chain limits (persisted), profiles, shaping, sockets."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from guardian_helpers import LOOSE, MS, T0, S, ip, make_guardian, open_guard, probe

from packetlab.guardian import ExperimentGuard, Guardian, Probe, Verdict
from packetlab.wire.codes import ErrId

PKT_DENY = ErrId.ESKTPKTDENY
OPEN_DENY = ErrId.ESKTOPNDENY


@pytest.fixture
def state(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
def guardian(state: Path) -> Iterator[Guardian]:
    g = make_guardian(state)
    try:
        yield g
    finally:
        g.close(T0)


def send(guard: ExperimentGuard, pkt: Probe, now: int) -> Verdict:
    verdict = guard.check_send(pkt, now)
    if verdict.allowed and not verdict.wait_until_ns:
        guard.sent(pkt, None, now)
    return verdict


def greedy(guard: ExperimentGuard, pkts: list[Probe], start: int, end: int) -> list[int]:
    """Send the probes in turn as fast as the guard allows (following shaping) until ``end``."""
    now, times, i = start, [], 0
    while now < end:
        pkt = pkts[i % len(pkts)]
        verdict = guard.check_send(pkt, now)
        assert verdict.allowed, verdict.reason
        if verdict.wait_until_ns:
            assert verdict.wait_until_ns > now
            now = verdict.wait_until_ns
            continue
        guard.sent(pkt, None, now)
        times.append(now)
        i += 1
    return times


# -- certificate limits ------------------------------------------------------------------------


def test_valid_dest(guardian: Guardian) -> None:
    guard = open_guard(guardian, "valid_dest=198.19.0.0/16,2001:db8:7::/48;")
    assert guard.check_send(probe("198.19.7.7"), T0).allowed
    assert guard.check_send(probe("2001:db8:7::7"), T0).allowed
    for dst in ("198.20.0.1", "2001:db8:8::1"):
        verdict = guard.check_send(probe(dst), T0)
        assert not verdict.allowed and "valid_dest" in verdict.reason
        assert verdict.errid == PKT_DENY
    assert guard.check_open(4, 6, ip("198.20.0.1"), 80, T0).errid == OPEN_DENY
    assert guard.check_open(4, 6, ip("198.19.0.1"), 80, T0).allowed


def test_max_send_pkt_and_byte_persist_across_sessions(state: Path) -> None:
    g = make_guardian(state)
    guard = open_guard(g, "max_send_pkt=100;max_send_byte=6000;")
    for i in range(50):
        assert send(guard, probe(size=100), T0 + i).allowed
    g.close(T0 + S)
    # a new endpoint process, the same experiment: 50 packets and 5000 bytes are used
    g = make_guardian(state)
    guard = open_guard(g, "max_send_pkt=100;max_send_byte=6000;", now=T0 + 2 * S)
    sent = 0
    while send(guard, probe(size=100), T0 + 2 * S).allowed:
        sent += 1
    assert sent == 10  # the byte limit: 6000 - 5000 = 1000
    verdict = guard.check_send(probe(size=100), T0 + 2 * S)
    assert verdict.errid == PKT_DENY and "max_send_byte" in verdict.reason
    assert guard.check_send(probe(size=20, proto=47), T0 + 2 * S).allowed is False
    g.close(T0 + 3 * S)
    g = make_guardian(state)
    usage = g.usage.usage("exp-a")
    assert usage is not None and (usage.send_pkt, usage.send_byte) == (60, 6000)
    guard = open_guard(g, "max_send_pkt=60;", experiment_id="exp-a", now=T0 + 4 * S)
    verdict = guard.check_send(probe(size=100), T0 + 4 * S)
    assert "max_send_pkt" in verdict.reason
    g.close(T0 + 4 * S)


def test_other_experiments_are_counted_apart(guardian: Guardian) -> None:
    a = open_guard(guardian, "max_send_pkt=1;", experiment_id="a")
    b = open_guard(guardian, "max_send_pkt=1;", experiment_id="b")
    assert send(a, probe(), T0).allowed
    assert not send(a, probe(), T0).allowed
    assert send(b, probe(), T0).allowed


def test_max_exp_period_runs_from_the_first_open(state: Path) -> None:
    g = make_guardian(state)
    guard = open_guard(g, "max_exp_period=10000000000;")  # 10 s
    assert guard.check_send(probe(), T0 + 9 * S).allowed
    g.close(T0 + 9 * S)
    g = make_guardian(state)
    guard = open_guard(g, "max_exp_period=10000000000;", now=T0 + 9 * S)
    assert guard.first_open_ns == T0
    assert guard.check_send(probe(), T0 + 10 * S - 1).allowed
    verdict = guard.check_send(probe(), T0 + 10 * S)
    assert not verdict.allowed and "max_exp_period" in verdict.reason
    assert guard.check_open(4, 17, None, 0, T0 + 10 * S).errid == OPEN_DENY
    g.close(T0 + 10 * S)


def test_max_socket_count(guardian: Guardian) -> None:
    guard = open_guard(guardian, "max_socket_count=2;")
    assert guard.check_open(4, 17, None, 0, T0) == Verdict(True)
    assert guard.check_open(6, 0, None, 0, T0).allowed
    verdict = guard.check_open(4, 17, None, 0, T0)
    assert verdict.errid == OPEN_DENY and "max_socket_count" in verdict.reason
    guard.closed_socket()
    assert guard.check_open(4, 17, None, 0, T0).allowed


def test_check_open_judges_connect_destinations(guardian: Guardian) -> None:
    guard = open_guard(guardian)
    assert guard.check_open(4, 6, ip("198.19.0.1"), 80, T0).allowed
    assert "privileged" in guard.check_open(4, 6, ip("198.19.0.1"), 22, T0).reason
    assert "local host" in guard.check_open(4, 6, ip("127.0.0.1"), 8080, T0).reason
    assert "broadcast" in guard.check_open(4, 17, ip("255.255.255.255"), 5000, T0).reason
    assert guard.check_open(4, 6, b"\x01", 80, T0).errid == OPEN_DENY
    assert guard.check_open(5, 6, None, 80, T0).errid == OPEN_DENY
    assert guard.open_sockets == 1


def test_max_recv(guardian: Guardian) -> None:
    guard = open_guard(guardian, "max_recv_pkt=3;max_recv_byte=1000;")
    got = 0
    while guard.check_recv(300, T0):
        guard.received(4, 17, ip("198.19.0.1"), ip("198.18.0.1"), bytes(300), T0)
        got += 1
    assert got == 3
    guard2 = open_guard(guardian, "max_recv_byte=1000;", experiment_id="b")
    got = 0
    while guard2.check_recv(300, T0):
        guard2.received(4, 17, ip("198.19.0.1"), ip("198.18.0.1"), bytes(300), T0)
        got += 1
    assert got == 3  # 900 bytes; a fourth would pass 1000


# -- profiles and buckets ----------------------------------------------------------------------


def test_public_syn_bucket_is_per_experiment(state: Path) -> None:
    g = make_guardian(state, "")
    try:
        guard = open_guard(g, profile="public")
        syns = [probe(f"198.19.0.{i}", proto=6, dport=80, tcp_flags=0x02) for i in range(1, 30)]
        times = greedy(guard, syns, T0, T0 + 20 * S)
        # burst 4 at T0, then one per second at T0 + 1 s ... T0 + 19 s (the end is excluded);
        # the destinations differ, so their buckets are not in the way
        assert len(times) == 4 + 19
        assert times[:4] == [T0] * 4
        assert times[4] == T0 + S
        other = open_guard(g, profile="public", experiment_id="other")
        assert other.check_send(syns[0], T0 + 20 * S).wait_until_ns == 0
        # a TCP connect is a SYN too: the token that came back at 20 s, then shaped
        assert guard.check_open(4, 6, ip("198.19.1.1"), 80, T0 + 20 * S) == Verdict(True)
        shaped = guard.check_open(4, 6, ip("198.19.1.1"), 80, T0 + 20 * S)
        assert shaped == Verdict(True, T0 + 21 * S)
        assert guard.open_sockets == 1  # a shaped open is not counted
    finally:
        g.close(T0 + 20 * S)


def test_public_destination_packets_and_bytes(state: Path) -> None:
    g = make_guardian(state, "")
    try:
        guard = open_guard(g, profile="public")
        times = greedy(guard, [probe(size=28)], T0, T0 + 10 * S)
        assert len(times) == 10 + 29  # burst 10, then 3 per second (the 30th is due at 10 s)
        sizes = greedy(guard, [probe("198.19.9.9", size=1000)], T0, T0 + 10 * S)
        # 1 KB/s burst 8 KB, and the source: 3 KB/s burst 100 KB is not reached
        assert len(sizes) == 8 + 9
        big = guard.check_send(probe("198.19.9.10", size=9000), T0)
        assert not big.allowed and "destination byte burst" in big.reason
    finally:
        g.close(T0 + 10 * S)


def test_public_source_bucket_is_shared(state: Path) -> None:
    g = make_guardian(state, "[profiles.public]\nsource_burst_bytes = 3000\n")
    try:
        a = open_guard(g, profile="public", experiment_id="a")
        b = open_guard(g, profile="public", experiment_id="b")
        assert send(a, probe("198.19.0.1", size=1500), T0).wait_until_ns == 0
        assert send(b, probe("198.19.0.2", size=1500), T0).wait_until_ns == 0
        verdict = a.check_send(probe("198.19.0.3", size=1500), T0)
        assert verdict == Verdict(True, T0 + 500 * MS)  # 1500 bytes at 3 KB/s
        # certified experiments draw on their own profile's buckets
        c = open_guard(g, experiment_id="c")
        assert c.check_send(probe("198.19.0.3", size=1500), T0).wait_until_ns == 0
    finally:
        g.close(T0)


def test_shaping_is_bounded_by_max_wait(state: Path) -> None:
    g = make_guardian(state, "max_wait_ms = 400\n")
    try:
        guard = open_guard(g, profile="public")
        for _ in range(10):
            send(guard, probe(size=28), T0)
        verdict = guard.check_send(probe(size=28), T0)
        assert verdict.allowed and verdict.wait_until_ns == T0 + S // 3 + 1
        for _ in range(3):
            guard.sent(probe(size=28), None, T0)  # sent anyway: paid for
        verdict = guard.check_send(probe(size=28), T0)
        assert not verdict.allowed and verdict.errid == PKT_DENY
        assert "max_wait_ms 400" in verdict.reason
    finally:
        g.close(T0)


def test_chain_burst_limits_tighten(state: Path) -> None:
    g = make_guardian(state)  # loose operator buckets
    try:
        guard = open_guard(g, "max_burst_rate_pkt=5/1000000000;")
        times = greedy(guard, [probe()], T0, T0 + 10 * S)
        assert len(times) == 50
        for t in times:  # no window of 1 s holds more than 5
            assert sum(1 for u in times if t <= u < t + S) <= 5
        guard = open_guard(g, "max_burst_rate_byte=1000/100000000;", experiment_id="b")
        times = greedy(guard, [probe(size=300)], T0, T0 + S)
        assert len(times) == 30  # 3 per 100 ms window
        big = guard.check_send(probe(size=1001), T0 + S)
        assert not big.allowed and "max_burst_rate_byte" in big.reason
    finally:
        g.close(T0 + 10 * S)


def test_chain_burst_limits_never_loosen(state: Path) -> None:
    g = make_guardian(state, "")  # default profiles
    try:
        loose = "max_burst_rate_pkt=1000000/1000000000;max_burst_rate_byte=1000000000/1000000;"
        guard = open_guard(g, loose, profile="public")
        times = greedy(guard, [probe(size=28)], T0, T0 + 10 * S)
        assert len(times) == 10 + 29  # the public profile's 3 pkt/s, burst 10, still rules
    finally:
        g.close(T0 + 10 * S)


def test_tcp_syn_counts_for_certified_too(state: Path) -> None:
    g = make_guardian(state, "")
    try:
        guard = open_guard(g)
        syns = [probe(f"198.19.{i // 250}.{i % 250 + 1}", proto=6, dport=80, tcp_flags=2)
                for i in range(600)]  # fmt: skip
        times = greedy(guard, syns, T0, T0 + S)
        assert len(times) == 200 + 99  # burst 200, then 100/s (the 100th is due at 1 s)
    finally:
        g.close(T0 + S)


def test_closed_guard_refuses_but_still_counts(guardian: Guardian) -> None:
    guard = open_guard(guardian)
    send(guard, probe(), T0)
    guard.close(T0)
    guard.close(T0)  # idempotent
    assert not guard.check_send(probe(), T0).allowed
    assert guard.check_open(4, 17, None, 0, T0).errid == OPEN_DENY
    assert not guard.check_recv(40, T0)
    guard.sent(probe(), None, T0)  # an endpoint bug, but the packet left: it is counted
    guard.received(4, 17, ip("198.19.0.1"), ip("198.18.0.1"), bytes(40), T0)
    usage = guardian.usage.usage("exp-a")
    assert usage is not None
    assert (usage.send_pkt, usage.send_byte, usage.recv_pkt, usage.recv_byte) == (2, 200, 1, 40)


def test_many_destinations_stay_bounded(state: Path) -> None:
    g = make_guardian(state, "max_destinations = 64\n" + LOOSE)
    try:
        guard = open_guard(g)
        now = T0
        for i in range(5000):
            now += 10 * MS
            pkt = probe(f"198.19.{i // 250}.{i % 250 + 1}")
            assert send(guard, pkt, now).allowed
        assert len(guard._dests) <= 64
    finally:
        g.close(now)
