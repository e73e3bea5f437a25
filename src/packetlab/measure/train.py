"""``send_train``: Scriptroute's send-train primitive on PacketLab's scheduled sends and capture.

    records = await send_train(endpoint, [(0, probe_a), (0.010, probe_b)], timeout=2)
    for r in records:
        print(r.index, r.sent_ns, r.responder, r.rtt_ms, r.error)

Delays are Scriptroute's: each is the time in seconds from the previous probe's scheduled
send to this one's (the first counts from the train's start), so ``[(0, a), (0.01, b),
(0.01, c)]`` sends a at the start, b 10 ms later and c 20 ms after the start. The start is
one controller-endpoint round trip plus ``lead`` after the endpoint's clock was read, so the
whole batch is at the endpoint before its first send time.

How (one experiment socket, ``sktid``):
1. the probes become bytes (:mod:`packetlab.measure.probes`); all of one IP family;
2. open a raw socket, read the endpoint's clock (TIME);
3. in one write: a capture filter for the responses (ncap, until the train's end + timeout +
   lead on the endpoint's clock) and every probe as an nsend at its time, tag = index + 1
   (one ``call_many``: no controller round trip between probes);
4. collect the ntags (actual send times, or the error of a probe not sent) and the ndata,
   matching each response as it comes (:mod:`packetlab.measure.matching`), until the
   endpoint's clock passes the last send + ``timeout`` — or, with ``stop_when_answered``,
   as soon as every sent probe has its response (later duplicates are then not counted);
5. close the socket (always) and return one :class:`ProbeRecord` per probe, in order.

A probe the endpoint refuses outright (its guardian, a full backlog) gets no ntag; the batch
reports the first refusal's error code, which every probe left without an ntag then carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Sequence

from packetlab import wire as w
from packetlab.controller.api import EndpointError, EndpointHandle
from packetlab.measure.capabilities import Capabilities, capabilities
from packetlab.measure.errors import MeasurementError
from packetlab.measure.matching import TrainMatcher
from packetlab.measure.probes import capture_expression, train_bytes
from packetlab.measure.results import ProbeRecord
from packetlab.programs import ProgramError

MAX_PROBES = 0xFFFF
"""Tags are u16 and tag 0 means "no ntag"."""
BARRIER_NS = 20_000_000
"""After a deadline, how long the endpoint's clock must run on before every ndata stamped up
to it has left the endpoint (its packet I/O process forwards them)."""
_ALL = 1 << 30
_BARRIER_READS = 50


LEAD_NS = 20_000_000
LEAD_PER_PROBE_NS = 20_000


async def send_train(
    endpoint: EndpointHandle,
    train: Sequence[tuple[float, object]],
    timeout: float = 2.0,
    *,
    sktid: int = 250,
    lead: float | None = None,
    capture: bytes | str | None = None,
    caps: Capabilities | None = None,
    stop_when_answered: bool = True,
) -> list[ProbeRecord]:
    """Send ``train`` ([(delay s, probe)], see the module doc) from ``endpoint`` and match
    the responses that come within ``timeout`` s of each probe.

    ``lead``: seconds between the sends' arrival at the endpoint and the first send (default:
    20 ms plus 20 us per probe, the endpoint's time to take in the batch).
    ``capture``: the capture filter (an encoded program, or a tcpdump expression), by
    default one for the probes' responses. ``caps``: the endpoint's capabilities when the
    caller already has them. Raises :class:`EndpointCannot` when the endpoint has no raw
    sockets or no address of the probes' family, :class:`MeasurementError` for bad input."""
    delays_ns, objects = _unpack(train)
    timeout_ns = _ns(timeout, "timeout")
    lead_ns = _ns(lead, "lead") if lead is not None else LEAD_NS + LEAD_PER_PROBE_NS * len(train)
    if type(sktid) is not int or not 0 <= sktid <= 0xFF:
        raise MeasurementError(f"sktid {sktid!r} is not a socket id (0..255)")
    family, data = train_bytes(objects)
    if not data:
        return []
    program = _program(capture, family, data)
    caps = caps or await capabilities(endpoint)
    caps.require("send_train", raw=True, family=family)
    await _discard(endpoint, sktid)
    try:
        await endpoint.open_raw(sktid, family)
    except EndpointError as exc:
        raise MeasurementError(f"send_train: could not open raw socket {sktid}: {exc}") from exc
    run = _Run(endpoint, sktid, family, data, timeout_ns, lead_ns, program)
    try:
        sent, errors, matcher = await run.run(delays_ns, stop_when_answered)
    except BaseException:
        with contextlib.suppress(Exception):
            await endpoint.close(sktid)
        raise
    await endpoint.close(sktid)
    await _discard(endpoint, sktid)
    results = zip(objects, data, sent, errors, matcher.results, strict=True)
    return [
        ProbeRecord(i, probe, packet, at, err, m.response, m.received_ns, m.responder, m.duplicates)
        for i, (probe, packet, at, err, m) in enumerate(results)
    ]


