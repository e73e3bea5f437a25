"""Persistent usage of each experiment (the chain's max_send_*/max_recv_*, max_exp_period).

Theory of operation: leases.
Counting every packet in SQLite would cost a transaction per packet. Instead a :class:`Lease`
reserves a block of usage (``block_pkts`` packets and ``block_bytes`` bytes, capped by what the
limit leaves) in one durable transaction *before* the packets it covers are sent, then counts
them in memory. When a packet does not fit in what is left, the lease is topped up back to one
block. On close the unused remainder is given back. The block adapts to the rate: it doubles
while leases last less than 50 ms (up to ``max_scale`` times the base) and halves when one lasts
more than 0.5 s, so a fast sender renews about every 50 ms and a slow one holds little.

Invariant (per experiment, for the guards of one process that was killed without closing):
``stored >= sent`` (every packet was reserved before it left) and ``stored - sent <= one lease``
(at most ``block_pkts * max_scale`` packets and ``max(block_bytes * max_scale, largest packet)``
bytes per open lease: the reserved packets that were not sent yet, in flight or never sent).
After a clean close, ``stored == sent``. Every change is an increment in its own transaction
(``BEGIN IMMEDIATE``), so several endpoint processes sharing the database never lose each
other's updates, and the limit holds across them: a reservation never takes the stored total
past the limit.

The experiment's first open time (for max_exp_period) is written once and kept. Burst windows
and token buckets are not persisted: they span seconds, and a restarted endpoint starts them
fresh (at most one extra burst after a restart).

SQLite runs in WAL mode with synchronous=NORMAL: a committed transaction survives the death of
the process (kill -9); a power cut may lose the last transactions.
"""

from __future__ import annotations

import contextlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from packetlab.guardian._errors import UsageStoreError
from packetlab.guardian._sqlite import open_wal

