"""Rate limiters on a virtual clock: token buckets (guardian stage 6) and exact sliding windows
(the chain's ``max_burst_rate_*``, stage 4).

Arithmetic is integer and exact. A bucket's level is kept in pico-units (units x 1e12) and its
rate in milli-units per second, which is pico-units per nanosecond, so refilling ``dt`` ns adds
exactly ``dt * rate``. Waits are rounded up: after the wait the tokens are there.

Checking (``wait_ns``) never changes what a limiter allows; ``take``/``add`` count a packet that
was sent, and may drive a bucket below zero (a packet sent against advice is still paid for).
A clock that steps back is treated as standing still.
"""

# ruff: noqa: PLR1730 - on the send path, an if is cheaper than calling max()

from __future__ import annotations

from collections import deque

from packetlab.guardian.config import RateProfile

PICO = 10**12
NEVER = -1
"""``wait_ns`` answer: the amount exceeds what the limiter can ever allow at once."""
FULL_TABLE = -2
"""``wait_ns`` answer: no room for another destination's buckets."""
_SWEEP = 8


def _rate(per_s: float) -> int:
    return max(1, round(per_s * 1000))


class TokenBucket:
    """``rate_per_s`` units per second, at most ``burst`` units saved up; starts full."""

    __slots__ = ("cap", "last_ns", "level", "rate")

    def __init__(self, rate_per_s: float, burst: int, now_ns: int) -> None:
        self.rate = _rate(rate_per_s)
        self.cap = burst * PICO
        self.level = self.cap
        self.last_ns = now_ns

    def wait_ns(self, amount: int, now_ns: int) -> int:
        """0 if ``amount`` units are there at ``now_ns``, else ns until they are, or NEVER."""
        need = amount * PICO
        if need > self.cap:
            return NEVER
        level = self.level
        if now_ns > self.last_ns:
            level += (now_ns - self.last_ns) * self.rate
        if level >= need:
            return 0
        return -((level - need) // self.rate)

    def take(self, amount: int, now_ns: int) -> None:
        if now_ns > self.last_ns:
            level = self.level + (now_ns - self.last_ns) * self.rate
            self.level = level if level < self.cap else self.cap
            self.last_ns = now_ns
        self.level -= amount * PICO

    def available(self, now_ns: int) -> float:
        """Units in the bucket at ``now_ns`` (for reports)."""
        level = self.level
        if now_ns > self.last_ns:
            level = min(self.cap, level + (now_ns - self.last_ns) * self.rate)
        return level / PICO


class SlidingWindow:
    """At most ``count`` units in any ``ticks`` ns: no window [a, a+ticks) holds more.

    Entries at or before ``now - ticks`` are dropped lazily (``total`` may still count them, which
    only makes the fast check stricter, never looser); memory is about one window of packets.
    """

    __slots__ = ("amounts", "count", "ticks", "times", "total")

    def __init__(self, count: int, ticks: int) -> None:
        self.count = count
        self.ticks = ticks
        self.times: deque[int] = deque()
        self.amounts: deque[int] = deque()
        self.total = 0

    def _expire(self, now_ns: int) -> None:
        horizon = now_ns - self.ticks
        times = self.times
        while times and times[0] <= horizon:
            times.popleft()
            self.total -= self.amounts.popleft()

    def wait_ns(self, amount: int, now_ns: int) -> int:
        """0 if ``amount`` fits at ``now_ns``, else ns until it does, or NEVER."""
        if self.total + amount <= self.count:
            return 0
        if amount > self.count:
            return NEVER
        if self.times and now_ns < self.times[-1]:
            now_ns = self.times[-1]
        self._expire(now_ns)
        excess = self.total + amount - self.count
        if excess <= 0:
            return 0
        freed = 0
        for t, a in zip(self.times, self.amounts, strict=True):
            freed += a
            if freed >= excess:
                return t + self.ticks - now_ns
        return NEVER  # unreachable: total >= excess because amount <= count

    def add(self, amount: int, now_ns: int) -> None:
        times = self.times
        if times:
            if now_ns < times[-1]:
                now_ns = times[-1]
            if times[0] <= now_ns - self.ticks:
                self._expire(now_ns)
        times.append(now_ns)
        self.amounts.append(amount)
        self.total += amount

    def in_window(self, now_ns: int) -> int:
        """Units counted in (now - ticks, now] (for tests and reports)."""
        self._expire(now_ns)
        return self.total


class DestinationBuckets:
    """Per-destination byte and packet buckets of one profile, bounded in number.

    A destination without an entry has full buckets, so an entry whose buckets have refilled is
    dropped without changing what is allowed. When the table is at ``max_entries`` a new
    destination first sweeps a few of the oldest entries, dropping full ones and moving the
    others to the back; if none is full the new destination must wait (FULL_TABLE).
    """

    __slots__ = ("byte_cap", "byte_rate", "entries", "max_entries", "pkt_cap", "pkt_rate")

    def __init__(self, profile: RateProfile, max_entries: int) -> None:
        self.byte_rate = _rate(profile.dest_bytes_per_s)
        self.byte_cap = profile.dest_burst_bytes * PICO
        self.pkt_rate = _rate(profile.dest_pkts_per_s)
        self.pkt_cap = profile.dest_burst_pkts * PICO
        self.max_entries = max_entries
        self.entries: dict[bytes, list[int]] = {}

    def __len__(self) -> int:
        return len(self.entries)

    def _is_full(self, entry: list[int], now_ns: int) -> bool:
        dt = now_ns - entry[2]
        if dt < 0:
            dt = 0
        return (
            entry[0] + dt * self.byte_rate >= self.byte_cap
            and entry[1] + dt * self.pkt_rate >= self.pkt_cap
        )

    def _make_room(self, now_ns: int) -> bool:
        entries = self.entries
        for _ in range(_SWEEP):
            if len(entries) < self.max_entries:
                return True
            key = next(iter(entries))
            entry = entries.pop(key)
            if not self._is_full(entry, now_ns):
                entries[key] = entry
        return len(entries) < self.max_entries

    def wait_ns(self, dst: bytes, size: int, now_ns: int) -> int:
        """0, the ns until ``size`` bytes and one packet may go to ``dst``, NEVER or FULL_TABLE."""
        need = size * PICO
        if need > self.byte_cap:
            return NEVER
        entry = self.entries.get(dst)
        if entry is None:
            if len(self.entries) >= self.max_entries and not self._make_room(now_ns):
                return FULL_TABLE
            return 0
        dt = now_ns - entry[2]
        if dt < 0:
            dt = 0
        wait = 0
        level = entry[0] + dt * self.byte_rate
        if level < need:
            wait = -((level - need) // self.byte_rate)
        level = entry[1] + dt * self.pkt_rate
        if level < PICO:
            pkt_wait = -((level - PICO) // self.pkt_rate)
            if pkt_wait > wait:
                wait = pkt_wait
        return wait

    def take(self, dst: bytes, size: int, now_ns: int) -> None:
        entry = self.entries.get(dst)
        if entry is None:
            self.entries[dst] = [self.byte_cap - size * PICO, self.pkt_cap - PICO, now_ns]
            return
        dt = now_ns - entry[2]
        if dt > 0:
            level = entry[0] + dt * self.byte_rate
            entry[0] = level if level < self.byte_cap else self.byte_cap
            level = entry[1] + dt * self.pkt_rate
            entry[1] = level if level < self.pkt_cap else self.pkt_cap
            entry[2] = now_ns
        entry[0] -= size * PICO
        entry[1] -= PICO
