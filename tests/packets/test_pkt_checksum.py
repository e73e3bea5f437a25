"""Checksums against dpkt and scapy, and the one's complement arithmetic they rest on."""

from __future__ import annotations

import dpkt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pktgen import v4addr, v6addr
from scapy.layers.inet import IP
from scapy.layers.inet6 import in6_chksum
from scapy.utils import checksum as scapy_checksum

from packetlab import packets as p


def _reference_sum(data: bytes) -> int:
    """RFC 1071 section 4.1, word by word."""
    if len(data) % 2:
        data += b"\0"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_internet_checksum_matches_dpkt_scapy_and_rfc1071(data: bytes) -> None:
    ours = p.internet_checksum(data)
    assert ours == dpkt.in_cksum(data)
    assert ours == scapy_checksum(data)
    assert p.ones_complement_sum(data) == _reference_sum(data)
    assert ours == _reference_sum(data) ^ 0xFFFF


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=2, max_size=200).filter(lambda b: len(b) % 2 == 0), st.integers(0, 99))
def test_data_carrying_its_checksum_sums_to_zero(data: bytes, at: int) -> None:
    at = at % (len(data) // 2) * 2
    zeroed = data[:at] + b"\0\0" + data[at + 2 :]
    filled = zeroed[:at] + p.internet_checksum(zeroed).to_bytes(2, "big") + zeroed[at + 2 :]
    assert p.internet_checksum(filled) == 0


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"", 0xFFFF),
        (b"\x00\x00", 0xFFFF),
        (b"\xff\xff", 0x0000),
        (b"\x00\x01\xf2\x03\xf4\xf5\xf6\xf7", 0x220D),  # RFC 1071 section 3 example sum ddf2
        (b"\x01", 0xFEFF),
    ],
)
def test_internet_checksum_known_values(data: bytes, expected: int) -> None:
    assert p.internet_checksum(data) == expected


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=100), st.binary(max_size=100))
def test_partial_sums_compose(a: bytes, b: bytes) -> None:
    """Checksumming a||b equals checksumming b with a's sum as the start (a of even length)."""
    a = a[: len(a) // 2 * 2]
    assert p.internet_checksum(a + b) == p.internet_checksum(b, p.ones_complement_sum(a))


@settings(max_examples=150, deadline=None)
@given(v6addr, v6addr, st.sampled_from([6, 17, 58]), st.binary(min_size=8, max_size=120))
def test_ipv6_pseudo_header_checksum_matches_scapy(
    src: bytes, dst: bytes, nh: int, segment: bytes
) -> None:
    from scapy.layers.inet6 import IPv6

    header = IPv6(src=p.addr_text(src), dst=p.addr_text(dst), nh=nh)
    assert p.transport_checksum(src, dst, nh, segment) == in6_chksum(nh, header, segment)


@settings(max_examples=150, deadline=None)
@given(v4addr, v4addr, st.sampled_from([6, 17]), st.binary(min_size=8, max_size=120))
def test_ipv4_pseudo_header_checksum_matches_dpkt(
    src: bytes, dst: bytes, proto: int, segment: bytes
) -> None:
    pseudo = src + dst + bytes((0, proto)) + len(segment).to_bytes(2, "big")
    expected = dpkt.in_cksum_done(dpkt.in_cksum_add(dpkt.in_cksum_add(0, pseudo), segment))
    assert p.transport_checksum(src, dst, proto, segment) == expected


@settings(max_examples=100, deadline=None)
@given(v4addr, v4addr, st.integers(0, 255), st.integers(0, 0xFFFF))
def test_ipv4_header_checksum_ok(src: bytes, dst: bytes, ttl: int, ident: int) -> None:
    good = p.IPv4(src, dst, 17, b"", ttl=ttl, ident=ident).build()
    assert p.ipv4_header_checksum_ok(good)
    scapy_sum = IP(good).chksum
    del_sum = IP(good)
    del del_sum.chksum
    assert IP(bytes(del_sum)).chksum == scapy_sum
    bad = good[:10] + ((scapy_sum + 1) & 0xFFFF).to_bytes(2, "big") + good[12:]
    assert not p.ipv4_header_checksum_ok(bad)


@pytest.mark.parametrize(
    "data", [b"", b"\x45" + bytes(10), b"\x65" + bytes(30), b"\x44" + bytes(30)]
)
def test_ipv4_header_checksum_ok_rejects_non_headers(data: bytes) -> None:
    with pytest.raises(p.PacketError):
        p.ipv4_header_checksum_ok(data)
