"""Frames on the channel between the endpoint's session process and its packet I/O process.

Every frame has pktlab's header (type u8 | body length u24). Session → packet I/O: pktlab
``nsend``, ``nctl`` and ``nclose`` bodies exactly as the controller sent them, and ADOPT (a
socket handed over with SCM_RIGHTS, already bound, connecting or listening; a raw socket
travels as two: its IP sender and its packet receiver). Packet I/O →
session: pktlab ``ntag`` and ``ndata`` frames ready to forward to the controller, STATE (a
socket's new vmem STAT value, then an ``nstat`` body when the controller is to be told), and
CLOSED (the socket of an ``nclose`` is gone: no frame for that sktid follows from the old one).
"""

from __future__ import annotations

import struct

HEADER = struct.Struct(">I")
ADOPT = 0xE0
STATE = 0xE1
CLOSED = 0xE2
ADOPT_BODY = struct.Struct(">BBBB")  # sktid, family, proto, kind
STATE_HEAD = struct.Struct(">bB")  # vmem STAT (int8), sktid
KIND_UDP, KIND_TCP_CONNECT, KIND_TCP_LISTEN, KIND_RAW = 0, 1, 2, 3
MAX_FDS_PER_READ = 16


def frame(msg_type: int, body: bytes) -> bytes:
    return HEADER.pack(msg_type << 24 | len(body)) + body


def split_frames(buf: bytearray) -> tuple[list[bytes], int]:
    """Whole frames at the start of ``buf`` and how many bytes they take."""
    frames: list[bytes] = []
    pos = 0
    size = len(buf)
    unpack = HEADER.unpack_from
    while size - pos >= 4:
        end = pos + 4 + (unpack(buf, pos)[0] & 0xFFFFFF)
        if end > size:
            break
        frames.append(bytes(buf[pos:end]))
        pos = end
    return frames, pos
