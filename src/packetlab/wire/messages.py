"""pktlab messages as frozen, slotted dataclasses, validated when built (reference section 3.1).

Addresses are raw network-order bytes (4 for IPv4, 16 for IPv6) as on the wire; times are u64
nanoseconds since the Unix epoch on the endpoint's clock.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import ClassVar

from packetlab.wire._errors import EncodeError
from packetlab.wire.codes import CHANNEL_MAX_LEN, Family, MsgType, Proto

_U8, _U16, _U32, _U64 = 0xFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFFFFFFFFFF


def _check(value: int, limit: int, name: str) -> None:
    if not 0 <= value <= limit:
        raise EncodeError(f"{name}={value} is out of range 0..{limit}")


def _check_addr(family: int, addr: bytes, name: str) -> None:
    want = 4 if family == Family.IPV4 else 16 if family == Family.IPV6 else -1
    if want < 0:
        raise EncodeError(f"family {family} is neither 4 nor 6")
    if len(addr) != want:
        raise EncodeError(f"{name} is {len(addr)} bytes; family {family} needs {want}")


def addr_bytes(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """Raw network-order bytes of an IP address."""
    if isinstance(address, str):
        return _addr_bytes_of_text(address)
    return address.packed


@functools.lru_cache(maxsize=4096)
def _addr_bytes_of_text(address: str) -> bytes:
    return ipaddress.ip_address(address).packed


def addr_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


class Message:
    """Base of every message; ``TYPE`` is its wire type."""

    __slots__ = ()
    TYPE: ClassVar[int]


@dataclass(frozen=True, slots=True)
class Cdata(Message):
    TYPE: ClassVar[int] = MsgType.CDATA
    hint: str
    data: bytes

    def __post_init__(self) -> None:
        if len(self.hint.encode("ascii", "replace")) > _U8:
            raise EncodeError("cdata hint is longer than 255 bytes")


@dataclass(frozen=True, slots=True)
class Start(Message):
    TYPE: ClassVar[int] = MsgType.START


@dataclass(frozen=True, slots=True)
class End(Message):
    TYPE: ClassVar[int] = MsgType.END


@dataclass(frozen=True, slots=True)
class Yield(Message):
    TYPE: ClassVar[int] = MsgType.YIELD
    rhint: int

    def __post_init__(self) -> None:
        _check(self.rhint, _U64, "rhint")


@dataclass(frozen=True, slots=True)
class Cont(Message):
    TYPE: ClassVar[int] = MsgType.CONT


@dataclass(frozen=True, slots=True)
class Mread(Message):
    TYPE: ClassVar[int] = MsgType.MREAD
    addr: int
    length: int

    def __post_init__(self) -> None:
        _check(self.addr, _U32, "addr")
        _check(self.length, _U16, "length")
        if self.length == 0 or self.addr + self.length > 1 << 32:
            raise EncodeError("mread length must be > 0 and addr+length must not pass 2^32")


@dataclass(frozen=True, slots=True)
class Mwrite(Message):
    TYPE: ClassVar[int] = MsgType.MWRITE
    addr: int
    data: bytes

    def __post_init__(self) -> None:
        _check(self.addr, _U32, "addr")
        if not self.data or self.addr + len(self.data) > 1 << 32:
            raise EncodeError("mwrite needs data, and addr+len must not pass 2^32")


@dataclass(frozen=True, slots=True)
class Nopen(Message):
    """Open a socket. raw: laddr; udp: laddr+lport; tcp: connect with raddr, listen without."""

    TYPE: ClassVar[int] = MsgType.NOPEN
    sktid: int
    family: int
    proto: int
    rbufsz: int
    laddr: bytes
    lport: int = 0
    raddr: bytes | None = None
    rport: int = 0

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")
        _check(self.rbufsz, _U32, "rbufsz")
        _check(self.lport, _U16, "lport")
        _check(self.rport, _U16, "rport")
        _check_addr(self.family, self.laddr, "laddr")
        if self.proto not in (Proto.RAW, Proto.TCP, Proto.UDP):
            raise EncodeError(f"proto {self.proto} is not raw (0), tcp (6) or udp (17)")
        if self.raddr is not None:
            if self.proto != Proto.TCP:
                raise EncodeError("only a tcp nopen carries a remote address")
            _check_addr(self.family, self.raddr, "raddr")

    @property
    def is_listen(self) -> bool:
        return self.proto == Proto.TCP and self.raddr is None


@dataclass(frozen=True, slots=True)
class Nclose(Message):
    TYPE: ClassVar[int] = MsgType.NCLOSE
    sktid: int

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")


@dataclass(frozen=True, slots=True)
class Nsend(Message):
    """Send ``payload`` at ``time`` (0 or past = now); udp sends carry raddr/rport."""

    TYPE: ClassVar[int] = MsgType.NSEND
    sktid: int
    family: int
    proto: int
    time: int
    tag: int
    payload: bytes
    raddr: bytes | None = None
    rport: int = 0

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")
        _check(self.time, _U64, "time")
        _check(self.tag, _U16, "tag")
        _check(self.rport, _U16, "rport")
        if self.family not in (4, 6):
            raise EncodeError(f"family {self.family} is neither 4 nor 6")
        if self.proto == Proto.UDP:
            if self.raddr is None:
                raise EncodeError("a udp nsend needs raddr and rport")
            _check_addr(self.family, self.raddr, "raddr")
        elif self.proto in (Proto.RAW, Proto.TCP):
            if self.raddr is not None:
                raise EncodeError("only a udp nsend carries raddr")
        else:
            raise EncodeError(f"proto {self.proto} is not raw, tcp or udp")


@dataclass(frozen=True, slots=True)
class Ncap(Message):
    TYPE: ClassVar[int] = MsgType.NCAP
    sktid: int
    family: int
    proto: int
    endtime: int
    program: bytes

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")
        _check(self.family, _U8, "family")
        _check(self.proto, _U8, "proto")
        _check(self.endtime, _U64, "endtime")
        if not self.program:
            raise EncodeError("ncap needs a program")


@dataclass(frozen=True, slots=True)
class Nctl(Message):
    TYPE: ClassVar[int] = MsgType.NCTL
    sktid: int
    family: int
    proto: int
    time: int
    command: int

    def __post_init__(self) -> None:
        for name, limit in (("sktid", _U8), ("family", _U8), ("proto", _U8), ("command", _U8)):
            _check(getattr(self, name), limit, name)
        _check(self.time, _U64, "time")


def _check_channels(channels: tuple[bytes, ...]) -> None:
    for channel in channels:
        if not 1 <= len(channel) <= CHANNEL_MAX_LEN:
            raise EncodeError("channel IDs are 1..32 bytes")


@dataclass(frozen=True, slots=True)
class Xcert(Message):
    TYPE: ClassVar[int] = MsgType.XCERT
    der: bytes


@dataclass(frozen=True, slots=True)
class Xpub(Message):
    TYPE: ClassVar[int] = MsgType.XPUB
    channels: tuple[bytes, ...]
    eopkey: bytes
    xdescr: bytes = b""

    def __post_init__(self) -> None:
        _check_channels(self.channels)
        if len(self.eopkey) != 32:
            raise EncodeError("eopkey is a 32-byte raw Ed25519 key")


@dataclass(frozen=True, slots=True)
class Xsub(Message):
    TYPE: ClassVar[int] = MsgType.XSUB
    channels: tuple[bytes, ...]
    eopkey: bytes
    dattr: bytes = b""

    def __post_init__(self) -> None:
        _check_channels(self.channels)
        if len(self.eopkey) != 32:
            raise EncodeError("eopkey is a 32-byte raw Ed25519 key")


@dataclass(frozen=True, slots=True)
class Result(Message):
    """Success (errid 0), an error, or a monitor verdict (ECTLMONREJ, ECTLMONUKN + index)."""

    TYPE: ClassVar[int] = MsgType.RESULT
    errid: int = 0
    monindx: int | None = None
    monerrid: int | None = None

    def __post_init__(self) -> None:
        _check(self.errid, _U16, "errid")
        if self.errid == 0x12:
            if self.monindx is None or self.monerrid is None:
                raise EncodeError("ECTLMONREJ carries monindx and monerrid")
            _check(self.monindx, _U16, "monindx")
            _check(self.monerrid, _U16, "monerrid")
        elif self.errid == 0x13:
            if self.monindx is None or self.monerrid is not None:
                raise EncodeError("ECTLMONUKN carries monindx only")
            _check(self.monindx, _U16, "monindx")
        elif self.monindx is not None or self.monerrid is not None:
            raise EncodeError("only monitor results carry monindx/monerrid")

    @property
    def ok(self) -> bool:
        return self.errid == 0


@dataclass(frozen=True, slots=True)
class Mdata(Message):
    TYPE: ClassVar[int] = MsgType.MDATA
    addr: int
    data: bytes

    def __post_init__(self) -> None:
        _check(self.addr, _U32, "addr")


@dataclass(frozen=True, slots=True)
class Ntag(Message):
    """Actual send time of the nsend with ``tag``; ``errid`` != 0 if it was not sent."""

    TYPE: ClassVar[int] = MsgType.NTAG
    sktid: int
    tag: int
    time: int
    errid: int = 0

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")
        _check(self.tag, _U16, "tag")
        _check(self.time, _U64, "time")
        _check(self.errid, _U16, "errid")


@dataclass(frozen=True, slots=True)
class Nstat(Message):
    """Socket status; the TCP ESTABLISHED form carries the peer's address (code implied 0)."""

    TYPE: ClassVar[int] = MsgType.NSTAT
    sktid: int
    family: int
    proto: int
    time: int
    code: int
    raddr: bytes | None = None
    rport: int = 0

    def __post_init__(self) -> None:
        for name, limit in (("sktid", _U8), ("family", _U8), ("proto", _U8), ("code", _U8)):
            _check(getattr(self, name), limit, name)
        _check(self.time, _U64, "time")
        _check(self.rport, _U16, "rport")
        if self.raddr is not None:
            if self.code != 0:
                raise EncodeError("only ESTABLISHED (0) carries the peer address")
            _check_addr(self.family, self.raddr, "raddr")


