"""Rate limiters on a virtual clock: token buckets, exact sliding windows, bounded tables."""

from __future__ import annotations

import random

import pytest
from guardian_helpers import MS, T0, S

from packetlab.guardian import DestinationBuckets, RateProfile, SlidingWindow, TokenBucket
from packetlab.guardian.buckets import FULL_TABLE, NEVER


@pytest.mark.parametrize(("rate", "burst"), [(1000, 8000), (3, 10), (0.5, 2), (2e6, 4e6)])
def test_bucket_never_passes_rate_times_t_plus_burst(rate: float, burst: float) -> None:
    rng = random.Random(int(rate))
    burst = int(burst)
    bucket = TokenBucket(rate, burst, T0)
    now, end = T0, T0 + 60 * S
    sent: list[tuple[int, int]] = []
    while now < end:
        amount = rng.randint(1, max(1, min(burst, int(rate) + 1)))
        wait = bucket.wait_ns(amount, now)
        assert wait >= 0
        if wait:
            # shaping is exact: one ns short is still short, at the time the tokens are there
            assert bucket.wait_ns(amount, now + wait - 1) > 0
            assert bucket.wait_ns(amount, now + wait) == 0
            now += wait if rng.random() < 0.7 else rng.randint(1, wait)
            continue
        bucket.take(amount, now)
        sent.append((now, amount))
    assert len(sent) > 10
    total = 0
    for t, amount in sent:  # every prefix of the run, measured from the start
        total += amount
        assert total <= rate * (t - T0) / S + burst + 1e-9
    # a greedy sender gets (nearly) all of it
    assert total >= rate * 60 * 0.95


def test_bucket_starts_full_and_refuses_more_than_its_burst() -> None:
    bucket = TokenBucket(1, 4, T0)
    for _ in range(4):
        assert bucket.wait_ns(1, T0) == 0
        bucket.take(1, T0)
    assert bucket.wait_ns(1, T0) == S
    assert bucket.wait_ns(5, T0) == NEVER
    assert bucket.available(T0 + 10 * S) == 4  # refills to the burst, not past it


def test_bucket_clock_stepping_back_is_standing_still() -> None:
    bucket = TokenBucket(10, 1, T0)
    bucket.take(1, T0)
    assert bucket.wait_ns(1, T0 - S) == 100 * MS  # no credit for a step back
    bucket.take(1, T0 - S)  # paid for, driving it negative
    assert bucket.wait_ns(1, T0) == 200 * MS


def windows_hold(times: list[int], amounts: list[int], count: int, ticks: int) -> bool:
    """Brute force: every window [a, a+ticks) starting at a send holds at most count units."""
    j, total = 0, 0
    for i, t in enumerate(times):  # windows starting at each send cover the worst case
        while j < len(times) and times[j] < t + ticks:
            total += amounts[j]
            j += 1
        if total > count:
            return False
        total -= amounts[i]
    return True


@pytest.mark.parametrize(("count", "ticks", "unit"), [(5, S, 1), (3000, 100 * MS, 0), (1, MS, 1)])
def test_sliding_window_is_exact(count: int, ticks: int, unit: int) -> None:
    rng = random.Random(count)
    window = SlidingWindow(count, ticks)
    times: list[int] = []
    amounts: list[int] = []
    now = T0
    saw_full = False
    for _ in range(3000):
        amount = unit or rng.randint(1, count // 3)
        wait = window.wait_ns(amount, now)
        assert wait >= 0
        if wait:
            saw_full = True
            assert window.wait_ns(amount, now + wait - 1) > 0
            now += wait
            assert window.wait_ns(amount, now) == 0
        window.add(amount, now)
        times.append(now)
        amounts.append(amount)
        now += rng.choice((0, 1, rng.randint(0, ticks // 3)))
    assert saw_full
    assert windows_hold(times, amounts, count, ticks)
    # and it is tight: filling a window exactly to count is allowed
    assert window.wait_ns(count + 1, now) == NEVER


def test_sliding_window_boundary() -> None:
    window = SlidingWindow(2, 10)
    window.add(1, 100)
    window.add(1, 105)
    assert window.wait_ns(1, 109) == 1  # [100, 110) already holds 2
    assert window.wait_ns(1, 110) == 0  # the send at 100 is out of every window with 110
    window.add(1, 110)
    assert window.in_window(110) == 2
    assert not windows_hold([100, 105, 109], [1, 1, 1], 2, 10)
    assert windows_hold([100, 105, 110], [1, 1, 1], 2, 10)


PROFILE = RateProfile(1, 4, 1000, 8000, 3, 10, 3000, 100_000)


def test_destination_buckets_bytes_and_packets() -> None:
    table = DestinationBuckets(PROFILE, 100)
    dst = b"\x01\x02\x03\x04"
    for _ in range(10):  # burst of 10 packets
        assert table.wait_ns(dst, 100, T0) == 0
        table.take(dst, 100, T0)
    assert table.wait_ns(dst, 100, T0) == S // 3 + 1  # 3 packets per second, rounded up
    assert table.wait_ns(b"\x01\x02\x03\x05", 100, T0) == 0  # another destination is fresh
    other = b"\x09\x09\x09\x09"
    table.take(other, 8000, T0)
    assert table.wait_ns(other, 1000, T0) == S  # 1 KB per second
    assert table.wait_ns(other, 8001, T0) == NEVER


def test_destination_table_is_bounded() -> None:
    table = DestinationBuckets(PROFILE, 50)
    for i in range(50):
        table.take(i.to_bytes(4, "big"), 100, T0)
    assert len(table) == 50
    fresh = (1000).to_bytes(4, "big")
    assert table.wait_ns(fresh, 100, T0 + MS) == FULL_TABLE  # all 50 still refilling
    # 10 packets' worth of a 3 pkt/s bucket refills in 1/3 s; the entries then expire
    later = T0 + S
    assert table.wait_ns(fresh, 100, later) == 0
    table.take(fresh, 100, later)
    assert len(table) == 50
    admitted = 0
    for i in range(1001, 1200):
        dst = i.to_bytes(4, "big")
        wait = table.wait_ns(dst, 100, later)
        assert wait in (0, FULL_TABLE)
        if wait == 0:
            table.take(dst, 100, later)
            admitted += 1
        assert len(table) <= 50
    # each newcomer displaced one refilled entry; once all 50 are fresh, the table is full again
    assert admitted == 49
    assert all(int.from_bytes(dst, "big") >= 1000 for dst in table.entries)
    assert table.wait_ns((2000).to_bytes(4, "big"), 100, later) == FULL_TABLE
