"""Endpoint and controller session cores back to back, in memory, on a virtual clock."""

from __future__ import annotations

from packetlab import wire as w
from packetlab.wire.session import (
    ControllerSession,
    EndpointSession,
    NotificationReceived,
    NsendReceived,
    RequestReceived,
    ResponseReceived,
    SessionClosed,
    SessionState,
)

T0 = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


def pair() -> tuple[ControllerSession, EndpointSession]:
    return ControllerSession(), EndpointSession(now=T0)


def to_endpoint(c: ControllerSession, e: EndpointSession, now: int = T0) -> list[object]:
    return list(e.receive_data(c.data_to_send(), now))


def to_controller(e: EndpointSession, c: ControllerSession) -> list[object]:
    return list(c.receive_data(e.data_to_send(), T0))


def started() -> tuple[ControllerSession, EndpointSession]:
    c, e = pair()
    c.send_request(w.Start())
    [event] = to_endpoint(c, e)
    assert event == RequestReceived(w.Start())
    e.accept_start()
    to_controller(e, c)
    return c, e


def test_setup_with_program_upload_then_start() -> None:
    c, e = pair()
    c.send_request(w.Cdata("monitor", b"\x01wasm"))
    c.send_request(w.Start())
    events = to_endpoint(c, e)
    assert events == [RequestReceived(w.Cdata("monitor", b"\x01wasm")), RequestReceived(w.Start())]
    e.send(w.Result())
    e.accept_start()
    assert e.state is SessionState.IDLE
    replies = to_controller(e, c)
    assert [type(r) for r in replies] == [ResponseReceived, ResponseReceived]
    assert replies[1] == ResponseReceived(w.Start(), w.Result())
    assert c.state is SessionState.IDLE and c.outstanding == 0


def test_start_again_while_idle_is_not_supported() -> None:
    c, e = started()
    c.send_request(w.Start())
    assert to_endpoint(c, e) == []
    assert e.data_to_send() == bytes.fromhex("400000020011")
    assert e.state is SessionState.IDLE


def test_setup_timeout_closes_after_ten_seconds() -> None:
    _, e = pair()
    assert e.get_timer() == T0 + 10 * SECOND
    assert e.handle_timer(T0 + 10 * SECOND - 1) == []
    [event] = e.handle_timer(T0 + 10 * SECOND)
    assert isinstance(event, SessionClosed) and "timed out" in event.reason
    assert e.state is SessionState.CLOSED and e.get_timer() is None


def test_requests_other_than_cdata_and_start_during_setup() -> None:
    c, e = pair()
    e.receive_data(w.encode(w.Mread(0x10010000, 8)), T0)
    assert e.data_to_send() == bytes.fromhex("400000020011")
    assert e.state is SessionState.SETUP
    del c


def test_malformed_message_gets_badmsg_and_reset() -> None:
    _, e = started()
    events = e.receive_data(bytes.fromhex("28000005 1001000000".replace(" ", "")), T0)
    assert e.data_to_send() == bytes.fromhex("400000020010")
    assert len(events) == 1 and isinstance(events[0], SessionClosed)
    assert events[0].errid is w.ErrId.ECTLBADMSG
    assert e.state is SessionState.CLOSED
    assert e.receive_data(w.encode(w.Mread(0x10010000, 8)), T0) == []


def test_unknown_type_gets_notsup_and_session_continues() -> None:
    c, e = started()
    e.receive_data(bytes.fromhex("25000001ff") + w.encode(w.Mread(0x10010000, 8)), T0)
    assert e.data_to_send() == bytes.fromhex("400000020011")
    assert e.state is SessionState.IDLE
    del c


def test_mread_pairs_with_mdata_and_notifications_interleave() -> None:
    c, e = started()
    c.send_request(w.Mread(0x10010000, 8))
    c.send_request(w.Nclose(3))
    events = to_endpoint(c, e)
    assert [type(ev) for ev in events] == [RequestReceived, RequestReceived]
    e.send(w.Ntag(1, 7, T0))
    e.send(w.Mdata(0x10010000, T0.to_bytes(8, "big")))
    e.send(w.Nstat(1, 4, 6, T0, 3))
    e.send(w.Result(w.ErrId.ESKTNOTOPEN))
    got = to_controller(e, c)
    assert got == [
        NotificationReceived(w.Ntag(1, 7, T0)),
        ResponseReceived(w.Mread(0x10010000, 8), w.Mdata(0x10010000, T0.to_bytes(8, "big"))),
        NotificationReceived(w.Nstat(1, 4, 6, T0, 3)),
        ResponseReceived(w.Nclose(3), w.Result(w.ErrId.ESKTNOTOPEN)),
    ]


def test_rejected_start_resets() -> None:
    c, e = pair()
    c.send_request(w.Start())
    to_endpoint(c, e)
    e.reject_start(w.ErrId.ECRTNOHDAT)
    assert e.state is SessionState.CLOSED
    [reply] = to_controller(e, c)
    assert reply == ResponseReceived(w.Start(), w.Result(w.ErrId.ECRTNOHDAT))
    assert c.state is SessionState.CLOSED


def test_controller_closes_on_unsolicited_response() -> None:
    c, _ = started()
    [event] = c.receive_data(w.encode(w.Result()), T0)
    assert isinstance(event, SessionClosed) and c.state is SessionState.CLOSED


def test_byte_by_byte_delivery_gives_the_same_events() -> None:
    c, e = started()
    for msg in (w.Nopen(1, 4, 0x11, 4096, bytes(4)), w.Nsend(1, 4, 0x11, 0, 5, b"q", bytes(4), 53)):
        c.send_request(msg)
    data = c.data_to_send()
    events: list[object] = []
    for i in range(len(data)):
        events.extend(e.receive_data(data[i : i + 1], T0))
    assert [ev.message for ev in events if isinstance(ev, RequestReceived)] == [
        w.Nopen(1, 4, 0x11, 4096, bytes(4)),
        w.Nsend(1, 4, 0x11, 0, 5, b"q", bytes(4), 53),
    ]


def test_pass_nsend_hands_over_well_formed_frames_and_resets_on_malformed_ones() -> None:
    c = ControllerSession()
    e = EndpointSession(now=T0, pass_nsend=True)
    c.send_request(w.Start())
    to_endpoint(c, e)
    e.accept_start()
    to_controller(e, c)
    udp = w.Nsend(3, 4, 0x11, 5, 7, b"payload", w.addr_bytes("127.0.0.1"), 53)
    c.send_request(udp)
    c.send_request(w.Mread(0, 4))
    events = to_endpoint(c, e)
    assert events[0] == NsendReceived(w.encode(udp), 3, 4, 0x11)
    assert events[1] == RequestReceived(w.Mread(0, 4))
    # a udp nsend without its address is malformed whether decoded or passed through
    e.receive_data(bytes.fromhex("2c00000d 03 04 11 0000000000000000 0001"), T0)
    assert e.closed
    assert w.decode(e.data_to_send()) == w.Result(w.ErrId.ECTLBADMSG)


def test_pass_nsend_is_off_by_default_and_never_in_setup() -> None:
    c, e = started()
    msg = w.Nsend(1, 4, 6, 0, 0, b"x")
    c.send_request(msg)
    assert to_endpoint(c, e) == [RequestReceived(msg)]
    setup = EndpointSession(now=T0, pass_nsend=True)
    events = setup.receive_data(w.encode(msg), T0)
    assert events == []  # in setup only cdata and start: answered ECTLNOTSUP
    assert w.decode(setup.data_to_send()) == w.Result(w.ErrId.ECTLNOTSUP)
