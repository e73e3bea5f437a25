"""Session state machines for the endpoint and controller roles, sans-IO.

Theory of operation. A session starts once TLS (or the raw mlet socketpair) is up. Both cores
take bytes in (``receive_data(data, now)``) and give events out; what they must send is queued
and taken with ``data_to_send()``. Time is a parameter: u64 ns on the caller's clock; the core
says when it next needs to wake (``get_timer()``) and the shell calls ``handle_timer(now)``.

Endpoint role:
    SETUP --cdata--> SETUP            (the app checks the program digest and answers)
    SETUP --start--> (app) accept_start() -> IDLE | reject_start(errid) -> CLOSED
    SETUP --timer (10 s)--> CLOSED    (the reference's setup timeout)
    IDLE  --request--> IDLE           (the app answers each request with exactly one response)
    IDLE  --start/cdata--> result(ECTLNOTSUP), IDLE
    any   --unknown type or a non-request type--> result(ECTLNOTSUP), same state
    any   --malformed message--> result(ECTLBADMSG), CLOSED (reset)
    any   --close()--> CLOSED
A (state, message) pair not in this table is answered with ECTLNOTSUP.

Controller role: requests are answered in order, so responses are paired with the oldest
outstanding request (mread -> mdata, everything else -> result); notifications are interleaved.
During SETUP only cdata and start may be sent; start's success moves to IDLE.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from packetlab.wire._errors import MalformedMessage, ProtocolError
from packetlab.wire.codec import MessageReader, check_nsend, decode_body, encode
from packetlab.wire.codes import HEADER_LEN, SETUP_TIMEOUT_NS, ErrId, MsgType
from packetlab.wire.messages import Cdata, Mdata, Message, Mread, Result, Start, UnknownMessage


class SessionState(enum.Enum):
    SETUP = "setup"
    IDLE = "idle"
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class RequestReceived:
    """Endpoint side: a request the application must answer."""

    message: Message


@dataclass(frozen=True, slots=True)
class NsendReceived:
    """Endpoint side, with ``pass_nsend``: a well-formed nsend, undecoded (header + body).

    The endpoint's hot path: it checks the socket and forwards the frame to its sender as is."""

    frame: bytes
    sktid: int
    family: int
    proto: int


@dataclass(frozen=True, slots=True)
class ResponseReceived:
    """Controller side: the response to ``request``."""

    request: Message
    response: Message


@dataclass(frozen=True, slots=True)
class NotificationReceived:
    message: Message


@dataclass(frozen=True, slots=True)
class SessionClosed:
    reason: str
    errid: ErrId | None = None


Event = RequestReceived | NsendReceived | ResponseReceived | NotificationReceived | SessionClosed

_SETUP_REQUESTS = frozenset({MsgType.CDATA, MsgType.START})
_IDLE_REQUESTS = frozenset(
    {
        MsgType.END,
        MsgType.YIELD,
        MsgType.CONT,
        MsgType.MREAD,
        MsgType.MWRITE,
        MsgType.NOPEN,
        MsgType.NCLOSE,
        MsgType.NSEND,
        MsgType.NCAP,
        MsgType.NCTL,
    }
)


class _Core:
    __slots__ = ("_out", "_reader", "state")

    def __init__(self) -> None:
        self.state = SessionState.SETUP
        self._reader = MessageReader()
        self._out = bytearray()

    def data_to_send(self) -> bytes:
        data = bytes(self._out)
        self._out.clear()
        return data

    def _queue(self, msg: Message) -> None:
        self._out += encode(msg)

    def close(self) -> None:
        self.state = SessionState.CLOSED

    @property
    def closed(self) -> bool:
        return self.state is SessionState.CLOSED


