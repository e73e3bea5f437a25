"""Kernel socket filters: load eBPF with bpf(2) and attach it, or attach classic BPF.

``load_socket_filter`` runs BPF_PROG_LOAD (BPF_PROG_TYPE_SOCKET_FILTER, licence "GPL") through a
ctypes ``syscall``; a refusal raises ``FilterRejected`` carrying the verifier's log, a missing
permission ``BpfUnavailable``. A socket keeps its own reference to an attached program, so the
program fd may be closed right after ``attach``.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import socket
import struct
from collections.abc import Sequence

from packetlab.programs._errors import AttachError, BpfUnavailable, FilterRejected
from packetlab.programs.ebpf import Insn, to_linux

_SYS_BPF = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_SOCKET_FILTER = 1
SO_ATTACH_FILTER = 26
SO_DETACH_FILTER = 27  # also SO_DETACH_BPF
SO_ATTACH_BPF = 50
_LOG_SIZE = 1 << 20
# union bpf_attr, BPF_PROG_LOAD part up to prog_name: prog_type, insn_cnt, insns, license,
# log_level, log_size, log_buf, kern_version, prog_flags, prog_name[16].
_PROG_LOAD_ATTR = struct.Struct("=IIQQIIQII16s")

_BPF_PROG_TEST_RUN = 10
# BPF_PROG_TEST_RUN part: prog_fd, retval, data_size_in, data_size_out, data_in, data_out,
# repeat, duration, ctx_size_in, ctx_size_out, ctx_in, ctx_out, flags, cpu, batch_size.
_TEST_RUN_ATTR = struct.Struct("=IIIIQQIIIIQQIII4x")


@functools.cache
def _syscall() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    return libc


def _sys_bpf_number() -> int:
    machine = platform.machine().lower()
    if machine not in _SYS_BPF:
        raise BpfUnavailable(f"bpf(2) syscall number unknown for architecture {machine!r}")
    return _SYS_BPF[machine]


def _attr(raw: bytes) -> ctypes.Array[ctypes.c_char]:
    """A bpf_attr buffer of exactly ``len(raw)`` bytes (no trailing NUL)."""
    return (ctypes.c_char * len(raw)).from_buffer_copy(raw)


def _bpf(cmd: int, attr: ctypes.Array[ctypes.c_char]) -> int:
    """bpf(cmd, attr); the result, or -errno."""
    result = int(
        _syscall().syscall(
            ctypes.c_long(_sys_bpf_number()),
            ctypes.c_int(cmd),
            attr,
            ctypes.c_uint(len(attr)),
        )
    )
    return -ctypes.get_errno() if result < 0 else result


def _prog_load(insns: Sequence[Insn], log_level: int, log: ctypes.Array[ctypes.c_char]) -> int:
    code = ctypes.create_string_buffer(to_linux(insns))
    licence = ctypes.create_string_buffer(b"GPL")
    attr = _attr(
        _PROG_LOAD_ATTR.pack(
            _BPF_PROG_TYPE_SOCKET_FILTER,
            len(insns),
            ctypes.addressof(code),
            ctypes.addressof(licence),
            log_level,
            len(log) if log_level else 0,
            ctypes.addressof(log) if log_level else 0,
            0,
            0,
            b"pktlab_filter",
        )
    )
    return _bpf(_BPF_PROG_LOAD, attr)


def load_socket_filter(insns: Sequence[Insn], *, log_level: int = 0) -> int:
    """Load ``insns`` as a socket filter; return the program fd (the caller closes it).

    Raises ``FilterRejected`` (with the verifier log) when the kernel refuses the program and
    ``BpfUnavailable`` when bpf(2) is not permitted or not present. ``log_level`` > 0 asks for
    the verifier's log even on success (it is then lost; use for debugging only).
    """
    if not insns:
        raise FilterRejected("empty program")
    log = ctypes.create_string_buffer(_LOG_SIZE if log_level else 1)
    result = _prog_load(insns, log_level, log)
    if result >= 0:
        return result
    err = -result
    if err in (errno.EPERM, errno.ENOSYS):
        raise BpfUnavailable(
            f"bpf(2) BPF_PROG_LOAD failed: {os.strerror(err)} "
            "(needs root or CAP_BPF, and a kernel with CONFIG_BPF_SYSCALL)"
        )
    if not log_level:
        # Load again with a log to say why (a truncated log keeps its tail, where the cause is).
        log = ctypes.create_string_buffer(_LOG_SIZE)
        again = _prog_load(insns, 1, log)
        if again >= 0:  # pragma: no cover - the kernel changed its mind
            return again
    text = log.value.decode("utf-8", "replace")
    lines = [line for line in text.splitlines() if line.strip()]
    reason = lines[-1] if lines else os.strerror(err)
    if reason.startswith("processed ") and len(lines) > 1:
        reason = lines[-2]
    raise FilterRejected(f"kernel verifier: {reason} ({errno.errorcode.get(err, err)})", log=text)


def test_run(prog_fd: int, packet: bytes) -> int:
    """Run a loaded socket filter once on ``packet`` (BPF_PROG_TEST_RUN); its u32 result.

    The kernel takes test data as an Ethernet frame and pulls the 14-byte header, so we put a
    dummy one in front (EtherType 0x88b5, local experimental: the kernel then does not insist
    on an IP header): the program sees ``packet`` at offset 0 and ``len(packet)`` as length.
    """
    frame = ctypes.create_string_buffer(bytes(12) + b"\x88\xb5" + packet, 14 + len(packet))
    fields = [0] * 15
    fields[0], fields[2], fields[4], fields[6] = prog_fd, len(frame), ctypes.addressof(frame), 1
    attr = _attr(_TEST_RUN_ATTR.pack(*fields))
    result = _bpf(_BPF_PROG_TEST_RUN, attr)
    if result < 0:
        raise BpfUnavailable(f"BPF_PROG_TEST_RUN failed: {os.strerror(-result)}")
    retval: int = _TEST_RUN_ATTR.unpack(attr.raw[: _TEST_RUN_ATTR.size])[1]
    return retval


def attach(sock: socket.socket, prog_fd: int) -> None:
    """Attach a loaded eBPF program to ``sock`` (SO_ATTACH_BPF); ``prog_fd`` may then be closed."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_BPF, struct.pack("i", prog_fd))
    except OSError as exc:
        raise AttachError(f"SO_ATTACH_BPF refused: {exc.strerror}") from exc


def detach(sock: socket.socket) -> None:
    """Remove any filter from ``sock`` (SO_DETACH_FILTER); no filter is not an error."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_FILTER, 0)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise AttachError(f"SO_DETACH_FILTER refused: {exc.strerror}") from exc


def attach_filter(sock: socket.socket, insns: Sequence[Insn]) -> None:
    """Load ``insns`` and attach them to ``sock``; the socket holds the only reference."""
    fd = load_socket_filter(insns)
    try:
        attach(sock, fd)
    finally:
        os.close(fd)


class SockFilter(ctypes.Structure):
    """One classic BPF instruction (struct sock_filter, libpcap's struct bpf_insn)."""

    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter)))


def attach_classic(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> None:
    """Attach a classic BPF program ``[(code, jt, jf, k), ...]`` with SO_ATTACH_FILTER."""
    array = (SockFilter * len(program))(*(SockFilter(*insn) for insn in program))
    fprog = _SockFprog(len(program), ctypes.cast(array, ctypes.POINTER(SockFilter)))
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(fprog))
    except OSError as exc:
        raise AttachError(f"SO_ATTACH_FILTER refused: {exc.strerror}") from exc
