"""The guardian's packet log: every sent and received packet, in pcapng files.

One file per endpoint process and rotation, ``STATE/log/packets-<start>-p<pid>-<seq>.pcapng``
(``<start>`` the first packet's time, UTC, so names sort by time). Packets collect in a memory
buffer that is written (one ``write``) when it passes 256 KiB, when :meth:`PacketLog.tick` finds
``flush_ms`` elapsed since the last write, and at close. Written data survives a kill -9 of the
process, so at most the last ``flush_ms`` of packets is lost if the owner calls ``tick`` at least
that often. A file is rotated past ``rotate_bytes``; the oldest files of the directory are
deleted while together they exceed ``keep_bytes``.

A file open for writing is held under a shared ``flock``; retention deletes only a file on which
it gets an exclusive lock at once, so the open files of other endpoint processes (idle ones too)
are never deleted, and a killed process's file (its lock gone with it) can be. A writer that
loses the race for a new file (deleted between its creation and the lock) starts another.

A kill -9 in the middle of a write can leave a file's last block cut short. A new
:class:`PacketLog` on the directory repairs such files of dead writers (unlocked ones): it cuts
them back to their last whole block, so every file in the directory stays readable pcapng.
"""

# ruff: noqa: PLR1730 - on the send path, an if is cheaper than calling max()

from __future__ import annotations

import contextlib
import datetime
import fcntl
import mmap
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from packetlab.guardian._errors import PacketLogError
from packetlab.guardian.config import LogConfig
from packetlab.guardian.pcapng import (
    EpbOptions,
    append_packet,
    complete_length,
    ends_whole,
    interface_description,
    section_header,
)

FLUSH_BYTES = 256 * 1024
PATTERN = "packets-*.pcapng"
_OPEN_TRIES = 3


@dataclass(slots=True)
class LogFile:
    """A pcapng file of the log and the time range of its packets."""

    path: Path
    first_ns: int
    last_ns: int
    size: int = 0


def _stamp(ts_ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ts_ns / 1e9, tz=datetime.UTC)
    return moment.strftime("%Y%m%dT%H%M%S") + f"{ts_ns % 1_000_000_000:09d}"


