"""One controller session on the endpoint: requests in, responses and notifications out.

The session core (packetlab.wire.session) does the protocol; this agent does what requests ask:
info memory, sockets, scheduled sends with kernel TX stamps, NOTIFMASK holding, receive-buffer
accounting with exact ndrop counts. When the session ends, for whatever reason, every socket is
closed and every pending send is cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from packetlab import wire as w
from packetlab.endpoint.sockets import EndpointSocket, TcpSocket, UdpSocket
from packetlab.endpoint.vmem import (
    TRANSSUP_RAW,
    TRANSSUP_TCP,
    TRANSSUP_UDP,
    EndpointInfo,
    InfoMemory,
    SocketBlock,
)
from packetlab.wire.session import EndpointSession, RequestReceived, SessionClosed

log = logging.getLogger("packetlab.endpoint")
SPIN_NS = 2_000_000  # sleep until this long before a scheduled send, then spin
PATH_SAMPLES = 15  # send-path delays remembered for compensation
PATH_MAX_NS = 200_000  # a longer send path is not typical and is not learned


@dataclass
class _Held:
    """Notifications held by NOTIFMASK, and the receive buffer they occupy."""

    queue: deque[w.Message] = field(default_factory=deque)
    drop_first: int = 0
    drop_last: int = 0
    drop_units: int = 0
    drop_bytes: int = 0


class SessionAgent:
    """Serves one session. ``read`` returns plaintext (b"" at EOF); ``write`` sends bytes."""

    def __init__(
        self,
        info: EndpointInfo,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], None],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self.info = info
        self._read = read
        self._write = write
        self.clock = clock
        self.core = EndpointSession(now=clock())
        self.blocks: dict[int, SocketBlock] = {}
        self.sockets: dict[int, EndpointSocket] = {}
        self.send_times: dict[int, int] = {}
        self.memory = InfoMemory(info, self.blocks, self.send_times)
        self._held: dict[int, _Held] = {}
        self._buf_used = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self.closed_reason = ""
        self.yielded = False
        self._path_ns: deque[int] = deque(maxlen=PATH_SAMPLES)
        self._flush_pending = False

    # session loop -----------------------------------------------------------------------

    async def run(self) -> str:
        """Serve until the controller leaves, yields, breaks the protocol or times out."""
        loop = asyncio.get_running_loop()
        try:
            while not self.core.closed:
                timer = self.core.get_timer()
                timeout = None if timer is None else max(0.0, (timer - self.clock()) / 1e9)
                try:
                    async with asyncio.timeout(timeout):
                        data = await self._read()
                except TimeoutError:
                    self._handle_events(self.core.handle_timer(self.clock()))
                    continue
                if not data:
                    self.closed_reason = self.closed_reason or "controller closed the session"
                    break
                self._handle_events(self.core.receive_data(data, self.clock()))
                self._flush()
                await asyncio.sleep(0)
        finally:
            self._flush()
            self.cleanup()
            del loop
        return self.closed_reason

    def _flush_soon(self) -> None:
        """Flush at the end of this loop iteration: notifications that arrive together (a
        burst of datagrams) leave in one write, one TLS record."""
        if not self._flush_pending:
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        out = self.core.data_to_send()
        if out:
            with contextlib.suppress(Exception):
                self._write(out)

    def _handle_events(self, events: Sequence[object]) -> None:
        for event in events:
            if isinstance(event, SessionClosed):
                self.closed_reason = event.reason
            elif isinstance(event, RequestReceived):
                self._handle(event.message)

    def cleanup(self) -> None:
        """Close every socket and cancel every pending send."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()
        for sock in list(self.sockets.values()):
            sock.close()
        self.sockets.clear()
        self.blocks.clear()
        self._held.clear()
        self._buf_used = 0
        self.core.close()

    # requests ---------------------------------------------------------------------------

    def _reply(self, errid: int = 0) -> None:
        self.core.send(w.Result(errid))

    def _handle(self, msg: w.Message) -> None:
        handler = _HANDLERS.get(type(msg))
        if handler is None:
            self._reply(w.ErrId.ECTLNOTSUP)
            return
        try:
            handler(self, msg)
        except Exception:  # never take the endpoint down; tell the controller
            log.exception("request %s failed", type(msg).__name__)
            self._reply(w.ErrId.EUNKFAULT)

    def _cdata(self, msg: w.Cdata) -> None:
        # certificate-mandated programs arrive in the next issues; nothing is listed yet
        self._reply(
            w.ErrId.ECRTBADHINT if msg.hint not in ("filter", "monitor") else w.ErrId.ECRTBADHDAT
        )

    def _start(self, msg: w.Start) -> None:
        self.core.accept_start()

    def _yield(self, msg: w.Yield) -> None:
        self._reply()
        self.yielded = True
        self.closed_reason = "controller yielded"
        self._flush()
        self.core.close()

    def _end(self, msg: w.End) -> None:
        self._reply()
        self.closed_reason = "controller ended the experiment"
        self._flush()
        self.core.close()

    def _mread(self, msg: w.Mread) -> None:
        data = self.memory.read(msg.addr, msg.length, now=self.clock(), buf_used=self._buf_used)
        self.core.send(w.Mdata(msg.addr, data))

    def _mwrite(self, msg: w.Mwrite) -> None:
        masks = {sktid: block.notifmask for sktid, block in self.blocks.items()}
        self.memory.write(msg.addr, msg.data)
        self._reply()
        for sktid, old in masks.items():
            block = self.blocks.get(sktid)
            if block is not None and block.notifmask != old:
                self._release(sktid)

    def _nopen(self, msg: w.Nopen) -> None:
        if msg.sktid in self.sockets:
            self._reply(w.ErrId.ESKTINUSE)
            return
        want = {w.Proto.RAW: TRANSSUP_RAW, w.Proto.TCP: TRANSSUP_TCP, w.Proto.UDP: TRANSSUP_UDP}
        if not self.info.transports & want[w.Proto(msg.proto)] or msg.proto == w.Proto.RAW:
            self._reply(w.ErrId.ESKTNOPROTO)
            return
        if msg.family == w.Family.IPV6 and not self.info.ipv6:
            self._reply(w.ErrId.ESKTNOPRFAM)
            return
        block = SocketBlock(
            msg.family,
            msg.proto,
            w.SocketState.OPENING,
            msg.laddr,
            msg.raddr or b"",
            msg.lport,
            msg.rport,
            msg.rbufsz,
        )
        loop = asyncio.get_running_loop()
        on_data = lambda data, t, raddr, rport: self._on_data(msg.sktid, data, t, raddr, rport)  # noqa: E731
        on_status = lambda state, code, raddr, rport: self._on_status(  # noqa: E731
            msg.sktid, code, raddr, rport
        )
        sock: EndpointSocket
        try:
            if msg.proto == w.Proto.UDP:
                sock = UdpSocket(loop, block, on_data, on_status)
                sock.open()
            else:
                sock = TcpSocket(loop, block, on_data, on_status)
                sock.open(connect=not msg.is_listen)
        except OSError as exc:
            log.info("nopen %d failed: %s", msg.sktid, exc)
            self._reply(w.ErrId.ESKTNOADDR)
            return
        self.blocks[msg.sktid] = block
        self.sockets[msg.sktid] = sock
        self._held[msg.sktid] = _Held()
        self._reply()

    def _nclose(self, msg: w.Nclose) -> None:
        sock = self.sockets.pop(msg.sktid, None)
        if sock is None:
            self._reply(w.ErrId.ESKTNOTOPEN)
            return
        self._report_drops(msg.sktid, force=True)
        held = self._held.pop(msg.sktid, None)
        if held is not None:
            self._buf_used -= sum(_data_len(m) for m in held.queue)
        sock.close()
        self.blocks.pop(msg.sktid, None)
        self._reply()

    def _socket_for(self, sktid: int, family: int, proto: int) -> EndpointSocket | None:
        sock = self.sockets.get(sktid)
        if sock is None:
            self._reply(w.ErrId.ESKTNOTOPEN)
            return None
        if sock.block.family != family or sock.block.proto != proto:
            self._reply(w.ErrId.ESKTNOMATCH)
            return None
        return sock

    def _nsend(self, msg: w.Nsend) -> None:
        sock = self._socket_for(msg.sktid, msg.family, msg.proto)
        if sock is None:
            return
        self._reply()
        self._schedule(msg.time, lambda: self._do_send(sock, msg))

    def _nctl(self, msg: w.Nctl) -> None:
        sock = self._socket_for(msg.sktid, msg.family, msg.proto)
        if sock is None:
            return
        if msg.proto != w.Proto.TCP or msg.command != w.NctlCommand.TCP_FIN:
            self._reply(w.ErrId.ECTLNOTSUP)
            return
        self._reply()
        self._schedule(msg.time, lambda: _quietly(sock.shutdown_write))

    def _ncap(self, msg: w.Ncap) -> None:
        sock = self._socket_for(msg.sktid, msg.family, msg.proto)
        if sock is not None:
            self._reply(w.ErrId.ESKTNOPROTO)  # capture filters need raw sockets (next issue)

    # sending ----------------------------------------------------------------------------

    def _schedule(self, when: int, action: Callable[[], None]) -> None:
        if when <= self.clock():
            action()  # the run loop flushes once after the whole batch of requests
            return
        task = asyncio.get_running_loop().create_task(self._at(when, action))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def send_path_ns(self) -> int:
        """The shortest recent delay from calling send to the kernel's TX stamp: sends start
        this much early, so the stamp lands near the requested time and almost never before
        it (the median would centre the error on zero but send a third of packets early)."""
        return min(self._path_ns) if self._path_ns else 0

    async def _at(self, when: int, action: Callable[[], None]) -> None:
        delay = when - self.clock() - SPIN_NS
        if delay > 0:
            await asyncio.sleep(delay / 1e9)
        target = when - self.send_path_ns()
        while self.clock() < target:
            pass
        action()
        self._flush()

    def _do_send(self, sock: EndpointSocket, msg: w.Nsend) -> None:
        try:
            sent_at, before = sock.send(msg.payload, msg.raddr, msg.rport)
        except OSError as exc:
            log.info("nsend on %d failed: %s", msg.sktid, exc)
            sock.block.nsend_err = w.NsendErr.UNKFAULT
            sock.block.nsend_err_tag = msg.tag
            if msg.tag:
                self._notify(
                    msg.sktid, w.Ntag(msg.sktid, msg.tag, self.clock(), w.ErrId.EPKTNOTSENT)
                )
            return
        if 0 <= sent_at - before <= PATH_MAX_NS and sent_at != before:
            self._path_ns.append(sent_at - before)
        if msg.tag:
            self.send_times[msg.tag] = sent_at
            self._notify(msg.sktid, w.Ntag(msg.sktid, msg.tag, sent_at))

    # notifications ----------------------------------------------------------------------

    def _notify(self, sktid: int, msg: w.Message) -> None:
        block = self.blocks.get(sktid)
        held = self._held.get(sktid)
        if block is None or held is None:
            return
        if block.notifmask & _MASK_BIT[type(msg)]:
            held.queue.append(msg)
            return
        self.core.send(msg)

    def _on_data(
        self, sktid: int, data: bytes, stamp: int, raddr: bytes | None, rport: int
    ) -> None:
        block = self.blocks.get(sktid)
        held = self._held.get(sktid)
        if block is None or held is None:
            return
        msg = w.Ndata(sktid, block.family, block.proto, stamp, data, raddr, rport if raddr else 0)
        if block.notifmask & w.NotifMask.NDATA:
            size = len(data)
            if block.rbufused + size > block.rbufsz or self._buf_used + size > self.info.buf_max:
                self._drop(sktid, held, block, stamp, size)
                return
            block.rbufused += size
            self._buf_used += size
            held.queue.append(msg)
            return
        self._report_drops(sktid)
        self.core.send(msg)
        self._flush_soon()

    def _drop(self, sktid: int, held: _Held, block: SocketBlock, stamp: int, size: int) -> None:
        if not held.drop_units:
            held.drop_first = stamp
        held.drop_last = stamp
        held.drop_units += 1
        held.drop_bytes += size
        block.drop_units += 1
        block.drop_bytes += size

    def _report_drops(self, sktid: int, force: bool = False) -> None:
        held = self._held.get(sktid)
        block = self.blocks.get(sktid)
        if held is None or block is None or not held.drop_units:
            return
        if block.notifmask & w.NotifMask.NDROP and not force:
            return
        self.core.send(
            w.Ndrop(
                sktid,
                block.family,
                block.proto,
                held.drop_first,
                held.drop_last,
                held.drop_units,
                held.drop_bytes,
            )
        )
        held.drop_units = held.drop_bytes = 0

    def _on_status(self, sktid: int, code: int, raddr: bytes | None, rport: int) -> None:
        block = self.blocks.get(sktid)
        if block is None:
            return
        self._notify(
            sktid,
            w.Nstat(
                sktid,
                block.family,
                block.proto,
                self.clock(),
                code,
                raddr if code == w.NstatCode.ESTABLISHED else None,
                rport,
            ),
        )
        self._flush_soon()

    def _release(self, sktid: int) -> None:
        """A NOTIFMASK bit was cleared: send what it held, in order, and report drops."""
        block = self.blocks[sktid]
        held = self._held[sktid]
        keep: deque[w.Message] = deque()
        for msg in held.queue:
            if block.notifmask & _MASK_BIT[type(msg)]:
                keep.append(msg)
                continue
            size = _data_len(msg)
            block.rbufused -= size
            self._buf_used -= size
            self.core.send(msg)
        held.queue = keep
        self._report_drops(sktid)


