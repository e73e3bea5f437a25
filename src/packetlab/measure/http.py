"""HTTP GET and TCP connect time through an endpoint's TCP socket (no raw sockets needed).

    result = await http_get(endpoint, "http://198.18.4.2/index.html")
    ms = await tcp_connect(endpoint, "198.18.4.2", 80)

Times are the endpoint's. The request's TX stamp (ntag) and the response's RX stamps (ndata)
are kernel stamps; the connect is timed as :func:`timed_open_tcp` explains. The response is read
by :class:`ResponseParser`, a sans-IO reader of one HTTP/1.x response (status line, headers,
Content-Length, chunked or close-delimited body). The endpoint has no TLS: http:// only.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from packetlab import wire as w
from packetlab.controller.api import EndpointError, EndpointHandle, SessionGone
from packetlab.measure.capabilities import capabilities
from packetlab.measure.errors import MeasurementError
from packetlab.measure.prepare import prepare
from packetlab.measure.results import ClockOffset, HttpResult
from packetlab.wire import memmap as vmem

REQUEST_TAG = 0x4854  # "HT": the ntag of the request carries its TX stamp
MAX_HEAD_BYTES = 64 * 1024
MAX_LINE_BYTES = 8 * 1024
_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3})(?: ([^\r\n]*))?")
_HEX = re.compile(rb"[0-9A-Fa-f]+")
_CONNECT_ERRORS: dict[int, str] = {
    w.SocketState.REFUSED: "connection refused",
    w.SocketState.TIMEDOUT: "timeout",
    w.SocketState.UNREACH: "unreachable",
    w.SocketState.RESET: "connection reset",
}


class HttpParseError(MeasurementError):
    """The peer's bytes are not an HTTP/1.x response (or it ended early)."""


