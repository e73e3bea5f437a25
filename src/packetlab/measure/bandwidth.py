"""UDP bandwidth as in the PacketLab paper (section 4): a scheduled burst, timed where it lands.

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("198.18.4.2", 0))
        sock.setblocking(False)
        result = await bandwidth(endpoint, sock)      # result.rate_bps

Theory of operation. The controller reads the endpoint's clock t0, opens a UDP socket there and,
in one pipelined batch, schedules ``packets`` datagrams all at t0 + ``start_in``: the endpoint
sends them back to back, and whatever link is the bottleneck spreads them out. Meanwhile the
controller reads its own ``receiver`` socket (kernel RX timestamps, SO_TIMESTAMPNS) from the
event loop. Each datagram carries a magic, a per-run random nonce and its sequence number, so
strays, late datagrams of earlier runs and duplicates are not counted. The run ends when every
datagram that was sent (an ntag without error) has arrived, when arrivals go quiet for
``max(QUIET_MIN_S, QUIET_GAPS x the mean gap)``, or at ``timeout`` after the start.

Estimator. The rate is IP-level bits (payload + UDP + IP header) over time, from the receiver's
kernel stamps, fitted over the later half of the arrivals: a least-squares line of arrival time
against cumulative bits (time is the noisy variable), rate = 1 / slope. Why the later half:
a token-bucket bottleneck (tbf, an ISP's shaper) lets its bucket's burst through at line rate
before it settles at its rate, which inflates "bits after the first over last - first" at the
start of a train; skipping the first half of the arrivals ignores any such burst smaller than
half of what arrived. Drops at the bottleneck's queue do not bias the estimate: while the queue
overflows the link behind it stays busy, so the packets that arrive still leave back to back.
Losses after the bottleneck would (they leave holes in time): the receiver's own socket is
enlarged to hold the burst and its drop counter (SO_RXQ_OVFL) is checked; a run in which it
dropped datagrams is an error rather than an underestimate.

What it measures, and limits. The sustained rate of the narrowest link between the endpoint
and the receiver as it carries this burst. The endpoint's sending speed (tens of thousands of
datagrams per second) is a ceiling: a faster path measures the sender. A shaper whose bucket
holds more than half of the arrivals inflates the estimate; send more packets. Link-layer
headers are not counted: a shaper that counts Ethernet frames (tc tbf on a veth counts 14
bytes more per packet) shows up about 14 / (size + 28) low. The endpoint's guardian must let
the burst through unshaped: with the default certified profile a destination gets 4,000
packets and 4 MB (IP level) at once, then 2,000 pkt/s and 2 MB/s; a burst within
4,000 packets and 4 MB (the default 1,000 x 1,228 B is 1.2 MB) measures any rate up to the
sender's, but runs back to back to one receiver must leave the bucket time to refill (2 s per
4 MB), or the guardian paces the rest at 2 MB/s (16 Mbit/s) and that is what gets measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from packetlab import wire as w
from packetlab.controller.api import ANY4, EndpointError, EndpointHandle, SessionGone
from packetlab.endpoint.timestamps import ANCILLARY_SIZE, SO_TIMESTAMPNS, rx_time
from packetlab.measure.errors import MeasurementError
from packetlab.measure.prepare import prepare
from packetlab.measure.results import BandwidthResult, ClockOffset, Origin

MAGIC = b"PLbw"
HEADER = struct.Struct(">4s8sI")
"""Every datagram starts with MAGIC, the run's 8-byte nonce and its sequence number."""
IP_HEADER = {4: 20, 6: 40}
UDP_HEADER = 8
MAX_PAYLOAD = {4: 65535 - 20 - UDP_HEADER, 6: 65535 - UDP_HEADER}
MAX_PACKETS = 65535
"""Tags are 16 bits and tag 0 asks for no ntag: one tag per datagram, 1..65535."""
MIN_ARRIVALS = 2
QUIET_MIN_S = 0.2
QUIET_GAPS = 20
READ_BURST = 256
"""Datagrams read per wake-up of the receiver, so the session is never held off for long."""
RCVBUF_MAX = 32 << 20
SO_RXQ_OVFL = 40
SO_RCVBUFFORCE = 33
_DROPS = struct.Struct("=I")


