"""The shipped traceroute receive filter keeps exactly the replies a traceroute needs, in our VM
and in the kernel, and ships as package data."""

from __future__ import annotations

import pytest
from ebpf_oracle import KernelFilter, interpret, kernel_bpf_available
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import ICMPv6EchoReply, IPv6
from scapy.packet import Raw

from packetlab.programs import compile_filter, decode_program, parse_text, verify
from packetlab.programs.builtin import BUILTIN_NAMES, builtin_insns, builtin_program, builtin_text

NO_BPF = kernel_bpf_available()
ME, HOP, TARGET = "198.18.1.2", "198.18.1.1", "198.18.3.2"
PROBE_UDP = IP(src=ME, dst=TARGET, ttl=1) / UDP(sport=40000, dport=33434) / Raw(b"p" * 12)
PROBE_ICMP = IP(src=ME, dst=TARGET, ttl=2) / ICMP(type=8, id=7, seq=1)
PROBE_TCP = IP(src=ME, dst=TARGET, ttl=3) / TCP(sport=40000, dport=80, flags="S")


def _quote(probe: IP, length: int = 28) -> bytes:
    return bytes(probe)[:length]


KEEP = {
    "time exceeded quoting UDP": IP(src=HOP, dst=ME)
    / ICMP(type=11, code=0)
    / Raw(_quote(PROBE_UDP)),
    "time exceeded quoting ICMP": IP(src=HOP, dst=ME) / ICMP(type=11) / Raw(_quote(PROBE_ICMP)),
    "time exceeded quoting TCP": IP(src=HOP, dst=ME) / ICMP(type=11) / Raw(_quote(PROBE_TCP, 40)),
    "reassembly time exceeded": IP(src=HOP, dst=ME)
    / ICMP(type=11, code=1)
    / Raw(_quote(PROBE_UDP)),
    "port unreachable": IP(src=TARGET, dst=ME) / ICMP(type=3, code=3) / Raw(_quote(PROBE_UDP)),
    "host unreachable, long quote": IP(src=HOP, dst=ME)
    / ICMP(type=3, code=1)
    / Raw(bytes(PROBE_UDP)),
    "echo reply": IP(src=TARGET, dst=ME) / ICMP(type=0, id=7, seq=1) / Raw(b"x" * 56),
    "SYN-ACK": IP(src=TARGET, dst=ME) / TCP(sport=80, dport=40000, flags="SA"),
    "RST": IP(src=TARGET, dst=ME) / TCP(sport=80, dport=40000, flags="R"),
    "RST-ACK": IP(src=TARGET, dst=ME) / TCP(sport=80, dport=40000, flags="RA"),
    "echo reply with IP options": IP(src=TARGET, dst=ME, options=[IPOption_RR()]) / ICMP(type=0),
    "SYN-ACK with IP options": IP(src=TARGET, dst=ME, options=[IPOption_RR()])
    / TCP(sport=80, dport=40000, flags="SA"),
    "quote with IP options": IP(src=HOP, dst=ME)
    / ICMP(type=11)
    / Raw(bytes(IP(src=ME, dst=TARGET, options=[IPOption_RR()]) / UDP())[:48]),
}
DROP = {
    "UDP": IP(src=TARGET, dst=ME) / UDP(sport=53, dport=5353) / Raw(b"d" * 30),
    "echo request": IP(src=TARGET, dst=ME) / ICMP(type=8),
    "redirect": IP(src=HOP, dst=ME) / ICMP(type=5) / Raw(_quote(PROBE_UDP)),
    "time exceeded code 2": IP(src=HOP, dst=ME) / ICMP(type=11, code=2) / Raw(_quote(PROBE_UDP)),
    "unreachable code 16": IP(src=HOP, dst=ME) / ICMP(type=3, code=16) / Raw(_quote(PROBE_UDP)),
    "echo reply code 1": IP(src=TARGET, dst=ME) / ICMP(type=0, code=1),
    "SYN": IP(src=TARGET, dst=ME) / TCP(flags="S"),
    "ACK": IP(src=TARGET, dst=ME) / TCP(flags="A") / Raw(b"data"),
    "FIN-ACK": IP(src=TARGET, dst=ME) / TCP(flags="FA"),
    "TCP data offset 4": IP(src=TARGET, dst=ME) / TCP(flags="SA", dataofs=4),
    "quote cut short": IP(src=HOP, dst=ME) / ICMP(type=11) / Raw(_quote(PROBE_UDP, 27)),
    "quote of an IPv6 header": IP(src=HOP, dst=ME)
    / ICMP(type=11)
    / Raw(bytes(IPv6() / UDP())[:48]),
    "quote of a GRE datagram": IP(src=HOP, dst=ME)
    / ICMP(type=3)
    / Raw(bytes(IP(src=ME, dst=TARGET, proto=47) / Raw(b"g" * 8))),
    "non-first fragment": IP(src=TARGET, dst=ME, proto=6, frag=2) / Raw(bytes(TCP(flags="SA"))),
    "IPv6 echo reply": IPv6(src="2001:db8::1", dst="2001:db8::2") / ICMPv6EchoReply(),
}
CUT = {
    "truncated SYN-ACK": bytes(KEEP["SYN-ACK"])[:30],
    "total length beyond the packet": bytes(KEEP["echo reply"])[:-1],
    "IHL 4": b"\x44" + bytes(KEEP["echo reply"])[1:],
    "total length below the header": bytes(KEEP["RST"])[:2] + b"\x00\x10" + bytes(KEEP["RST"])[4:],
    "empty": b"",
}


def _cases() -> list[tuple[str, bytes, bool]]:
    return (
        [(name, bytes(p), True) for name, p in KEEP.items()]
        + [(name, bytes(p), False) for name, p in DROP.items()]
        + [(name, p, False) for name, p in CUT.items()]
    )


CASES = _cases()


@pytest.mark.parametrize(("name", "packet", "keep"), CASES, ids=[c[0] for c in CASES])
def test_our_vm_keeps_the_right_packets(name: str, packet: bytes, keep: bool) -> None:
    function = compile_filter(builtin_program("traceroute_recv"))
    assert function(packet) == (len(packet) if keep else 0)
    assert interpret(builtin_insns("traceroute_recv"), packet).result == function(packet)


@pytest.mark.skipif(NO_BPF is not None, reason=f"bpf(2) unavailable: {NO_BPF}")
def test_the_kernel_keeps_the_same_packets() -> None:
    with KernelFilter(builtin_insns("traceroute_recv")) as loaded:
        for name, packet, keep in CASES:
            assert loaded.run(packet) == (len(packet) if keep else 0), name


def test_shipped_as_package_data_with_comments() -> None:
    assert "traceroute_recv" in BUILTIN_NAMES
    text = builtin_text("traceroute_recv")
    assert text.count("\n#") > 20  # documented
    insns = parse_text(text)
    assert 50 <= len(insns) <= 100
    assert decode_program(builtin_program("traceroute_recv")) == insns
    verify(insns)
