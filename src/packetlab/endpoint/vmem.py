"""The endpoint's info memory: what mread reads and mwrite writes (reference section 4).

All values big-endian. Unmapped addresses read as zeros; writes outside the writable fields
succeed and change nothing. Writable: per-socket RBUFSZ, NSENDERR, NSENDERRTAG and NOTIFMASK.
Unlike the reference, NSENDTSTP (0x30000000 + tag*8) holds the actual send time of each tag.

Sans-IO: ``now`` and the buffer usage are passed in by the caller.
"""

from __future__ import annotations

import struct
from collections.abc import MutableMapping
from dataclasses import dataclass, field

from packetlab.wire.codes import SocketState
from packetlab.wire.memmap import (
    BUFMAX,
    BUFMAX_DUP,
    BUFUSED,
    HOSTID,
    IP4DNSLS,
    IP4DNSNO,
    IP4HDRMOD,
    IP4LS,
    IP4NO,
    IP6DNSLS,
    IP6DNSNO,
    IP6HDRMOD,
    IP6LS,
    IP6NO,
    LATLONG,
    NSENDTSTP,
    OSINFO,
    SK_DROPSTAT,
    SK_FAMILY,
    SK_LADDR,
    SK_LPORT,
    SK_NOTIFMASK,
    SK_NSENDERR,
    SK_NSENDERRTAG,
    SK_PROTO,
    SK_RADDR,
    SK_RBUFSZ,
    SK_RBUFUSED,
    SK_RPORT,
    SK_STAT,
    SOCKET_BLOCK,
    SOCKETS,
    TIME,
    TRANSSUP,
    TRANSSUP_RAW,
    TRANSSUP_TCP,
    TRANSSUP_UDP,
)

__all__ = [
    "BUFMAX",
    "BUFMAX_DUP",
    "BUFUSED",
    "HOSTID",
    "IP4DNSLS",
    "IP4DNSNO",
    "IP4HDRMOD",
    "IP4LS",
    "IP4NO",
    "IP6DNSLS",
    "IP6DNSNO",
    "IP6HDRMOD",
    "IP6LS",
    "IP6NO",
    "LATLONG",
    "NSENDTSTP",
    "OSINFO",
    "SK_DROPSTAT",
    "SK_FAMILY",
    "SK_LADDR",
    "SK_LPORT",
    "SK_NOTIFMASK",
    "SK_NSENDERR",
    "SK_NSENDERRTAG",
    "SK_PROTO",
    "SK_RADDR",
    "SK_RBUFSZ",
    "SK_RBUFUSED",
    "SK_RPORT",
    "SK_STAT",
    "SOCKETS",
    "SOCKET_BLOCK",
    "TIME",
    "TRANSSUP",
    "TRANSSUP_RAW",
    "TRANSSUP_TCP",
    "TRANSSUP_UDP",
    "EndpointInfo",
    "InfoMemory",
    "SocketBlock",
]

_SK_LAYOUT = struct.Struct(">BBb13x16s16sHH12xII8xII8xbH13xH")  # 0x00 .. 0x72
_SK_BLOCK_USED = _SK_LAYOUT.size


@dataclass(slots=True)
class SocketBlock:
    """The per-socket fields the endpoint keeps up to date; mwrite may change the writable ones."""

    family: int
    proto: int
    state: int = SocketState.OPENING
    laddr: bytes = b""
    raddr: bytes = b""
    lport: int = 0
    rport: int = 0
    rbufsz: int = 0
    rbufused: int = 0
    drop_units: int = 0
    drop_bytes: int = 0
    nsend_err: int = 0
    nsend_err_tag: int = 0
    notifmask: int = 0  # NotifMask bits, kept a plain int: it is tested per packet

    def pack(self) -> bytes:
        return _SK_LAYOUT.pack(
            self.family,
            self.proto,
            self.state,
            self.laddr.ljust(16, b"\0"),
            self.raddr.ljust(16, b"\0"),
            self.lport,
            self.rport,
            self.rbufsz,
            self.rbufused,
            self.drop_units,
            self.drop_bytes,
            self.nsend_err,
            self.nsend_err_tag,
            self.notifmask,
        )

    def apply_writable(self, block: bytes) -> None:
        """Take the writable fields from a (modified) packed block."""
        fields = _SK_LAYOUT.unpack(block[:_SK_BLOCK_USED])
        self.rbufsz, self.nsend_err, self.nsend_err_tag, self.notifmask = (
            fields[7],
            fields[11],
            fields[12],
            fields[13],
        )


