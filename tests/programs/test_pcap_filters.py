"""tcpdump expressions: libpcap's classic program and our eBPF translation of it keep exactly the
same packets - in libpcap's own interpreter, the kernel's classic filter, the kernel's eBPF
filter and our VM."""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

import pytest
from ebpf_oracle import KernelFilter, kernel_bpf_available, unix_pair_keeps
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoReply, ICMPv6EchoRequest, IPv6
from scapy.packet import Raw

from packetlab.programs import (
    ClassicProgramError,
    PcapError,
    compile_insns,
    decode_program,
    kernel,
    pcap,
)
from packetlab.programs.cbpf import ClassicInsn, cbpf_to_ebpf
from packetlab.programs.kernel import SockFilter
from packetlab.programs.pcap import SNAPLEN, compile_classic, compile_expression

NO_BPF = kernel_bpf_available()
A, B = "198.18.0.1", "198.18.0.2"
A6, B6 = "2001:db8::1", "2001:db8::2"


def _packets() -> list[bytes]:
    built = [
        IP(src=A, dst=B) / ICMP(type=8) / Raw(b"x" * 20),
        IP(src=B, dst=A) / ICMP(type=0) / Raw(b"x" * 20),
        IP(src=A, dst=B, ttl=3) / ICMP(type=11),
        IP(src=A, dst=B, ttl=4) / UDP(sport=5353, dport=53) / Raw(b"\x12\x34" + b"q" * 30),
        IP(src=B, dst=A) / UDP(sport=53, dport=40000) / Raw(b"a" * 40),
        IP(src=A, dst=B) / TCP(sport=40000, dport=80, flags="S"),
        IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="SA"),
        IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="A") / Raw(b"h" * 100),
        IP(src=B, dst=A) / TCP(sport=80, dport=40000, flags="R"),
        IP(src=A, dst=B, options=[IPOption_RR()]) / TCP(dport=80, flags="S"),
        IP(src=A, dst=B, options=[IPOption_RR()]) / UDP(dport=53),
        IP(src=A, dst=B, frag=100, flags=0) / Raw(b"f" * 40),
        IP(src=A, dst=B, proto=1, frag=3) / Raw(b"\x00" * 16),
        IPv6(src=A6, dst=B6) / ICMPv6EchoRequest(),
        IPv6(src=B6, dst=A6) / ICMPv6EchoReply() / Raw(b"z" * 30),
        IPv6(src=A6, dst=B6) / UDP(dport=53) / Raw(b"d" * 10),
    ]
    raw = [bytes(p) for p in built]
    truncated = [p[:n] for p in raw[:8] for n in (1, 9, 20, 23, 34)]
    return raw + truncated + [b"", b"\x45", bytes(60), bytes(range(256))]


PACKETS = _packets()
EXPRESSIONS = [
    "icmp",
    "icmp and src host 198.18.0.1",
    "udp dst port 53",
    "tcp[tcpflags] & tcp-syn != 0",
    "ip6 and icmp6",
    "ip[8] < 5",
    "icmp[icmptype] == icmp-echoreply",
    "tcp port 80 or udp port 53",
    "tcp[13] & 0x12 = 0x12",
    "udp[8:2] = 0x1234",
    "ip[2:2] / 4 > 12",
    "ip[1] % 3 = 0",
    "(ip[6:2] & 0x1fff) = 0 and ip[0] & 0xf != 5",
    "less 60",
    "greater 100",
    "not ip",
    "ip6 and udp",
    "src net 198.18.0.0/31 and not icmp",
]


def libpcap_filter(program: Sequence[ClassicInsn], packet: bytes) -> int:
    """libpcap's own classic BPF interpreter, bpf_filter(3)."""
    lib = pcap._libpcap()
    lib.bpf_filter.restype = ctypes.c_uint
    array = (SockFilter * len(program))(*(SockFilter(*insn) for insn in program))
    return int(lib.bpf_filter(array, packet, len(packet), len(packet)))


def _check(classic: list[ClassicInsn], *, libpcap_agrees: bool = True) -> None:
    ebpf = cbpf_to_ebpf(classic)
    ours = compile_insns(ebpf)
    nonempty = [p for p in PACKETS if p]
    kept = [min(ours(p), len(p)) for p in nonempty]
    assert unix_pair_keeps(lambda s: kernel.attach_classic(s, classic), nonempty) == kept
    if libpcap_agrees:
        assert [min(ours(p), len(p)) for p in PACKETS] == [
            min(libpcap_filter(classic, p), len(p)) for p in PACKETS
        ]
    if NO_BPF is None:
        assert unix_pair_keeps(lambda s: kernel.attach_filter(s, ebpf), nonempty) == kept
        with KernelFilter(ebpf) as loaded:
            assert [loaded.run(p) for p in PACKETS] == [ours(p) for p in PACKETS]


@pytest.mark.parametrize("expression", EXPRESSIONS)
def test_expression_keeps_what_libpcap_keeps(expression: str) -> None:
    classic = compile_classic(expression)
    _check(classic)
    assert any(libpcap_filter(classic, p) for p in PACKETS), "no packet matches: weak test"
    assert not all(libpcap_filter(classic, p) for p in PACKETS)


