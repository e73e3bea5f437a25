"""What an experiment sees: an endpoint with one awaitable method per pktlab request.

    async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
        now = await endpoint.now()
        await endpoint.open_udp(1)
        await endpoint.send_udp(1, "127.0.0.1", 53, query, tag=1)
        reply = await endpoint.next(Ndata, sktid=1, timeout=2)

Times are the endpoint's (u64 ns since the Unix epoch); measurements should use the endpoint's
timestamps (ntag.time, ndata.time), never the controller's clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import TypeVar

from packetlab import wire as w
from packetlab.pki import VerifiedChain
from packetlab.wire import memmap as vmem
from packetlab.wire.session import (
    ControllerSession,
    NotificationReceived,
    ResponseReceived,
    SessionClosed,
)

M = TypeVar("M", bound=w.Message)
ANY4 = "0.0.0.0"


class EndpointError(Exception):
    """A request the endpoint answered with an error; ``errid`` is the reference's code."""

    def __init__(self, request: w.Message, result: w.Result) -> None:
        try:
            name = w.ErrId(result.errid).name
        except ValueError:
            name = f"0x{result.errid:x}"
        extra = f" (monitor {result.monindx}, code {result.monerrid})" if result.monindx else ""
        super().__init__(f"{type(request).__name__.lower()} failed: {name}{extra}")
        self.errid = result.errid
        self.result = result


class _Waiting:
    """Requests awaiting responses: one (``batch`` None: the future gets the response), or
    ``left`` of a batch (the future gets the list of (request, failed result))."""

    __slots__ = ("batch", "future", "left")

    def __init__(
        self,
        future: asyncio.Future[object],
        left: int = 1,
        batch: list[tuple[w.Message, w.Result]] | None = None,
    ) -> None:
        self.future = future
        self.left = left
        self.batch = batch


class SessionGone(Exception):
    """The endpoint closed the session (or broke the protocol)."""