def make_payload(nonce: bytes, seq: int, size: int) -> bytes:
    """Datagram ``seq`` of a run: header, then zeros up to ``size`` bytes."""
    return HEADER.pack(MAGIC, nonce, seq).ljust(size, b"\0")


@dataclass(slots=True)
class BurstRecord:
    """What the receiver got of one burst (sans-IO): the kernel RX time of each of our
    datagrams by sequence number; strays and duplicates are only counted."""

    nonce: bytes
    packets: int
    size: int
    times: dict[int, int] = field(default_factory=dict)
    strays: int = 0
    duplicates: int = 0
    unstamped: int = 0
    """Our datagrams that came without a kernel timestamp (not used)."""
    drops_first: int | None = None
    """The socket's drop counter (SO_RXQ_OVFL) as the first datagram of the run was queued."""
    drops_last: int = 0

    def datagram(self, data: bytes, rx_ns: int | None, drops: int) -> bool:
        """Record one datagram; True if it is a new one of ours."""
        if self.drops_first is None:
            self.drops_first = drops
        self.drops_last = max(self.drops_last, drops)
        if len(data) != self.size:
            self.strays += 1
            return False
        magic, nonce, seq = HEADER.unpack_from(data)
        if magic != MAGIC or nonce != self.nonce or seq >= self.packets:
            self.strays += 1
            return False
        if seq in self.times:
            self.duplicates += 1
            return False
        if rx_ns is None:
            self.unstamped += 1
            return False
        self.times[seq] = rx_ns
        return True

    @property
    def received(self) -> int:
        return len(self.times)

    @property
    def receiver_drops(self) -> int:
        return self.drops_last - (self.drops_first or 0)

    def arrivals(self) -> list[int]:
        """Kernel RX times in arrival order."""
        return sorted(self.times.values())

    def quiet_s(self) -> float:
        """How long without an arrival ends the run: QUIET_GAPS mean gaps, at least
        QUIET_MIN_S."""
        n = len(self.times)
        if n < 2:
            return QUIET_MIN_S
        times = self.times.values()
        mean_gap_s = (max(times) - min(times)) / (n - 1) / 1e9
        return max(QUIET_MIN_S, QUIET_GAPS * mean_gap_s)