@dataclass(frozen=True, slots=True)
class Ndata(Message):
    TYPE: ClassVar[int] = MsgType.NDATA
    sktid: int
    family: int
    proto: int
    time: int
    data: bytes
    raddr: bytes | None = None
    rport: int = 0

    def __post_init__(self) -> None:
        _check(self.sktid, _U8, "sktid")
        _check(self.time, _U64, "time")
        _check(self.rport, _U16, "rport")
        if self.family not in (4, 6):
            raise EncodeError(f"family {self.family} is neither 4 nor 6")
        if self.proto == Proto.UDP:
            if self.raddr is None:
                raise EncodeError("a udp ndata carries raddr and rport")
            _check_addr(self.family, self.raddr, "raddr")
        elif self.proto in (Proto.RAW, Proto.TCP):
            if self.raddr is not None:
                raise EncodeError("only a udp ndata carries raddr")
        else:
            raise EncodeError(f"proto {self.proto} is not raw, tcp or udp")


@dataclass(frozen=True, slots=True)
class Ndrop(Message):
    TYPE: ClassVar[int] = MsgType.NDROP
    sktid: int
    family: int
    proto: int
    tfirst: int
    tlast: int
    unitcnt: int
    bytecnt: int

    def __post_init__(self) -> None:
        for name, limit in (
            ("sktid", _U8),
            ("family", _U8),
            ("proto", _U8),
            ("tfirst", _U64),
            ("tlast", _U64),
            ("unitcnt", _U32),
            ("bytecnt", _U32),
        ):
            _check(getattr(self, name), limit, name)