@dataclass(slots=True)
class EndpointInfo:
    """Endpoint-wide facts exported in the info memory."""

    ipv4: list[tuple[bytes, bytes]] = field(default_factory=list)
    """(address, netmask), 4 bytes each."""
    ipv6: list[bytes] = field(default_factory=list)
    dns4: list[bytes] = field(default_factory=list)
    dns6: list[bytes] = field(default_factory=list)
    transports: int = TRANSSUP_TCP | TRANSSUP_UDP
    buf_max: int = 8388608
    host_id: str = "pktendpt"
    latlong: str = ""
    osinfo: str = ""
    ip4hdrmod: bytes = bytes(12)
    ip6hdrmod: bytes = bytes(8)


def _padded(text: str, size: int) -> bytes:
    return text.encode("utf-8")[: size - 1].ljust(size, b"\0")


class InfoMemory:
    """mread/mwrite over the endpoint's 32-bit info address space."""

    def __init__(
        self,
        info: EndpointInfo,
        sockets: MutableMapping[int, SocketBlock],
        send_times: MutableMapping[int, int],
    ) -> None:
        self.info = info
        self.sockets = sockets
        self.send_times = send_times
        self._static = self._build_static()

    def _build_static(self) -> list[tuple[int, bytes]]:
        i = self.info
        ip4 = b"".join(a + m for a, m in i.ipv4[:256])
        dns4 = b"".join(i.dns4[:16])
        dns6 = b"".join(i.dns6[:16])
        return [
            (
                IP4NO,
                struct.pack(">BBII", len(i.ipv4[:256]), len(i.ipv6[:256]), i.transports, i.buf_max),
            ),
            (IP4LS, ip4),
            (IP6LS, b"".join(i.ipv6[:256])),
            (IP4DNSNO, bytes((len(i.dns4[:16]), len(i.dns6[:16])))),
            (IP4DNSLS, dns4),
            (IP6DNSLS, dns6),
            (IP4HDRMOD, i.ip4hdrmod[:12]),
            (IP6HDRMOD, i.ip6hdrmod[:8]),
            (HOSTID, _padded(i.host_id, 0x100)),
            (LATLONG, _padded(i.latlong, 0x40) if i.latlong else b""),
            (OSINFO, _padded(i.osinfo, 0x200) if i.osinfo else b""),
        ]

    def read(self, addr: int, length: int, *, now: int, buf_used: int) -> bytes:
        """``length`` bytes from ``addr``; unmapped bytes are zero."""
        out = bytearray(length)
        end = addr + length

        def overlay(start: int, data: bytes) -> None:
            lo, hi = max(start, addr), min(start + len(data), end)
            if lo < hi:
                out[lo - addr : hi - addr] = data[lo - start : hi - start]

        for start, data in self._static:
            if start < end and start + len(data) > addr:
                overlay(start, data)
        if end > TIME and addr < BUFUSED + 4:
            overlay(TIME, now.to_bytes(8, "big"))
            overlay(BUFMAX, struct.pack(">II", self.info.buf_max, buf_used))
        if addr < SOCKETS + 256 * SOCKET_BLOCK and end > SOCKETS:
            first = max(0, (addr - SOCKETS) // SOCKET_BLOCK)
            last = min(255, (end - 1 - SOCKETS) // SOCKET_BLOCK)
            for sktid in range(first, last + 1):
                block = self.sockets.get(sktid)
                if block is not None:
                    overlay(SOCKETS + sktid * SOCKET_BLOCK, block.pack())
        if addr < NSENDTSTP + 0x80000 and end > NSENDTSTP:
            first = max(0, (addr - NSENDTSTP) // 8)
            last = min(0xFFFF, (end - 1 - NSENDTSTP) // 8)
            for tag in range(first, last + 1):
                stamp = self.send_times.get(tag)
                if stamp:
                    overlay(NSENDTSTP + tag * 8, stamp.to_bytes(8, "big"))
        return bytes(out)

    def write(self, addr: int, data: bytes) -> None:
        """Apply the writable per-socket fields covered by ``data``; ignore the rest."""
        end = addr + len(data)
        if addr >= SOCKETS + 256 * SOCKET_BLOCK or end <= SOCKETS:
            return
        first = max(0, (addr - SOCKETS) // SOCKET_BLOCK)
        last = min(255, (end - 1 - SOCKETS) // SOCKET_BLOCK)
        for sktid in range(first, last + 1):
            block = self.sockets.get(sktid)
            if block is None:
                continue
            base = SOCKETS + sktid * SOCKET_BLOCK
            lo, hi = max(base, addr), min(base + _SK_BLOCK_USED, end)
            if lo >= hi:
                continue
            packed = bytearray(block.pack())
            packed[lo - base : hi - base] = data[lo - addr : hi - addr]
            block.apply_writable(bytes(packed))
