"""Encoding and decoding of pktlab messages (reference section 3), symmetric and exact.

Header: type u8 | body length u24, big-endian. Decoding rules: a known type whose body breaks its
layout raises MalformedMessage (the endpoint answers ECTLBADMSG and resets); an unknown type
decodes to UnknownMessage (answered with ECTLNOTSUP, the session goes on). MessageReader
reassembles messages split across reads in any way.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator

from packetlab.wire._errors import EncodeError, MalformedMessage
from packetlab.wire.codes import CHANNEL_MAX_LEN, HEADER_LEN, MAX_BODY_LEN, MsgType, Proto
from packetlab.wire.messages import (
    Cdata,
    Cont,
    End,
    Linfo,
    Mdata,
    Message,
    Mread,
    Mwrite,
    Nblock,
    Ncap,
    Nclose,
    Nctl,
    Ndata,
    Ndrop,
    Nopen,
    Nsend,
    Nstat,
    Ntag,
    Result,
    Resumd,
    Start,
    Suspd,
    UnknownMessage,
    Xcert,
    Xnotify,
    Xpub,
    Xreg,
    Xsub,
    Yield,
)

_HDR = struct.Struct(">I")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_ADDR_LEN = {4: 4, 6: 16}
_SFP = struct.Struct(">BBB")  # sktid, family, proto
_SFPT = struct.Struct(">BBBQ")  # + time
_MREAD = struct.Struct(">IH")
_NOPEN_HEAD = struct.Struct(">BBBI")
_NSEND_HEAD = struct.Struct(">BBBQH")
_NTAG = struct.Struct(">BHQ")
_NTAG_ERR = struct.Struct(">BHQH")
_NDROP = struct.Struct(">BBBQQII")
_NBLOCK = struct.Struct(">BBBHQ")
_NCTL = struct.Struct(">BBBQB")
_LINFO = struct.Struct(">III")


def _frame(msg_type: int, body: bytes) -> bytes:
    if len(body) > MAX_BODY_LEN:
        raise EncodeError(f"message body of {len(body)} bytes exceeds 0xFFFFFF")
    return _HDR.pack(msg_type << 24 | len(body)) + body


def _chlist(channels: tuple[bytes, ...]) -> bytes:
    return b"".join(bytes((len(c),)) + c for c in channels) + b"\x00"


def _port(value: int) -> bytes:
    return _U16.pack(value)


def encode_body(msg: Message) -> bytes:
    """The body bytes of ``msg`` (no header)."""
    kind = type(msg)
    encoder = _ENCODERS.get(kind)
    if encoder is None:
        if isinstance(msg, UnknownMessage):
            return msg.body
        raise EncodeError(f"cannot encode {kind.__name__}")
    return encoder(msg)


def encode(msg: Message) -> bytes:
    """Header and body of ``msg``: one write's worth of bytes."""
    if isinstance(msg, UnknownMessage):
        return _frame(msg.msg_type, msg.body)
    return _frame(msg.TYPE, encode_body(msg))


def _enc_nopen(m: Nopen) -> bytes:
    out = _NOPEN_HEAD.pack(m.sktid, m.family, m.proto, m.rbufsz) + m.laddr
    if m.proto == Proto.RAW:
        return out
    out += _port(m.lport)
    if m.raddr is not None:
        out += m.raddr + _port(m.rport)
    return out


def _enc_nsend(m: Nsend) -> bytes:
    head = _NSEND_HEAD.pack(m.sktid, m.family, m.proto, m.time, m.tag)
    if m.raddr is not None:
        return head + m.raddr + _port(m.rport) + m.payload
    return head + m.payload


def _enc_result(m: Result) -> bytes:
    if m.errid == 0:
        return b""
    if m.monindx is None:
        return _U16.pack(m.errid)
    if m.monerrid is None:
        return _U16.pack(m.errid) + _U16.pack(m.monindx)
    return _U16.pack(m.errid) + _U16.pack(m.monindx) + _U16.pack(m.monerrid)


def _enc_nstat(m: Nstat) -> bytes:
    head = _SFPT.pack(m.sktid, m.family, m.proto, m.time)
    if m.raddr is not None:
        return head + m.raddr + _port(m.rport)
    return head + bytes((m.code,))