@dataclass(frozen=True, slots=True)
class Nblock(Message):
    """A monitor blocked received data (monindx is not on the wire)."""

    TYPE: ClassVar[int] = MsgType.NBLOCK
    sktid: int
    family: int
    proto: int
    monerrid: int
    time: int

    def __post_init__(self) -> None:
        for name, limit in (
            ("sktid", _U8),
            ("family", _U8),
            ("proto", _U8),
            ("monerrid", _U16),
            ("time", _U64),
        ):
            _check(getattr(self, name), limit, name)


@dataclass(frozen=True, slots=True)
class Linfo(Message):
    TYPE: ClassVar[int] = MsgType.LINFO
    name: bytes
    aux: bytes = b""
    info: bytes = b""

    def __post_init__(self) -> None:
        if len(self.info) > 0x10000:
            raise EncodeError("linfo info is at most 0x10000 bytes")


@dataclass(frozen=True, slots=True)
class Suspd(Message):
    TYPE: ClassVar[int] = MsgType.SUSPD


@dataclass(frozen=True, slots=True)
class Resumd(Message):
    TYPE: ClassVar[int] = MsgType.RESUMD


@dataclass(frozen=True, slots=True)
class Xnotify(Message):
    TYPE: ClassVar[int] = MsgType.XNOTIFY
    channel: bytes
    xdescr: bytes = b""

    def __post_init__(self) -> None:
        _check_channels((self.channel,))


@dataclass(frozen=True, slots=True)
class Xreg(Message):
    TYPE: ClassVar[int] = MsgType.XREG
    snikey: str

    def __post_init__(self) -> None:
        key = self.snikey
        if not (
            1 <= len(key) <= 63
            and key.isascii()
            and all(c.isdigit() or c.islower() for c in key)
            and key.isalnum()
        ):
            raise EncodeError(f"snikey {key!r} must be 1-63 characters of [a-z0-9]")


@dataclass(frozen=True, slots=True)
class UnknownMessage(Message):
    """A type this implementation does not know; requests get result(ECTLNOTSUP)."""

    msg_type: int
    body: bytes

    @property
    def TYPE(self) -> int:  # type: ignore[override]
        return self.msg_type
