"""The guardian of one endpoint process: what all its experiments share.

Theory of operation. One :class:`Guardian` per endpoint process holds the compiled source
policy, the opt-out list, each profile's source bucket and per-destination buckets, the usage
store, the packet log and the traffic index, and opens an
:class:`~packetlab.guardian.experiment.ExperimentGuard` per experiment (see experiment.py for
the stages a packet passes). The owner arms one timer: ``get_timer()`` says when
``handle_timer(now)`` is due (log buffer writes, traffic index upserts, opt-out file checks);
DNS opt-outs are fetched by ``optouts.refresh_async(now)``, never on the send path. Times are
ns on the endpoint's epoch clock, passed in.

State directory layout: ``usage.sqlite`` (usage per experiment), ``traffic.sqlite`` (traceback
index), ``log/packets-*.pcapng`` (packet log).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path

from packetlab.guardian._errors import GuardianConfigError, PacketLogError
from packetlab.guardian.buckets import DestinationBuckets, TokenBucket
from packetlab.guardian.config import GuardianConfig, RateProfile
from packetlab.guardian.experiment import CACHE_MAX, ExperimentGuard, ExperimentIdentity
from packetlab.guardian.optout import OptOutSource
from packetlab.guardian.packet_log import LogFile, PacketLog
from packetlab.guardian.policy import V4_MAPPED, SourceFilter
from packetlab.guardian.traffic_index import IndexedFile, Row, TrafficCounter, TrafficIndex
from packetlab.guardian.usage import UsageStore

log = logging.getLogger("packetlab.guardian")

INDEX_FLUSH_NS = 10_000_000_000
INDEX_FLUSH_KEYS = 20_000
INDEX_RETRY_NS = 1_000_000_000
"""After an index update found the database busy, try again this much later."""
INDEX_RETRY_MAX = 10 * INDEX_FLUSH_KEYS
"""Rows kept for a retry; past this (the database busy for long) the oldest are dropped."""
INDEX_BUSY_MS = 50
"""How long an index update waits for another process's transaction while running."""
CLOSE_BUSY_MS = 5000
"""The same at close, where nothing else waits on it."""
OPTOUT_CHECK_NS = 1_000_000_000


class _ProfileState:
    """What the experiments of one profile share."""

    __slots__ = ("dests", "profile", "source")

    def __init__(self, profile: RateProfile, max_destinations: int, now_ns: int) -> None:
        self.profile = profile
        self.source = TokenBucket(profile.source_bytes_per_s, profile.source_burst_bytes, now_ns)
        self.dests = DestinationBuckets(profile, max_destinations)