def _enc_ndata(m: Ndata) -> bytes:
    head = _SFPT.pack(m.sktid, m.family, m.proto, m.time)
    if m.raddr is not None:
        return head + m.raddr + _port(m.rport) + m.data
    return head + m.data


def _enc_ntag(m: Ntag) -> bytes:
    if m.errid:
        return _NTAG_ERR.pack(m.sktid, m.tag, m.time, m.errid)
    return _NTAG.pack(m.sktid, m.tag, m.time)


def _enc_cdata(m: Cdata) -> bytes:
    hint = m.hint.encode("ascii")
    return bytes((len(hint),)) + hint + m.data


def _enc_linfo(m: Linfo) -> bytes:
    return _LINFO.pack(len(m.name), len(m.aux), len(m.info)) + m.name + m.aux + m.info


_ENCODERS: dict[type, Callable[..., bytes]] = {
    Cdata: _enc_cdata,
    Start: lambda m: b"",
    End: lambda m: b"",
    Yield: lambda m: _U64.pack(m.rhint),
    Cont: lambda m: b"",
    Mread: lambda m: _MREAD.pack(m.addr, m.length),
    Mwrite: lambda m: _U32.pack(m.addr) + m.data,
    Nopen: _enc_nopen,
    Nclose: lambda m: bytes((m.sktid,)),
    Nsend: _enc_nsend,
    Ncap: lambda m: _SFPT.pack(m.sktid, m.family, m.proto, m.endtime) + m.program,
    Nctl: lambda m: _NCTL.pack(m.sktid, m.family, m.proto, m.time, m.command),
    Xcert: lambda m: m.der,
    Xpub: lambda m: _chlist(m.channels) + m.eopkey + m.xdescr,
    Xsub: lambda m: _chlist(m.channels) + m.eopkey + m.dattr,
    Result: _enc_result,
    Mdata: lambda m: _U32.pack(m.addr) + m.data,
    Ntag: _enc_ntag,
    Nstat: _enc_nstat,
    Ndata: _enc_ndata,
    Ndrop: lambda m: _NDROP.pack(
        m.sktid, m.family, m.proto, m.tfirst, m.tlast, m.unitcnt, m.bytecnt
    ),
    Nblock: lambda m: _NBLOCK.pack(m.sktid, m.family, m.proto, m.monerrid, m.time),
    Linfo: _enc_linfo,
    Suspd: lambda m: b"",
    Resumd: lambda m: b"",
    Xnotify: lambda m: bytes((len(m.channel),)) + m.channel + m.xdescr,
    Xreg: lambda m: m.snikey.encode("ascii"),
}


# decoding ---------------------------------------------------------------------------------


def _bad(msg_type: int, why: str) -> MalformedMessage:
    name = MsgType(msg_type).name.lower()
    return MalformedMessage(f"malformed {name} message: {why}", msg_type=msg_type)


def _family_len(t: int, family: int) -> int:
    length = _ADDR_LEN.get(family)
    if length is None:
        raise _bad(t, f"family {family} is neither 4 nor 6")
    return length


def _proto(t: int, proto: int) -> None:
    if proto not in (0, 6, 0x11):
        raise _bad(t, f"proto {proto} is not raw, tcp or udp")


def _empty(t: int, body: bytes, cls: type[Message]) -> Message:
    if body:
        raise _bad(t, "body must be empty")
    return cls()


def _dec_cdata(t: int, b: bytes) -> Message:
    if not b or b[0] + 1 > len(b):
        raise _bad(t, "hint length runs past the body")
    try:
        hint = b[1 : 1 + b[0]].decode("ascii")
    except UnicodeDecodeError:
        raise _bad(t, "hint is not ASCII") from None
    return Cdata(hint, b[1 + b[0] :])


def _dec_yield(t: int, b: bytes) -> Message:
    if len(b) != 8:
        raise _bad(t, "body must be 8 bytes")
    return Yield(_U64.unpack(b)[0])


