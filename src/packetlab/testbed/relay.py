"""User-space link relay: forwards Ethernet frames between two interfaces after a fixed delay.

This machine kind has no netem, so a delayed (or lossy) link a<->b is built as
a <-> [relay namespace] <-> b: two veth pairs whose relay-side ends carry no IP address, and
this process, which reads every frame from one end with an AF_PACKET socket and sends it out of
the other end ``delay`` later, dropping IP frames with probability ``loss`` (seeded generator).

Timing: the delay counts from the kernel's receive timestamp of the frame (SO_TIMESTAMPNS), not
from when Python woke up. The process sleeps in epoll until ``LEAD_NS`` before the next release,
then spins; each send starts early by the running median of the send path (kernel TX timestamp
minus the clock read before ``send``), which removes the microVM's cold-send latency.

Lifetime: the relay exits on SIGTERM/SIGINT, when ``--parent-pid`` is given and that process is
gone, and when one of its interfaces disappears (its neighbours' namespaces were deleted).
Run: ``python -m packetlab.testbed.relay --instance TAG --iface-a IF --iface-b IF --delay-ms MS``.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import errno
import heapq
import os
import random
import select
import signal
import socket
import statistics
import sys
import time
from collections import deque
from collections.abc import Sequence

from packetlab.endpoint.timestamps import latest_tx, rx_time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_QDISC_BYPASS = 20
PACKET_IGNORE_OUTGOING = 23
SO_TIMESTAMPNS = 35
SO_TIMESTAMPING = 37
TS_TX_SOFTWARE = 1 << 1
TS_SOFTWARE = 1 << 4
TS_OPT_TSONLY = 1 << 11
PR_SET_NAME = 15
PR_SET_TIMERSLACK = 29
IP_ETHERTYPES = (b"\x08\x00", b"\x86\xdd")

LEAD_NS = 1_000_000
"""Wake at least this long before a release, then spin (SCHED_FIFO: wake-up is prompt)."""
LEAD_NS_NORMAL = 2_000_000
"""The same without real-time scheduling, where wake-ups can be later."""
WATCH_S = 0.2
"""Check the parent process and the interfaces at least this often."""
MAX_QUEUE = 100_000
"""Frames held at most; more are dropped (and counted)."""
DRAIN_BATCH = 64
"""Frames read from one socket per wake-up before releasing due frames again."""
PATH_WINDOW = 31
MAX_COMPENSATION_NS = 200_000


class RelayExit(Exception):
    """Why the relay stops."""


class Relay:
    """Two AF_PACKET sockets and a release heap."""

    def __init__(self, iface_a: str, iface_b: str, delay_ms: float, loss: float, seed: int) -> None:
        self.ifaces = (iface_a, iface_b)
        self.delay_ns = round(delay_ms * 1_000_000)
        self.loss = loss
        self.rngs = (random.Random(f"{seed}:ab"), random.Random(f"{seed}:ba"))
        self.socks = (self._open(iface_a), self._open(iface_b))
        self.heap: list[tuple[int, int, int, bytes]] = []
        self.seq = 0
        self.path_ns: deque[int] = deque(maxlen=PATH_WINDOW)
        self.compensation_ns = 0
        self.errors_ns: list[int] = []
        self.counts = {"forwarded": 0, "lost": 0, "overflow": 0, "send_failed": 0}
        self.lead_ns = LEAD_NS_NORMAL
        self.poller = select.epoll()
        self.fd_index = {sock.fileno(): index for index, sock in enumerate(self.socks)}
        for sock in self.socks:
            self.poller.register(sock.fileno(), select.EPOLLIN)

    @staticmethod
    def _open(ifname: str) -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        sock.bind((ifname, 0))
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setsockopt(
            socket.SOL_SOCKET, SO_TIMESTAMPING, TS_TX_SOFTWARE | TS_SOFTWARE | TS_OPT_TSONLY
        )
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        for option in (PACKET_IGNORE_OUTGOING, PACKET_QDISC_BYPASS):
            with contextlib.suppress(OSError):  # old kernels: outgoing frames are skipped anyway
                sock.setsockopt(SOL_PACKET, option, 1)
        sock.setblocking(False)
        return sock

    # -- receive ---------------------------------------------------------------------------

    def drain(self, index: int) -> None:
        sock, out = self.socks[index], 1 - index
        for _ in range(DRAIN_BATCH):
            try:
                frame, ancillary, _, address = sock.recvmsg(65536, 256)
            except BlockingIOError:
                return
            except OSError as exc:
                raise RelayExit(f"{self.ifaces[index]}: {exc.strerror}") from None
            if address[2] == socket.PACKET_OUTGOING:
                continue
            arrival = rx_time(ancillary) or time.time_ns()
            lossy = self.loss and frame[12:14] in IP_ETHERTYPES
            if lossy and self.rngs[index].random() < self.loss:
                self.counts["lost"] += 1
                continue
            if len(self.heap) >= MAX_QUEUE:
                self.counts["overflow"] += 1
                continue
            self.seq += 1
            heapq.heappush(self.heap, (arrival + self.delay_ns, self.seq, out, frame))

    # -- release ---------------------------------------------------------------------------

    def release_due(self) -> None:
        heap = self.heap
        while heap and heap[0][0] - self.compensation_ns <= time.time_ns():
            due, _, out, frame = heapq.heappop(heap)
            sock = self.socks[out]
            before = time.time_ns()
            try:
                sock.send(frame)
            except OSError as exc:
                if exc.errno in (errno.ENETDOWN, errno.ENXIO, errno.ENODEV):
                    raise RelayExit(f"{self.ifaces[out]}: {exc.strerror}") from None
                self.counts["send_failed"] += 1
                continue
            self.counts["forwarded"] += 1
            sent = latest_tx(sock)
            if sent is not None:
                self.path_ns.append(sent - before)
                self.compensation_ns = min(
                    MAX_COMPENSATION_NS, max(0, int(statistics.median(self.path_ns)))
                )
                if len(self.errors_ns) < 1_000_000:
                    self.errors_ns.append(sent - due)

    def timeout(self) -> float:
        """Seconds to sleep in epoll: whole milliseconds (epoll's unit), never into the lead."""
        if not self.heap:
            return WATCH_S
        wait_ns = self.heap[0][0] - self.compensation_ns - time.time_ns()
        whole_ms = (wait_ns - self.lead_ns) // 1_000_000
        if whole_ms <= 0:
            return 0.0
        # a hair under the whole ms, so that rounding up to milliseconds cannot add one
        return min(WATCH_S, (whole_ms - 0.01) / 1000)

    def step(self) -> None:
        self.release_due()
        for fd, events in self.poller.poll(self.timeout()):
            index = self.fd_index[fd]
            if events & (select.EPOLLERR | select.EPOLLHUP):
                latest_tx(self.socks[index])
                code = self.socks[index].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise RelayExit(f"{self.ifaces[index]}: {os.strerror(code)}")
            self.drain(index)

    def interfaces_present(self) -> bool:
        try:
            for ifname in self.ifaces:
                socket.if_nametoindex(ifname)
        except OSError:
            return False
        return True

    def summary(self) -> str:
        parts = [f"{k} {v}" for k, v in self.counts.items()]
        if self.errors_ns:
            errors = sorted(self.errors_ns)
            p50 = errors[len(errors) // 2] / 1e3
            p99 = errors[min(len(errors) - 1, int(len(errors) * 0.99))] / 1e3
            parts.append(f"release error (tx stamp - due) p50 {p50:.1f} us p99 {p99:.1f} us")
        return ", ".join(parts)


def _prctl(option: int, value: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0)


def _set_name(name: bytes) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)


def _log(line: str) -> None:
    """One write per line: several relays append to the same log file."""
    os.write(2, (line + "\n").encode(errors="replace"))


def _realtime(priority: int) -> bool:
    """Run under SCHED_FIFO at ``priority`` (so a busy machine does not delay releases)."""
    if priority <= 0:
        return False
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    except (OSError, AttributeError):
        return False
    return True


def run(args: argparse.Namespace) -> int:
    _set_name(b"plt-relay")
    _prctl(PR_SET_TIMERSLACK, 1)
    # the parent is watched with getppid (below), not PR_SET_PDEATHSIG: that fires when the
    # *thread* that forked us ends, and a testbed may be started from a worker thread
    if args.parent_pid and os.getppid() != args.parent_pid:
        return 0

    def stop(signum: int, _frame: object) -> None:
        raise RelayExit(f"signal {signal.Signals(signum).name}")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    label = f"relay {args.instance} {args.iface_a}<->{args.iface_b}"
    try:
        relay = Relay(args.iface_a, args.iface_b, args.delay_ms, args.loss, args.seed)
    except OSError as exc:
        _log(f"{label}: cannot open the interfaces: {exc}")
        return 1
    if _realtime(args.rt_priority):
        relay.lead_ns = LEAD_NS
    print("ready", flush=True)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    reason = "?"
    next_watch = time.monotonic() + WATCH_S
    try:
        while True:
            relay.step()
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + WATCH_S
                if args.parent_pid and os.getppid() != args.parent_pid:
                    raise RelayExit("parent process gone")
                if not relay.interfaces_present():
                    raise RelayExit("interface gone")
    except RelayExit as exc:
        reason = str(exc)
    _log(f"{label}: stopped ({reason}): {relay.summary()}")
    return 0


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m packetlab.testbed.relay",
        description="Testbed link relay: forward frames between two interfaces after a delay.",
    )
    parser.add_argument("--instance", required=True, help="Testbed instance tag (for cleanup).")
    parser.add_argument("--link", default="", help="Link label, for logs.")
    parser.add_argument("--iface-a", required=True)
    parser.add_argument("--iface-b", required=True)
    parser.add_argument("--delay-ms", type=float, default=0.0, help="One-way delay.")
    parser.add_argument("--loss", type=float, default=0.0, help="Drop probability of IP frames.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the loss generators.")
    parser.add_argument("--parent-pid", type=int, default=0, help="Exit when this parent is gone.")
    parser.add_argument(
        "--rt-priority",
        type=int,
        default=0,
        help="SCHED_FIFO priority (1-99; 0: normal scheduling).",
    )
    args = parser.parse_args(argv)
    if not 0 <= args.delay_ms <= 10_000 or not 0 <= args.loss < 1:
        parser.error("--delay-ms must be 0-10000 and --loss in [0, 1)")
    if not 0 <= args.rt_priority <= 99:
        parser.error("--rt-priority must be 0-99")
    return args


if __name__ == "__main__":
    sys.exit(run(parse_args()))
