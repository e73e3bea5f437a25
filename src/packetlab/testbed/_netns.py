"""Doing things inside a named network namespace from this process (Linux, root).

``setns(2)`` on a network namespace changes only the calling thread, so each call runs in a
short-lived thread that enters the namespace and then ends; the rest of the process stays where
it was. Sockets keep the namespace they were created in, so a socket made this way sends and
receives inside the namespace. ``/proc/sys/net`` opened from that thread is the namespace's own.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import socket
import struct
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypeVar

from packetlab.testbed._errors import SetupError

NETNS_DIR = Path("/run/netns")
CLONE_NEWNET = 0x40000000
SIOCETHTOOL = 0x8946
ETHTOOL_STXCSUM = 0x17

T = TypeVar("T")
_LIBC = ctypes.CDLL(None, use_errno=True)


def _setns(fd: int) -> None:
    if _LIBC.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))


def call_in_netns(netns: str, fn: Callable[[], T]) -> T:
    """Run ``fn()`` in a thread that has entered ``netns``; return its result or raise its error."""
    result: list[T] = []
    error: list[BaseException] = []

    def run() -> None:
        try:
            fd = os.open(NETNS_DIR / netns, os.O_RDONLY | os.O_CLOEXEC)
            try:
                _setns(fd)
            finally:
                os.close(fd)
            result.append(fn())
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=run, name=f"netns:{netns}", daemon=True)
    thread.start()
    thread.join()
    if error:
        if isinstance(error[0], FileNotFoundError):
            raise SetupError(f"network namespace {netns!r} does not exist") from error[0]
        raise error[0]
    return result[0]


def netns_socket(netns: str, family: int, kind: int, proto: int = 0) -> socket.socket:
    """A socket that lives in ``netns``."""
    return call_in_netns(netns, lambda: socket.socket(family, kind, proto))


def write_sysctls(netns: str, values: Mapping[str, str | int]) -> None:
    """Set ``net.*`` sysctls (dotted names) of ``netns``."""

    def write() -> None:
        for key, value in values.items():
            path = Path("/proc/sys") / key.replace(".", "/")
            try:
                path.write_text(f"{value}\n")
            except OSError as exc:
                raise SetupError(f"{netns}: cannot set {key}={value}: {exc.strerror}") from None

    call_in_netns(netns, write)


def read_sysctl(netns: str, key: str) -> str:
    path = Path("/proc/sys") / key.replace(".", "/")
    return call_in_netns(netns, lambda: path.read_text().strip())


def disable_tx_checksum(netns: str, ifname: str) -> None:
    """``ethtool -K IF tx off`` without ethtool: frames copied by a relay then carry full checksums.

    With TX checksum offload a veth hands on UDP/TCP frames with a partial checksum, and a
    relay re-sending them as plain frames would deliver corrupt packets. Turning the offload off
    also turns off TSO, so no frame larger than the MTU reaches the relay.
    """

    def set_off() -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            value = ctypes.create_string_buffer(struct.pack("II", ETHTOOL_STXCSUM, 0))
            ifreq = struct.pack("16sP", ifname.encode(), ctypes.addressof(value)).ljust(40, b"\0")
            try:
                fcntl.ioctl(sock.fileno(), SIOCETHTOOL, ifreq)
            except OSError as exc:
                raise SetupError(
                    f"{netns}: cannot turn off TX checksum offload on {ifname}: {exc.strerror}"
                ) from None

    call_in_netns(netns, set_off)


def list_netns() -> list[str]:
    try:
        return sorted(os.listdir(NETNS_DIR))
    except FileNotFoundError:
        return []


def netns_inode(netns: str) -> int | None:
    """The inode that identifies ``netns`` (as in /proc/PID/ns/net), None when it is gone."""
    try:
        return os.stat(NETNS_DIR / netns).st_ino
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return None
        raise


def process_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None