def _dec_mread(t: int, b: bytes) -> Message:
    if len(b) != 6:
        raise _bad(t, "body must be 6 bytes")
    addr, length = _MREAD.unpack(b)
    if length == 0 or addr + length > 1 << 32:
        raise _bad(t, "length 0 or addr+length past 2^32")
    return Mread(addr, length)


def _dec_mwrite(t: int, b: bytes) -> Message:
    if len(b) < 5:
        raise _bad(t, "needs an address and at least one byte")
    addr = _U32.unpack_from(b)[0]
    if addr + len(b) - 4 > 1 << 32:
        raise _bad(t, "addr+length past 2^32")
    return Mwrite(addr, b[4:])


def _dec_nopen(t: int, b: bytes) -> Message:
    if len(b) < 7:
        raise _bad(t, "too short")
    sktid, family, proto, rbufsz = _NOPEN_HEAD.unpack_from(b)
    alen = _family_len(t, family)
    _proto(t, proto)
    rest = len(b) - 7
    laddr = b[7 : 7 + alen]
    if proto == Proto.RAW:
        if rest != alen:
            raise _bad(t, "raw nopen carries exactly a local address")
        return Nopen(sktid, family, proto, rbufsz, laddr)
    lport = _U16.unpack_from(b, 7 + alen)[0] if rest >= alen + 2 else -1
    if proto == Proto.UDP or rest == alen + 2:
        if rest != alen + 2:
            raise _bad(t, "udp/tcp-listen nopen carries exactly a local address and port")
        return Nopen(sktid, family, proto, rbufsz, laddr, lport)
    if rest != 2 * alen + 4:
        raise _bad(t, "tcp nopen carries local and remote addresses and ports")
    raddr = b[9 + alen : 9 + 2 * alen]
    rport = _U16.unpack_from(b, 9 + 2 * alen)[0]
    return Nopen(sktid, family, proto, rbufsz, laddr, lport, raddr, rport)


def _dec_nclose(t: int, b: bytes) -> Message:
    if len(b) != 1:
        raise _bad(t, "body must be 1 byte")
    return Nclose(b[0])


def check_nsend(t: int, b: bytes | bytearray, offset: int = 0) -> tuple[int, int, int]:
    """(sktid, family, proto) of the nsend body at ``offset`` in ``b``, by the same rules as
    decoding it, without building the message: for the endpoint's pass-through of nsend."""
    size = len(b) - offset
    if size < 13:
        raise _bad(t, "too short")
    sktid, family, proto = b[offset], b[offset + 1], b[offset + 2]
    alen = _family_len(t, family)
    _proto(t, proto)
    if proto == Proto.UDP and size < 15 + alen:
        raise _bad(t, "udp nsend needs a remote address and port")
    return sktid, family, proto


def _dec_nsend(t: int, b: bytes) -> Message:
    check_nsend(t, b)
    sktid, family, proto, time, tag = _NSEND_HEAD.unpack_from(b)
    if proto == Proto.UDP:
        alen = _ADDR_LEN[family]
        raddr = b[13 : 13 + alen]
        rport = _U16.unpack_from(b, 13 + alen)[0]
        return Nsend(sktid, family, proto, time, tag, b[15 + alen :], raddr, rport)
    return Nsend(sktid, family, proto, time, tag, b[13:])


def _dec_ncap(t: int, b: bytes) -> Message:
    if len(b) < 12:
        raise _bad(t, "needs a program")
    sktid, family, proto, endtime = _SFPT.unpack_from(b)
    return Ncap(sktid, family, proto, endtime, b[11:])


def _dec_nctl(t: int, b: bytes) -> Message:
    if len(b) != 12:
        raise _bad(t, "body must be 12 bytes")
    return Nctl(*_NCTL.unpack(b))


def _dec_chlist(t: int, b: bytes) -> tuple[tuple[bytes, ...], int]:
    channels: list[bytes] = []
    pos = 0
    while True:
        if pos >= len(b):
            raise _bad(t, "channel list has no 0x00 terminator")
        length = b[pos]
        pos += 1
        if length == 0:
            return tuple(channels), pos
        if length > CHANNEL_MAX_LEN or pos + length > len(b):
            raise _bad(t, "channel longer than 32 bytes or past the body")
        channels.append(b[pos : pos + length])
        pos += length


