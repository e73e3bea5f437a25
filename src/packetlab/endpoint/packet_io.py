"""The endpoint's packet I/O process: every packet socket of a session lives here.

Why a process of its own: a scheduled send must leave within microseconds of its time, and
in the session process the event loop and the GIL (TLS, decoding, notifications) can hold a
sender off for milliseconds (../research: p99 of 9-190 ms for a spinning thread next to busy
Python). Here nothing runs long: sends, kernel TX stamps from the error queue, receives with
kernel RX stamps, TCP connects and accepts. It also splits the work of a busy session over two
cores: the session process does TLS and the protocol, this one does the syscalls.

A scheduled send sleeps (event-loop timer) until SPIN_NS before its time, then spins on the
clock, walks the send path twice without sending (MSG_PROBE) to warm it, and starts early by
the recent send-path delay (TX stamp minus the clock just before the send), so the kernel
stamp lands on the requested time. The actual time reported
in ntag is always the kernel TX stamp.

Run as ``python -m packetlab.endpoint.packet_io FD``, FD being one end of a Unix stream
socketpair carrying the frames of packetlab.endpoint.io_frames. When the other end closes, every
socket is closed and the process exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import heapq
import logging
import signal
import socket
import struct
import sys
import time
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any

from packetlab.endpoint import io_frames as f
from packetlab.endpoint import timestamps
from packetlab.endpoint.sockets import ip_raw, ip_text
from packetlab.wire.codes import ErrId, MsgType, NstatCode, Proto, SocketState

log = logging.getLogger("packetlab.endpoint.packet_io")

SPIN_NS = 2_000_000  # sleep until this long before a scheduled send, then spin
PATH_SAMPLES = 15  # send-path delays remembered for compensation
PATH_MAX_NS = 200_000  # a longer send path is not typical and is not learned
STAMP_WAIT_NS = 20_000_000  # a TX stamp this late is not coming: report the pre-send clock
DRAIN_EVERY = 32  # immediate sends between reads of the error queue (it is bounded by SO_RCVBUF)
WARM_LEADS_NS = (100_000, 30_000)  # walk the send path (MSG_PROBE) this long before a send
MSG_PROBE = 0x10  # linux: do not send, only probe the path
RECV_SIZE = 65536
READ_BURST = 64  # datagrams per wake-up, so timers are never held off for long
CHANNEL_READ = 1 << 18
PACKET_HOST = 0  # linux: a packet socket's frame addressed to this host

_NSEND_HEAD = struct.Struct(">BBBQH")
_NCTL = struct.Struct(">BBBQB")
_NTAG_FRAME = struct.Struct(">IBHQ")
_NTAG_ERR_FRAME = struct.Struct(">IBHQH")
_NDATA_HEAD = struct.Struct(">IBBBQ")
_NSTAT_HEAD = struct.Struct(">BBBQ")
_PORT = struct.Struct(">H")
_NTAG_WORD = MsgType.NTAG << 24 | 11
_NTAG_ERR_WORD = MsgType.NTAG << 24 | 13
_NDATA = int(MsgType.NDATA) << 24
_FD_SPACE = socket.CMSG_SPACE(f.MAX_FDS_PER_READ * 4)
_UDP = int(Proto.UDP)
_RAW = int(Proto.RAW)


class _Socket:
    """One sktid's socket and its send state."""

    __slots__ = (
        "backlog",
        "connected",
        "family",
        "fd",
        "fin_pending",
        "hosts",
        "pending",
        "proto",
        "receiver",
        "sends",
        "since_drain",
        "sktid",
        "sock",
    )

    def __init__(self, sktid: int, family: int, proto: int, kind: int, sock: socket.socket):
        self.sktid = sktid
        self.family = family
        self.proto = proto
        self.sock: socket.socket | None = sock
        self.fd = sock.fileno()
        self.connected = kind in (f.KIND_UDP, f.KIND_RAW)
        self.sends = 0  # the kernel's OPT_ID counter: datagrams on UDP, bytes on TCP
        self.since_drain = 0
        # stamp key -> (tag, clock before the send, learn the path delay from it)
        self.pending: dict[int, tuple[int, int, bool]] = {}
        self.backlog = bytearray()
        self.fin_pending = False
        self.hosts: dict[bytes, str] = {}  # raw address -> text, for sendto
        self.receiver: socket.socket | None = None  # a raw socket's packet receiver

    def host(self, raw: bytes) -> str:
        """The text form of a destination address, for sendto (cached)."""
        host = self.hosts.get(raw)
        if host is None:
            if len(self.hosts) > 1024:
                self.hosts.clear()
            host = self.hosts[raw] = ip_text(raw)
        return host


