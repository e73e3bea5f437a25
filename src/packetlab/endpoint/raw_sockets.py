"""Raw IP sockets for the endpoint: an IP_HDRINCL sender for whole packets and a packet socket
receiver that delivers nothing until an ncap filter is attached (opened in the session
process, which keeps the receiver to attach filters to; both then move to the packet I/O
process)."""

from __future__ import annotations

import contextlib
import socket

from packetlab.endpoint import timestamps
from packetlab.endpoint.sockets import af, interface_ipv4, ip_text
from packetlab.programs.kernel import attach_classic
from packetlab.wire.codes import Family

ETH_P_IP, ETH_P_IPV6 = 0x0800, 0x86DD
SOL_PACKET, PACKET_IGNORE_OUTGOING = 263, 23
CAP_NET_RAW = 13
DROP_ALL = (0x06, 0, 0, 0)  # classic BPF: ret #0

# IP4HDRMOD / IP6HDRMOD (reference section 4): per header field, 0 = the OS leaves it, 1 = the
# OS changes it, 2 = the OS zero-fills it. Linux raw(7) with IP_HDRINCL: total length and
# header checksum are always filled in; the identification and the source address are filled
# in when zero (reported as changed). IPv6 raw sends (IPV6_HDRINCL) are sent as given.
# Fields: version, IHL, TOS, total length, ID, flags, fragment offset, TTL, protocol,
# checksum, source, destination / version, traffic class, flow label, payload length, next
# header, hop limit, source, destination.
IP4HDRMOD_LINUX = bytes((0, 0, 0, 1, 1, 0, 0, 0, 0, 1, 1, 0))
IP6HDRMOD_LINUX = bytes(8)


def has_cap_net_raw() -> bool:
    """Whether this process may open raw sockets (CAP_NET_RAW in its effective set)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("CapEff:"):
                    return bool(int(line.split()[1], 16) >> CAP_NET_RAW & 1)
    except OSError:
        pass
    return False


def drop_everything(sock: socket.socket) -> None:
    """Attach a filter that accepts nothing (replacing any other): a raw receiver delivers
    packets only while an ncap filter says so."""
    attach_classic(sock, [DROP_ALL])


def open_raw(family: int, laddr: bytes) -> tuple[socket.socket, socket.socket, bytes]:
    """(sender, receiver, bound address) for a raw IP socket. The sender takes whole IP
    packets (IP_HDRINCL / IPV6_HDRINCL); the receiver is a packet socket that sees whole IP
    packets of the family arriving for this host, header first, with kernel RX stamps — and
    nothing at all until an ncap filter is attached. A non-zero ``laddr`` must be one of this
    host's addresses; the receiver then listens on that address's interface only."""
    ip_family = af(family)
    sender = socket.socket(ip_family, socket.SOCK_RAW, socket.IPPROTO_RAW)
    receiver: socket.socket | None = None
    try:
        sender.setblocking(False)
        sender.bind((ip_text(laddr), 0))
        timestamps.enable(sender)
        ethertype = ETH_P_IP if family == Family.IPV4 else ETH_P_IPV6
        receiver = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ethertype))
        receiver.setblocking(False)
        drop_everything(receiver)
        with contextlib.suppress(OSError):  # Linux >= 4.20
            receiver.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
        interface = _interface_of(laddr)
        if interface:
            receiver.bind((interface, ethertype))
        _discard_queued(receiver)  # what arrived before the filter
        timestamps.enable(receiver)
    except OSError:
        sender.close()
        if receiver is not None:
            receiver.close()
        raise
    return sender, receiver, laddr


def _discard_queued(sock: socket.socket) -> None:
    for _ in range(100_000):
        try:
            sock.recv(1)
        except (BlockingIOError, InterruptedError):
            return


def _interface_of(addr: bytes) -> str:
    """The name of the interface holding ``addr`` as its address; "" (every interface) for
    the unspecified address or a local address no interface lists (127.0.0.2 on lo)."""
    if not any(addr):
        return ""
    if len(addr) == 16:
        wanted = addr.hex()
        with open("/proc/net/if_inet6") as table:
            for line in table:
                fields = line.split()
                if fields and fields[0] == wanted:
                    return fields[-1]
        return ""
    for _, name in socket.if_nameindex():
        found = interface_ipv4(name)
        if found is not None and found[0] == addr:
            return name
    return ""
