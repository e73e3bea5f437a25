"""The endpoint's UDP and TCP sockets, driven by the event loop, with kernel timestamps.

Each socket reports through callbacks into the session agent: ``on_data(data, time, raddr,
rport)`` for received data (time = kernel RX stamp) and ``on_status(state, code, raddr, rport)``
for connection changes. Sends return the kernel TX stamp when the kernel gives one.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import time
from collections.abc import Callable

from packetlab.endpoint import timestamps
from packetlab.endpoint.vmem import SocketBlock
from packetlab.wire.codes import Family, NstatCode, Proto, SocketState

RECV_SIZE = 65536
DataCallback = Callable[[bytes, int, bytes | None, int], None]
StatusCallback = Callable[[int, int, bytes | None, int], None]


def _af(family: int) -> int:
    return socket.AF_INET if family == Family.IPV4 else socket.AF_INET6


def _ip(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def _raw(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


class EndpointSocket:
    """One sktid's socket. Subclasses: UDP, TCP connect, TCP listen (passive open)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        block: SocketBlock,
        on_data: DataCallback,
        on_status: StatusCallback,
    ) -> None:
        self.loop = loop
        self.block = block
        self.on_data = on_data
        self.on_status = on_status
        self.sock: socket.socket | None = None
        self._sends = 0

    def _new_socket(self, kind: int) -> socket.socket:
        sock = socket.socket(_af(self.block.family), kind)
        sock.setblocking(False)
        return sock

    def _bind(self, sock: socket.socket) -> None:
        sock.bind((_ip(self.block.laddr), self.block.lport))
        host, port = sock.getsockname()[:2]
        self.block.laddr = _raw(host)
        self.block.lport = port

    def send(self, payload: bytes, raddr: bytes | None, rport: int) -> tuple[int, int]:
        """Send now; returns (actual send time, clock just before the send). The actual time is
        the kernel TX stamp, or the clock before the send where the kernel gives none."""
        sock = self.sock
        if sock is None:
            raise OSError(errno.ENOTCONN, "socket is closed")
        before = time.time_ns()
        key = self._sends
        if raddr is not None:
            sock.sendto(payload, (_ip(raddr), rport))
        else:
            sock.sendall(payload)
        # the stamp counter counts datagrams on UDP, bytes on TCP (the last byte is stamped)
        if self.block.proto == Proto.UDP:
            self._sends += 1
        else:
            self._sends += len(payload)
            key = self._sends - 1
        # drain everything (a stamp left queued makes the event loop spin); stamps of earlier
        # sends that arrive late are of no use any more and are dropped
        stamp = None
        for counter, kernel_time in timestamps.drain_tx(sock):
            if counter == key and kernel_time is not None:
                stamp = kernel_time
        return (stamp if stamp is not None else before), before

    def shutdown_write(self) -> None:
        if self.sock is not None:
            self.sock.shutdown(socket.SHUT_WR)
            self.block.state = SocketState.WFIN

    def close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(sock.fileno())
            with contextlib.suppress(Exception):
                self.loop.remove_writer(sock.fileno())
            sock.close()
        self.block.state = SocketState.FREE


class UdpSocket(EndpointSocket):
    def open(self) -> None:
        sock = self._new_socket(socket.SOCK_DGRAM)
        try:
            self._bind(sock)
            timestamps.enable(sock)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.block.state = SocketState.OPEN
        self.loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        for _ in range(64):
            try:
                data, ancillary, _, addr = sock.recvmsg(RECV_SIZE, timestamps.ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # an ICMP error queued for this socket: drain it so the loop does not spin
                timestamps.drain_tx(sock)
                return
            stamp = timestamps.rx_time(ancillary) or time.time_ns()
            self.on_data(data, stamp, _raw(addr[0]), addr[1])


class TcpSocket(EndpointSocket):
    """TCP connect (``connect=True``) or a passive open on a listening socket."""

    def open(self, connect: bool) -> None:
        sock = self._new_socket(socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not connect:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._bind(sock)
            if connect:
                code = sock.connect_ex((_ip(self.block.raddr), self.block.rport))
                if code not in (0, errno.EINPROGRESS):
                    raise OSError(code, errno.errorcode.get(code, "connect failed"))
                self.loop.add_writer(sock.fileno(), self._connected)
            else:
                sock.listen(1)
                self.loop.add_reader(sock.fileno(), self._accept)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self.block.state = SocketState.OPENING

    def _established(self, sock: socket.socket) -> None:
        timestamps.enable(sock)
        self.block.state = SocketState.OPEN
        host, port = sock.getpeername()[:2]
        self.block.raddr, self.block.rport = _raw(host), port
        self.on_status(SocketState.OPEN, NstatCode.ESTABLISHED, self.block.raddr, port)
        self.loop.add_reader(sock.fileno(), self._readable)

    def _connected(self) -> None:
        sock = self.sock
        if sock is None:
            return
        self.loop.remove_writer(sock.fileno())
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._established(sock)
            return
        state = {
            errno.ECONNREFUSED: SocketState.REFUSED,
            errno.ETIMEDOUT: SocketState.TIMEDOUT,
            errno.EHOSTUNREACH: SocketState.UNREACH,
            errno.ENETUNREACH: SocketState.UNREACH,
        }
        self.block.state = state.get(code, SocketState.UNKFAULT)
        nstat = NstatCode.TIMEOUT if code == errno.ETIMEDOUT else NstatCode.RESET
        self.on_status(self.block.state, nstat, None, 0)

    def _accept(self) -> None:
        listener = self.sock
        if listener is None:
            return
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self.loop.remove_reader(listener.fileno())
        listener.close()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = conn
        self._established(conn)

    def _readable(self) -> None:
        sock = self.sock
        if sock is None:
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(RECV_SIZE, timestamps.ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except ConnectionResetError:
            self.loop.remove_reader(sock.fileno())
            self.block.state = SocketState.RESET
            self.on_status(SocketState.RESET, NstatCode.RESET, None, 0)
            return
        except OSError:
            timestamps.drain_tx(sock)
            return
        if not data:
            self.loop.remove_reader(sock.fileno())
            self.block.state = SocketState.EOF
            self.on_status(SocketState.EOF, NstatCode.PEERCLOSED, None, 0)
            return
        self.on_data(data, timestamps.rx_time(ancillary) or time.time_ns(), None, 0)