class EndpointHandle:
    def __init__(
        self,
        core: ControllerSession,
        write: Callable[[bytes], None],
        peer: VerifiedChain | None,
        address: tuple[str, int],
    ) -> None:
        self._core = core
        self._write = write
        self.peer = peer
        self.address = address
        self._waiting: deque[_Waiting] = deque()
        self._notes: deque[w.Message] = deque()
        self._note_event = asyncio.Event()
        self.closed_reason: str | None = None
        self._flush_pending = False
        self._holds: dict[int, int] = {}  # sktid -> NOTIFMASK set by hold()
        self._offset: int | None = None  # endpoint clock minus ours, for npoll

    # plumbing -------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Bytes from the endpoint (called by the controller's read loop)."""
        waiting = self._waiting
        for event in self._core.receive_data(data, time.time_ns()):
            if isinstance(event, ResponseReceived):
                entry = waiting[0]
                response = event.response
                if entry.batch is None:
                    waiting.popleft()
                    if not entry.future.done():
                        entry.future.set_result(response)
                    continue
                if isinstance(response, w.Result) and response.errid:
                    entry.batch.append((event.request, response))
                entry.left -= 1
                if entry.left == 0:
                    waiting.popleft()
                    if not entry.future.done():
                        entry.future.set_result(entry.batch)
            elif isinstance(event, NotificationReceived):
                self._notes.append(event.message)
                self._note_event.set()
            elif isinstance(event, SessionClosed):
                self.gone(event.reason)

    def gone(self, reason: str) -> None:
        if self.closed_reason is None:
            self.closed_reason = reason
        while self._waiting:
            future = self._waiting.popleft().future
            if not future.done():
                future.set_exception(SessionGone(reason))
        self._note_event.set()

    async def request(self, msg: w.Message) -> w.Message:
        """Send one request; its response (Result or Mdata)."""
        if self.closed_reason is not None:
            raise SessionGone(self.closed_reason)
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._core.send_request(msg)
        self._waiting.append(_Waiting(future))
        if len(self._waiting) == 1 and not self._flush_pending:
            self._flush()  # a lone request leaves at once; concurrent ones share a write
        else:
            self._flush_later()
        response = await future
        assert isinstance(response, w.Message)
        return response

    async def call_many(self, msgs: Iterable[w.Message]) -> None:
        """Send requests together (pipelined, one write) and wait for all their results;
        raise EndpointError for the first that failed. Much cheaper per request than many
        ``call``s: what send trains and bulk sends use."""
        if self.closed_reason is not None:
            raise SessionGone(self.closed_reason)
        send = self._core.send_request
        count = 0
        for msg in msgs:
            send(msg)
            count += 1
        if not count:
            return
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(future, count, []))
        self._flush_later()
        failures = await future
        assert isinstance(failures, list)
        if failures:
            request, result = failures[0]
            raise EndpointError(request, result)

    def _flush_later(self) -> None:
        if not self._flush_pending:  # requests made together leave in one write
            self._flush_pending = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_pending = False
        data = self._core.data_to_send()
        if data and self.closed_reason is None:
            self._write(data)

    async def call(self, msg: w.Message) -> None:
        """Send a request whose answer is a result; raise EndpointError unless it succeeded."""
        response = await self.request(msg)
        if isinstance(response, w.Result) and not response.ok:
            raise EndpointError(msg, response)

    # requests ---------------------------------------------------------------------------

    async def mread(self, addr: int, length: int) -> bytes:
        response = await self.request(w.Mread(addr, length))
        if isinstance(response, w.Result):
            raise EndpointError(w.Mread(addr, length), response)
        assert isinstance(response, w.Mdata)
        return response.data

    async def mwrite(self, addr: int, data: bytes) -> None:
        await self.call(w.Mwrite(addr, data))

    async def now(self) -> int:
        """The endpoint's clock (TIME), ns since the Unix epoch."""
        return int.from_bytes(await self.mread(vmem.TIME, 8), "big")

    async def host_id(self) -> str:
        return (await self.mread(vmem.HOSTID, 0x100)).split(b"\0", 1)[0].decode("utf-8", "replace")

    async def addresses(self) -> tuple[list[str], list[str]]:
        """The endpoint's exported IPv4 and IPv6 addresses (IP4LS, IP6LS), in its order."""
        counts = await self.mread(vmem.IP4NO, 2)
        v4 = await self.mread(vmem.IP4LS, 8 * counts[0]) if counts[0] else b""
        v6 = await self.mread(vmem.IP6LS, 16 * counts[1]) if counts[1] else b""
        return (
            [w.addr_text(v4[i : i + 4]) for i in range(0, len(v4), 8)],
            [w.addr_text(v6[i : i + 16]) for i in range(0, len(v6), 16)],
        )

    async def open_udp(
        self, sktid: int, laddr: str = ANY4, lport: int = 0, rbufsz: int = 65536
    ) -> None:
        family = 6 if ":" in laddr else 4
        await self.call(w.Nopen(sktid, family, w.Proto.UDP, rbufsz, w.addr_bytes(laddr), lport))

    async def open_tcp(
        self,
        sktid: int,
        raddr: str,
        rport: int,
        laddr: str | None = None,
        lport: int = 0,
        rbufsz: int = 65536,
    ) -> None:
        family = 6 if ":" in raddr else 4
        local = laddr or ("::" if family == 6 else ANY4)
        await self.call(
            w.Nopen(
                sktid,
                family,
                w.Proto.TCP,
                rbufsz,
                w.addr_bytes(local),
                lport,
                w.addr_bytes(raddr),
                rport,
            )
        )

    async def listen_tcp(
        self, sktid: int, lport: int, laddr: str = ANY4, rbufsz: int = 65536
    ) -> None:
        family = 6 if ":" in laddr else 4
        await self.call(w.Nopen(sktid, family, w.Proto.TCP, rbufsz, w.addr_bytes(laddr), lport))

    async def open_raw(self, sktid: int, family: int = 4, laddr: str | None = None) -> None:
        """A raw IP socket: send whole IP packets, receive what an ncap filter lets through
        (nothing until ``capture``). Needs TRANSSUP raw on the endpoint."""
        local = laddr or ("::" if family == 6 else ANY4)
        await self.call(w.Nopen(sktid, family, w.Proto.RAW, 65536, w.addr_bytes(local)))

    async def send_raw(
        self, sktid: int, packet: bytes, *, at: int = 0, tag: int = 0, family: int | None = None
    ) -> None:
        """Send a whole IP packet (its version picks the family unless given)."""
        fam = family or (6 if packet[:1] and packet[0] >> 4 == 6 else 4)
        await self.call(w.Nsend(sktid, fam, w.Proto.RAW, at, tag, bytes(packet)))

    async def capture(
        self, sktid: int, program: bytes | str, *, until: int = 0, family: int = 4
    ) -> None:
        """Install a capture filter on a raw socket until endpoint time ``until`` (0: for the
        socket's life): an encoded pktlab program, or a tcpdump/pcap-filter expression
        ("icmp and src host 198.18.0.9"), compiled here with libpcap and sent as eBPF."""
        if isinstance(program, str):
            from packetlab.programs.pcap import compile_expression

            program = compile_expression(program)
        await self.call(w.Ncap(sktid, family, w.Proto.RAW, until, program))

    async def close(self, sktid: int) -> None:
        await self.call(w.Nclose(sktid))

    async def send_udp(
        self, sktid: int, raddr: str, rport: int, payload: bytes, *, at: int = 0, tag: int = 0
    ) -> None:
        family = 6 if ":" in raddr else 4
        await self.call(
            w.Nsend(sktid, family, w.Proto.UDP, at, tag, payload, w.addr_bytes(raddr), rport)
        )

    async def send_tcp(
        self, sktid: int, payload: bytes, *, at: int = 0, tag: int = 0, family: int = 4
    ) -> None:
        await self.call(w.Nsend(sktid, family, w.Proto.TCP, at, tag, payload))

    async def fin(self, sktid: int, *, at: int = 0, family: int = 4) -> None:
        await self.call(w.Nctl(sktid, family, w.Proto.TCP, at, w.NctlCommand.TCP_FIN))

    async def yield_session(self, resume_hint: int = 0) -> None:
        await self.call(w.Yield(resume_hint))

    # notifications ----------------------------------------------------------------------

    async def next(
        self, kind: type[M], *, sktid: int | None = None, timeout: float | None = None
    ) -> M:
        """The oldest unconsumed notification of ``kind`` (for ``sktid``), waiting if needed."""
        async with asyncio.timeout(timeout):
            while True:
                for note in self._notes:
                    if isinstance(note, kind) and (
                        sktid is None or getattr(note, "sktid", None) == sktid
                    ):
                        self._notes.remove(note)
                        return note
                if self.closed_reason is not None:
                    raise SessionGone(self.closed_reason)
                self._note_event.clear()
                await self._note_event.wait()

    async def collect(
        self,
        kind: type[M],
        count: int,
        *,
        sktid: int | None = None,
        timeout: float | None = None,
    ) -> list[M]:
        """The ``count`` oldest notifications of ``kind`` (for ``sktid``), waiting for them;
        on timeout, those that came (fewer than ``count``)."""
        got: list[M] = []
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            keep: deque[w.Message] = deque()
            for note in self._notes:
                if (
                    len(got) < count
                    and isinstance(note, kind)
                    and (sktid is None or getattr(note, "sktid", None) == sktid)
                ):
                    got.append(note)
                else:
                    keep.append(note)
            self._notes = keep
            if len(got) >= count:
                return got
            if self.closed_reason is not None:
                raise SessionGone(self.closed_reason)
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return got
            self._note_event.clear()
            try:
                async with asyncio.timeout(left):
                    await self._note_event.wait()
            except TimeoutError:
                return got

    def pending_notifications(self) -> list[w.Message]:
        return list(self._notes)

    def _notifmask_addr(self, sktid: int) -> int:
        return vmem.SOCKETS + sktid * vmem.SOCKET_BLOCK + vmem.SK_NOTIFMASK

    async def hold(self, sktid: int, mask: int = w.NotifMask.NDATA) -> None:
        """Have the endpoint hold notifications of ``mask`` on ``sktid`` (its NOTIFMASK)
        until ``npoll`` collects them: the paper's model, where data waits at the endpoint."""
        await self.mwrite(self._notifmask_addr(sktid), mask.to_bytes(2, "big"))
        if mask:
            self._holds[sktid] = mask
        else:
            self._holds.pop(sktid, None)

    async def npoll(self, until: int) -> list[w.Message]:
        """The paper's npoll: every notification with an endpoint time up to ``until``.

        Built on the reference's wire: wait until the endpoint's clock passes ``until``, then,
        in one write, clear the NOTIFMASK of each socket put on ``hold`` (the endpoint sends
        what it held, in order), set it again (holding goes on), and read TIME as a barrier:
        the endpoint answers it after everything sent before. Notifications stamped after
        ``until`` stay queued for the next npoll."""
        if self._offset is None:
            self._offset, _ = await self.clock_offset()
        wait = (until - (time.time_ns() + self._offset)) / 1e9
        if wait > 0:
            await asyncio.sleep(wait)
        while (endpoint_now := await self.now()) < until:  # our estimate was early
            await asyncio.sleep(min(0.05, (until - endpoint_now) / 1e9))
        if self._holds:
            requests: list[w.Message] = []
            for sktid, mask in self._holds.items():
                addr = self._notifmask_addr(sktid)
                requests.append(w.Mwrite(addr, b"\0\0"))
                requests.append(w.Mwrite(addr, mask.to_bytes(2, "big")))
            await self.call_many(requests)
            await self.now()
        due: list[w.Message] = []
        later: deque[w.Message] = deque()
        for note in self._notes:
            (due if _note_time(note) <= until else later).append(note)
        self._notes = later
        return due

    async def clock_offset(self, samples: int = 5) -> tuple[int, int]:
        """(endpoint clock minus controller clock, round trip) in ns, from the fastest sample."""
        best: tuple[int, int] | None = None
        for _ in range(samples):
            sent = time.time_ns()
            remote = await self.now()
            back = time.time_ns()
            rtt = back - sent
            if best is None or rtt < best[1]:
                best = (remote - (sent + back) // 2, rtt)
        assert best is not None
        return best


def _note_time(note: w.Message) -> int:
    """When a notification happened on the endpoint (0 when it carries no time)."""
    if isinstance(note, w.Ndrop):
        return note.tlast
    return int(getattr(note, "time", 0))
