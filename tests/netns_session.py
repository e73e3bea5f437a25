"""Helpers for tests that run packetlab inside testbed nodes.

- :class:`NodeSession`: `packetlab controller` (on the node's loopback) and `packetlab endpoint`
  in one node's namespace, output in files; :func:`measure` runs one to its end.
- :class:`Recorder`: reads a socket in a thread; an error or a time-out that ended it early is
  raised by ``stop()``, so a test never judges a partial record. :class:`PacketCapture` is
  one on an AF_PACKET socket that also checks that the kernel dropped nothing.
- :func:`descendants`, :func:`kill9`: end processes we started, by pid.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from packetlab.endpoint.timestamps import SO_TIMESTAMPNS, rx_time
from packetlab.testbed.sessions import descendants, node_endpoint_config

PACKETLAB = [sys.executable, "-m", "packetlab"]
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PORT = 7777  # inside the node's own namespace: nothing else listens there


def init_home(path: Path) -> Path:
    subprocess.run([*PACKETLAB, "init", str(path)], check=True, capture_output=True)
    return path


endpoint_config = node_endpoint_config


# processes -------------------------------------------------------------------------------------


def kill9(pids: Sequence[int]) -> None:
    """SIGKILL each of ``pids`` (in order); those already gone are skipped."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class NodeSession:
    """A controller serving ``script`` and an endpoint dialling it, both in ``node``; their
    stdout and stderr go to files in ``log_dir`` (default: a new directory next to ``home``).
    ``close()`` (or leaving the ``with`` block) kills what still runs."""

    def __init__(
        self,
        tb: Any,
        node: str,
        home: Path,
        config: Path,
        script: str | Path,
        *args: str,
        port: int = PORT,
        endpoint_args: Sequence[str] = (),
        log_dir: Path | None = None,
    ) -> None:
        self.logs = log_dir or Path(tempfile.mkdtemp(prefix=f"session-{node}-", dir=home.parent))
        self.logs.mkdir(parents=True, exist_ok=True)
        self._tb, self._node = tb, node
        self.procs: list[subprocess.Popen[Any]] = []
        try:
            self.controller = self._popen(
                "controller",
                [*PACKETLAB, "--home", str(home), "controller", "-a", f"127.0.0.1:{port}",
                 "-n", "1", str(script), *args],
            )  # fmt: skip
            self.endpoint = self._popen(
                "endpoint",
                [*PACKETLAB, "--home", str(home), "endpoint", *endpoint_args, "-c", str(config),
                 f"127.0.0.1:{port}", "--sessions", "1", "--attempts", "20"],
            )  # fmt: skip
        except BaseException:
            self.close()
            raise

    def _popen(self, name: str, argv: list[str]) -> subprocess.Popen[Any]:
        out_path, err_path = self.logs / f"{name}.out", self.logs / f"{name}.err"
        with out_path.open("w") as out, err_path.open("w") as err:
            proc: subprocess.Popen[Any] = self._tb.popen(
                self._node, argv, stdout=out, stderr=err, stdin=subprocess.DEVNULL
            )
        self.procs.append(proc)
        return proc

    def log(self, name: str, kind: str = "err") -> str:
        """What ``name`` (controller, endpoint) wrote to ``kind`` (out, err) so far."""
        return (self.logs / f"{name}.{kind}").read_text()

    def logs_text(self) -> str:
        return "".join(
            f"--- {name}.{kind}\n{self.log(name, kind)}"
            for name in ("controller", "endpoint")
            for kind in ("out", "err")
        )

    def finish(self, ctl_timeout: float = 60, ep_timeout: float = 30) -> str:
        """Wait for the controller (up to ``ctl_timeout`` s), then the endpoint (up to
        ``ep_timeout`` s more); one that overruns is killed. Returns the controller's stdout;
        raises AssertionError with both logs unless both ended by themselves with status 0."""
        problems = []
        for proc, name, timeout in (
            (self.controller, "controller", ctl_timeout),
            (self.endpoint, "endpoint", ep_timeout),
        ):
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                problems.append(f"{name} did not end within {timeout} s (killed)")
            else:
                if proc.returncode != 0:
                    problems.append(f"{name} exited with status {proc.returncode}")
        if problems:
            raise AssertionError("; ".join(problems) + "\n" + self.logs_text())
        return self.log("controller", "out")

    @staticmethod
    def _kill(proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            kill9([proc.pid, *descendants(proc.pid)])
        proc.wait(timeout=10)

    def close(self) -> None:
        """Kill whatever of ours is still running, with its descendants (by pid); reap it."""
        for proc in self.procs:
            self._kill(proc)

    def __enter__(self) -> NodeSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def measure(
    tb: Any,
    node: str,
    home: Path,
    config: Path,
    experiment: str | Path,
    *args: str,
    timeout: float = 60,
) -> str:
    """Run ``experiment`` (an examples/ name or a path) on an endpoint in ``node``; return
    what the controller printed. Raises AssertionError with both logs when either fails."""
    script = experiment if isinstance(experiment, Path) else EXAMPLES / experiment
    with NodeSession(tb, node, home, config, script, *args) as session:
        return session.finish(timeout, 30)


# reading sockets in the background ------------------------------------------------------------


class Recorder:
    """Reads ``sock`` in a thread, handing each message to ``handle(data, ancillary,
    address)``, until ``stop()``. What ends it early (an error from the socket or from
    ``handle``, a truncated message, or ``limit_s`` passing) is kept: ``check()`` and
    ``stop()`` raise it."""

    def __init__(
        self,
        sock: socket.socket,
        handle: Callable[[bytes, list[tuple[int, int, bytes]], Any], None],
        *,
        limit_s: float,
        bufsize: int = 1 << 16,
        ancsize: int = 0,
    ) -> None:
        self.sock = sock
        self._handle = handle
        self._limit_s = limit_s
        self._bufsize, self._ancsize = bufsize, ancsize
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._stopped = False
        try:
            sock.settimeout(0.05)
        except OSError:
            sock.close()
            raise
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + self._limit_s
        try:
            while not self._stop.is_set():
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"still recording after {self._limit_s} s")
                try:
                    data, ancillary, flags, address = self.sock.recvmsg(
                        self._bufsize, self._ancsize
                    )
                except TimeoutError:
                    continue
                if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
                    raise OSError(f"a message did not fit {self._bufsize} bytes (flags {flags})")
                self._handle(data, ancillary, address)
        except BaseException as exc:  # kept for stop(): the record is incomplete
            self.error = exc

    def check(self) -> None:
        """Raise what ended the recording early, if anything did."""
        if self.error is not None:
            raise AssertionError(f"recording from {self.sock!r} ended early") from self.error

    def finish(self) -> None:
        """Run once the thread ended and before the socket closes (for subclasses)."""

    def stop(self) -> None:
        """End the recording and close the socket; raise if it ended early or lost anything.
        Once stopped (or closed), a call does nothing."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._thread.join(timeout=5)
        try:
            if self._thread.is_alive():
                raise AssertionError("the recording thread did not stop")
            self.check()
            self.finish()
        finally:
            self.sock.close()

    def close(self) -> None:
        """End the recording and close the socket, judging nothing (for failure paths)."""
        if self._stopped:
            return
        self._stopped = True
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


SOL_PACKET = 263
PACKET_STATISTICS = 6
_TPACKET_STATS = struct.Struct("II")  # tp_packets, tp_drops
ETH_P_ALL = 0x0003
ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
SO_RCVBUFFORCE = getattr(socket, "SO_RCVBUFFORCE", 33)  # Python names it from 3.12


class PacketCapture(Recorder):
    """Every IPv4/IPv6 packet arriving in ``node`` (AF_PACKET, ETH_P_ALL; not the ones it
    sends), with its kernel RX time: ``handle(time_ns, ip_bytes)``. ``stop()`` also checks
    PACKET_STATISTICS: the kernel dropped none."""

    def __init__(
        self,
        tb: Any,
        node: str,
        handle: Callable[[int, bytes], None],
        *,
        limit_s: float,
        rcvbuf: int = 8 << 20,
    ) -> None:
        sock = tb.socket(node, socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
        except OSError:
            sock.close()
            raise
        self._take = handle
        self.drops: int | None = None
        super().__init__(sock, self._frame, limit_s=limit_s, bufsize=1 << 17, ancsize=64)

    def _frame(self, data: bytes, ancillary: list[tuple[int, int, bytes]], address: Any) -> None:
        if address[2] == socket.PACKET_OUTGOING:
            return
        if int.from_bytes(data[12:14], "big") not in (ETH_P_IP, ETH_P_IPV6):  # e.g. ARP
            return
        stamp = rx_time(ancillary)
        if stamp is None:
            raise AssertionError("a frame came without its kernel timestamp")
        self._take(stamp, data[14:])

    def finish(self) -> None:
        raw = self.sock.getsockopt(SOL_PACKET, PACKET_STATISTICS, _TPACKET_STATS.size)
        _, self.drops = _TPACKET_STATS.unpack(raw)  # read once: reading resets the counters
        assert self.drops == 0, f"the kernel dropped {self.drops} frames of the capture"