def _dec_xpub(t: int, b: bytes) -> Message:
    channels, pos = _dec_chlist(t, b)
    if len(b) < pos + 32:
        raise _bad(t, "needs a 32-byte eopkey")
    if t == MsgType.XPUB:
        return Xpub(channels, b[pos : pos + 32], b[pos + 32 :])
    return Xsub(channels, b[pos : pos + 32], b[pos + 32 :])


_RESULT_OK = Result()


def _dec_result(t: int, b: bytes) -> Message:
    n = len(b)
    if n == 0:
        return _RESULT_OK  # immutable, so one instance serves every success
    if n not in (2, 4, 6):
        raise _bad(t, "body must be 0, 2, 4 or 6 bytes")
    errid = _U16.unpack_from(b)[0]
    if n == 2:
        if errid in (0x12, 0x13):
            raise _bad(t, "monitor results carry a monitor index")
        return Result(errid)
    if n == 4:
        if errid != 0x13:
            raise _bad(t, "a 4-byte result is ECTLMONUKN")
        return Result(errid, _U16.unpack_from(b, 2)[0])
    if errid != 0x12:
        raise _bad(t, "a 6-byte result is ECTLMONREJ")
    return Result(errid, _U16.unpack_from(b, 2)[0], _U16.unpack_from(b, 4)[0])


def _dec_mdata(t: int, b: bytes) -> Message:
    if len(b) < 4:
        raise _bad(t, "needs an address")
    return Mdata(_U32.unpack_from(b)[0], b[4:])


def _dec_ntag(t: int, b: bytes) -> Message:
    if len(b) == 11:
        return Ntag(*_NTAG.unpack(b))
    if len(b) == 13:
        return Ntag(*_NTAG_ERR.unpack(b))
    raise _bad(t, "body must be 11 or 13 bytes")


def _dec_nstat(t: int, b: bytes) -> Message:
    if len(b) == 12:
        sktid, family, proto, time = _SFPT.unpack_from(b)
        return Nstat(sktid, family, proto, time, b[11])
    if len(b) in (17, 29):
        sktid, family, proto, time = _SFPT.unpack_from(b)
        alen = _family_len(t, family)
        if len(b) != 13 + alen:
            raise _bad(t, "established form does not match the family")
        return Nstat(
            sktid, family, proto, time, 0, b[11 : 11 + alen], _U16.unpack_from(b, 11 + alen)[0]
        )
    raise _bad(t, "body must be 12, 17 or 29 bytes")


def _dec_ndata(t: int, b: bytes) -> Message:
    if len(b) < 11:
        raise _bad(t, "too short")
    sktid, family, proto, time = _SFPT.unpack_from(b)
    alen = _family_len(t, family)
    _proto(t, proto)
    if proto == Proto.UDP:
        if len(b) < 13 + alen:
            raise _bad(t, "udp ndata needs a remote address and port")
        raddr = b[11 : 11 + alen]
        rport = _U16.unpack_from(b, 11 + alen)[0]
        return Ndata(sktid, family, proto, time, b[13 + alen :], raddr, rport)
    return Ndata(sktid, family, proto, time, b[11:])


def _dec_ndrop(t: int, b: bytes) -> Message:
    if len(b) != 27:
        raise _bad(t, "body must be 27 bytes")
    return Ndrop(*_NDROP.unpack(b))


def _dec_nblock(t: int, b: bytes) -> Message:
    if len(b) != 13:
        raise _bad(t, "body must be 13 bytes")
    return Nblock(*_NBLOCK.unpack(b))


def _dec_linfo(t: int, b: bytes) -> Message:
    if len(b) < 12:
        raise _bad(t, "too short")
    name_len, aux_len, info_len = _LINFO.unpack_from(b)
    if 12 + name_len + aux_len + info_len != len(b) or info_len > 0x10000:
        raise _bad(t, "lengths do not add up to the body")
    name = b[12 : 12 + name_len]
    aux = b[12 + name_len : 12 + name_len + aux_len]
    return Linfo(name, aux, b[12 + name_len + aux_len :])


