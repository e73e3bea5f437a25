"""The traceback index: who sent what to an address, when (``STATE/traffic.sqlite``).

One row per (remote address, minute, experiment, controller, IP protocol, direction) with packet
and byte counts and the first/last packet times. The guards aggregate in memory
(:class:`TrafficCounter`) and the guardian upserts the counts in one transaction per flush
(``pkts = pkts + excluded.pkts``), so processes sharing the file add up. The pcapng files are
listed with their time ranges so that a traceback can point at them.

Direction ``sent``: the address is the destination of packets the endpoint sent. ``received``:
the address is the source of packets the endpoint received for an experiment.
"""

# ruff: noqa: PLR1730 - on the send path, an if is cheaper than calling max()

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from packetlab.guardian._errors import PacketLogError
from packetlab.guardian._sqlite import open_wal
from packetlab.guardian.prefixes import Prefix

MINUTE_NS = 60_000_000_000
SENT = 0
RECEIVED = 1
DIRECTIONS = ("sent", "received")

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS traffic (
        addr BLOB NOT NULL, minute INTEGER NOT NULL, experiment_id TEXT NOT NULL,
        controller TEXT NOT NULL, proto INTEGER NOT NULL, direction INTEGER NOT NULL,
        pkts INTEGER NOT NULL, bytes INTEGER NOT NULL,
        first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL,
        PRIMARY KEY (addr, minute, experiment_id, controller, proto, direction)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS log_files (
        path TEXT PRIMARY KEY, first_ns INTEGER NOT NULL, last_ns INTEGER NOT NULL
    )""",
)
_UPSERT = (
    "INSERT INTO traffic VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO UPDATE SET"
    " pkts = pkts + excluded.pkts, bytes = bytes + excluded.bytes,"
    " first_ns = min(first_ns, excluded.first_ns), last_ns = max(last_ns, excluded.last_ns)"
)

Row = tuple[bytes, int, str, str, int, int, int, int, int, int]


@dataclass(frozen=True, slots=True)
class TracebackRow:
    """Traffic between the endpoint and one address for one experiment, protocol, direction."""

    addr: bytes
    experiment_id: str
    controller: str
    proto: int
    direction: str
    pkts: int
    nbytes: int
    first_ns: int
    last_ns: int


@dataclass(frozen=True, slots=True)
class IndexedFile:
    path: str
    first_ns: int
    last_ns: int


class TrafficCounter:
    """In-memory counts of one experiment and direction, per minute, address and protocol."""

    __slots__ = (
        "controller",
        "counts",
        "direction",
        "experiment_id",
        "minute",
        "minute_end",
        "pending",
    )

    def __init__(self, experiment_id: str, controller: str, direction: int) -> None:
        self.experiment_id = experiment_id
        self.controller = controller
        self.direction = direction
        self.minute = -1
        self.minute_end = -1
        self.counts: dict[bytes, dict[int, list[int]]] = {}
        self.pending: list[Row] = []

    def count(self, addr: bytes, proto: int, size: int, now_ns: int) -> None:
        if now_ns >= self.minute_end or now_ns < self.minute_end - MINUTE_NS:
            self._roll(now_ns)
        per = self.counts.get(addr)
        if per is None:
            self.counts[addr] = {proto: [1, size, now_ns, now_ns]}
            return
        c = per.get(proto)
        if c is None:
            per[proto] = [1, size, now_ns, now_ns]
        else:
            c[0] += 1
            c[1] += size
            if now_ns > c[3]:
                c[3] = now_ns

    def _roll(self, now_ns: int) -> None:
        self.pending.extend(self.rows())
        self.counts = {}
        self.minute = now_ns // MINUTE_NS
        self.minute_end = (self.minute + 1) * MINUTE_NS

    def rows(self) -> list[Row]:
        exp, ctl, d, m = self.experiment_id, self.controller, self.direction, self.minute
        return [
            (addr, m, exp, ctl, proto, d, c[0], c[1], c[2], c[3])
            for addr, per in self.counts.items()
            for proto, c in per.items()
        ]

    def take_rows(self) -> list[Row]:
        """Everything counted since the last call."""
        rows = self.pending
        rows.extend(self.rows())
        self.pending = []
        self.counts = {}
        return rows

    def __len__(self) -> int:
        return len(self.counts) + len(self.pending)


class TrafficIndex:
    """The SQLite traceback index."""

    def __init__(self, path: Path, *, busy_timeout_ms: int = 5000) -> None:
        self.path = path
        try:
            self._db = open_wal(path, _SCHEMA, busy_timeout_ms)
        except sqlite3.Error as exc:
            raise PacketLogError(f"{path}: cannot open the traffic index: {exc}") from None

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def set_busy_timeout(self, busy_timeout_ms: int) -> None:
        """How long :meth:`record` waits for another process's transaction from now on."""
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        except sqlite3.Error as exc:
            raise PacketLogError(f"{self.path}: {exc}") from None

    def record(self, rows: Iterable[Row], files: Iterable[IndexedFile] = ()) -> None:
        """Add counts (and log file ranges) in one transaction; on an error (such as the
        database staying busy past the busy timeout) nothing is added."""
        rows = list(rows)
        files = list(files)
        if not rows and not files:
            return
        db = self._db
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, rows)
                db.executemany(
                    "INSERT INTO log_files VALUES (?,?,?) ON CONFLICT DO UPDATE SET"
                    " first_ns = min(first_ns, excluded.first_ns),"
                    " last_ns = max(last_ns, excluded.last_ns)",
                    [(f.path, f.first_ns, f.last_ns) for f in files],
                )
                db.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise PacketLogError(f"{self.path}: cannot update the traffic index: {exc}") from None

    def traceback(self, target: Prefix, since_ns: int | None = None) -> list[TracebackRow]:
        """Traffic to/from every address in ``target`` since ``since_ns``, oldest first."""
        width = 4 if target.family == 4 else 16
        bits = width * 8
        low = (target.network >> (bits - target.length) << (bits - target.length)).to_bytes(
            width, "big"
        )
        high = (target.network | ((1 << (bits - target.length)) - 1)).to_bytes(width, "big")
        minute = (since_ns // MINUTE_NS) if since_ns is not None else -(2**62)
        try:
            rows = self._db.execute(
                "SELECT addr, experiment_id, controller, proto, direction, sum(pkts), sum(bytes),"
                " min(first_ns), max(last_ns) FROM traffic"
                " WHERE addr BETWEEN ? AND ? AND length(addr) = ? AND minute >= ?"
                " AND last_ns >= ?"
                " GROUP BY addr, experiment_id, controller, proto, direction"
                " ORDER BY min(first_ns), addr",
                (low, high, width, minute, since_ns if since_ns is not None else -(2**62)),
            ).fetchall()
        except sqlite3.Error as exc:
            raise PacketLogError(f"{self.path}: cannot read the traffic index: {exc}") from None
        return [
            TracebackRow(r[0], r[1], r[2], r[3], DIRECTIONS[r[4]], r[5], r[6], r[7], r[8])
            for r in rows
        ]

    def files_between(self, first_ns: int, last_ns: int) -> list[IndexedFile]:
        """Log files holding packets of the time range (by their recorded first/last times)."""
        try:
            rows = self._db.execute(
                "SELECT path, first_ns, last_ns FROM log_files"
                " WHERE last_ns >= ? AND first_ns <= ? ORDER BY first_ns",
                (first_ns, last_ns),
            ).fetchall()
        except sqlite3.Error as exc:
            raise PacketLogError(f"{self.path}: cannot read the traffic index: {exc}") from None
        return [IndexedFile(*r) for r in rows]