class PacketLog:
    """Buffered pcapng writer with rotation and retention; time is a parameter."""

    def __init__(self, directory: Path, config: LogConfig, *, name: str = "packetlab") -> None:
        self.directory = directory
        self.config = config
        self.name = name
        self.snaplen = config.snaplen
        self.flush_ns = config.flush_ms * 1_000_000
        self._chunks: list[bytes] = []
        self._size = 0
        self._fd: int | None = None
        self._seq = 0
        self._last_flush_ns = 0
        self.current: LogFile | None = None
        self.closed_files: list[LogFile] = []
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise PacketLogError(f"{directory}: cannot create the log directory: {exc}") from None
        self.repaired = [p for p in sorted(directory.glob(PATTERN)) if _repair_unless_locked(p)]
        """Files of dead writers found cut short and repaired when this log was made."""

    def _open(self, ts_ns: int) -> None:
        for _ in range(_OPEN_TRIES):
            self._seq += 1
            name = f"packets-{_stamp(ts_ns)}-p{os.getpid()}-{self._seq:04d}.pcapng"
            path = self.directory / name
            fd = _create_locked(path)
            if fd is not None:
                break
        else:
            raise PacketLogError(f"{self.directory}: new log files keep being deleted")
        self._fd = fd
        head = section_header("packetlab guardian") + interface_description(self.snaplen, self.name)
        try:
            os.write(fd, head)  # a new file is a valid (empty) pcapng at once
        except OSError as exc:
            raise PacketLogError(f"{path}: cannot write: {exc}") from None
        self.current = LogFile(path, ts_ns, ts_ns, len(head))
        self._last_flush_ns = ts_ns

    def write(
        self, ts_ns: int, head: bytes, body: bytes, orig_len: int, options: EpbOptions
    ) -> None:
        """Log one packet, ``head + body`` from its IP header."""
        if self._fd is None:
            self._open(ts_ns)
        current = self.current
        assert current is not None
        if ts_ns > current.last_ns:
            current.last_ns = ts_ns
        self._size += append_packet(
            self._chunks, ts_ns, head, body, orig_len, self.snaplen, options
        )
        if self._size >= FLUSH_BYTES or ts_ns - self._last_flush_ns >= self.flush_ns:
            self.flush(ts_ns)

    def tick(self, now_ns: int) -> None:
        """Write the buffer if ``flush_ms`` has passed since the last write."""
        if self._chunks and now_ns - self._last_flush_ns >= self.flush_ns:
            self.flush(now_ns)

    def next_flush_ns(self) -> int | None:
        return self._last_flush_ns + self.flush_ns if self._chunks else None

    def flush(self, now_ns: int) -> None:
        self._last_flush_ns = now_ns
        if not self._chunks or self._fd is None or self.current is None:
            return
        data = b"".join(self._chunks)
        self._chunks.clear()
        self._size = 0
        try:
            view = memoryview(data)
            written = 0
            while written < len(data):
                written += os.write(self._fd, view[written:])
        except OSError as exc:
            raise PacketLogError(f"{self.current.path}: cannot write: {exc}") from None
        self.current.size += len(data)
        if self.current.size >= self.config.rotate_bytes:
            self._rotate()

    def _rotate(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
        self._fd = None
        if self.current is not None:
            self.closed_files.append(self.current)
        self.current = None
        self._enforce_retention()

    def _enforce_retention(self) -> None:
        """Delete the oldest files while all together exceed keep_bytes, skipping any file that
        is open for writing (locked) in this or another process."""
        files = []
        for path in sorted(self.directory.glob(PATTERN)):
            with contextlib.suppress(OSError):
                files.append((path, path.stat().st_size))
        total = sum(size for _, size in files)
        for path, size in files:
            if total <= self.config.keep_bytes:
                break
            if _delete_unless_locked(path):
                total -= size

    def close(self, now_ns: int) -> None:
        self.flush(now_ns)
        self._rotate()


def _create_locked(path: Path) -> int | None:
    """Create ``path`` for appending and hold a shared lock on it; None if another process's
    retention deleted it before the lock was held."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    except OSError as exc:
        raise PacketLogError(f"{path}: cannot open: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        if os.fstat(fd).st_nlink:
            return fd
    except OSError as exc:
        os.close(fd)
        raise PacketLogError(f"{path}: cannot lock: {exc}") from None
    os.close(fd)
    return None


@contextlib.contextmanager
def _unless_locked(path: Path, flags: int) -> Iterator[int | None]:
    """``path`` opened with ``flags`` and locked exclusively, or None when it is gone or a
    writer holds its (shared) lock."""
    try:
        fd = os.open(path, flags)
    except OSError:
        yield None
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield None
        else:
            yield fd
    finally:
        os.close(fd)


def _delete_unless_locked(path: Path) -> bool:
    """Delete ``path`` if no one holds a lock on it (a writer's shared lock); True if deleted."""
    with _unless_locked(path, os.O_RDONLY) as fd:
        if fd is None:
            return False
        try:
            path.unlink()  # still holding the lock: a writer that locks it now sees it unlinked
        except OSError:
            return False
        return True


def _repair_unless_locked(path: Path) -> bool:
    """Cut a file no writer holds back to its last whole pcapng block; True if it was cut.
    Whole files cost one look at their last block."""
    with _unless_locked(path, os.O_RDWR) as fd:
        if fd is None:
            return False
        try:
            size = os.fstat(fd).st_size
            if size == 0:
                return False
            with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
                if ends_whole(data):
                    return False
                end = complete_length(data)
            os.ftruncate(fd, end)
        except (OSError, ValueError):
            return False
        return True
