"""The endpoint's side of the guardian: each nsend as a guardian Probe, each ndata's addresses,
and who an experiment is (from its verified certificate chain).

nsend frames arrive undecoded (header + body, see packetlab.wire.session.NsendReceived); the
offsets below are those of the body after the 4-byte header.
"""

from __future__ import annotations

import hashlib
import struct

from packetlab import packets
from packetlab.endpoint.vmem import SocketBlock
from packetlab.guardian import ExperimentIdentity, Probe, make_probe
from packetlab.pki import VerifiedChain

_TIME = struct.Struct(">Q")
_PORT = struct.Struct(">H")
IP_HEADER = {4: 20, 6: 40}
TCP_DATA_FLAGS = 0x18  # PSH | ACK: data on an established connection
TCP_HEADER = 20
UDP_HEADER = 8
BODY = 17  # frame offset of an nsend's payload (raw, TCP) or remote address (UDP)


def send_time(frame: bytes) -> int:
    """The nsend's requested time (0 or past: now)."""
    return int(_TIME.unpack_from(frame, 7)[0])


def udp_probe(block: SocketBlock, frame: bytes) -> tuple[Probe, bytes]:
    """(probe, payload) of a UDP nsend on ``block``'s socket."""
    end = BODY + (4 if block.family == 4 else 16)
    payload = frame[end + 2 :]
    probe = make_probe(
        block.family,
        17,
        block.laddr,
        frame[BODY:end],
        block.lport,
        _PORT.unpack_from(frame, end)[0],
        len(payload) + UDP_HEADER + IP_HEADER[block.family],
        False,
        False,
        -1,
        -1,
        0,
    )
    return probe, payload


def tcp_probe(block: SocketBlock, frame: bytes) -> tuple[Probe, bytes]:
    """(probe, payload) of data sent on ``block``'s TCP connection (one segment's worth)."""
    payload = frame[BODY:]
    probe = make_probe(
        block.family,
        6,
        block.laddr,
        block.raddr,
        block.lport,
        block.rport,
        len(payload) + TCP_HEADER + IP_HEADER[block.family],
        False,
        False,
        -1,
        -1,
        TCP_DATA_FLAGS,
    )
    return probe, payload


def raw_probe(family: int, frame: bytes) -> tuple[Probe, bytes]:
    """(probe, packet) of a raw nsend. Raises PacketError for a malformed packet (guardian
    stage 1) and for one of the other family than the socket's."""
    packet = frame[BODY:]
    s = packets.summarize(packet)
    if s.version != family:
        raise packets.PacketError(f"an IPv{s.version} packet on an IPv{family} raw socket")
    if family == 6 and not any(s.src):
        raise packets.PacketError("an IPv6 raw packet needs the endpoint's source address")
    probe = make_probe(
        family,
        s.proto,
        s.src,
        s.dst,
        s.sport,
        s.dport,
        s.length,
        True,
        s.fragment,
        s.icmp_type,
        s.icmp_code,
        s.tcp_flags,
    )
    return probe, packet


def identity(chain: VerifiedChain, controller: str) -> ExperimentIdentity:
    """The experiment of a verified controller chain: keyed by its exppriv certificate (the
    operator's grant, the top of the chain), so usage persists across sessions and
    controllers of the same grant."""
    grant = hashlib.sha256(chain.certs[-1].der).hexdigest()
    key_id = hashlib.sha256(chain.leaf_key).hexdigest()[:16]
    limits = chain.limits
    return ExperimentIdentity(
        experiment_id=grant,
        controller=f"{key_id}@{controller}",
        profile="certified",
        limits=limits,
        spoofing_allowed=bool(limits.src_ip_spoofing),
    )