class Guardian:
    """The guardian of one endpoint process (see the module docstring)."""

    def __init__(
        self,
        config: GuardianConfig,
        state_dir: Path,
        local_nets: Sequence[tuple[bytes, int]],
        resolver: OptOutSource | None = None,
    ) -> None:
        self.config = config
        self.state_dir = state_dir
        try:
            self.filter = SourceFilter(config.source_policy, local_nets)
        except ValueError as exc:
            raise GuardianConfigError("local_nets", str(exc)) from None
        self.optouts = resolver if resolver is not None else OptOutSource(config.optout)
        self.usage = UsageStore(state_dir / "usage.sqlite")
        self.log: PacketLog | None = None
        self.index: TrafficIndex | None = None
        if config.log.enabled:
            self.log = PacketLog(state_dir / "log", config.log)
            if config.log.index:
                self.index = TrafficIndex(
                    state_dir / "traffic.sqlite", busy_timeout_ms=INDEX_BUSY_MS
                )
        self.max_wait_ns = config.max_wait_ms * 1_000_000
        self._profiles: dict[str, _ProfileState] = {}
        self._dst_info: dict[bytes, tuple[str, int, int]] = {}
        self._guards: list[ExperimentGuard] = []
        self._index_next_ns = 0
        self._index_retry: tuple[list[Row], list[IndexedFile]] = ([], [])
        self._optout_next_ns = 0

    # -- shared state ---------------------------------------------------------------------------

    def _profile(self, name: str, now_ns: int) -> _ProfileState:
        state = self._profiles.get(name)
        if state is None:
            state = _ProfileState(self.config.profile(name), self.config.max_destinations, now_ns)
            self._profiles[name] = state
        return state

    def destination_info(self, family: int, dst: bytes) -> tuple[str, int, int]:
        """(policy refusal or '', opt-out protocol mask, opt-out generation), cached per address."""
        gen = self.optouts.generation
        info = self._dst_info.get(dst)
        if info is not None and info[2] == gen:
            return info
        if len(self._dst_info) >= CACHE_MAX:
            self._dst_info.clear()
        value = int.from_bytes(dst, "big")
        mask = self.optouts.table.mask(family, value)
        if family == 6 and dst[:12] == V4_MAPPED:
            mask |= self.optouts.table.mask(4, value & 0xFFFFFFFF)
        info = (self.filter.dest_reason(family, dst), mask, gen)
        self._dst_info[dst] = info
        return info

    # -- experiments ----------------------------------------------------------------------------

    def open_experiment(self, ident: ExperimentIdentity, now_ns: int) -> ExperimentGuard:
        guard = ExperimentGuard(self, ident, now_ns)
        self._guards.append(guard)
        return guard

    def _closed(self, guard: ExperimentGuard, now_ns: int) -> None:
        if guard in self._guards:
            self._guards.remove(guard)
        self._flush_index(now_ns, extra=(guard.sent_counter, guard.recv_counter))

    # -- timers ---------------------------------------------------------------------------------

    def get_timer(self) -> int:
        """When :meth:`handle_timer` should run next (ns)."""
        times = [self._optout_next_ns, self._index_next_ns]
        if self.log is not None:
            flush = self.log.next_flush_ns()
            if flush is not None:
                times.append(flush)
        return min(times)

    def handle_timer(self, now_ns: int) -> None:
        """Periodic work: write the log buffer (due every ``flush_ms``), upsert the traffic
        index (every 10 s), re-read a changed opt-out file (every second). The index update
        waits at most INDEX_BUSY_MS for another process's transaction; if the database stays
        busy the counts are kept and tried again a second later. DNS opt-outs are refreshed by
        the owner: ``optouts.refresh_async``."""
        if self.log is not None:
            self.log.tick(now_ns)
        if now_ns >= self._optout_next_ns:
            self._optout_next_ns = now_ns + OPTOUT_CHECK_NS
            self.optouts.check_file()
        if now_ns >= self._index_next_ns or self._index_backlog() > INDEX_FLUSH_KEYS:
            self._flush_index(now_ns)

    def _index_backlog(self) -> int:
        return sum(len(g.sent_counter) + len(g.recv_counter) for g in self._guards)

    def _flush_index(self, now_ns: int, extra: Sequence[TrafficCounter] = ()) -> None:
        """Hand the log's finished files and the guards' counts to the index (if any)."""
        self._index_next_ns = now_ns + INDEX_FLUSH_NS
        plog = self.log
        log_files: list[LogFile | None] = []
        if plog is not None:
            plog.tick(now_ns)
            log_files = [*plog.closed_files, plog.current]
            plog.closed_files.clear()
        if self.index is None:
            return
        rows, files = self._index_retry
        for guard in self._guards:
            rows += guard.sent_counter.take_rows()
            rows += guard.recv_counter.take_rows()
        for counter in extra:
            rows += counter.take_rows()
        files += [IndexedFile(str(f.path), f.first_ns, f.last_ns) for f in log_files if f]
        try:
            self.index.record(rows, files)
        except PacketLogError as exc:
            log.warning("traffic index not updated (kept for a retry): %s", exc)
            if len(rows) > INDEX_RETRY_MAX:
                log.warning("traffic index: %d rows dropped", len(rows) - INDEX_RETRY_MAX)
                del rows[:-INDEX_RETRY_MAX]
            self._index_retry = (rows, files)
            self._index_next_ns = now_ns + INDEX_RETRY_NS
        else:
            self._index_retry = ([], [])

    def close(self, now_ns: int) -> None:
        """Close every open experiment, write the log and the index, close the databases."""
        if self.index is not None:
            with contextlib.suppress(PacketLogError):
                self.index.set_busy_timeout(CLOSE_BUSY_MS)
        for guard in list(self._guards):
            guard.close(now_ns)
        if self.log is not None:
            self.log.close(now_ns)
        self._flush_index(now_ns)
        if self.index is not None:
            self.index.close()
        self.usage.close()