def test_compile_expression_gives_an_encoded_program() -> None:
    encoded = compile_expression("icmp")
    assert encoded[0] == 0x00
    function = compile_insns(decode_program(encoded))
    echo = bytes(IP(src=A, dst=B) / ICMP())
    assert function(echo) == SNAPLEN
    assert function(bytes(IP(src=A, dst=B) / UDP())) == 0


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("tcp port", "syntax error"),
        ("ip[2:2] / 0 > 1", "division by zero"),
        ("host nosuchname.invalid", "nosuchname"),
        ("caf\u00e9", "not ASCII"),
        ("icmp\0", "NUL"),
    ],
)
def test_bad_expression_gives_libpcap_message(expression: str, words: str) -> None:
    with pytest.raises(PcapError, match=words):
        compile_classic(expression)


RET_A, RET_K = 0x16, 0x06
HANDWRITTEN: dict[str, list[tuple[int, int, int, int]]] = {
    # X = 4*(ip[0]&0xf); A = byte at X+9... through M[] scratch, TAX/TXA.
    "msh, scratch memory, tax/txa": [
        (0xB1, 0, 0, 0),
        (0x03, 0, 0, 5),
        (0x61, 0, 0, 5),
        (0x87, 0, 0, 0),
        (0x04, 0, 0, 1),
        (0x07, 0, 0, 0),
        (0x50, 0, 0, 0),
        (0x02, 0, 0, 15),
        (0x60, 0, 0, 15),
        (RET_A, 0, 0, 0),
    ],
    "division by X = 0 returns 0": [
        (0x80, 0, 0, 0),
        (0x07, 0, 0, 0),
        (0x01, 0, 0, 0),
        (0x3C, 0, 0, 0),
        (RET_K, 0, 0, 9),
    ],
    "division and modulo by X": [
        (0x80, 0, 0, 0),
        (0x01, 0, 0, 3),
        (0x9C, 0, 0, 0),
        (0x04, 0, 0, 1),
        (RET_A, 0, 0, 0),
    ],
    "jset with jt 0, ja, unreachable code": [
        (0x30, 0, 0, 0),
        (0x45, 0, 2, 0x40),
        (0x05, 0, 0, 1),
        (RET_K, 0, 0, 1),
        (RET_K, 0, 0, 70),
        (RET_K, 0, 0, 2),
    ],
    "jgt with jt 0 (inverse jump)": [
        (0x20, 0, 0, 12),
        (0x25, 0, 1, 0xC6120000),
        (RET_K, 0, 0, 0),
        (RET_K, 0, 0, 33),
    ],
    "32-bit compare of a large constant": [
        (0x00, 0, 0, 0xFFFFFFF0),
        (0x04, 0, 0, 0x20),
        (0x35, 0, 1, 0x10),
        (RET_K, 0, 0, 5),
        (RET_A, 0, 0, 0),
    ],
    "ldx len, neg, lsh/rsh by X": [
        (0x81, 0, 0, 0),
        (0x80, 0, 0, 0),
        (0x84, 0, 0, 0),
        (0x6C, 0, 0, 0),
        (0x7C, 0, 0, 0),
        (0x54, 0, 0, 0xFFFF),
        (RET_A, 0, 0, 0),
    ],
}


@pytest.mark.parametrize("name", list(HANDWRITTEN))
def test_handwritten_classic_programs(name: str) -> None:
    # libpcap's interpreter makes shifts by X >= 32 give 0; the kernel (and we) use X & 31.
    _check([ClassicInsn(*insn) for insn in HANDWRITTEN[name]], libpcap_agrees="by X" not in name)


def test_shift_by_x_follows_the_kernel_not_libpcap() -> None:
    classic = [
        ClassicInsn(0x81, 0, 0, 0),
        ClassicInsn(0x00, 0, 0, 1),
        ClassicInsn(0x6C, 0, 0, 0),
        ClassicInsn(RET_A, 0, 0, 0),
    ]
    ours = compile_insns(cbpf_to_ebpf(classic))
    assert [ours(bytes(n)) for n in (5, 32, 33)] == [32, 1, 2]
    assert [libpcap_filter(classic, bytes(n)) for n in (5, 32, 33)] == [32, 0, 0]


@pytest.mark.parametrize(
    ("program", "words"),
    [
        ([], "0 instructions"),
        ([(0x06, 0, 0, 1)] * 4097, "4097"),
        ([(0x30, 0, 0, 0)], "last instruction is not a return"),
        ([(0x15, 5, 0, 0), (RET_K, 0, 0, 0)], "past the end"),
        ([(0x30, 0, 0, 0xFFFFF000), (RET_A, 0, 0, 0)], "ancillary"),
        ([(0x34, 0, 0, 0), (RET_A, 0, 0, 0)], "division by the constant 0"),
        ([(0x64, 0, 0, 32), (RET_A, 0, 0, 0)], "shift by 32"),
        ([(0x60, 0, 0, 16), (RET_A, 0, 0, 0)], r"M\[16\]"),
        ([(0xFF, 0, 0, 0), (RET_A, 0, 0, 0)], "unknown"),
        ([(0x0E, 0, 0, 0)], "unknown return"),
    ],
)
def test_classic_programs_we_refuse(program: list[tuple[int, int, int, int]], words: str) -> None:
    with pytest.raises(ClassicProgramError, match=words):
        cbpf_to_ebpf(program)