class ConnectFailed(MeasurementError):
    """A TCP connect that did not complete; ``reason`` is what results put in ``error``."""

    def __init__(self, reason: str, start_ns: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.start_ns = start_ns


# addresses and sockets, shared with measure.dns -----------------------------------------------


def address_family(address: str, what: str = "address") -> int:
    """4 or 6 for an IP literal; MeasurementError for anything else (names need a DNS step)."""
    try:
        return ipaddress.ip_address(address).version
    except ValueError:
        raise MeasurementError(f"{what} {address!r} is not an IP address") from None


def check_port(port: int) -> None:
    if not isinstance(port, int) or not 1 <= port <= 65535:
        raise MeasurementError(f"port {port!r} is not in 1..65535")


def check_sktid(sktid: int) -> None:
    if not isinstance(sktid, int) or not 0 <= sktid <= 255:
        raise MeasurementError(f"sktid {sktid!r} is not in 0..255")


def check_timeout(timeout: float) -> None:
    if not timeout > 0:
        raise MeasurementError(f"timeout must be > 0 seconds, got {timeout!r}")


def refusal(exc: EndpointError, sktid: int) -> str:
    """What a refused nopen/nsend means for a result; a socket id in use is the caller's bug."""
    if exc.errid == w.ErrId.ESKTINUSE:
        raise MeasurementError(f"socket id {sktid} is in use on the endpoint; pass another sktid")
    return f"the endpoint refused: {exc}"


async def release_socket(endpoint: EndpointHandle, sktid: int) -> None:
    """Close ``sktid`` and drop its leftover notifications (they would confuse its next user).
    The endpoint answers nclose after every notification it sent for the socket before."""
    with contextlib.suppress(EndpointError, SessionGone):
        await endpoint.close(sktid)
    with contextlib.suppress(SessionGone):
        await endpoint.collect(w.Message, 1 << 30, sktid=sktid, timeout=0)


# connecting -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpOpen:
    """An established connection and the endpoint times of its handshake."""

    start_ns: int
    """Endpoint clock read just before the nopen: the SYN left after it."""
    syn_by_ns: int
    """Endpoint clock read just after the nopen: the SYN had left by then."""
    established_ns: int
    """The endpoint's ESTABLISHED stamp (nstat time)."""

    @property
    def connect_ms(self) -> float:
        """ESTABLISHED minus ``start_ns``: an upper bound (see :func:`timed_open_tcp`)."""
        return (self.established_ns - self.start_ns) / 1e6


async def timed_open_tcp(
    endpoint: EndpointHandle, sktid: int, address: str, port: int, timeout: float
) -> TcpOpen:
    """Open a TCP connection on ``sktid`` and time it with endpoint clocks.

    Nothing on the endpoint stamps the SYN. So the nopen travels between two reads of the
    endpoint's clock, T_a and T_b, all three in one write (behind a read that leaves alone: the
    handle sends a lone request at once), and the endpoint handles them in order, its connect()
    sending the SYN: T_a <= SYN <= T_b. ESTABLISHED (nstat.time) is stamped by the endpoint's
    packet I/O process when it sees the socket connected, w after the kernel did.

    Connect time = nstat.time - T_a. It is never below the truth, and above it by the
    endpoint's work on the nopen before connect() (at most T_b - T_a; 0.1-0.3 ms measured)
    plus w (0.1-0.5 ms measured, milliseconds when the endpoint's machine is busy): on the
    line testbed (40 ms RTT) it came out 0.2-0.9 ms over the kernel's own handshake time
    (TCP_INFO rtt), now and then 2-4 ms over on a loaded two-CPU machine. T_b is not used as
    the start because the endpoint sometimes stalls for milliseconds between connect() and
    the next request (seen: up to 5 ms, which would read as a connect that short). One more
    case makes it late: a socket reaching the packet I/O process after its handshake is
    stamped on arrival there, which happens when the first connect of a session races that
    process's start-up (~0.2 s) on a short path; anything sent before (a DNS query) avoids it.

    Raises ConnectFailed (the connection was refused, timed out, ...; the socket is closed
    again) or MeasurementError (``sktid`` in use)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    first, before, opened, after = await asyncio.gather(
        endpoint.now(), endpoint.now(), endpoint.open_tcp(sktid, address, port), endpoint.now(),
        return_exceptions=True,
    )  # fmt: skip
    for outcome in (first, before, after):
        if isinstance(outcome, BaseException):
            if opened is None:
                await release_socket(endpoint, sktid)
            raise outcome
    assert isinstance(before, int) and isinstance(after, int)
    if isinstance(opened, EndpointError):
        raise ConnectFailed(refusal(opened, sktid), before)
    if isinstance(opened, BaseException):
        raise opened
    try:
        try:
            status = await endpoint.next(w.Nstat, sktid=sktid, timeout=_left(loop, deadline))
        except TimeoutError:
            raise ConnectFailed("timeout", before) from None
        if status.code == w.NstatCode.ESTABLISHED:
            return TcpOpen(before, after, status.time)
        if status.code == w.NstatCode.TIMEOUT:
            raise ConnectFailed("timeout", before)
        raw = await endpoint.mread(vmem.SOCKETS + sktid * vmem.SOCKET_BLOCK + vmem.SK_STAT, 1)
        state = int.from_bytes(raw, "big", signed=True)
        raise ConnectFailed(_CONNECT_ERRORS.get(state, f"connect failed (socket state {state})"),
                            before)  # fmt: skip
    except BaseException:
        await release_socket(endpoint, sktid)
        raise


async def tcp_connect(
    endpoint: EndpointHandle, address: str, port: int, *, timeout: float = 5.0, sktid: int = 242
) -> float:
    """Milliseconds from SYN to ESTABLISHED on the endpoint, never less than the truth and on
    an idle endpoint under a millisecond more (:func:`timed_open_tcp` has the bounds). The
    connection is closed again. Raises ConnectFailed with the reason ("connection refused",
    "timeout", "unreachable", ...) when it does not connect."""
    family = address_family(address)
    check_port(port)
    check_timeout(timeout)
    check_sktid(sktid)
    caps = await capabilities(endpoint)
    caps.require("tcp connect", tcp=True, family=family)
    opened = await timed_open_tcp(endpoint, sktid, address, port, timeout)
    await release_socket(endpoint, sktid)
    return opened.connect_ms


# HTTP -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HttpTarget:
    address: str
    port: int
    host: str
    """The Host header."""
    path: str
    """The request target (path and query)."""

    @property
    def family(self) -> int:
        return address_family(self.address)

    def request(self) -> bytes:
        return (
            f"GET {self.path} HTTP/1.1\r\nHost: {self.host}\r\nConnection: close\r\n"
            "User-Agent: packetlab\r\n\r\n"
        ).encode("ascii")


def http_target(url: str, address: str | None = None) -> HttpTarget:
    """Where and what to GET for ``url``; MeasurementError for what the endpoint cannot fetch."""
    try:
        parts = urlsplit(url)
        port = parts.port if parts.port is not None else 80
    except ValueError as exc:
        raise MeasurementError(f"{url!r} is not a URL: {exc}") from None
    if parts.scheme.lower() == "https":
        raise MeasurementError(
            f"{url}: https needs TLS, which the endpoint does not have; use an http:// URL"
        )
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise MeasurementError(f"{url!r} is not an http://HOST/... URL")
    check_port(port)
    host = parts.hostname
    if address is None:
        try:
            address = str(ipaddress.ip_address(host))
        except ValueError:
            raise MeasurementError(
                f"{url}: {host!r} is a name and the endpoint does not resolve names; give its "
                "address (--connect-to), e.g. from a DNS query (packetlab dig) first"
            ) from None
    address_family(address, "--connect-to")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    for part in (host, path):
        if not part.isascii() or any(ord(c) <= 0x20 or ord(c) == 0x7F for c in part):
            raise MeasurementError(f"{url}: spaces, control or non-ASCII characters in {part!r}")
    host_header = f"[{host}]" if ":" in host else host
    if port != 80:
        host_header += f":{port}"
    return HttpTarget(address, port, host_header, path)


class ResponseParser:
    """Sans-IO reader of one HTTP/1.x response: ``feed`` bytes as they come, ``eof`` when the
    peer closes; ``complete`` once the body's end is known. Interim 1xx responses are skipped.
    Raises HttpParseError for bytes that are not a response or a body cut short."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.reason = ""
        self.version = ""
        self.headers: list[tuple[str, str]] = []
        self.header_bytes = 0
        """Status line, header lines and the empty line that ends them."""
        self.body_bytes = 0
        """Bytes of the body (a chunked body's payload, without the chunk framing)."""
        self.complete = False
        self._head = bytearray()
        self._framing = ""  # "length", "chunked" or "close"
        self._left = 0  # bytes left of the body (length) or of the current chunk
        self._chunk_state = "size"  # "size", "data", "data-end" or "trailer"
        self._line = bytearray()

    def feed(self, data: bytes) -> None:
        while self.status is None and data:  # more than once after an interim response
            self._head += data
            end = self._head.find(b"\r\n\r\n")
            if end < 0:
                if len(self._head) > MAX_HEAD_BYTES:
                    raise HttpParseError(f"no end of the headers in {MAX_HEAD_BYTES} bytes")
                return
            head, data = bytes(self._head[: end + 4]), bytes(self._head[end + 4 :])
            self._head.clear()
            self._read_head(head)
        if self.complete or not data:
            return
        if self._framing == "length":
            take = min(self._left, len(data))
            self.body_bytes += take
            self._left -= take
            self.complete = self._left == 0
        elif self._framing == "chunked":
            self._read_chunks(data)
        else:
            self.body_bytes += len(data)

    def eof(self) -> None:
        """The peer closed the connection: the end of a close-delimited body."""
        if self.complete:
            return
        if self.status is None:
            raise HttpParseError("the connection closed before the end of the response headers")
        if self._framing != "close":
            raise HttpParseError(
                f"the connection closed {self.body_bytes} bytes into the body, before its end"
            )
        self.complete = True

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive)."""
        lower = name.lower()
        return next((value for key, value in self.headers if key.lower() == lower), None)

    def _read_head(self, head: bytes) -> None:
        lines = head[:-4].split(b"\r\n")
        match = _STATUS_LINE.fullmatch(lines[0])
        if match is None:
            raise HttpParseError(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
        status = int(match[3])
        if 100 <= status < 200 and status != 101:
            return
        headers: list[tuple[str, str]] = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t") and headers:  # obsolete line folding
                folded_name, folded = headers[-1]
                headers[-1] = (folded_name, f"{folded} {line.strip().decode('latin-1')}")
                continue
            name, colon, value = line.partition(b":")
            if not colon or not name or name != name.strip():
                raise HttpParseError(f"not a header line: {line[:80]!r}")
            headers.append((name.decode("latin-1"), value.strip().decode("latin-1")))
        self.status, self.version = status, f"{match[1].decode()}.{match[2].decode()}"
        self.reason = (match[4] or b"").decode("latin-1")
        self.headers, self.header_bytes = headers, len(head)
        self._choose_framing()

    def _choose_framing(self) -> None:
        """RFC 9112 section 6.3: how the body's end is known."""
        assert self.status is not None
        if self.status in (204, 304) or self.status == 101:
            self.complete = True
            return
        codings = [v.strip().lower() for k, v in self.headers if k.lower() == "transfer-encoding"]
        if codings:
            chunked = codings[-1].split(",")[-1].strip() == "chunked"
            self._framing = "chunked" if chunked else "close"
            return
        lengths = {
            item.strip()
            for key, value in self.headers
            if key.lower() == "content-length"
            for item in value.split(",")
        }
        if not lengths:
            self._framing = "close"
            return
        if len(lengths) > 1 or not all(c.isdigit() for c in next(iter(lengths))):
            raise HttpParseError(f"bad Content-Length: {sorted(lengths)}")
        self._framing, self._left = "length", int(lengths.pop())
        self.complete = self._left == 0

    def _read_chunks(self, data: bytes) -> None:
        at, size = 0, len(data)
        while at < size and not self.complete:
            if self._chunk_state == "data":
                take = min(self._left, size - at)
                self.body_bytes += take
                self._left -= take
                at += take
                if self._left == 0:
                    self._chunk_state = "data-end"
                continue
            end = data.find(b"\n", at)
            if end < 0:
                self._line += data[at:]
                if len(self._line) > MAX_LINE_BYTES:
                    raise HttpParseError("a chunk size or trailer line is too long")
                return
            self._line += data[at:end]
            line = bytes(self._line).rstrip(b"\r")
            self._line.clear()
            at = end + 1
            self._chunk_line(line)

    def _chunk_line(self, line: bytes) -> None:
        if self._chunk_state == "size":
            digits = line.split(b";", 1)[0].strip()
            if not _HEX.fullmatch(digits):
                raise HttpParseError(f"bad chunk size line: {line[:80]!r}")
            self._left = int(digits, 16)
            self._chunk_state = "data" if self._left else "trailer"
        elif self._chunk_state == "data-end":
            if line:
                raise HttpParseError("a chunk's data is not followed by CRLF")
            self._chunk_state = "size"
        elif not line:  # the empty line after the trailer fields
            self.complete = True


