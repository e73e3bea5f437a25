"""Kernel software timestamps on Linux sockets: TX stamps from the error queue, RX stamps as
ancillary data (nanoseconds since the Unix epoch, CLOCK_REALTIME)."""

from __future__ import annotations

import socket
import struct

SO_TIMESTAMPNS = 35
SO_TIMESTAMPING = 37
IP_RECVERR = 11
IPV6_RECVERR = 25
SOF_TX_SOFTWARE = 1 << 1
SOF_RX_SOFTWARE = 1 << 3
SOF_SOFTWARE = 1 << 4
SOF_OPT_ID = 1 << 7
SOF_OPT_TSONLY = 1 << 11
_TIMESPEC = struct.Struct("qq")
_EXTENDED_ERR = struct.Struct("IBBBBII")
ANCILLARY_SIZE = 512
_ERRQUEUE_NOWAIT = int(socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)


def enable(sock: socket.socket) -> None:
    """TX software stamps (keyed by a per-socket counter) and RX stamps in ns."""
    sock.setsockopt(
        socket.SOL_SOCKET,
        SO_TIMESTAMPING,
        SOF_TX_SOFTWARE | SOF_RX_SOFTWARE | SOF_SOFTWARE | SOF_OPT_ID | SOF_OPT_TSONLY,
    )
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)


def rx_time(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind in (SO_TIMESTAMPNS, SO_TIMESTAMPING):
            sec, nsec = _TIMESPEC.unpack_from(data)
            if sec or nsec:
                return int(sec) * 1_000_000_000 + int(nsec)
    return None


def drain_tx(sock: socket.socket) -> list[tuple[int | None, int | None]]:
    """(send counter, kernel TX time) pairs waiting in the error queue; never blocks."""
    out: list[tuple[int | None, int | None]] = []
    while True:
        try:
            _, ancillary, _, _ = sock.recvmsg(0, ANCILLARY_SIZE, _ERRQUEUE_NOWAIT)
        except (BlockingIOError, InterruptedError):
            return out
        except OSError:
            return out
        stamp = key = None
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                sec, nsec = _TIMESPEC.unpack_from(data)
                stamp = sec * 1_000_000_000 + nsec
            elif (level, kind) in (
                (socket.IPPROTO_IP, IP_RECVERR),
                (socket.IPPROTO_IPV6, IPV6_RECVERR),
            ):
                key = _EXTENDED_ERR.unpack_from(data)[6]
        out.append((key, stamp))


def latest_tx(sock: socket.socket) -> int | None:
    """The latest kernel TX stamp waiting in the error queue (the queue is drained)."""
    stamps = [stamp for _, stamp in drain_tx(sock) if stamp]
    return stamps[-1] if stamps else None
