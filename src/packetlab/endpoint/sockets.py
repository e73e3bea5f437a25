"""Opening the endpoint's UDP and TCP sockets (in the session process, so nopen is answered
at once): create, bind, start a TCP connect or listen, turn on kernel timestamps. The socket
then moves to the packet I/O process, which does all its sending and receiving."""

from __future__ import annotations

import errno
import socket
import struct

from packetlab.endpoint import timestamps
from packetlab.endpoint.io_frames import KIND_TCP_CONNECT, KIND_TCP_LISTEN, KIND_UDP
from packetlab.wire.codes import Family, Proto


def af(family: int) -> int:
    return socket.AF_INET if family == Family.IPV4 else socket.AF_INET6


def ip_text(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, raw)


def ip_raw(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)


def open_socket(
    family: int,
    proto: int,
    laddr: bytes,
    lport: int,
    raddr: bytes | None = None,
    rport: int = 0,
) -> tuple[socket.socket, int, bytes, int]:
    """(socket, kind, bound address, bound port). UDP; TCP connect when ``raddr`` is given
    (the connect is started, not finished); TCP listen (a passive open) otherwise.
    Raises OSError when the address cannot be bound or the connect cannot start."""
    kind_of_socket = socket.SOCK_DGRAM if proto == Proto.UDP else socket.SOCK_STREAM
    sock = socket.socket(af(family), kind_of_socket)
    try:
        sock.setblocking(False)
        if proto == Proto.TCP:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if raddr is None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((ip_text(laddr), lport))
        host, port = sock.getsockname()[:2]
        if proto == Proto.UDP:
            timestamps.enable(sock)
            kind = KIND_UDP
        elif raddr is not None:
            code = sock.connect_ex((ip_text(raddr), rport))
            if code not in (0, errno.EINPROGRESS):
                raise OSError(code, errno.errorcode.get(code, "connect failed"))
            kind = KIND_TCP_CONNECT
        else:
            sock.listen(1)
            kind = KIND_TCP_LISTEN
    except OSError:
        sock.close()
        raise
    return sock, kind, ip_raw(host), port


def interface_ipv4(name: str) -> tuple[bytes, bytes] | None:
    """(address, netmask) of a Linux interface's (primary) IPv4 address; None without one."""
    import fcntl

    siocgifaddr, siocgifnetmask = 0x8915, 0x891B
    request = struct.pack("256s", name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            addr = fcntl.ioctl(probe.fileno(), siocgifaddr, request)[20:24]
            mask = fcntl.ioctl(probe.fileno(), siocgifnetmask, request)[20:24]
        except OSError:
            return None
    return addr, mask