SEND = "send"
GROW_NS = 50_000_000
"""A lease used up faster than this is followed by one twice as large (up to the maximum)."""
SHRINK_NS = 500_000_000
"""A lease lasting longer than this is followed by one half as large (down to the base)."""
RECV = "recv"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS usage (
    experiment_id TEXT PRIMARY KEY,
    controller TEXT NOT NULL DEFAULT '',
    first_ns INTEGER NOT NULL,
    last_ns INTEGER NOT NULL,
    send_pkt INTEGER NOT NULL DEFAULT 0,
    send_byte INTEGER NOT NULL DEFAULT 0,
    recv_pkt INTEGER NOT NULL DEFAULT 0,
    recv_byte INTEGER NOT NULL DEFAULT 0
)
"""


@dataclass(frozen=True, slots=True)
class Usage:
    """What the store holds for one experiment (reserved leases included)."""

    experiment_id: str
    controller: str
    first_ns: int
    last_ns: int
    send_pkt: int
    send_byte: int
    recv_pkt: int
    recv_byte: int


class UsageStore:
    """The usage database (one SQLite file, shared by the endpoint's processes)."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 2000) -> None:
        self.path = path
        try:
            self._db = open_wal(path, (_SCHEMA,), busy_timeout_ms)
        except sqlite3.Error as exc:
            raise UsageStoreError(f"{path}: cannot open the usage store: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def open_experiment(self, experiment_id: str, controller: str, now_ns: int) -> Usage:
        """Record an experiment's (first) open and return its stored usage."""
        try:
            self._db.execute(
                "INSERT INTO usage (experiment_id, controller, first_ns, last_ns) VALUES (?,?,?,?)"
                " ON CONFLICT(experiment_id) DO UPDATE SET last_ns = excluded.last_ns,"
                " controller = excluded.controller",
                (experiment_id, controller, now_ns, now_ns),
            )
        except sqlite3.Error as exc:
            raise UsageStoreError(f"{self.path}: {exc}") from None
        usage = self.usage(experiment_id)
        assert usage is not None
        return usage

    def usage(self, experiment_id: str) -> Usage | None:
        try:
            row = self._db.execute(
                "SELECT experiment_id, controller, first_ns, last_ns, send_pkt, send_byte,"
                " recv_pkt, recv_byte FROM usage WHERE experiment_id = ?",
                (experiment_id,),
            ).fetchone()
        except sqlite3.Error as exc:
            raise UsageStoreError(f"{self.path}: {exc}") from None
        return Usage(*row) if row is not None else None

    def reserve(
        self,
        experiment_id: str,
        direction: str,
        pkts: int,
        nbytes: int,
        max_pkts: int | None,
        max_bytes: int | None,
    ) -> tuple[int, int]:
        """Add up to ``pkts``/``nbytes`` to the stored usage without passing the limits.

        Returns what was granted. One transaction; waits up to the busy timeout for other
        writers.
        """
        pcol, bcol = _columns(direction)
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(
                    f"SELECT {pcol}, {bcol} FROM usage WHERE experiment_id = ?", (experiment_id,)
                ).fetchone()
                if row is None:
                    raise UsageStoreError(f"experiment {experiment_id!r} was never opened")
                grant_p = pkts if max_pkts is None else max(0, min(pkts, max_pkts - row[0]))
                grant_b = nbytes if max_bytes is None else max(0, min(nbytes, max_bytes - row[1]))
                if grant_p or grant_b:
                    db.execute(
                        f"UPDATE usage SET {pcol} = {pcol} + ?, {bcol} = {bcol} + ?"
                        " WHERE experiment_id = ?",
                        (grant_p, grant_b, experiment_id),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            raise UsageStoreError(f"{self.path}: reserving usage: {exc}") from None
        return grant_p, grant_b

    def add(self, experiment_id: str, direction: str, pkts: int, nbytes: int) -> None:
        """Add (or, negative, give back) usage unconditionally."""
        pcol, bcol = _columns(direction)
        try:
            self._db.execute(
                f"UPDATE usage SET {pcol} = {pcol} + ?, {bcol} = {bcol} + ?"
                " WHERE experiment_id = ?",
                (pkts, nbytes, experiment_id),
            )
        except sqlite3.Error as exc:
            raise UsageStoreError(f"{self.path}: updating usage: {exc}") from None


def _columns(direction: str) -> tuple[str, str]:
    if direction == SEND:
        return "send_pkt", "send_byte"
    if direction == RECV:
        return "recv_pkt", "recv_byte"
    raise ValueError(f"direction {direction!r}")


class Lease:
    """Usage reserved ahead of use for one experiment and direction (see the module docstring).

    ``pkts``/``nbytes`` are what is reserved and not yet used.
    """

    __slots__ = (
        "block_bytes",
        "block_pkts",
        "direction",
        "experiment_id",
        "max_bytes",
        "max_pkts",
        "max_scale",
        "nbytes",
        "pkts",
        "renewed_ns",
        "scale",
        "store",
    )

    def __init__(
        self,
        store: UsageStore,
        experiment_id: str,
        direction: str,
        *,
        block_pkts: int,
        block_bytes: int,
        max_pkts: int | None,
        max_bytes: int | None,
        max_scale: int = 1,
    ) -> None:
        self.store = store
        self.experiment_id = experiment_id
        self.direction = direction
        self.block_pkts = block_pkts
        self.block_bytes = block_bytes
        self.max_pkts = max_pkts
        self.max_bytes = max_bytes
        self.pkts = 0
        self.nbytes = 0
        self.scale = 1
        self.max_scale = max(1, max_scale)
        self.renewed_ns: int | None = None

    def extend(self, size: int, now_ns: int | None = None) -> bool:
        """Top the reservation up to one block (or ``size`` bytes if larger); True if a packet
        of ``size`` bytes now fits. False means the limit is reached.

        With ``now_ns``, the block adapts to the rate: it doubles (up to ``max_scale`` times the
        base block) when the last one lasted less than GROW_NS, and halves when it lasted more
        than SHRINK_NS.
        """
        if now_ns is not None:
            last = self.renewed_ns
            if last is not None:
                if now_ns - last < GROW_NS:
                    self.scale = min(self.scale * 2, self.max_scale)
                elif now_ns - last > SHRINK_NS and self.scale > 1:
                    self.scale //= 2
            self.renewed_ns = now_ns
        want_p = max(0, self.block_pkts * self.scale - self.pkts)
        want_b = max(0, max(self.block_bytes * self.scale, size) - self.nbytes)
        if want_p or want_b:
            got_p, got_b = self.store.reserve(
                self.experiment_id, self.direction, want_p, want_b, self.max_pkts, self.max_bytes
            )
            self.pkts += got_p
            self.nbytes += got_b
        return self.pkts >= 1 and self.nbytes >= size

    def use(self, size: int, now_ns: int | None = None) -> None:
        """Count one packet of ``size`` bytes.

        If the lease does not cover it (the caller did not check first), it is topped up; past
        the limit the packet is still counted: it was sent or received.
        """
        if (self.pkts < 1 or self.nbytes < size) and not self.extend(size, now_ns):
            short_p = 1 - self.pkts if self.pkts < 1 else 0
            short_b = size - self.nbytes if self.nbytes < size else 0
            self.store.add(self.experiment_id, self.direction, short_p, short_b)
            self.pkts += short_p
            self.nbytes += short_b
        self.pkts -= 1
        self.nbytes -= size

    def release(self) -> None:
        """Give the unused reservation back (at close)."""
        if self.pkts or self.nbytes:
            self.store.add(self.experiment_id, self.direction, -self.pkts, -self.nbytes)
            self.pkts = 0
            self.nbytes = 0