def _ns(seconds: object, what: str) -> int:
    """``seconds`` (a finite number >= 0) in ns; MeasurementError naming ``what`` if not."""
    if (
        isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds >= 0
    ):
        return round(seconds * 1e9)
    raise MeasurementError(f"{what} must be a finite number of seconds >= 0, not {seconds!r}")


def _unpack(train: Sequence[tuple[float, object]]) -> tuple[list[int], list[object]]:
    """(delays in ns, probes) of a train, checked."""
    if isinstance(train, str | bytes) or not isinstance(train, Sequence):
        raise MeasurementError("a train is a sequence of (delay, packet) pairs")
    if len(train) > MAX_PROBES:
        raise MeasurementError(f"a train holds at most {MAX_PROBES} probes, not {len(train)}")
    delays: list[int] = []
    probes: list[object] = []
    for i, item in enumerate(train):
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise MeasurementError(f"train item {i} is not a (delay, packet) pair: {item!r:.60}")
        delays.append(_ns(item[0], f"the delay of train item {i}"))
        probes.append(item[1])
    return delays, probes


def _program(capture: bytes | str | None, family: int, data: list[bytes]) -> bytes:
    if isinstance(capture, bytes):
        return capture
    from packetlab.programs.pcap import compile_expression

    expression = capture_expression(family, data) if capture is None else capture
    try:
        return compile_expression(expression)
    except ProgramError as exc:
        raise MeasurementError(f"send_train: capture filter {expression!r}: {exc}") from exc


async def _discard(endpoint: EndpointHandle, sktid: int) -> None:
    """Drop notifications left for ``sktid`` (an earlier socket of that id)."""
    await endpoint.collect(w.Message, _ALL, sktid=sktid, timeout=0)


async def _notes(endpoint: EndpointHandle, sktid: int, left: float) -> list[w.Message]:
    """The notifications for ``sktid``: those already here, or the next to come within
    ``left`` s and any that came with it ([] when none)."""
    first: list[w.Message] = []
    if left > 0:
        try:
            first.append(await endpoint.next(w.Message, sktid=sktid, timeout=left))
        except TimeoutError:
            return []
    return first + await endpoint.collect(w.Message, _ALL, sktid=sktid, timeout=0)