def _data_len(msg: w.Message) -> int:
    return len(msg.data) if isinstance(msg, w.Ndata) else 0


def _quietly(action: Callable[[], None]) -> None:
    with contextlib.suppress(OSError):
        action()


_MASK_BIT: dict[type, int] = {
    w.Ntag: w.NotifMask.NTAG,
    w.Nstat: w.NotifMask.NSTAT,
    w.Ndata: w.NotifMask.NDATA,
    w.Ndrop: w.NotifMask.NDROP,
    w.Nblock: w.NotifMask.NBLOCK,
}

_HANDLERS: dict[type, Callable[[SessionAgent, w.Message], None]] = {
    w.Cdata: SessionAgent._cdata,  # type: ignore[dict-item]
    w.Start: SessionAgent._start,  # type: ignore[dict-item]
    w.Yield: SessionAgent._yield,  # type: ignore[dict-item]
    w.End: SessionAgent._end,  # type: ignore[dict-item]
    w.Mread: SessionAgent._mread,  # type: ignore[dict-item]
    w.Mwrite: SessionAgent._mwrite,  # type: ignore[dict-item]
    w.Nopen: SessionAgent._nopen,  # type: ignore[dict-item]
    w.Nclose: SessionAgent._nclose,  # type: ignore[dict-item]
    w.Nsend: SessionAgent._nsend,  # type: ignore[dict-item]
    w.Nctl: SessionAgent._nctl,  # type: ignore[dict-item]
    w.Ncap: SessionAgent._ncap,  # type: ignore[dict-item]
}
