"""pcapng blocks, written by hand (section header, interface description, enhanced packet).

Little-endian sections holding one interface of LINKTYPE_RAW (101: the packet starts with its IP
header, version 4 or 6) with nanosecond timestamps (if_tsresol = 9). Every enhanced packet block
may carry options: a comment (opt_comment, shown by Wireshark as ``frame.comment``) and the
direction in epb_flags (1 inbound, 2 outbound).

For packets of UDP/TCP sockets the endpoint has only the payload; :func:`synth_header` builds a
minimal IP + UDP/TCP header to log in front of it (checksums zero) so that readers can dissect
it, and :func:`synth_header_len` says how long that header is without building it.
"""

from __future__ import annotations

import mmap
import struct

LINKTYPE_RAW = 101
SHB_TYPE = 0x0A0D0D0A
IDB_TYPE = 0x00000001
EPB_TYPE = 0x00000006
BYTE_ORDER_MAGIC = 0x1A2B3C4D
OPT_ENDOFOPT = 0
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME = 2
IF_TSRESOL = 9
EPB_FLAGS = 2
INBOUND = 1
OUTBOUND = 2

_EPB_HEAD = struct.Struct("<IIIIIII")
_U32 = struct.Struct("<I")
_IP4 = struct.Struct("!BBHHHBBH4s4s")
_IP6 = struct.Struct("!IHBB16s16s")
_UDP = struct.Struct("!HHHH")
_IP4_UDP = struct.Struct("!BBHHHBBH4s4sHHHH")
_TCP = struct.Struct("!HHIIBBHHH")
_TRANSPORT_LEN = {6: _TCP.size, 17: _UDP.size}
PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")
END_OF_OPTIONS = b"\0\0\0\0"


def _pad(data: bytes) -> bytes:
    return data + PADDING[len(data) & 3]


def option(code: int, value: bytes) -> bytes:
    """One option: code, length, value padded to 32 bits."""
    return struct.pack("<HH", code, len(value)) + _pad(value)


def _block(block_type: int, body: bytes) -> bytes:
    total = 12 + len(body)
    return struct.pack("<II", block_type, total) + body + _U32.pack(total)


def section_header(application: str) -> bytes:
    body = struct.pack("<IHHq", BYTE_ORDER_MAGIC, 1, 0, -1)
    body += option(SHB_USERAPPL, application.encode()) + END_OF_OPTIONS
    return _block(SHB_TYPE, body)


def interface_description(snaplen: int, name: str) -> bytes:
    body = struct.pack("<HHI", LINKTYPE_RAW, 0, snaplen)
    body += option(IF_NAME, name.encode()) + option(IF_TSRESOL, b"\x09") + END_OF_OPTIONS
    return _block(IDB_TYPE, body)


class EpbOptions:
    """The options of enhanced packet blocks (comment, direction), with cached block trailers.

    A block ends with padding, these options and its total length, which depend only on the
    captured length: the trailer for each length is built once.
    """

    __slots__ = ("_trailers", "raw")

    def __init__(self, comment: str, direction: int) -> None:
        self.raw = (
            option(OPT_COMMENT, comment.encode())
            + option(EPB_FLAGS, _U32.pack(direction))
            + END_OF_OPTIONS
        )
        self._trailers: dict[int, bytes] = {}

    def trailer(self, caplen: int) -> bytes:
        """Padding + options + total length of a block capturing ``caplen`` bytes."""
        trailer = self._trailers.get(caplen)
        if trailer is None:
            total = 32 + caplen + (-caplen & 3) + len(self.raw)
            trailer = PADDING[caplen & 3] + self.raw + _U32.pack(total)
            if len(self._trailers) < 4096:
                self._trailers[caplen] = trailer
        return trailer


def append_packet(
    out: list[bytes],
    ts_ns: int,
    head: bytes,
    body: bytes,
    orig_len: int,
    snaplen: int,
    options: EpbOptions,
) -> int:
    """Append the pieces of one enhanced packet block (interface 0) holding ``head + body`` cut
    at ``snaplen`` to ``out``. Returns the block's length."""
    caplen = len(head) + len(body)
    if caplen > snaplen:
        if len(head) >= snaplen:
            head, body = head[:snaplen], b""
        else:
            body = body[: snaplen - len(head)]
        caplen = snaplen
    trailer = options.trailer(caplen)
    total = 28 + caplen + len(trailer)
    if orig_len < caplen:  # noqa: PLR1730 - cheaper than max() on the send path
        orig_len = caplen
    out += (
        _EPB_HEAD.pack(EPB_TYPE, total, 0, ts_ns >> 32, ts_ns & 0xFFFFFFFF, caplen, orig_len),
        head,
        body,
        trailer,
    )
    return total


def synth_header_len(family: int, proto: int) -> int:
    """The length of :func:`synth_header`'s header for ``family`` and ``proto``."""
    return (20 if family == 4 else 40) + _TRANSPORT_LEN.get(proto, 0)


def synth_header(
    family: int,
    proto: int,
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload_len: int,
    tcp_flags: int = 0x18,
) -> bytes:
    """A minimal IP (+ UDP/TCP) header for a payload of ``payload_len`` bytes (checksums 0)."""
    if proto == 17:
        if family == 4:
            return _IP4_UDP.pack(
                0x45, 0, (28 + payload_len) & 0xFFFF, 0, 0x4000, 64, 17, 0, src, dst,
                sport, dport, (8 + payload_len) & 0xFFFF, 0,
            )  # fmt: skip
        length = 8 + payload_len
        transport = _UDP.pack(sport, dport, length & 0xFFFF, 0)
    elif proto == 6:
        length = 20 + payload_len
        transport = _TCP.pack(sport, dport, 0, 0, 5 << 4, tcp_flags & 0xFF, 65535, 0, 0)
    else:
        length = payload_len
        transport = b""
    if family == 4:
        header = _IP4.pack(0x45, 0, (20 + length) & 0xFFFF, 0, 0x4000, 64, proto, 0, src, dst)
    else:
        header = _IP6.pack(0x60000000, length & 0xFFFF, proto, 64, src, dst)
    return header + transport


Blocks = bytes | bytearray | memoryview | mmap.mmap


def ends_whole(data: Blocks) -> bool:
    """Whether ``data`` (a little-endian pcapng file) ends with a whole block: its last four
    bytes give a length whose block starts with the same length. O(1); a file cut short in its
    last block fails it (unless the cut lands on bytes that happen to look whole)."""
    size = len(data)
    if size < 12:
        return size == 0
    total = _U32.unpack_from(data, size - 4)[0]
    if total < 12 or total & 3 or total > size:
        return False
    return bool(_U32.unpack_from(data, size - total + 4)[0] == total)


def complete_length(data: Blocks) -> int:
    """How many leading bytes of ``data`` (a little-endian pcapng file) are whole blocks: the
    length a file cut short in its last block (a kill -9 mid-write) is repaired to."""
    end = 0
    while end + 12 <= len(data):
        total = _U32.unpack_from(data, end + 4)[0]
        if total < 12 or total & 3 or end + total > len(data):
            break
        if _U32.unpack_from(data, end + total - 4)[0] != total:
            break
        end += total
    return end