class _Run:
    """One train on one open raw socket (the shell around :class:`TrainMatcher`)."""

    def __init__(
        self,
        endpoint: EndpointHandle,
        sktid: int,
        family: int,
        data: list[bytes],
        timeout_ns: int,
        lead_ns: int,
        program: bytes,
    ) -> None:
        self.endpoint, self.sktid, self.family = endpoint, sktid, family
        self.data, self.timeout_ns, self.lead_ns, self.program = data, timeout_ns, lead_ns, program
        self.loop = asyncio.get_running_loop()
        self._read_at = 0.0
        self._read_ns = 0

    def wall(self, endpoint_ns: int) -> float:
        """Event-loop time when the endpoint's clock reads ``endpoint_ns`` (late, not early:
        from the end of the round trip that read it)."""
        return self._read_at + (endpoint_ns - self._read_ns) / 1e9

    async def capture(self, until: int) -> None:
        try:
            await self.endpoint.capture(self.sktid, self.program, until=until, family=self.family)
        except EndpointError as exc:
            raise MeasurementError(f"send_train: the capture filter was refused: {exc}") from exc

    async def run(
        self, delays_ns: list[int], stop_when_answered: bool
    ) -> tuple[list[int | None], list[int], TrainMatcher]:
        endpoint, sktid, n, loop = self.endpoint, self.sktid, len(self.data), self.loop
        asked = loop.time()
        self._read_ns = await endpoint.now()
        self._read_at = loop.time()
        rtt_ns = round((self._read_at - asked) * 1e9)
        start = self._read_ns + rtt_ns + self.lead_ns
        times = list(itertools.accumulate(delays_ns, initial=start))[1:]
        until = times[-1] + self.timeout_ns + self.lead_ns
        sends = [
            w.Nsend(sktid, self.family, w.Proto.RAW, at, i + 1, packet)
            for i, (at, packet) in enumerate(zip(times, self.data, strict=True))
        ]
        captured, scheduled = await asyncio.gather(
            self.capture(until), endpoint.call_many(sends), return_exceptions=True
        )
        for outcome in (captured, scheduled):
            if isinstance(outcome, BaseException) and not isinstance(outcome, EndpointError):
                raise outcome
        refused = scheduled.errid if isinstance(scheduled, EndpointError) else 0

        # the ntags; responses that come meanwhile wait for the matcher
        sent: list[int | None] = [None] * n
        errors = [0] * n
        heard = 0
        early: list[tuple[int, bytes]] = []
        deadline = self.wall(times[-1] + self.timeout_ns + BARRIER_NS) + rtt_ns / 1e9
        while heard < n:
            notes = await _notes(endpoint, sktid, deadline - loop.time())
            if not notes:
                break
            for note in notes:
                if isinstance(note, w.Ntag):
                    i = note.tag - 1
                    if 0 <= i < n and sent[i] is None and not errors[i]:
                        heard += 1
                        if note.errid:
                            errors[i] = note.errid
                        else:
                            sent[i] = note.time
                elif isinstance(note, w.Ndata):
                    early.append((note.time, note.data))
        for i in range(n):
            if sent[i] is None and not errors[i]:
                errors[i] = refused or w.ErrId.EPKTNOTSENT

        matcher = TrainMatcher(self.data, sent, self.timeout_ns)
        for received, packet in sorted(early, key=lambda r: r[0]):
            matcher.feed(received, packet)
        last = max((s for s in sent if s is not None), default=None)
        if last is None:
            return sent, errors, matcher
        end = last + self.timeout_ns
        if end > until:  # sends went out late (the guardian shaped them): capture longer
            await self.capture(end + self.lead_ns)

        def answered() -> bool:
            return stop_when_answered and matcher.answered == matcher.sent_count

        while not answered():
            notes = await _notes(endpoint, sktid, self.wall(end) - loop.time())
            if not notes:
                break
            for note in notes:
                if isinstance(note, w.Ndata):
                    matcher.feed(note.time, note.data)
        if not answered():
            await self._barrier(end + BARRIER_NS)
        for note in await endpoint.collect(w.Ndata, _ALL, sktid=sktid, timeout=0):
            matcher.feed(note.time, note.data)
        return sent, errors, matcher

    async def _barrier(self, endpoint_ns: int) -> None:
        """Return once the endpoint's clock passed ``endpoint_ns``: the TIME read is answered
        after every notification sent before it, so all ndata stamped earlier are here."""
        for _ in range(_BARRIER_READS):
            now = await self.endpoint.now()
            if now >= endpoint_ns:
                return
            await asyncio.sleep((endpoint_ns - now) / 1e9)
        raise MeasurementError("send_train: the endpoint's clock does not advance")
