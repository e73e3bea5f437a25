"""One controller session on the endpoint: requests in, responses and notifications out.

The session core (packetlab.wire.session) does the protocol; this agent does what requests ask:
info memory, sockets, NOTIFMASK holding, receive-buffer accounting with exact ndrop counts.
Packet I/O (sends at their scheduled time with kernel TX stamps, receives with kernel RX
stamps, TCP connects and accepts) happens in the session's packet I/O process (packet_io.py):
nopen opens and binds the socket here, so errors are answered at once, then hands it over;
nsend, nctl and nclose are forwarded as they came; ntag and ndata come back already encoded
and are forwarded, or held, without decoding. When the session ends, for whatever reason, the
packet I/O process is told to close everything and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from packetlab import packets
from packetlab import wire as w
from packetlab.endpoint import io_frames as f
from packetlab.endpoint.guarding import raw_probe, send_time, tcp_probe, udp_probe
from packetlab.endpoint.io_link import PacketIOLink
from packetlab.endpoint.raw_sockets import drop_everything, open_raw
from packetlab.endpoint.sockets import open_socket
from packetlab.endpoint.vmem import (
    TRANSSUP_RAW,
    TRANSSUP_TCP,
    TRANSSUP_UDP,
    EndpointInfo,
    InfoMemory,
    SocketBlock,
)
from packetlab.guardian import ExperimentGuard, Probe, Verdict
from packetlab.guardian.pcapng import synth_header_len
from packetlab.pki import Limits, VerifiedChain
from packetlab.programs import (
    FilterFunction,
    FilterSet,
    ProgramError,
    compile_filter,
    decode_program,
)
from packetlab.programs import digest as program_digest
from packetlab.programs.kernel import attach_filter
from packetlab.wire.codec import encode
from packetlab.wire.session import (
    EndpointSession,
    NsendReceived,
    RequestReceived,
    SessionClosed,
)

log = logging.getLogger("packetlab.endpoint")

_NTAG = struct.Struct(">BHQ")
_TIME_AT = struct.Struct(">Q")
_NTAG_T, _NDATA_T = int(w.MsgType.NTAG), int(w.MsgType.NDATA)
_BIT_NTAG, _BIT_NSTAT, _BIT_NDATA = (
    int(w.NotifMask.NTAG),
    int(w.NotifMask.NSTAT),
    int(w.NotifMask.NDATA),
)
_UDP = int(w.Proto.UDP)
_TCP = int(w.Proto.TCP)
_RAW = int(w.Proto.RAW)
_RESULT_OK = encode(w.Result())
SHAPED_MAX = 65536  # sends waiting for tokens, at most


@dataclass
class _Held:
    """Notifications held by NOTIFMASK (mask bit, data bytes, encoded frame), and drops."""

    queue: deque[tuple[int, int, bytes]] = field(default_factory=deque)
    drop_first: int = 0
    drop_last: int = 0
    drop_units: int = 0
    drop_bytes: int = 0


class SessionAgent:
    """Serves one session. ``read`` returns plaintext (b"" at EOF); ``write`` sends bytes.

    ``io`` is the session's packet I/O process (spawned here when None); it is closed when
    the session ends. ``guard`` is the guardian of this experiment: every packet passes it
    before it goes to the packet I/O process, every received one before the controller sees
    it. ``chain`` is the controller's verified chain: its certificate filters must be uploaded
    (cdata) before start and then run on every raw packet received."""

    def __init__(
        self,
        info: EndpointInfo,
        read: Callable[[], Awaitable[bytes]],
        write: Callable[[bytes], None],
        clock: Callable[[], int] = time.time_ns,
        io: PacketIOLink | None = None,
        guard: ExperimentGuard | None = None,
        chain: VerifiedChain | None = None,
    ) -> None:
        self.info = info
        self._read = read
        self._write = write
        self.clock = clock
        self.io = io or PacketIOLink.spawn()
        self.core = EndpointSession(now=clock(), pass_nsend=True)
        self.blocks: dict[int, SocketBlock] = {}
        self.send_times: dict[int, int] = {}
        self.memory = InfoMemory(info, self.blocks, self.send_times)
        self._held: dict[int, _Held] = {}
        self._closing: dict[int, int] = {}  # sktid -> nclose frames not yet confirmed
        self._receivers: dict[int, socket.socket] = {}  # raw sktid -> its receiver (a dup)
        self._capture_ends: dict[int, asyncio.TimerHandle] = {}
        self._buf_used = 0
        self.closed_reason = ""
        self.yielded = False
        self._io_gone = False
        self._task: asyncio.Task[object] | None = None
        self.guard = guard
        # sends the guardian shaped: (probe, logged bytes, frame, time asked), asked again in
        # order; refused once they would have waited longer than the guardian's bound
        self._shaped: deque[tuple[Probe, bytes, bytes, int]] = deque()
        self._shaped_timer: asyncio.TimerHandle | None = None
        limits = chain.limits if chain is not None else Limits.NONE
        self._filters_wanted = set(limits.filter)
        self._monitors_wanted = set(limits.monitor)
        self._filter_functions: dict[bytes, FilterFunction] = {}
        self.cert_filters = FilterSet()

    # session loop -----------------------------------------------------------------------

    async def run(self) -> str:
        """Serve until the controller leaves, yields, breaks the protocol or times out."""
        self._task = asyncio.current_task()
        self.io.attach(asyncio.get_running_loop(), self._on_io_frames, self._on_io_lost)
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
                except asyncio.CancelledError:
                    # _on_io_lost cancels us; any other cancellation goes on up
                    if not self._io_gone or self._task is None or self._task.uncancel():
                        raise
                    break
                if not data:
                    self.closed_reason = self.closed_reason or "controller closed the session"
                    break
                self._handle_events(self.core.receive_data(data, self.clock()))
                self._flush()
        finally:
            self._task = None
            self._flush()
            # sends already answered (and counted by the guardian) reach the packet I/O
            # process before it is told to close
            await self.io.drain()
            self.cleanup()
            await self.io.close()
        return self.closed_reason

    def _flush(self) -> None:
        self.io.flush()
        out = self.core.data_to_send()
        if out:
            with contextlib.suppress(Exception):
                self._write(out)

    def _handle_events(self, events: Sequence[object]) -> None:
        for event in events:
            if isinstance(event, NsendReceived):  # the hot path: forwarded undecoded
                if self._check_socket(event.sktid, event.family, event.proto):
                    if self.guard is None:
                        self.core.send_encoded(_RESULT_OK)
                        self.io.send(event.frame)
                    else:
                        self._guarded_send(event)
            elif isinstance(event, SessionClosed):
                self.closed_reason = event.reason
            elif isinstance(event, RequestReceived):
                self._handle(event.message)

    def cleanup(self) -> None:
        """Forget every socket and tell the packet I/O process to close them and exit."""
        self.blocks.clear()
        for sktid in list(self._receivers):
            self._forget_receiver(sktid)
        self._held.clear()
        self._closing.clear()
        self._shaped.clear()
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
            self._shaped_timer = None
        if self.guard is not None:
            self.guard.close(self.clock())
        self._buf_used = 0
        self.core.close()
        self.io.close_channel()

    def _on_io_lost(self) -> None:
        if not self.core.closed:
            self.closed_reason = self.closed_reason or "the packet I/O process ended"
        self._io_gone = True
        if self._task is not None:
            self._task.cancel()

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
        """A program the chain lists: certificate filters are compiled (our verifier and
        translator) and kept; WASM monitors are not run by this endpoint yet."""
        if msg.hint not in ("filter", "monitor"):
            self._reply(w.ErrId.ECRTBADHINT)
            return
        digest = program_digest(msg.data)
        wanted = self._filters_wanted if msg.hint == "filter" else self._monitors_wanted
        if digest not in wanted:
            self._reply(w.ErrId.ECRTBADHDAT)
            return
        if msg.hint == "monitor":
            self._reply(w.ErrId.ECRTBADFRM)
            return
        try:
            self._filter_functions[digest] = compile_filter(msg.data)  # once per session
        except ProgramError as exc:
            log.info("certificate filter refused: %s", exc)
            self._reply(w.ErrId.ECRTBADFRM)
            return
        self._reply()

    def _start(self, msg: w.Start) -> None:
        missing = (self._filters_wanted - set(self._filter_functions)) | self._monitors_wanted
        if missing:
            self.closed_reason = (
                f"start refused: {len(missing)} program(s) the chain lists were not uploaded"
                " or cannot run here (WASM monitors)"
            )
            log.info("%s", self.closed_reason)
            self.core.reject_start(w.ErrId.ECRTNOHDAT)
            return
        self.cert_filters = FilterSet(self._filter_functions.values())
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
        if msg.sktid in self.blocks:
            self._reply(w.ErrId.ESKTINUSE)
            return
        want = {w.Proto.RAW: TRANSSUP_RAW, w.Proto.TCP: TRANSSUP_TCP, w.Proto.UDP: TRANSSUP_UDP}
        if not self.info.transports & want[w.Proto(msg.proto)]:
            self._reply(w.ErrId.ESKTNOPROTO)
            return
        if msg.family == w.Family.IPV6 and not self.info.ipv6:
            self._reply(w.ErrId.ESKTNOPRFAM)
            return
        if self.guard is not None:
            verdict = self.guard.check_open(
                msg.family, msg.proto, msg.raddr, msg.rport, self.clock()
            )
            if not verdict.allowed or verdict.wait_until_ns:
                log.info("nopen %d refused: %s", msg.sktid, verdict.reason or "rate limited")
                self._reply(verdict.errid or w.ErrId.ESKTOPNDENY)
                return
        try:
            if msg.proto == w.Proto.RAW:
                sender, receiver, laddr = open_raw(msg.family, msg.laddr)
                self._receivers[msg.sktid] = receiver.dup()  # ncap attaches filters to it
                socks, kind, lport = [sender, receiver], f.KIND_RAW, 0
            else:
                sock, kind, laddr, lport = open_socket(
                    msg.family, msg.proto, msg.laddr, msg.lport, msg.raddr, msg.rport
                )
                socks = [sock]
        except OSError as exc:
            log.info("nopen %d failed: %s", msg.sktid, exc)
            if self.guard is not None:
                self.guard.closed_socket()
            self._reply(w.ErrId.ESKTNOADDR)
            return
        opened = kind in (f.KIND_UDP, f.KIND_RAW)
        state = w.SocketState.OPEN if opened else w.SocketState.OPENING
        self.blocks[msg.sktid] = SocketBlock(
            msg.family, msg.proto, state, laddr, msg.raddr or b"", lport, msg.rport, msg.rbufsz
        )
        self._held[msg.sktid] = _Held()
        self.io.hand_over(socks, msg.sktid, msg.family, msg.proto, kind)
        self._reply()

    def _nclose(self, msg: w.Nclose) -> None:
        if msg.sktid not in self.blocks:
            self._reply(w.ErrId.ESKTNOTOPEN)
            return
        self._report_drops(msg.sktid, force=True)
        held = self._held.pop(msg.sktid, None)
        if held is not None:
            self._buf_used -= sum(size for _, size, _ in held.queue)
        self.blocks.pop(msg.sktid)
        self._forget_receiver(msg.sktid)
        if self.guard is not None:
            self.guard.closed_socket()
        self._closing[msg.sktid] = self._closing.get(msg.sktid, 0) + 1
        self.io.send(encode(msg))
        self._reply()

    # the guardian ------------------------------------------------------------------------

    def _guarded_send(self, event: NsendReceived) -> None:
        """Judge an nsend: refused ones are answered with the guardian's error and never
        reach the packet I/O process; shaped ones wait here for their tokens, in order."""
        block = self.blocks[event.sktid]
        frame = event.frame
        try:
            if event.proto == _UDP:
                probe, logged = udp_probe(block, frame)
            elif event.proto == _TCP:
                probe, logged = tcp_probe(block, frame)
            else:
                probe, logged = raw_probe(event.family, frame)
        except packets.PacketError as exc:
            log.info("nsend on %d refused: %s", event.sktid, exc)
            self._reply(w.ErrId.ESKTPKTDENY)
            return
        assert self.guard is not None
        asked = self.clock()
        now = max(asked, send_time(frame))
        verdict = self.guard.check_send(probe, now)
        if not verdict.allowed or len(self._shaped) >= SHAPED_MAX:
            log.info("nsend on %d refused: %s", event.sktid, verdict.reason or "backlog full")
            self._reply(verdict.errid or w.ErrId.ESKTPKTDENY)
            return
        self.core.send_encoded(_RESULT_OK)
        if self._shaped or verdict.wait_until_ns:  # in order: behind the shaped ones
            self._shaped.append((probe, logged, frame, now))
            if self._shaped_timer is None:
                self._arm_shaped(verdict.wait_until_ns or now)
            return
        self.guard.sent(probe, logged, now)
        self.io.send(frame)

    def _arm_shaped(self, when: int) -> None:
        if self._shaped_timer is not None:
            self._shaped_timer.cancel()
        delay = max(0.0, (when - self.clock()) / 1e9)
        self._shaped_timer = asyncio.get_running_loop().call_later(delay, self._release_shaped)

    def _release_shaped(self) -> None:
        """Ask again for the shaped sends, oldest first; send those whose tokens are there."""
        self._shaped_timer = None
        guard = self.guard
        assert guard is not None
        while self._shaped:
            probe, logged, frame, asked = self._shaped[0]
            sktid = frame[4]
            block = self.blocks.get(sktid)
            if block is None:  # closed meanwhile
                self._shaped.popleft()
                continue
            now = max(self.clock(), send_time(frame))
            verdict = guard.check_send(probe, now)
            if verdict.allowed and verdict.wait_until_ns - asked > guard.max_wait_ns:
                verdict = Verdict(False, 0, w.ErrId.ESKTPKTDENY, "waited too long for tokens")
            if verdict.allowed and verdict.wait_until_ns:
                self._arm_shaped(verdict.wait_until_ns)
                break
            self._shaped.popleft()
            if verdict.allowed:
                guard.sent(probe, logged, now)
                self.io.send(frame)
            else:
                self._refused_late(sktid, block, frame, verdict.errid)
        self._flush()

    def _refused_late(self, sktid: int, block: SocketBlock, frame: bytes, errid: int) -> None:
        """A send accepted, then refused when its time came (waited too long): NSENDERR, and
        an ntag carrying the error for a tagged send."""
        tag = int.from_bytes(frame[15:17], "big")
        block.nsend_err = w.NsendErr.UNKFAULT
        block.nsend_err_tag = tag
        if tag:
            note = encode(w.Ntag(sktid, tag, self.clock(), errid))
            self._notify(sktid, block, _BIT_NTAG, note)

    def _forget_receiver(self, sktid: int) -> None:
        end = self._capture_ends.pop(sktid, None)
        if end is not None:
            end.cancel()
        receiver = self._receivers.pop(sktid, None)
        if receiver is not None:
            receiver.close()

    def _check_socket(self, sktid: int, family: int, proto: int) -> bool:
        block = self.blocks.get(sktid)
        if block is None:
            self._reply(w.ErrId.ESKTNOTOPEN)
            return False
        if block.family != family or block.proto != proto:
            self._reply(w.ErrId.ESKTNOMATCH)
            return False
        return True

    def _nctl(self, msg: w.Nctl) -> None:
        if not self._check_socket(msg.sktid, msg.family, msg.proto):
            return
        if msg.proto != w.Proto.TCP or msg.command != w.NctlCommand.TCP_FIN:
            self._reply(w.ErrId.ECTLNOTSUP)
            return
        self._reply()
        self.io.send(encode(msg))

    def _ncap(self, msg: w.Ncap) -> None:
        """Attach the program as the raw socket's kernel filter until ``endtime`` (0: for the
        socket's life); afterwards the socket again receives nothing."""
        if not self._check_socket(msg.sktid, msg.family, msg.proto):
            return
        receiver = self._receivers.get(msg.sktid)
        if receiver is None:  # UDP/TCP sockets take no capture filters
            self._reply(w.ErrId.ESKTNOPROTO)
            return
        try:
            attach_filter(receiver, decode_program(msg.program))
        except ProgramError as exc:  # malformed, refused by the kernel's verifier, no bpf()
            log.info("ncap on %d refused: %s", msg.sktid, exc)
            self._reply(w.ErrId.ESKTBADFILT)
            return
        old = self._capture_ends.pop(msg.sktid, None)
        if old is not None:
            old.cancel()
        if msg.endtime:
            delay = max(0.0, (msg.endtime - self.clock()) / 1e9)
            self._capture_ends[msg.sktid] = asyncio.get_running_loop().call_later(
                delay, self._capture_over, msg.sktid
            )
        self._reply()

    def _capture_over(self, sktid: int) -> None:
        self._capture_ends.pop(sktid, None)
        receiver = self._receivers.get(sktid)
        if receiver is not None:
            drop_everything(receiver)

    # from the packet I/O process --------------------------------------------------------

    def _on_io_frames(self, frames: list[bytes]) -> None:
        closing = self._closing
        blocks = self.blocks
        for frame in frames:
            kind = frame[0]
            if kind == f.CLOSED:
                sktid = frame[4]
                left = closing.get(sktid, 0) - 1
                if left > 0:
                    closing[sktid] = left
                else:
                    closing.pop(sktid, None)
                continue
            sktid = frame[5] if kind == f.STATE else frame[4]
            block = blocks.get(sktid)
            if block is None or sktid in closing:
                continue  # the last words of a closed socket
            if kind == _NTAG_T:
                self._on_ntag(sktid, block, frame)
            elif kind == _NDATA_T:
                self._on_ndata(sktid, block, frame)
            elif kind == f.STATE:
                self._on_state(sktid, block, frame)
        self._flush()  # the frames came in one read: they leave in one write

    def _on_ntag(self, sktid: int, block: SocketBlock, frame: bytes) -> None:
        _, tag, sent_at = _NTAG.unpack_from(frame, 4)
        if len(frame) == 17:  # not sent (the errid is EPKTNOTSENT)
            block.nsend_err = w.NsendErr.UNKFAULT
            block.nsend_err_tag = tag
        elif tag:
            self.send_times[tag] = sent_at
        if tag:
            self._notify(sktid, block, _BIT_NTAG, frame)

    def _on_ndata(self, sktid: int, block: SocketBlock, frame: bytes) -> None:
        if block.proto == _RAW and len(self.cert_filters):
            keep = self.cert_filters.accept_length(frame[15:])
            if not keep:
                return
            if keep < len(frame) - 15:
                frame = f.frame(_NDATA_T, frame[4 : 15 + keep])
        if self.guard is not None and not self._guard_received(block, frame):
            return
        held = self._held[sktid]
        if block.notifmask & _BIT_NDATA:
            size = len(frame) - 15
            if block.proto == _UDP:
                size -= 6 if block.family == w.Family.IPV4 else 18
            if block.rbufused + size > block.rbufsz or self._buf_used + size > self.info.buf_max:
                self._drop(held, block, _TIME_AT.unpack_from(frame, 7)[0], size)
                return
            block.rbufused += size
            self._buf_used += size
            held.queue.append((_BIT_NDATA, size, frame))
            return
        if held.drop_units:
            self._report_drops(sktid)
        self.core.send_encoded(frame)

    def _guard_received(self, block: SocketBlock, frame: bytes) -> bool:
        """Count and log a received packet; False when the chain's receive limits are spent
        (the packet is dropped and counted as a drop)."""
        guard = self.guard
        assert guard is not None
        stamp = _TIME_AT.unpack_from(frame, 7)[0]
        end = 15 + (4 if block.family == w.Family.IPV4 else 16)  # UDP: after raddr
        data = frame[end + 2 :] if block.proto == _UDP else frame[15:]
        raw = block.proto == _RAW
        # the limits count bytes at the IP level, as received() does
        counted = len(data) if raw else synth_header_len(block.family, block.proto) + len(data)
        if not guard.check_recv(counted, stamp):
            block.drop_units += 1
            block.drop_bytes += len(data)
            return False
        if block.proto == _UDP:
            rport = int.from_bytes(frame[end : end + 2], "big")
            guard.received(
                block.family, _UDP, frame[15:end], block.laddr, data, stamp,
                raw=False, sport=rport, dport=block.lport,
            )  # fmt: skip
        elif block.proto == _TCP:
            guard.received(
                block.family, _TCP, block.raddr, block.laddr, data, stamp,
                raw=False, sport=block.rport, dport=block.lport,
            )  # fmt: skip
        elif block.family == w.Family.IPV4:  # a capture filter may have cut the header short
            proto = data[9] if len(data) > 9 else 0
            guard.received(4, proto, data[12:16], data[16:20], data, stamp)
        else:
            proto = data[6] if len(data) > 6 else 0
            guard.received(6, proto, data[8:24], data[24:40], data, stamp)
        return True

    def _on_state(self, sktid: int, block: SocketBlock, frame: bytes) -> None:
        state, _ = f.STATE_HEAD.unpack_from(frame, 4)
        block.state = state
        body = frame[6:]
        if not body:
            return
        if len(body) > 12:  # the established form carries the peer's address and port
            block.raddr = body[11:-2]
            block.rport = int.from_bytes(body[-2:], "big")
        self._notify(sktid, block, _BIT_NSTAT, f.frame(w.MsgType.NSTAT, body))

    # notifications ----------------------------------------------------------------------

    def _notify(self, sktid: int, block: SocketBlock, bit: int, frame: bytes) -> None:
        if block.notifmask & bit:
            self._held[sktid].queue.append((bit, 0, frame))
        else:
            self.core.send_encoded(frame)

    def _drop(self, held: _Held, block: SocketBlock, stamp: int, size: int) -> None:
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

    def _release(self, sktid: int) -> None:
        """A NOTIFMASK bit was cleared: send what it held, in order, and report drops."""
        block = self.blocks[sktid]
        held = self._held[sktid]
        keep: deque[tuple[int, int, bytes]] = deque()
        for bit, size, frame in held.queue:
            if block.notifmask & bit:
                keep.append((bit, size, frame))
                continue
            block.rbufused -= size
            self._buf_used -= size
            self.core.send_encoded(frame)
        held.queue = keep
        self._report_drops(sktid)


_HANDLERS: dict[type, Callable[[SessionAgent, w.Message], None]] = {
    w.Cdata: SessionAgent._cdata,  # type: ignore[dict-item]
    w.Start: SessionAgent._start,  # type: ignore[dict-item]
    w.Yield: SessionAgent._yield,  # type: ignore[dict-item]
    w.End: SessionAgent._end,  # type: ignore[dict-item]
    w.Mread: SessionAgent._mread,  # type: ignore[dict-item]
    w.Mwrite: SessionAgent._mwrite,  # type: ignore[dict-item]
    w.Nopen: SessionAgent._nopen,  # type: ignore[dict-item]
    w.Nclose: SessionAgent._nclose,  # type: ignore[dict-item]
    w.Nctl: SessionAgent._nctl,  # type: ignore[dict-item]
    w.Ncap: SessionAgent._ncap,  # type: ignore[dict-item]
}