async def http_get(
    endpoint: EndpointHandle,
    url: str,
    *,
    address: str | None = None,
    timeout: float = 10.0,
    sktid: int = 241,
    max_bytes: int = 1 << 20,
    clock: ClockOffset | None = None,
) -> HttpResult:
    """GET ``url`` (http:// only) from the endpoint: connect to ``address`` (default: the URL's
    host, which must then be an IP literal), send one request with ``Connection: close``, read
    the response until its body ends, the peer closes, ``max_bytes`` arrived or ``timeout``
    (seconds, for the whole exchange) passes.

    ttc_ms: connect time (:func:`timed_open_tcp`); ttfb_ms: request TX stamp to the RX stamp of
    the first response bytes (the kernel stamps a TCP read with its last segment, so segments
    coalesced before the endpoint read them make it slightly late); rt_ms: connect start to
    the RX stamp of the last bytes read. A failure is a result with ``error`` set
    ("connection refused", "timeout", ...), with whatever was measured before it."""
    target = http_target(url, address)
    check_timeout(timeout)
    check_sktid(sktid)
    if max_bytes < 1:
        raise MeasurementError(f"max_bytes must be >= 1, got {max_bytes!r}")
    family = target.family
    _, who = await prepare(endpoint, "http", target.address, tcp=True, clock=clock)
    result = HttpResult(
        origin=who, url=url, dst_addr=target.address, port=target.port,
        af=family, method="GET", started_ns=0,
    )  # fmt: skip
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        opened = await timed_open_tcp(endpoint, sktid, target.address, target.port, timeout)
    except ConnectFailed as exc:
        result.started_ns, result.error = exc.start_ns, exc.reason
        return result
    result.started_ns, result.ttc_ms = opened.start_ns, opened.connect_ms
    try:
        await _exchange(endpoint, sktid, target.request(), family, deadline, max_bytes, result)
    finally:
        await release_socket(endpoint, sktid)
    return result