def sustained_rate(times_ns: Sequence[int], packet_bits: int) -> float:
    """Bits per second of equal packets of ``packet_bits`` arriving at ``times_ns`` (sorted):
    a least-squares fit of arrival time against the bits that arrived after the first, over
    the later half of the arrivals (see the module docstring)."""
    n = len(times_ns)
    if n < MIN_ARRIVALS:
        raise MeasurementError(f"a rate needs {MIN_ARRIVALS} arrivals, got {n}")
    used = times_ns[min(n // 2, n - 2) :]
    m = len(used)
    mean_x = packet_bits * (m - 1) / 2
    mean_t = sum(used) / m
    sxx = sxt = 0.0
    for k, t in enumerate(used):
        dx = packet_bits * k - mean_x
        sxx += dx * dx
        sxt += dx * (t - mean_t)
    if sxt <= 0:
        raise MeasurementError(f"the last {m} arrivals carry the same timestamp: too fast to time")
    return 1e9 * sxx / sxt


def _receiver_address(receiver: socket.socket) -> tuple[int, str, int]:
    """(family, address, port) the endpoint should send to."""
    if receiver.type != socket.SOCK_DGRAM or receiver.family not in (
        socket.AF_INET,
        socket.AF_INET6,
    ):
        raise MeasurementError("the receiver must be a UDP socket (AF_INET or AF_INET6)")
    try:
        host, port = receiver.getsockname()[:2]
    except OSError as exc:
        raise MeasurementError(f"the receiver socket is unusable: {exc}") from None
    if port == 0 or host in ("0.0.0.0", "::"):
        raise MeasurementError(
            "bind the receiver to the address (and a port) the endpoint should send to, "
            f"not {host}:{port}"
        )
    return (6 if receiver.family == socket.AF_INET6 else 4), host, port


def _prepare_receiver(receiver: socket.socket, want_bytes: int) -> None:
    """Non-blocking, kernel RX stamps and drop counts on, buffer enlarged to ``want_bytes``
    where the kernel lets us (up to RCVBUF_MAX)."""
    try:
        receiver.setblocking(False)
        receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        receiver.setsockopt(socket.SOL_SOCKET, SO_RXQ_OVFL, 1)
    except OSError as exc:
        raise MeasurementError(f"cannot turn on RX timestamps on the receiver: {exc}") from None
    want = min(RCVBUF_MAX, want_bytes)
    if receiver.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) < want:
        for option in (SO_RCVBUFFORCE, socket.SO_RCVBUF):  # FORCE passes rmem_max (root)
            try:
                receiver.setsockopt(socket.SOL_SOCKET, option, want)
                break
            except OSError:
                continue


def _drain(receiver: socket.socket) -> None:
    """Throw away what is already queued (another run's stragglers); bounded."""
    for _ in range(1 << 16):
        try:
            receiver.recv(1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # an error queued on the socket; nothing to read
            return


def _drop_count(ancillary: list[tuple[int, int, bytes]]) -> int:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_RXQ_OVFL and len(data) >= _DROPS.size:
            return int(_DROPS.unpack_from(data)[0])
    return 0  # the kernel adds the counter only once it is not zero


def _check_arguments(packets: int, size: int, start_in: float, timeout: float, sktid: int) -> None:
    if not 1 <= packets <= MAX_PACKETS:
        raise MeasurementError(f"packets must be 1..{MAX_PACKETS} (one tag each), got {packets}")
    if size < HEADER.size:
        raise MeasurementError(
            f"size must be at least {HEADER.size} bytes (magic, nonce, sequence), got {size}"
        )
    if not (math.isfinite(start_in) and start_in >= 0):
        raise MeasurementError(f"start_in must be a finite number of seconds >= 0, got {start_in}")
    if not (math.isfinite(timeout) and timeout > 0):
        raise MeasurementError(f"timeout must be a finite number of seconds > 0, got {timeout}")
    if not 0 <= sktid <= 255:
        raise MeasurementError(f"sktid must be 0..255, got {sktid}")


async def bandwidth(
    endpoint: EndpointHandle,
    receiver: socket.socket,
    *,
    packets: int = 1000,
    size: int = 1200,
    start_in: float = 5.0,
    timeout: float = 10.0,
    sktid: int = 242,
    clock: ClockOffset | None = None,
) -> BandwidthResult:
    """The rate at which a burst of ``packets`` UDP datagrams of ``size`` payload bytes, sent
    by ``endpoint`` at its t0 + ``start_in`` seconds, reaches ``receiver`` (a bound UDP socket
    of the controller; its RX timestamps are turned on and its buffer enlarged). ``timeout``:
    seconds after the start to wait for ntags and arrivals. ``clock``: the offset estimate
    for the result's origin. Raises MeasurementError (EndpointCannot) with the reason."""
    _check_arguments(packets, size, start_in, timeout, sktid)
    family, host, port = _receiver_address(receiver)
    if size > MAX_PAYLOAD[family]:
        raise MeasurementError(
            f"size must be at most {MAX_PAYLOAD[family]} bytes (a UDP datagram over "
            f"IPv{family}), got {size}"
        )
    _prepare_receiver(receiver, packets * (size + 1024))  # the kernel doubles it
    _, who = await prepare(endpoint, "bw", host, udp=True, clock=clock)
    ip_bytes = size + UDP_HEADER + IP_HEADER[family]
    record = BurstRecord(secrets.token_bytes(8), packets, size)
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        for _ in range(READ_BURST):
            try:
                data, ancillary, flags, _ = receiver.recvmsg(size + 1, ANCILLARY_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:  # an ICMP error reported on the socket
                return
            if flags & socket.MSG_TRUNC:
                data = b""  # longer than ours: a stray
            if record.datagram(data, rx_time(ancillary), _drop_count(ancillary)):
                arrived.set()

    await endpoint.open_udp(sktid, "::" if family == 6 else ANY4)
    try:
        await endpoint.collect(w.Ntag, 1 << 30, sktid=sktid, timeout=0)  # an old run's
        _drain(receiver)
        loop.add_reader(receiver.fileno(), readable)
        try:
            t0 = await endpoint.now()
            deadline = loop.time() + start_in + timeout
            when = t0 + round(start_in * 1e9)
            raddr = w.addr_bytes(host)
            try:
                await endpoint.call_many(
                    w.Nsend(sktid, family, w.Proto.UDP, when, seq + 1,
                            make_payload(record.nonce, seq, size), raddr, port)
                    for seq in range(packets)
                )  # fmt: skip
            except EndpointError as exc:
                raise MeasurementError(
                    f"the endpoint refused part of the burst ({exc}); its guardian may allow "
                    f"fewer than {packets} x {ip_bytes} B to one destination at once"
                ) from None
            tags = await endpoint.collect(
                w.Ntag, packets, sktid=sktid, timeout=max(0.0, deadline - loop.time())
            )
            sent = sum(1 for t in tags if t.errid == 0 and 1 <= t.tag <= packets)
            await _await_arrivals(record, arrived, sent, deadline)
        finally:
            loop.remove_reader(receiver.fileno())
    finally:
        with contextlib.suppress(EndpointError, SessionGone):
            await endpoint.close(sktid)
    return _result(record, who, host, port, sent, ip_bytes, when, start_in + timeout)


async def _await_arrivals(
    record: BurstRecord, arrived: asyncio.Event, sent: int, deadline: float
) -> None:
    """Until all ``sent`` arrived, arrivals go quiet, or the deadline (loop time)."""
    loop = asyncio.get_running_loop()
    while record.received < sent:
        left = deadline - loop.time()
        if left <= 0:
            return
        wait = min(left, record.quiet_s()) if record.received else left
        arrived.clear()
        try:
            async with asyncio.timeout(wait):
                await arrived.wait()
        except TimeoutError:
            if record.received:
                return


def _result(
    record: BurstRecord,
    who: Origin,
    host: str,
    port: int,
    sent: int,
    ip_bytes: int,
    started_ns: int,
    waited_s: float,
) -> BandwidthResult:
    if record.receiver_drops:
        raise MeasurementError(
            f"the receiver socket dropped {record.receiver_drops} datagrams (its buffer "
            "overflowed): the rate would be underestimated; read it faster or enlarge SO_RCVBUF"
        )
    if record.unstamped:
        raise MeasurementError(f"{record.unstamped} datagrams came without a kernel RX timestamp")
    times = record.arrivals()
    if len(times) < MIN_ARRIVALS:
        raise MeasurementError(
            f"only {len(times)} of {record.packets} datagrams ({sent} sent) reached "
            f"{host}:{port} within {waited_s:g} s of the start: no rate"
        )
    return BandwidthResult(
        origin=who,
        receiver=host,
        port=port,
        size=record.size,
        sent=sent,
        received=len(times),
        bytes_received=len(times) * ip_bytes,
        duration_s=(times[-1] - times[0]) / 1e9,
        rate_bps=sustained_rate(times, 8 * ip_bytes),
        started_ns=started_ns,
    )