def _dec_xnotify(t: int, b: bytes) -> Message:
    if not b or not 1 <= b[0] <= CHANNEL_MAX_LEN or 1 + b[0] > len(b):
        raise _bad(t, "channel length must be 1..32 and inside the body")
    return Xnotify(b[1 : 1 + b[0]], b[1 + b[0] :])


def _dec_xreg(t: int, b: bytes) -> Message:
    if not 1 <= len(b) <= 63 or not all(0x30 <= c <= 0x39 or 0x61 <= c <= 0x7A for c in b):
        raise _bad(t, "snikey must be 1-63 characters of [a-z0-9]")
    return Xreg(b.decode("ascii"))


_DECODERS: dict[int, Callable[[int, bytes], Message]] = {
    MsgType.CDATA: _dec_cdata,
    MsgType.START: lambda t, b: _empty(t, b, Start),
    MsgType.END: lambda t, b: _empty(t, b, End),
    MsgType.YIELD: _dec_yield,
    MsgType.CONT: lambda t, b: _empty(t, b, Cont),
    MsgType.MREAD: _dec_mread,
    MsgType.MWRITE: _dec_mwrite,
    MsgType.NOPEN: _dec_nopen,
    MsgType.NCLOSE: _dec_nclose,
    MsgType.NSEND: _dec_nsend,
    MsgType.NCAP: _dec_ncap,
    MsgType.NCTL: _dec_nctl,
    MsgType.XCERT: lambda t, b: Xcert(b),
    MsgType.XPUB: _dec_xpub,
    MsgType.XSUB: _dec_xpub,
    MsgType.RESULT: _dec_result,
    MsgType.MDATA: _dec_mdata,
    MsgType.NTAG: _dec_ntag,
    MsgType.NSTAT: _dec_nstat,
    MsgType.NDATA: _dec_ndata,
    MsgType.NDROP: _dec_ndrop,
    MsgType.NBLOCK: _dec_nblock,
    MsgType.LINFO: _dec_linfo,
    MsgType.SUSPD: lambda t, b: _empty(t, b, Suspd),
    MsgType.RESUMD: lambda t, b: _empty(t, b, Resumd),
    MsgType.XNOTIFY: _dec_xnotify,
    MsgType.XREG: _dec_xreg,
}


def decode_body(msg_type: int, body: bytes) -> Message:
    """The message of type ``msg_type`` with ``body``; MalformedMessage if the body is bad."""
    decoder = _DECODERS.get(msg_type)
    if decoder is None:
        return UnknownMessage(msg_type, bytes(body))
    try:
        return decoder(msg_type, bytes(body))
    except EncodeError as exc:  # a field the constructor refuses
        raise _bad(msg_type, str(exc)) from None


def decode(data: bytes) -> Message:
    """Decode exactly one whole message (header + body)."""
    if len(data) < HEADER_LEN:
        raise MalformedMessage("truncated header")
    word = _HDR.unpack_from(data)[0]
    if len(data) != HEADER_LEN + (word & 0xFFFFFF):
        raise MalformedMessage("length in the header does not match the data")
    return decode_body(word >> 24, data[HEADER_LEN:])


class MessageReader:
    """Reassembles messages from a byte stream cut anywhere (TCP reads, TLS records).

    ``feed`` bytes, then iterate: each item is a decoded Message. A malformed body raises
    MalformedMessage after the message is consumed, so the stream stays framed.
    """

    __slots__ = ("_buf", "_pos")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0

    def feed(self, data: bytes) -> None:
        if self._pos:
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    @property
    def buffered(self) -> int:
        return len(self._buf) - self._pos

    def __iter__(self) -> Iterator[Message]:
        return self

    def __next__(self) -> Message:
        msg_type, frame = self.next_frame()
        return decode_body(msg_type, frame[HEADER_LEN:])

    def next_frame(self) -> tuple[int, bytes]:
        """The next whole message undecoded: (type, header + body); StopIteration if none."""
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_LEN:
            raise StopIteration
        word = _HDR.unpack_from(buf, pos)[0]
        end = pos + HEADER_LEN + (word & 0xFFFFFF)
        if end > len(buf):
            raise StopIteration
        self._pos = end
        return word >> 24, bytes(buf[pos:end])
