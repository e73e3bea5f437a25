"""eBPF programs shipped with packetlab (text form, in ``programs/data``)."""

from __future__ import annotations

from importlib import resources

from packetlab.programs._errors import ProgramError
from packetlab.programs.ebpf import Insn, encode_program, parse_text

BUILTIN_NAMES = ("traceroute_recv",)


def builtin_text(name: str) -> str:
    """The ``*.ebpf`` text of a shipped program."""
    if name not in BUILTIN_NAMES:
        raise ProgramError(f"no built-in program {name!r} (have: {', '.join(BUILTIN_NAMES)})")
    return resources.files("packetlab.programs").joinpath("data", f"{name}.ebpf").read_text()


def builtin_insns(name: str) -> list[Insn]:
    return parse_text(builtin_text(name))


def builtin_program(name: str) -> bytes:
    """A shipped program, encoded (type byte 0x00 + instructions)."""
    return encode_program(builtin_insns(name))


TRACEROUTE_RECV_V6 = (
    "icmp6[icmp6type] == icmp6-echoreply or icmp6[icmp6type] == icmp6-timeexceeded"
    " or icmp6[icmp6type] == icmp6-destinationunreach"
    " or (ip6 and tcp and (tcp[tcpflags] & tcp-rst != 0"
    " or tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)))"
)


def traceroute_recv(family: int = 4) -> bytes:
    """The receive filter of ping and traceroute: echo replies, time exceeded, unreachables,
    TCP SYN-ACK and RST. IPv4: our eBPF program (it also checks codes, fragments and the
    quoted header). IPv6 (which the reference does not do): a pcap expression compiled with
    libpcap, by ICMPv6 type and TCP flags only."""
    if family == 6:
        from packetlab.programs.pcap import compile_expression

        return compile_expression(TRACEROUTE_RECV_V6)
    return builtin_program("traceroute_recv")
