"""Stages 1, 2 and 5: well-formedness, the operator's source policy and the sanitizer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from guardian_helpers import OWN4, OWN6, T0, make_guardian, open_guard, probe

from packetlab.guardian import ExperimentGuard, Guardian, Probe, Verdict
from packetlab.wire.codes import ErrId


@pytest.fixture
def guardian(tmp_path: Path) -> Iterator[Guardian]:
    g = make_guardian(tmp_path)
    try:
        yield g
    finally:
        g.close(T0)


@pytest.fixture
def guard(guardian: Guardian) -> ExperimentGuard:
    return open_guard(guardian)


ALLOWED = [
    ("udp to a remote high port", probe()),
    ("udp to 53", probe(dport=53)),
    ("tcp SYN to 80", probe(proto=6, dport=80, tcp_flags=0x02)),
    ("tcp ACK to 8080", probe(proto=6, dport=8080, tcp_flags=0x10)),
    ("icmp echo", probe(proto=1)),
    ("icmp timestamp (type 13)", probe(proto=1, icmp_type=13)),
    ("icmpv6 echo", probe("2001:db8:7::7", proto=58)),
    (
        "icmpv6 type 135 (neighbour solicitation is not an error)",
        probe(REMOTE6 := "2001:db8:7::9", proto=58, icmp_type=135),
    ),
    ("ipv6 udp", probe("2001:db8:7::7")),
    ("unspecified v4 source (filled by the sanitizer)", probe(src="0.0.0.0")),
    ("unspecified v6 source", probe("2001:db8:7::7", src="::")),
    ("other protocol (GRE 47)", probe(proto=47)),
    ("240.0.0.1 is not multicast", probe("240.0.0.1")),
    ("smallest ipv4 packet", probe(size=20, proto=47)),
    ("largest ipv4 packet", probe(size=65535)),
    ("largest ipv6 packet (jumbogram-less)", probe("2001:db8:7::7", size=65575)),
]

DENIED = [
    ("limited broadcast", probe("255.255.255.255"), "broadcast"),
    ("directed broadcast of the local /24", probe("198.18.0.255"), "broadcast"),
    ("ipv4 multicast", probe("224.0.0.1"), "multicast"),
    ("ipv4 multicast high", probe("239.255.255.250", dport=1900), "multicast"),
    ("ipv6 multicast", probe("ff02::1"), "multicast"),
    ("fragment", probe(fragment=True), "fragment"),
    ("icmp dest unreachable", probe(proto=1, icmp_type=3, icmp_code=1), "ICMP error"),
    ("icmp source quench", probe(proto=1, icmp_type=4), "ICMP error"),
    ("icmp redirect", probe(proto=1, icmp_type=5), "ICMP error"),
    ("icmp time exceeded", probe(proto=1, icmp_type=11), "ICMP error"),
    ("icmp parameter problem", probe(proto=1, icmp_type=12), "ICMP error"),
    ("icmpv6 unreachable", probe("2001:db8:7::7", proto=58, icmp_type=1), "ICMPv6 error"),
    ("icmpv6 packet too big", probe("2001:db8:7::7", proto=58, icmp_type=2), "ICMPv6 error"),
    ("icmpv6 time exceeded", probe("2001:db8:7::7", proto=58, icmp_type=3), "ICMPv6 error"),
    ("icmpv6 parameter problem", probe("2001:db8:7::7", proto=58, icmp_type=4), "ICMPv6 error"),
    ("tcp RST", probe(proto=6, dport=8080, tcp_flags=0x04), "RST"),
    ("tcp RST+ACK", probe(proto=6, dport=8080, tcp_flags=0x14), "RST"),
    ("udp to 7 (echo)", probe(dport=7), "privileged"),
    ("udp to 19 (chargen)", probe(dport=19), "privileged"),
    ("tcp to 22", probe(proto=6, dport=22, tcp_flags=2), "privileged"),
    ("udp to port 0", probe(dport=0), "privileged"),
    ("udp to 1023", probe(dport=1023), "privileged"),
    ("loopback", probe("127.0.0.1"), "local host"),
    ("loopback /8", probe("127.3.4.5"), "local host"),
    ("ipv6 loopback", probe("::1"), "local host"),
    ("unspecified destination", probe("0.0.0.0"), "local host"),
    ("own address", probe(OWN4), "local host"),
    ("own ipv6 address", probe(OWN6), "local host"),
    ("local subnet", probe("198.18.0.77"), "local subnet"),
    ("local ipv6 subnet", probe("2001:db8::99"), "local subnet"),
    ("link-local", probe("169.254.1.1"), "local subnet"),
    ("ipv6 link-local", probe("fe80::1"), "local subnet"),
    ("v4-mapped loopback", probe("::ffff:127.0.0.1"), "local host"),
    ("v4-mapped broadcast", probe("::ffff:255.255.255.255"), "broadcast"),
    ("spoofed source", probe(src="198.51.100.9"), "spoofed"),
    ("spoofed v6 source", probe("2001:db8:7::7", src="2001:db8:9::9"), "spoofed"),
    ("loopback source towards another host", probe(src="127.0.0.1"), "spoofed"),
    ("::1 source towards another host", probe("2001:db8:7::7", src="::1"), "spoofed"),
]


def malformed(**changes: object) -> Probe:
    return replace(probe(), **changes)  # type: ignore[arg-type]


MALFORMED = [
    ("family 5", malformed(family=5), "family"),
    ("v4 with a 16-byte destination", malformed(dst=bytes(16)), "address length"),
    ("v6 with 4-byte addresses", malformed(family=6), "address length"),
    ("short source", malformed(src=b"\x01\x02"), "address length"),
    ("below the IPv4 header", malformed(size=19), "size"),
    ("over 65535 on IPv4", malformed(size=65536), "size"),
    ("over 65575 on IPv6", replace(probe("2001:db8:7::7"), size=65576), "size"),
    ("port over 65535", malformed(dport=70000), "port"),
    ("negative port", malformed(sport=-1), "port"),
    ("ICMP over IPv6", replace(probe("2001:db8:7::7"), proto=1), "ICMP"),
    ("ICMPv6 over IPv4", malformed(proto=58), "ICMPv6"),
    ("protocol 300", malformed(proto=300), "protocol"),
]


@pytest.mark.parametrize(("name", "pkt"), ALLOWED, ids=[c[0] for c in ALLOWED])
def test_allowed(guard: ExperimentGuard, name: str, pkt: Probe) -> None:
    verdict = guard.check_send(pkt, T0)
    assert verdict == Verdict(True, 0, 0, ""), name


@pytest.mark.parametrize(
    ("name", "pkt", "why"), DENIED + MALFORMED, ids=[c[0] for c in DENIED + MALFORMED]
)
def test_denied(guard: ExperimentGuard, name: str, pkt: Probe, why: str) -> None:
    verdict = guard.check_send(pkt, T0)
    assert not verdict.allowed, name
    assert verdict.errid == ErrId.ESKTPKTDENY
    assert why in verdict.reason


SWITCHES = [
    ("deny_broadcast", probe("255.255.255.255")),
    ("deny_multicast", probe("224.0.0.1")),
    ("deny_fragments", probe(fragment=True)),
    ("deny_icmp_errors", probe(proto=1, icmp_type=11)),
    ("deny_tcp_rst", probe(proto=6, dport=8080, tcp_flags=0x04)),
    ("deny_privileged_ports", probe(dport=7)),
    ("deny_local_host", probe("127.0.0.1")),
    ("deny_local_subnet", probe("198.18.0.77")),
    ("deny_spoofing", probe(src="198.51.100.9")),
]


@pytest.mark.parametrize(("switch", "pkt"), SWITCHES, ids=[s[0] for s in SWITCHES])
def test_every_rule_is_a_switch(tmp_path: Path, switch: str, pkt: Probe) -> None:
    g = make_guardian(tmp_path, f"[source_policy]\n{switch} = false\n")
    try:
        guard = open_guard(g)
        assert guard.check_send(pkt, T0).allowed
        others = [p for s, p in SWITCHES if s != switch]
        assert all(not guard.check_send(p, T0).allowed for p in others)
    finally:
        g.close(T0)


def test_allow_dest_overrides_the_local_rules_only(tmp_path: Path) -> None:
    toml = '[source_policy]\nallow_dest = ["127.0.0.0/8", "198.18.0.0/24", "::1/128"]\n'
    g = make_guardian(tmp_path, toml)
    try:
        guard = open_guard(g)
        for dst in ("127.0.0.1", "127.9.9.9", "198.18.0.77", "::1", OWN4):
            assert guard.check_send(probe(dst), T0).allowed, dst
        # the other rules still hold inside allowed prefixes
        assert "broadcast" in guard.check_send(probe("198.18.0.255"), T0).reason
        assert "privileged" in guard.check_send(probe("127.0.0.1", dport=7), T0).reason
        assert not guard.check_send(probe("2001:db8::99"), T0).allowed
    finally:
        g.close(T0)


def test_port_exceptions_are_configurable(tmp_path: Path) -> None:
    g = make_guardian(tmp_path, "[source_policy]\nprivileged_port_exceptions = [123]\n")
    try:
        guard = open_guard(g)
        assert guard.check_send(probe(dport=123), T0).allowed
        assert not guard.check_send(probe(dport=53), T0).allowed
    finally:
        g.close(T0)


def test_spoofing_allowed_by_the_chain(guardian: Guardian) -> None:
    guard = open_guard(guardian, spoofing=True)
    assert guard.check_send(probe(src="198.51.100.9"), T0).allowed
    # spoofing does not lift the other rules
    assert not guard.check_send(probe("224.0.0.1", src="198.51.100.9"), T0).allowed


def test_bad_local_nets_is_a_config_error(tmp_path: Path) -> None:
    from packetlab.guardian import Guardian, GuardianConfig, GuardianConfigError

    with pytest.raises(GuardianConfigError, match="local_nets"):
        Guardian(GuardianConfig(), tmp_path, [(b"\x01\x02\x03", 8)])
    with pytest.raises(GuardianConfigError, match="prefix length"):
        Guardian(GuardianConfig(), tmp_path, [(bytes(4), 33)])