class EndpointSession(_Core):
    """The endpoint's side of one session with a controller."""

    __slots__ = ("_setup_deadline", "pass_nsend", "start_pending")

    def __init__(
        self, now: int, setup_timeout_ns: int = SETUP_TIMEOUT_NS, pass_nsend: bool = False
    ) -> None:
        super().__init__()
        self._setup_deadline = now + setup_timeout_ns
        self.start_pending = False
        self.pass_nsend = pass_nsend  # idle nsends as NsendReceived, not RequestReceived

    def get_timer(self) -> int | None:
        return self._setup_deadline if self.state is SessionState.SETUP else None

    def handle_timer(self, now: int) -> list[Event]:
        if self.state is SessionState.SETUP and now >= self._setup_deadline:
            self.close()
            return [SessionClosed("setup phase timed out (10 s without start)")]
        return []

    def receive_data(self, data: bytes, now: int) -> list[Event]:
        events: list[Event] = [*self.handle_timer(now)]
        if self.state is SessionState.CLOSED:
            return events
        reader = self._reader
        reader.feed(data)
        pass_nsend = self.pass_nsend
        while not self.closed:
            try:
                msg_type, frame = reader.next_frame()
                if msg_type == MsgType.NSEND and pass_nsend and self.state is SessionState.IDLE:
                    sktid, family, proto = check_nsend(msg_type, frame, HEADER_LEN)
                    events.append(NsendReceived(frame, sktid, family, proto))
                    continue
                msg = decode_body(msg_type, frame[HEADER_LEN:])
            except StopIteration:
                break
            except MalformedMessage as exc:
                self._queue(Result(ErrId.ECTLBADMSG))
                self.close()
                events.append(SessionClosed(f"malformed message: {exc}", ErrId.ECTLBADMSG))
                break
            event = self._dispatch(msg)
            if event is not None:
                events.append(event)
        return events

    def _dispatch(self, msg: Message) -> Event | None:
        msg_type = msg.msg_type if isinstance(msg, UnknownMessage) else msg.TYPE
        allowed = _SETUP_REQUESTS if self.state is SessionState.SETUP else _IDLE_REQUESTS
        if msg_type not in allowed or (msg_type == MsgType.START and self.start_pending):
            self._queue(Result(ErrId.ECTLNOTSUP))
            return None
        if msg_type == MsgType.START:
            self.start_pending = True
        return RequestReceived(msg)

    def send(self, msg: Message) -> None:
        """Queue a response or notification."""
        if self.state is not SessionState.CLOSED:
            self._queue(msg)

    def send_encoded(self, data: bytes) -> None:
        """Queue responses or notifications that are already encoded (whole frames)."""
        if self.state is not SessionState.CLOSED:
            self._out += data

    def accept_start(self) -> None:
        """The programs check out: answer start with success and go idle."""
        if not self.start_pending:
            raise ProtocolError("accept_start without a pending start")
        self.start_pending = False
        self._queue(Result())
        self.state = SessionState.IDLE

    def reject_start(self, errid: ErrId) -> None:
        """Answer start with ``errid`` (e.g. ECRTNOHDAT) and reset the session."""
        self.start_pending = False
        self._queue(Result(errid))
        self.close()


class ControllerSession(_Core):
    """The controller's side of one session with an endpoint."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        super().__init__()
        self._pending: deque[Message] = deque()

    @property
    def outstanding(self) -> int:
        return len(self._pending)

    def send_request(self, msg: Message) -> None:
        if self.state is SessionState.CLOSED:
            raise ProtocolError("session is closed")
        if not 0x20 <= msg.TYPE <= 0x3F:  # MsgType.is_request, without an enum call
            raise ProtocolError(f"{type(msg).__name__} is not a request")
        if self.state is SessionState.SETUP and not isinstance(msg, Cdata | Start):
            raise ProtocolError("only cdata and start may be sent before start succeeds")
        self._pending.append(msg)
        self._queue(msg)

    def receive_data(self, data: bytes, now: int) -> list[Event]:
        events: list[Event] = []
        if self.state is SessionState.CLOSED:
            return events
        self._reader.feed(data)
        while not self.closed:
            try:
                msg = next(self._reader)
            except StopIteration:
                break
            except MalformedMessage as exc:
                self.close()
                events.append(SessionClosed(f"endpoint sent a malformed message: {exc}"))
                break
            events.append(self._dispatch(msg))
        return events

    def _dispatch(self, msg: Message) -> Event:
        # notifications, and anything unexpected (requests, unknown types), go to the application
        if isinstance(msg, UnknownMessage) or not 0x40 <= msg.TYPE < 0x60:
            return NotificationReceived(msg)
        if not self._pending:
            self.close()
            return SessionClosed(f"endpoint sent {type(msg).__name__} with no request outstanding")
        request = self._pending.popleft()
        if isinstance(msg, Mdata) and not isinstance(request, Mread):
            self.close()
            return SessionClosed("endpoint answered a non-mread request with mdata")
        if (
            isinstance(request, Start)
            and isinstance(msg, Result)
            and self.state is SessionState.SETUP
        ):
            if msg.ok:
                self.state = SessionState.IDLE
            else:
                self.close()
        return ResponseReceived(request, msg)
