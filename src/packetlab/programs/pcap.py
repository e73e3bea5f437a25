"""tcpdump filter expressions, compiled by libpcap (through ctypes) and translated to eBPF.

We compile for DLT_RAW: the filter sees the IP header (v4 or v6) at offset 0, which is what a
raw IP socket hands a socket filter. Accepted packets get the snapshot length (65535).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import threading

from packetlab.programs._errors import PcapError
from packetlab.programs.cbpf import ClassicInsn, cbpf_to_ebpf
from packetlab.programs.ebpf import encode_program
from packetlab.programs.kernel import SockFilter

DLT_RAW = 12  # Linux value: raw IPv4/IPv6, no link-layer header
SNAPLEN = 65535
_PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
_LIBRARIES = ("libpcap.so.0.8", "libpcap.so.1", "libpcap.so")


class _BpfProgram(ctypes.Structure):
    _fields_ = (("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(SockFilter)))


_lock = threading.Lock()


@functools.cache
def _libpcap() -> ctypes.CDLL:
    names = list(_LIBRARIES)
    found = ctypes.util.find_library("pcap")
    if found:
        names.append(found)
    for name in names:
        try:
            lib = ctypes.CDLL(name)
        except OSError:
            continue
        lib.pcap_open_dead.restype = ctypes.c_void_p
        lib.pcap_open_dead.argtypes = (ctypes.c_int, ctypes.c_int)
        lib.pcap_compile.restype = ctypes.c_int
        lib.pcap_compile.argtypes = (
            ctypes.c_void_p,
            ctypes.POINTER(_BpfProgram),
            ctypes.c_char_p,
            ctypes.c_int,
            ctypes.c_uint32,
        )
        lib.pcap_geterr.restype = ctypes.c_char_p
        lib.pcap_geterr.argtypes = (ctypes.c_void_p,)
        lib.pcap_freecode.restype = None
        lib.pcap_freecode.argtypes = (ctypes.POINTER(_BpfProgram),)
        lib.pcap_close.restype = None
        lib.pcap_close.argtypes = (ctypes.c_void_p,)
        return lib
    raise PcapError(f"libpcap not found (tried {', '.join(names)}); install libpcap0.8")


def compile_classic(
    expression: str, *, linktype: int = DLT_RAW, snaplen: int = SNAPLEN, optimize: bool = True
) -> list[ClassicInsn]:
    """Compile a tcpdump expression with libpcap into classic BPF instructions."""
    try:
        text = expression.encode("ascii")
    except UnicodeEncodeError:
        raise PcapError(f"filter expression is not ASCII: {expression!r}") from None
    if b"\0" in text:
        raise PcapError("filter expression contains a NUL byte")
    lib = _libpcap()
    with _lock:  # older libpcap's compiler is not reentrant
        handle = lib.pcap_open_dead(linktype, snaplen)
        if not handle:
            raise PcapError(f"pcap_open_dead({linktype}, {snaplen}) failed")
        try:
            program = _BpfProgram()
            if (
                lib.pcap_compile(
                    handle, ctypes.byref(program), text, int(optimize), _PCAP_NETMASK_UNKNOWN
                )
                != 0
            ):
                message = (lib.pcap_geterr(handle) or b"unknown error").decode("utf-8", "replace")
                raise PcapError(f"bad filter expression {expression!r}: {message}")
            try:
                return [
                    ClassicInsn(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[: program.bf_len]
                ]
            finally:
                lib.pcap_freecode(ctypes.byref(program))
        finally:
            lib.pcap_close(handle)


def compile_expression(expression: str) -> bytes:
    """A tcpdump expression as an encoded pktlab eBPF program (IP header at offset 0)."""
    return encode_program(cbpf_to_ebpf(compile_classic(expression)))
