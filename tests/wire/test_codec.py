"""The codec against the reference's golden vectors (section 3.3) and its decoding rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetlab import wire as w
from packetlab.wire.codec import check_nsend

A = w.addr_bytes
ANY4 = bytes(4)
PROGRAM = bytes.fromhex("00b70000000000ffff")  # eBPF type byte + one instruction

GOLDEN: list[tuple[str, w.Message, str]] = [
    ("mread(0x10010000,8)", w.Mread(0x10010000, 8), "28000006 10010000 0008"),
    ("mdata", w.Mdata(0x10010000, bytes(7) + b"\x01"), "4100000c 10010000 0000000000000001"),
    ("mwrite notifmask", w.Mwrite(0x20000470, b"\x00\x3e"), "29000006 20000470 003e"),
    ("result(success)", w.Result(), "40000000"),
    ("result(ESKTINUSE)", w.Result(w.ErrId.ESKTINUSE), "40000002 0032"),
    ("start", w.Start(), "21000000"),
    ("end", w.End(), "22000000"),
    ("yield(1 s)", w.Yield(1_000_000_000), "23000008 000000003b9aca00"),
    (
        "nopen tcp",
        w.Nopen(1, 4, 6, 4096, ANY4, 0, A("127.0.0.1"), 80),
        "2a000013 01 04 06 00001000 00000000 0000 7f000001 0050",
    ),
    ("nopen udp", w.Nopen(2, 4, 0x11, 4096, ANY4, 0), "2a00000d 02 04 11 00001000 00000000 0000"),
    ("nopen raw", w.Nopen(3, 4, 0, 4096, ANY4), "2a00000b 03 04 00 00001000 00000000"),
    (
        "nsend tcp",
        w.Nsend(1, 4, 6, 0, 1234, b"GET / HTTP/1.0\r\n\r\n"),
        "2c00001f 01 04 06 0000000000000000 04d2" + b"GET / HTTP/1.0\r\n\r\n".hex(),
    ),
    (
        "nsend udp",
        w.Nsend(2, 4, 0x11, 0, 7, b"\x12\x34", A("8.8.8.8"), 53),
        "2c000015 02 04 11 0000000000000000 0007 08080808 0035 1234",
    ),
    ("nclose(1)", w.Nclose(1), "2b000001 01"),
    ("ntag", w.Ntag(1, 1234, 0x1122334455667788), "6000000b 01 04d2 1122334455667788"),
    ("nstat peerclosed", w.Nstat(1, 4, 6, 1, 3), "6100000c 01 04 06 0000000000000001 03"),
    (
        "nstat established",
        w.Nstat(1, 4, 6, 1, 0, A("127.0.0.1"), 80),
        "61000011 01 04 06 0000000000000001 7f000001 0050",
    ),
    ("ndata tcp", w.Ndata(1, 4, 6, 2, b"hi"), "6200000d 01 04 06 0000000000000002 6869"),
    (
        "ndata udp",
        w.Ndata(2, 4, 0x11, 2, b"hi", A("8.8.8.8"), 53),
        "62000013 02 04 11 0000000000000002 08080808 0035 6869",
    ),
    (
        "ndrop",
        w.Ndrop(1, 4, 6, 1, 2, 3, 4),
        "6300001b 01 04 06 0000000000000001 0000000000000002 00000003 00000004",
    ),
    ("nctl fin", w.Nctl(1, 4, 6, 0, 1), "2e00000c 01 04 06 0000000000000000 01"),
    (
        "ncap",
        w.Ncap(3, 4, 0, 0xFFFFFFFFFFFFFFFF, PROGRAM),
        "2d000014 03 04 00 ffffffffffffffff 00 b70000000000ffff",
    ),
    ("cdata filter", w.Cdata("filter", PROGRAM), "20000010 06 66696c746572 00 b70000000000ffff"),
    ("suspd", w.Suspd(), "68000000"),
    ("resumd", w.Resumd(), "69000000"),
    (
        "xnotify",
        w.Xnotify(b"\xab\xab", b"controller_addr=127.0.0.1:20556;"),
        "70000023 02 abab" + b"controller_addr=127.0.0.1:20556;".hex(),
    ),
    ("xreg", w.Xreg("abc123"), "80000006 616263313233"),
    # from the observed runs (pktlab-reference-run.md)
    (
        "linfo monitor",
        w.Linfo(b"monitor", b"\x00\x00", b""),
        "65000015 00000007 00000002 00000000" + b"monitor".hex() + "0000",
    ),
]


@pytest.mark.parametrize(("name", "msg", "hexstr"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_vectors_both_ways(name: str, msg: w.Message, hexstr: str) -> None:
    raw = bytes.fromhex(hexstr.replace(" ", ""))
    assert w.encode(msg) == raw
    assert w.decode(raw) == msg
    assert raw[0] == type(w.decode(raw)).TYPE


@pytest.mark.parametrize(("name", "msg", "hexstr"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_truncated_golden_vectors(name: str, msg: w.Message, hexstr: str) -> None:
    raw = bytes.fromhex(hexstr.replace(" ", ""))
    reader = w.MessageReader()
    reader.feed(raw[:-1])
    assert list(reader) == []  # waits for the rest
    reader.feed(raw[-1:])
    assert list(reader) == [msg]


def _with_body(msg_type: int, body_hex: str) -> bytes:
    body = bytes.fromhex(body_hex.replace(" ", ""))
    return bytes((msg_type,)) + len(body).to_bytes(3, "big") + body


MALFORMED = {
    "mread body 5": _with_body(0x28, "10010000 00"),
    "mread body 7": _with_body(0x28, "10010000 0008 00"),
    "mread len 0": _with_body(0x28, "10010000 0000"),
    "mread wraps": _with_body(0x28, "ffffffff 0002"),
    "nopen family 5": _with_body(0x2A, "01 05 11 00001000 00000000 0000"),
    "nopen proto 7": _with_body(0x2A, "01 04 07 00001000 00000000 0000"),
    "nopen udp short": _with_body(0x2A, "02 04 11 00001000 00000000 00"),
    "nopen tcp half remote": _with_body(0x2A, "01 04 06 00001000 00000000 0000 7f000001"),
    "nopen raw with port": _with_body(0x2A, "03 04 00 00001000 00000000 0000"),
    "ndrop body 26": _with_body(0x63, "01 04 06" + "00" * 16 + "00000003 000000"),
    "nblock body 12": _with_body(0x64, "01 04 06 0001 00000000000000"),
    "result body 1": _with_body(0x40, "00"),
    "result body 3": _with_body(0x40, "0032 00"),
    "result 4 not monukn": _with_body(0x40, "0032 0001"),
    "result monrej short": _with_body(0x40, "0012"),
    "xnotify channel 0": _with_body(0x70, "00"),
    "xnotify channel 33": _with_body(0x70, "21" + "ab" * 33),
    "xpub chlist unterminated": _with_body(0x31, "02 abab"),
    "xpub no eopkey": _with_body(0x31, "02 abab 00" + "11" * 31),
    "xreg uppercase": _with_body(0x80, b"Abc".hex()),
    "xreg dash": _with_body(0x80, b"a-b".hex()),
    "xreg 64 chars": _with_body(0x80, b"a".hex() * 64),
    "start with body": _with_body(0x21, "00"),
    "yield short": _with_body(0x23, "00"),
    "ntag body 12": _with_body(0x60, "01 04d2 1122334455667788 00"),
    "nstat body 13": _with_body(0x61, "01 04 06 0000000000000001 03 00"),
    "nclose body 2": _with_body(0x2B, "0101"),
    "nsend family 9": _with_body(0x2C, "01 09 06 0000000000000000 04d2"),
    "nsend udp no addr": _with_body(0x2C, "02 04 11 0000000000000000 0007 0808"),
    "cdata hint past body": _with_body(0x20, "07 66696c74"),
    "ncap no program": _with_body(0x2D, "03 04 00 ffffffffffffffff"),
    "linfo lengths": _with_body(0x65, "00000007 00000002 00000001" + b"monitor".hex() + "0000"),
    "mwrite no data": _with_body(0x29, "20000470"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_bodies_raise_badmsg(case: str) -> None:
    raw = MALFORMED[case]
    with pytest.raises(w.MalformedMessage) as info:
        w.decode(raw)
    assert info.value.errid is w.ErrId.ECTLBADMSG
    assert info.value.msg_type == raw[0]
    # the reader consumes the bad message and stays framed
    reader = w.MessageReader()
    reader.feed(raw + w.encode(w.Start()))
    with pytest.raises(w.MalformedMessage):
        next(reader)
    assert list(reader) == [w.Start()]


def test_unknown_types_decode_as_unknown_and_round_trip() -> None:
    for msg_type in (0x25, 0x3F, 0x42, 0x7F, 0x90, 0xFF):
        raw = _with_body(msg_type, "0102")
        msg = w.decode(raw)
        assert isinstance(msg, w.UnknownMessage) and msg.msg_type == msg_type
        assert w.encode(msg) == raw


def test_ipv6_and_error_forms() -> None:
    six = w.addr_bytes("2001:db8::1")
    for msg in (
        w.Nopen(4, 6, 6, 1, bytes(16), 5, six, 80),
        w.Nsend(4, 6, 0x11, 5, 9, b"x", six, 53),
        w.Ndata(4, 6, 0x11, 5, b"y", six, 53),
        w.Nstat(4, 6, 6, 5, 0, six, 80),
        w.Ntag(4, 9, 5, w.ErrId.ESKTPKTDENY),
        w.Result(w.ErrId.ECTLMONREJ, 1, 7),
        w.Result(w.ErrId.ECTLMONUKN, 2),
        w.Xpub((b"\x01", bytes(32)), bytes(range(32)), b"sni_key=abc;"),
        w.Xsub((), bytes(32)),
        w.Xcert(b"\x30\x00"),
    ):
        assert w.decode(w.encode(msg)) == msg


@pytest.mark.parametrize(
    "build",
    [
        lambda: w.Mread(0, 0),
        lambda: w.Nopen(256, 4, 6, 0, bytes(4)),
        lambda: w.Nopen(1, 4, 0x11, 0, bytes(16)),
        lambda: w.Nsend(1, 4, 0x11, 0, 1, b""),
        lambda: w.Result(0x12, 1),
        lambda: w.Xreg("Bad"),
        lambda: w.Yield(-1),
    ],
)
def test_constructors_refuse_what_the_wire_cannot_carry(build) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(w.EncodeError):
        build()


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_our_error(data: bytes) -> None:
    """Fed whole or byte by byte: messages or MalformedMessage, nothing else, and the same."""
    whole: list[object] = []
    reader = w.MessageReader()
    reader.feed(data)
    _drain(reader, whole)
    split: list[object] = []
    reader = w.MessageReader()
    for i in range(len(data)):
        reader.feed(data[i : i + 1])
        _drain(reader, split)
    assert whole == split


def _drain(reader: w.MessageReader, out: list[object]) -> None:
    while True:
        try:
            msg = next(reader)
        except StopIteration:
            return
        except w.MalformedMessage as exc:
            out.append(("bad", exc.msg_type))
            continue
        out.append(msg)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([g[1] for g in GOLDEN]), max_size=8), st.data())
def test_stream_of_messages_split_anywhere(msgs: list[w.Message], data: st.DataObject) -> None:
    stream = b"".join(w.encode(m) for m in msgs)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    reader = w.MessageReader()
    got: list[w.Message] = []
    last = 0
    for cut in [*cuts, len(stream)]:
        reader.feed(stream[last:cut])
        last = cut
        got.extend(reader)
    assert got == msgs


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.binary(max_size=40),
        st.builds(
            lambda head, rest: head + rest,
            st.tuples(
                st.integers(0, 255), st.sampled_from([4, 6, 5]), st.sampled_from([0, 6, 17, 1])
            ).map(bytes),
            st.binary(max_size=40),
        ),
    )
)
def test_nsend_pass_through_check_agrees_with_decoding(body: bytes) -> None:
    """The endpoint forwards nsend undecoded after check_nsend: it must accept exactly the
    bodies decoding accepts, and report the same socket, family and protocol."""
    nsend = int(w.MsgType.NSEND)
    try:
        msg = w.decode_body(nsend, body)
    except w.MalformedMessage:
        with pytest.raises(w.MalformedMessage):
            check_nsend(nsend, body)
        return
    assert isinstance(msg, w.Nsend)
    assert check_nsend(nsend, b"\0" * 4 + body, 4) == (msg.sktid, msg.family, msg.proto)