async def _exchange(
    endpoint: EndpointHandle,
    sktid: int,
    request: bytes,
    family: int,
    deadline: float,
    max_bytes: int,
    result: HttpResult,
) -> None:
    """Send the request, read the response into ``result``."""
    try:
        await endpoint.send_tcp(sktid, request, tag=REQUEST_TAG, family=family)
    except EndpointError as exc:
        result.error = refusal(exc, sktid)
        return
    loop = asyncio.get_running_loop()
    parser = ResponseParser()
    sent_ns = first_ns = last_ns = None
    received = 0
    while not parser.complete:
        try:
            note = await endpoint.next(w.Message, sktid=sktid, timeout=_left(loop, deadline))
        except TimeoutError:
            result.error = "timeout"
            break
        if isinstance(note, w.Ntag) and note.tag == REQUEST_TAG:
            if note.errid:
                result.error = "the endpoint could not send the request"
                break
            sent_ns = note.time
        elif isinstance(note, w.Ndata):
            first_ns = first_ns or note.time
            last_ns = note.time
            received += len(note.data)
            try:
                parser.feed(note.data)
            except HttpParseError as exc:
                result.error = f"bad response: {exc}"
                break
            if received >= max_bytes and not parser.complete:
                result.error = f"stopped after max_bytes ({max_bytes}) of the response"
                break
        elif isinstance(note, w.Nstat) and note.code != w.NstatCode.ESTABLISHED:
            if note.code == w.NstatCode.PEERCLOSED:
                try:
                    parser.eof()
                except HttpParseError as exc:
                    result.error = str(exc)
            else:
                result.error = "connection reset" if received else "connection reset, no response"
            break
        elif isinstance(note, w.Nblock):
            result.error = "the endpoint's monitor blocked the response"
            break
    if sent_ns is None and first_ns is not None:  # the stamp is sent before the data it caused
        with contextlib.suppress(TimeoutError):
            tag = await endpoint.next(w.Ntag, sktid=sktid, timeout=min(1.0, _left(loop, deadline)))
            sent_ns = tag.time if tag.tag == REQUEST_TAG and not tag.errid else None
    result.status, result.version = parser.status, parser.version
    result.header_bytes, result.body_bytes = parser.header_bytes, parser.body_bytes
    if sent_ns is not None and first_ns is not None:
        result.ttfb_ms = (first_ns - sent_ns) / 1e6
    if last_ns is not None:
        result.rt_ms = (last_ns - result.started_ns) / 1e6


def _left(loop: asyncio.AbstractEventLoop, deadline: float) -> float:
    return max(0.0, deadline - loop.time())
