"""Finding and stopping relay processes, only ones that are provably ours.

A pid is acted on only when /proc/PID/cmdline is ``... -m packetlab.testbed.relay --instance TAG``
(and, when recorded, its start time matches). Signals go through a pidfd opened *before* the
check, so a pid reused after the check cannot receive them.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Iterable

from packetlab.testbed._netns import process_netns_inode
from packetlab.testbed.naming import RELAY_MODULE


def start_time(pid: int) -> int | None:
    """Clock ticks since boot at which ``pid`` started (field 22 of /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(b")") + 2 :].split()
    return int(fields[19])


def cmdline(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def is_relay_of(pid: int, tag: str, started: int | None = None) -> bool:
    """True when ``pid`` runs our relay module for instance ``tag`` (and started at ``started``)."""
    args = cmdline(pid)
    if not args:
        return False
    try:
        module_at = args.index(RELAY_MODULE)
        instance_at = args.index("--instance")
    except ValueError:
        return False
    ok = args[module_at - 1] == "-m" and args[instance_at + 1 : instance_at + 2] == [tag]
    return ok and (started is None or start_time(pid) == started)


def relays_in_namespaces(inodes: Iterable[int], tag: str) -> list[int]:
    """Pids of our relays for ``tag`` whose network namespace is one of ``inodes``."""
    wanted = set(inodes)
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            pid = int(entry)
            if process_netns_inode(pid) in wanted and is_relay_of(pid, tag):
                found.append(pid)
    return found


def stop_relays(pids: dict[int, int | None], tag: str, timeout: float = 2.0) -> list[int]:
    """SIGTERM (then SIGKILL) the verified relays among ``pids`` ({pid: start time or None}).

    Returns the pids that were signalled. Zombies of our own children are left for the caller
    to reap.
    """
    fds: dict[int, int] = {}
    for pid, started in pids.items():
        try:
            fd = os.pidfd_open(pid)
        except (ProcessLookupError, OSError):
            continue
        if is_relay_of(pid, tag, started):
            fds[pid] = fd
        else:
            os.close(fd)
    try:
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 1.0)):
            alive = {pid: fd for pid, fd in fds.items() if not _exited(fd)}
            if not alive:
                break
            for fd in alive.values():
                with contextlib.suppress(ProcessLookupError):
                    signal.pidfd_send_signal(fd, sig)
            _wait_all(list(alive.values()), wait)
    finally:
        for fd in fds.values():
            os.close(fd)
    return list(fds)


def _exited(fd: int) -> bool:
    return bool(select.select([fd], [], [], 0)[0])


def _wait_all(fds: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    pending = list(fds)
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            return
        ready, _, _ = select.select(pending, [], [], left)
        pending = [fd for fd in pending if fd not in ready]