class PacketIO:
    """The packet I/O process's state: sockets by sktid, scheduled sends, output to the session."""

    def __init__(self, channel: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
        self._channel = channel
        self._loop = loop
        self._inbuf = bytearray()
        self._fds: deque[int] = deque()
        self._out = bytearray()
        self._writing = False
        self._flush_pending = False
        self.sockets: dict[int, _Socket] = {}
        self._heap: list[tuple[int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = 0
        self._timer: asyncio.TimerHandle | None = None
        self._stamp_timer: asyncio.TimerHandle | None = None
        self._path_ns: deque[int] = deque(maxlen=PATH_SAMPLES)
        self.done: asyncio.Future[None] = loop.create_future()

    def start(self) -> None:
        self._loop.add_reader(self._channel.fileno(), self._on_channel)

    # the channel --------------------------------------------------------------------------

    def _on_channel(self) -> None:
        try:
            data, ancillary, _, _ = self._channel.recvmsg(CHANNEL_READ, _FD_SPACE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data, ancillary = b"", []
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                self._fds.extend(fds)
        if not data:
            self.shutdown()
            return
        self._inbuf += data
        frames, used = f.split_frames(self._inbuf)
        del self._inbuf[:used]
        for frame in frames:
            try:
                self._dispatch(frame)
            except Exception:  # one bad frame must not take the process down
                log.exception("frame 0x%02x failed", frame[0])
        for s in self.sockets.values():
            if s.pending:
                self._drain(s)
        self._flush()

    def _dispatch(self, frame: bytes) -> None:
        kind = frame[0]
        if kind == MsgType.NSEND:
            self._nsend(frame)
        elif kind == f.ADOPT:
            self._adopt(frame)
        elif kind == MsgType.NCTL:
            self._nctl(frame)
        elif kind == MsgType.NCLOSE:
            self._close(frame[4])
            self._out += f.frame(f.CLOSED, frame[4:5])
        else:
            log.warning("unknown frame 0x%02x", kind)

    def _flush_soon(self) -> None:
        if not self._flush_pending:
            self._flush_pending = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        if not self._out or self._writing:
            return
        try:
            sent = self._channel.send(self._out)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._out.clear()
            return
        del self._out[:sent]
        if self._out:
            self._writing = True
            self._loop.add_writer(self._channel.fileno(), self._on_channel_writable)

    def _on_channel_writable(self) -> None:
        self._loop.remove_writer(self._channel.fileno())
        self._writing = False
        self._flush()

    def shutdown(self) -> None:
        """The session is over: close everything, forget every scheduled send."""
        for sktid in list(self.sockets):
            self._close(sktid)
        self._heap.clear()
        for timer in (self._timer, self._stamp_timer):
            if timer is not None:
                timer.cancel()
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._channel.fileno())
        while self._fds:
            with contextlib.suppress(OSError):
                socket.close(self._fds.popleft())
        if not self.done.done():
            self.done.set_result(None)

    # sockets ----------------------------------------------------------------------------

    def _adopt(self, frame: bytes) -> None:
        sktid, family, proto, kind = f.ADOPT_BODY.unpack_from(frame, 4)
        sock = socket.socket(fileno=self._fds.popleft())
        sock.setblocking(False)
        self._close(sktid)
        s = _Socket(sktid, family, proto, kind, sock)
        self.sockets[sktid] = s
        if kind == f.KIND_RAW:
            receiver = socket.socket(fileno=self._fds.popleft())
            receiver.setblocking(False)
            s.receiver = receiver
            self._loop.add_reader(receiver.fileno(), self._raw_readable, s)
            self._loop.add_reader(s.fd, self._drain, s)  # the sender's TX stamps
        elif kind == f.KIND_UDP:
            self._loop.add_reader(s.fd, self._udp_readable, s)
        elif kind == f.KIND_TCP_CONNECT:
            self._loop.add_writer(s.fd, self._tcp_connected, s)
        else:
            self._loop.add_reader(s.fd, self._tcp_accept, s)

    def _close(self, sktid: int) -> None:
        s = self.sockets.pop(sktid, None)
        if s is None or s.sock is None:
            return
        for remove in (self._loop.remove_reader, self._loop.remove_writer):
            with contextlib.suppress(Exception):
                remove(s.fd)
        s.sock.close()
        s.sock = None
        s.pending.clear()
        if s.receiver is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(s.receiver.fileno())
            s.receiver.close()
            s.receiver = None

    def _state(self, s: _Socket, state: int, nstat_code: int | None = None) -> None:
        body = f.STATE_HEAD.pack(state, s.sktid)
        if nstat_code is not None:
            body += _NSTAT_HEAD.pack(s.sktid, s.family, s.proto, time.time_ns())
            if nstat_code == NstatCode.ESTABLISHED and s.sock is not None:
                host, port = s.sock.getpeername()[:2]
                body += ip_raw(host) + _PORT.pack(port)
            else:
                body += bytes((nstat_code,))
        self._out += f.frame(f.STATE, body)
        self._flush_soon()

    def _tcp_connected(self, s: _Socket) -> None:
        sock = s.sock
        if sock is None:
            return
        self._loop.remove_writer(s.fd)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code == 0:
            self._established(s)
            return
        state = {
            errno.ECONNREFUSED: SocketState.REFUSED,
            errno.ETIMEDOUT: SocketState.TIMEDOUT,
            errno.EHOSTUNREACH: SocketState.UNREACH,
            errno.ENETUNREACH: SocketState.UNREACH,
        }.get(code, SocketState.UNKFAULT)
        self._state(s, state, NstatCode.TIMEOUT if code == errno.ETIMEDOUT else NstatCode.RESET)

    def _tcp_accept(self, s: _Socket) -> None:
        listener = s.sock
        if listener is None:
            return
        try:
            conn, _ = listener.accept()
        except (BlockingIOError, InterruptedError):
            return
        self._loop.remove_reader(s.fd)
        listener.close()
        conn.setblocking(False)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.sock, s.fd = conn, conn.fileno()
        self._established(s)

    def _established(self, s: _Socket) -> None:
        assert s.sock is not None
        timestamps.enable(s.sock)
        s.connected = True
        self._state(s, SocketState.OPEN, NstatCode.ESTABLISHED)
        self._loop.add_reader(s.fd, self._tcp_readable, s)

    # receiving --------------------------------------------------------------------------

    def _udp_readable(self, s: _Socket) -> None:
        if s.pending:
            self._drain(s)
        sock = s.sock
        if sock is None:
            return
        out = self._out
        head = _NDATA_HEAD.pack
        for count in range(READ_BURST):
            try:
                data, ancillary, _, addr = sock.recvmsg(RECV_SIZE, timestamps.ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                if count == 0:  # woken by the error queue alone: a late stamp would wake us
                    self._drain(s)  # forever if left there
                break
            except OSError:  # an ICMP error reported on the socket; nothing to read
                break
            stamp = timestamps.rx_time(ancillary) or time.time_ns()
            raddr = ip_raw(addr[0])
            out += head(_NDATA | (13 + len(raddr) + len(data)), s.sktid, s.family, _UDP, stamp)
            out += raddr
            out += _PORT.pack(addr[1])
            out += data
        self._flush()  # now: the session process waits for this datagram

    def _raw_readable(self, s: _Socket) -> None:
        """Whole IP packets that the socket's ncap filter let through, as ndata."""
        receiver = s.receiver
        if receiver is None:
            return
        out = self._out
        head = _NDATA_HEAD.pack
        for _ in range(READ_BURST):
            try:
                data, ancillary, _, addr = receiver.recvmsg(RECV_SIZE, timestamps.ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                break
            if addr[2] != PACKET_HOST:  # our own sends, other hosts' traffic
                continue
            stamp = timestamps.rx_time(ancillary) or time.time_ns()
            out += head(_NDATA | (11 + len(data)), s.sktid, s.family, _RAW, stamp)
            out += data
        self._flush()

    def _tcp_readable(self, s: _Socket) -> None:
        if s.pending:
            self._drain(s)
        sock = s.sock
        if sock is None:
            return
        try:
            data, ancillary, _, _ = sock.recvmsg(RECV_SIZE, timestamps.ANCILLARY_SIZE)
        except (BlockingIOError, InterruptedError):
            self._drain(s)  # woken by the error queue alone
            return
        except ConnectionResetError:
            self._loop.remove_reader(s.fd)
            self._state(s, SocketState.RESET, NstatCode.RESET)
            return
        except OSError:
            return
        if not data:
            self._loop.remove_reader(s.fd)
            self._state(s, SocketState.EOF, NstatCode.PEERCLOSED)
            return
        stamp = timestamps.rx_time(ancillary) or time.time_ns()
        self._out += _NDATA_HEAD.pack(_NDATA | (11 + len(data)), s.sktid, s.family, s.proto, stamp)
        self._out += data
        self._flush()

    # sending ----------------------------------------------------------------------------

    def _nsend(self, frame: bytes) -> None:
        sktid, family, proto, when, tag = _NSEND_HEAD.unpack_from(frame, 4)
        s = self.sockets.get(sktid)
        if s is None:
            self._send_failed(sktid, tag)
            return
        if proto == _UDP:
            end = 17 + (4 if family == 4 else 16)
            payload = frame[end + 2 :]
            target: tuple[str, int] | None = (
                s.host(frame[17:end]),
                _PORT.unpack_from(frame, end)[0],
            )
        elif proto == _RAW:
            payload = frame[17:]
            dst = payload[16:20] if family == 4 else payload[24:40]
            if len(dst) not in (4, 16):
                self._send_failed(sktid, tag)
                return
            target = (s.host(dst), 0)
        else:
            payload = frame[17:]
            target = None
        if when <= time.time_ns():
            self._send(s, tag, payload, target, False)
            s.since_drain += 1
            if s.since_drain >= DRAIN_EVERY:
                self._drain(s)
        else:
            self._schedule(when, self._send_scheduled, (s, tag, payload, target))

    def _warm(self, s: _Socket, target: tuple[str, int] | None) -> None:
        """Walk the send path without sending (MSG_PROBE) shortly before a scheduled send:
        after milliseconds without syscalls the first send here is 10x slower than a warm one
        (../research: cold caches in the microVM), which the compensation cannot predict."""
        if s.sock is None:
            return
        with contextlib.suppress(OSError):
            if target is not None:
                s.sock.sendto(b"", MSG_PROBE, target)
            else:
                s.sock.send(b"", MSG_PROBE)

    def _send_scheduled(
        self, s: _Socket, tag: int, payload: bytes, target: tuple[str, int] | None
    ) -> None:
        self._send(s, tag, payload, target, True)
        self._drain(s)

    def _send(
        self, s: _Socket, tag: int, payload: bytes, target: tuple[str, int] | None, learn: bool
    ) -> None:
        sock = s.sock
        if sock is None or not s.connected:
            self._send_failed(s.sktid, tag)
            return
        before = time.time_ns()
        try:
            if target is not None:
                sock.sendto(payload, target)
                key = s.sends
                s.sends += 1
            else:
                key = self._tcp_write(s, payload)
        except OSError as exc:
            log.info("nsend on %d failed: %s", s.sktid, exc)
            self._send_failed(s.sktid, tag)
            return
        s.pending[key] = (tag, before, learn)

    def _tcp_write(self, s: _Socket, payload: bytes) -> int:
        """Queue ``payload`` on a TCP socket; the stamp key is the offset of its last byte."""
        assert s.sock is not None
        s.sends += len(payload)
        if s.backlog:
            s.backlog += payload
            return s.sends - 1
        try:
            sent = s.sock.send(payload)
        except (BlockingIOError, InterruptedError):
            sent = 0
        if sent < len(payload):
            s.backlog += payload[sent:]
            self._loop.add_writer(s.fd, self._tcp_writable, s)
        return s.sends - 1

    def _tcp_writable(self, s: _Socket) -> None:
        if s.sock is None:
            return
        try:
            sent = s.sock.send(s.backlog)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            sent = len(s.backlog)
        del s.backlog[:sent]
        if not s.backlog:
            self._loop.remove_writer(s.fd)
            if s.fin_pending:
                self._fin(s)

    def _send_failed(self, sktid: int, tag: int) -> None:
        """An ntag with EPKTNOTSENT; tag 0 too, so the session process can set NSENDERR."""
        self._out += _NTAG_ERR_FRAME.pack(
            _NTAG_ERR_WORD, sktid, tag, time.time_ns(), ErrId.EPKTNOTSENT
        )
        self._flush_soon()

    def _drain(self, s: _Socket) -> None:
        """Match the TX stamps in the error queue to their sends and report them."""
        s.since_drain = 0
        if s.sock is None:
            return
        newest = -1
        for key, stamp in timestamps.drain_tx(s.sock):
            if key is None or stamp is None:
                continue
            sent = s.pending.pop(key, None)
            if sent is None:
                continue
            newest = max(newest, key)
            tag, before, learn = sent
            if learn and 0 < stamp - before <= PATH_MAX_NS:
                self._path_ns.append(stamp - before)
            if tag:
                self._out += _NTAG_FRAME.pack(_NTAG_WORD, s.sktid, tag, stamp)
        if s.pending:
            # stamps come in send order: an older send with none has lost it (queue overflow)
            now = time.time_ns()
            for key in [
                k for k, v in s.pending.items() if k < newest or now - v[1] > STAMP_WAIT_NS
            ]:
                self._stamp_lost(s, key)
            if s.pending and self._stamp_timer is None:
                self._stamp_timer = self._loop.call_later(STAMP_WAIT_NS / 1e9, self._expire_stamps)
        self._flush_soon()

    def _stamp_lost(self, s: _Socket, key: int) -> None:
        tag, before, _ = s.pending.pop(key)
        if tag:
            self._out += _NTAG_FRAME.pack(_NTAG_WORD, s.sktid, tag, before)

    def _expire_stamps(self) -> None:
        self._stamp_timer = None
        for s in list(self.sockets.values()):
            if s.pending:
                self._drain(s)

    def send_path_ns(self) -> int:
        """The second-shortest recent delay from calling send to the kernel's TX stamp: sends
        start this much early, so the stamp lands near the requested time and almost never
        before it (the median would centre the error on zero but send a third of the packets
        early; the second-shortest ignores one freak fast sample). With the path warmed by
        MSG_PROBE just before, this measured |error| p50 7-8 us, 0.1-0.2 % early."""
        path = self._path_ns
        return sorted(path)[1] if len(path) > 1 else 0

    def _nctl(self, frame: bytes) -> None:
        sktid, _, _, when, _ = _NCTL.unpack_from(frame, 4)
        s = self.sockets.get(sktid)
        if s is None:
            return
        if when <= time.time_ns():
            self._fin(s)
        else:
            self._schedule(when, self._fin, (s,))

    def _fin(self, s: _Socket) -> None:
        if s.sock is None:
            return
        if s.backlog:
            s.fin_pending = True
            return
        with contextlib.suppress(OSError):
            s.sock.shutdown(socket.SHUT_WR)
            self._state(s, SocketState.WFIN)

    # scheduling -------------------------------------------------------------------------

    def _schedule(self, when: int, action: Callable[..., None], args: tuple[Any, ...]) -> None:
        seq = self._seq
        self._seq += 1
        heapq.heappush(self._heap, (when, seq, action, args))
        if self._heap[0][1] == seq:
            self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        delay = (self._heap[0][0] - SPIN_NS - time.time_ns()) / 1e9
        self._timer = self._loop.call_later(max(0.0, delay), self._run_due)

    def _run_due(self) -> None:
        self._timer = None
        heap = self._heap
        clock = time.time_ns
        while heap:
            when = heap[0][0]
            if when - clock() > SPIN_NS:
                break
            target = when - self.send_path_ns()
            action, args = heap[0][2], heap[0][3]
            if action == self._send_scheduled:
                for lead in WARM_LEADS_NS:
                    if target - clock() > lead:
                        while clock() < target - lead:
                            pass
                        self._warm(args[0], args[3])
            while clock() < target:
                pass
            heapq.heappop(heap)
            action(*args)
        self._flush()
        if heap:
            self._arm()


async def _serve(channel: socket.socket) -> None:
    io = PacketIO(channel, asyncio.get_running_loop())
    io.start()
    await io.done


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or not args[0].isdigit():
        sys.exit("usage: python -m packetlab.endpoint.packet_io FD  (started by the endpoint)")
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the endpoint ends us by closing the channel
    logging.basicConfig(level=logging.WARNING, format="packet-io: %(levelname)s %(message)s")
    channel = socket.socket(fileno=int(args[0]))
    channel.setblocking(False)
    asyncio.run(_serve(channel))


if __name__ == "__main__":
    main()
