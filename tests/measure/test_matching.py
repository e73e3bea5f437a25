"""Response matching on crafted responses: probes and responses are built by scapy (the
oracle), matched by packetlab.measure.matching. ICMP errors quoting Paris-style probes (one
flow, a different checksum / sequence / ident per probe), echo replies, TCP SYN-ACK and RST,
UDP replies; unrelated traffic, duplicates, late and early replies, unsent probes."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.compat import raw
from scapy.layers import inet as si
from scapy.layers import inet6 as s6

from packetlab.measure.errors import MeasurementError
from packetlab.measure.matching import (
    Match,
    TrainMatcher,
    _error_keys_quoted,
    match_responses,
    response_keys,
)

ME = {4: "198.18.0.2", 6: "2001:db8::2"}
DST = {4: "198.18.4.2", 6: "2001:db8:0:4::2"}
OTHER = {4: "198.18.7.7", 6: "2001:db8:0:7::7"}
SPORT, DPORT, IDENT = 40123, 33434, 0x4242
MS = 1_000_000
TIMEOUT = 1000 * MS


def router(version: int, hop: int) -> str:
    return f"198.18.{hop}.1" if version == 4 else f"2001:db8:0:{hop}::1"


def ip(version: int, src: str, dst: str, **fields: Any) -> Any:
    if version == 4:
        return si.IP(src=src, dst=dst, **fields)
    hlim = fields.pop("ttl", 64)
    assert not fields, fields
    return s6.IPv6(src=src, dst=dst, hlim=hlim)


def out(version: int, layer: Any, *, dst: str | None = None, ttl: int = 64) -> bytes:
    """A packet of ours (to DST unless told)."""
    return raw(ip(version, ME[version], dst or DST[version], ttl=ttl) / layer)


def back(version: int, src: str, layer: Any) -> bytes:
    """A packet from ``src`` to us."""
    return raw(ip(version, src, ME[version]) / layer)


def udp(sport: int, dport: int, payload: bytes = b"") -> Any:
    return si.UDP(sport=sport, dport=dport) / payload


def tcp(sport: int, dport: int, flags: str, seq: int = 0, ack: int = 0) -> Any:
    return si.TCP(sport=sport, dport=dport, seq=seq, ack=ack, flags=flags)


def echo_request(version: int, ident: int, seq: int) -> Any:
    return (
        si.ICMP(type=8, id=ident, seq=seq)
        if version == 4
        else s6.ICMPv6EchoRequest(id=ident, seq=seq)
    )


def echo_reply(version: int, ident: int, seq: int) -> Any:
    return (
        si.ICMP(type=0, id=ident, seq=seq)
        if version == 4
        else s6.ICMPv6EchoReply(id=ident, seq=seq)
    )


def paris(version: int, proto: str, count: int, dst: str | None = None) -> list[bytes]:
    """``count`` probes with TTL 1.. of one flow: UDP (same ports, the payload varies the
    checksum), ICMP echo (ident + seq constant, so the ICMP checksum is too) or TCP SYN (same
    ports, the sequence number varies)."""
    target = dst or DST[version]
    probes = []
    for ttl in range(1, count + 1):
        if proto == "udp":
            layer: Any = si.UDP(sport=SPORT, dport=DPORT) / bytes([ttl, 0])
        elif proto == "icmp":
            layer = echo_request(version, IDENT - ttl, ttl) / b"paris"
        else:
            layer = si.TCP(sport=SPORT, dport=DPORT, seq=1000 * ttl, flags="S")
        probes.append(raw(ip(version, ME[version], target, ttl=ttl) / layer))
    return probes


def error(version: int, src: str, probe: bytes, *, kind: str = "ttl", quote: int = 0) -> bytes:
    """An ICMP/ICMPv6 error from ``src`` quoting ``probe`` (its first ``quote`` bytes)."""
    body = probe[:quote] if quote else probe
    if version == 4:
        icmp: Any = si.ICMP(type=11, code=0) if kind == "ttl" else si.ICMP(type=3, code=3)
    else:
        icmp = s6.ICMPv6TimeExceeded() if kind == "ttl" else s6.ICMPv6DestUnreach(code=4)
    return raw(ip(version, src, ME[version]) / icmp / body)


def matched(results: list[Match]) -> list[str | None]:
    return [m.responder for m in results]


@pytest.mark.parametrize("proto", ["udp", "icmp", "tcp"])
@pytest.mark.parametrize("version", [4, 6])
def test_time_exceeded_matches_each_paris_probe(version: int, proto: str) -> None:
    probes = paris(version, proto, 8)
    hdr = 20 if version == 4 else 40
    flow = slice(hdr + 2, hdr + 4) if proto == "icmp" else slice(hdr, hdr + 4)
    assert len({p[flow] for p in probes}) == 1, "one flow: same ports (ICMP: same checksum)"
    sent = [10 * MS * i for i in range(8)]
    responses = []
    for i, probe in enumerate(probes[:-1]):
        quote = 28 if version == 4 and i % 2 else 0  # RFC 792: the IP header + 8 bytes
        te = error(version, router(version, i + 1), probe, quote=quote)
        responses.append((sent[i] + MS + i, te))
    responses.append((sent[7] + MS + 7, error(version, DST[version], probes[7], kind="unreach")))
    random.Random(5).shuffle(responses)
    results = match_responses(probes, sent, responses, TIMEOUT)
    assert matched(results) == [router(version, h) for h in range(1, 8)] + [DST[version]]
    for i, m in enumerate(results):
        assert m.received_ns == sent[i] + MS + i and m.duplicates == 0
        assert m.response is not None and (m.received_ns, m.response) in responses


def test_ipv4_id_tells_otherwise_identical_probes_apart() -> None:
    def probe(ident: int, ttl: int) -> bytes:
        return raw(si.IP(src=ME[4], dst=DST[4], ttl=ttl, id=ident) / udp(SPORT, DPORT, b"same"))

    probes = [probe(ident, 3) for ident in (11, 22, 0)]
    quoting = [probe(ident, 1) for ident in (22, 11, 33, 44)]
    responses = [(100 + i, error(4, router(4, i + 1), q)) for i, q in enumerate(quoting)]
    results = match_responses(probes, [0, 1, 2], responses, TIMEOUT)
    # id 22 -> probe 1, id 11 -> probe 0; ids 33 and 44: only the probe whose id the OS chose
    assert matched(results) == [router(4, 2), router(4, 1), router(4, 3)]
    assert results[2].duplicates == 1


@pytest.mark.parametrize("version", [4, 6])
def test_echo_replies_match_by_ident_and_seq(version: int) -> None:
    probes = [out(version, echo_request(version, IDENT, seq)) for seq in (1, 2, 3)]
    dst, other = DST[version], OTHER[version]
    responses = [
        (30 * MS, back(version, dst, echo_reply(version, IDENT, 2))),
        (31 * MS, back(version, dst, echo_reply(version, IDENT, 1))),
        (32 * MS, back(version, other, echo_reply(version, IDENT, 3))),  # another host
        (33 * MS, back(version, dst, echo_reply(version, IDENT + 1, 3))),  # another ident
        (34 * MS, back(version, dst, echo_reply(version, IDENT, 4))),  # another seq
        (35 * MS, back(version, dst, echo_request(version, IDENT, 3))),  # not a reply
    ]
    results = match_responses(probes, [0, 10 * MS, 20 * MS], responses, TIMEOUT)
    assert matched(results) == [dst, dst, None]
    assert [m.received_ns for m in results] == [31 * MS, 30 * MS, None]


@pytest.mark.parametrize("version", [4, 6])
def test_tcp_syn_matches_syn_ack_and_rst(version: int) -> None:
    probes = [
        out(version, tcp(SPORT, 80, "S", seq=1000)),
        out(version, tcp(SPORT, 80, "S", seq=2000)),
        out(version, tcp(SPORT + 1, 80, "S", seq=0xFFFFFFFF)),
    ]
    dst, other = DST[version], OTHER[version]
    responses = [
        (10, back(version, dst, tcp(80, SPORT, "SA", seq=77, ack=1001))),
        (11, back(version, dst, tcp(80, SPORT, "RA", ack=2001))),
        (12, back(version, dst, tcp(80, SPORT + 1, "RA", ack=0))),  # seq + 1 wraps around
        (13, back(version, dst, tcp(80, SPORT, "SA", ack=1002))),  # wrong ack
        (14, back(version, dst, tcp(SPORT, 80, "SA", ack=1001))),  # ports not swapped
        (15, back(version, other, tcp(80, SPORT, "SA", ack=1001))),  # another host
        (16, back(version, dst, tcp(80, SPORT, "S", ack=1001))),  # a SYN, no ACK
    ]
    results = match_responses(probes, [1, 2, 3], responses, TIMEOUT)
    assert [m.received_ns for m in results] == [10, 11, 12]
    assert [m.duplicates for m in results] == [0, 0, 0]


def test_rst_to_a_tcp_ack_probe_matches_by_its_seq() -> None:
    probe = out(4, tcp(SPORT, 80, "A", seq=5, ack=5555))
    responses = [(5, back(4, DST[4], tcp(80, SPORT, "R", seq=seq))) for seq in (5556, 5555)]
    responses[1] = (6, responses[1][1])
    assert match_responses([probe], [0], responses, TIMEOUT)[0].received_ns == 6


def test_udp_replies_answer_the_earliest_unanswered_probe_of_the_flow() -> None:
    probes = [out(4, udp(SPORT, 53, bytes([n]))) for n in range(3)]
    answer = back(4, DST[4], udp(53, SPORT, b"a"))
    responses = [
        (1 * MS, answer),  # probe 0
        (12 * MS, answer),  # probe 1
        (13 * MS, answer),  # 0 and 1 answered, 2 not sent yet: a duplicate of 1
        (14 * MS, back(4, DST[4], udp(54, SPORT))),  # another port
        (15 * MS, back(4, OTHER[4], udp(53, SPORT))),  # another host
        (25 * MS, answer),  # probe 2
    ]
    results = match_responses(probes, [0, 10 * MS, 20 * MS], responses, TIMEOUT)
    assert [m.received_ns for m in results] == [1 * MS, 12 * MS, 25 * MS]
    assert [m.duplicates for m in results] == [0, 1, 0]


@pytest.mark.parametrize("version", [4, 6])
def test_unrelated_traffic_matches_nothing(version: int) -> None:
    probes = paris(version, "udp", 3) + paris(version, "tcp", 1) + paris(version, "icmp", 1)
    dst, hop = DST[version], router(version, 1)
    not_ours = [
        out(version, udp(SPORT, DPORT, b"\x09\x00"), ttl=1),  # another checksum
        out(version, udp(SPORT, DPORT + 1, b"\x01\x00"), ttl=1),  # another port
        out(version, udp(SPORT + 1, DPORT, b"\x01\x00"), ttl=1),
        out(version, tcp(SPORT, DPORT, "S", seq=999), ttl=1),  # another sequence number
        out(version, echo_request(version, IDENT, 99) / b"paris", ttl=1),
        paris(version, "udp", 1, dst=OTHER[version])[0],  # the same flow to another host
        raw(ip(version, OTHER[version], dst, ttl=1) / udp(SPORT, DPORT, b"\x01\x00")),
    ]
    unrelated = [error(version, hop, packet) for packet in not_ours]
    probe = paris(version, "udp", 1)[0]
    unrelated += [
        back(version, dst, udp(DPORT, SPORT + 1)),
        back(version, dst, tcp(DPORT, SPORT, "SA", ack=2)),
        back(version, dst, echo_reply(version, IDENT, 1)),  # probe 0's ident is IDENT - 1
        b"\x00" * 60,
        b"\x45",
        # quotes too short to say which probe: the IP header and 2 bytes
        error(version, hop, probe, quote=22) if version == 4 else error(version, hop, probe)[:-8],
    ]
    if version == 6:
        unrelated.append(raw(s6.IPv6(src="fe80::1", dst=ME[6]) / s6.ICMPv6ND_NS(tgt=ME[6])))
    else:
        unrelated.append(back(4, hop, si.ICMP(type=9)))  # a router advertisement
    results = match_responses(probes, [0] * len(probes), [(5, u) for u in unrelated], TIMEOUT)
    assert results == [Match() for _ in probes]


def test_fragments_of_a_response_are_not_read() -> None:
    probe = paris(4, "udp", 1)[0]
    later = bytearray(error(4, DST[4], probe))
    later[6:8] = (0x0001).to_bytes(2, "big")  # fragment offset 8: the bytes are not a header
    assert match_responses([probe], [0], [(5, bytes(later))], TIMEOUT) == [Match()]


def test_duplicates_count_and_the_first_response_wins() -> None:
    probes = paris(4, "udp", 2)
    te = error(4, router(4, 1), probes[0])
    again = error(4, router(4, 9), probes[0])  # the same quote from elsewhere
    results = match_responses(probes, [0, 0], [(30, again), (10, te), (20, te)], TIMEOUT)
    assert results[0] == Match(te, 10, router(4, 1), 2)
    assert results[1] == Match()


def test_replies_count_only_within_the_timeout_after_the_send() -> None:
    probes = paris(4, "udp", 4)
    sent = [1000, 1000, 1000, 1000]
    te = [error(4, router(4, i + 1), p) for i, p in enumerate(probes)]
    responses = [
        (1000 + TIMEOUT, te[0]),  # the last moment: matches
        (1000 + TIMEOUT + 1, te[1]),  # late
        (1000, te[2]),  # at the send time: not after it
        (999, te[3]),  # before the send
    ]
    results = match_responses(probes, sent, responses, TIMEOUT)
    assert matched(results) == [router(4, 1), None, None, None]


def test_a_late_reply_is_neither_a_match_nor_a_duplicate() -> None:
    probe = paris(4, "icmp", 1)
    reply = raw(si.IP(src=DST[4], dst=ME[4]) / si.ICMP(type=0, id=IDENT - 1, seq=1) / b"paris")
    results = match_responses(probe, [0], [(5, reply), (TIMEOUT + 1, reply)], TIMEOUT)
    assert results[0].received_ns == 5 and results[0].duplicates == 0


def test_unsent_probes_match_nothing() -> None:
    probes = paris(4, "udp", 3)
    responses = [(50, error(4, router(4, i + 1), p)) for i, p in enumerate(probes)]
    results = match_responses(probes, [0, None, 0], responses, TIMEOUT)
    assert matched(results) == [router(4, 1), None, router(4, 3)]
    assert [m.duplicates for m in results] == [0, 0, 0]


def test_an_older_response_fed_late_still_matches() -> None:
    probes = paris(4, "udp", 2)
    matcher = TrainMatcher(probes, [0, 100], 1000)
    assert matcher.feed(900, error(4, router(4, 2), probes[1])) == 1
    assert matcher.feed(500, error(4, router(4, 1), probes[0])) == 0  # older than the last
    assert matcher.feed(1050, error(4, router(4, 1), probes[0])) is None  # too late for probe 0
    assert matcher.feed(1020, error(4, router(4, 1), probes[0])) is None  # older, still too late
    assert matcher.feed(950, error(4, router(4, 1), probes[0])) == 0  # older, a duplicate
    assert matcher.answered == 2 and [m.received_ns for m in matcher.results] == [500, 900]
    assert [m.duplicates for m in matcher.results] == [1, 0]


def test_link_layer_padding_is_not_read_as_quoted_bytes() -> None:
    # a UDP probe without a checksum (0), quoted only up to its ports: which probe it was is
    # unknown, even when the frame was padded with zero bytes past the IP packet
    probe = raw(si.IP(src=ME[4], dst=DST[4]) / si.UDP(sport=SPORT, dport=DPORT, chksum=0))
    short = error(4, router(4, 1), probe, quote=24)
    assert match_responses([probe], [0], [(5, short + bytes(32))], TIMEOUT) == [Match()]
    assert match_responses([probe], [0], [(5, error(4, router(4, 1), probe))], TIMEOUT)[0].response


def test_malformed_probes_match_nothing_and_bad_arguments_are_refused() -> None:
    probe = paris(4, "udp", 1)[0]
    results = match_responses(
        [b"junk", probe[:-1]], [0, 0], [(5, error(4, DST[4], probe))], TIMEOUT
    )
    assert results == [Match(), Match()]
    with pytest.raises(MeasurementError, match="2 probes but 1 send times"):
        match_responses([probe, probe], [0], [], TIMEOUT)
    with pytest.raises(MeasurementError, match="negative"):
        match_responses([probe], [0], [], -1)


# every probe gets exactly the responses quoting it that fall in its window -------------------

_PROBES = paris(4, "udp", 12) + paris(6, "udp", 12)
_ERRORS = [error(p[0] >> 4, router(p[0] >> 4, 1), p, quote=48) for p in _PROBES]


@settings(max_examples=200, deadline=None)
@given(
    family=st.sampled_from([4, 6]),
    timeout=st.integers(0, 50),
    plan=st.lists(
        st.tuples(st.none() | st.integers(0, 100), st.lists(st.integers(-20, 150), max_size=4)),
        min_size=1,
        max_size=12,
    ),
)
def test_each_probe_gets_the_responses_in_its_window(
    family: int, timeout: int, plan: list[tuple[int | None, list[int]]]
) -> None:
    offset = 0 if family == 4 else 12
    probes = _PROBES[offset : offset + len(plan)]
    sent = [s for s, _ in plan]
    responses = [
        ((s or 0) + d, _ERRORS[offset + i]) for i, (s, delays) in enumerate(plan) for d in delays
    ]
    random.Random(len(responses)).shuffle(responses)
    results = match_responses(probes, sent, responses, timeout)
    for (s, delays), m in zip(plan, results, strict=True):
        inside = sorted(s + d for d in delays if 0 < d <= timeout) if s is not None else []
        assert m.received_ns == (inside[0] if inside else None)
        assert m.duplicates == max(0, len(inside) - 1)
        assert (m.response is None) == (not inside)


# the direct read of an ICMP error agrees with quoted_probe ----------------------------------


@pytest.mark.parametrize("proto", ["udp", "tcp", "icmp", "reply", "echo", "gre"])
@pytest.mark.parametrize("version", [4, 6])
@settings(max_examples=15, deadline=None)
@given(
    fields=st.tuples(*[st.integers(0, 0xFFFF)] * 4),
    seq=st.integers(0, 0xFFFFFFFF),
    quote=st.integers(0, 80),
    unreach=st.booleans(),
)
def test_reading_an_error_directly_agrees_with_quoted_probe(
    version: int, proto: str, fields: tuple[int, int, int, int], seq: int, quote: int, unreach: bool
) -> None:
    a, b, c, ident = fields
    layer: Any = {
        "udp": si.UDP(sport=a, dport=b) / bytes([c & 0xFF] * 3),
        "tcp": si.TCP(sport=a, dport=b, seq=seq, flags="S"),
        "icmp": (si.ICMP(type=13) if version == 4 else s6.ICMPv6ND_NS(tgt=ME[6])) / b"t",
        "reply": echo_reply(version, a, b) / b"r",
        "echo": echo_request(version, a, b) / b"e",
        "gre": si.GRE(proto=0x800),
    }[proto]
    extra = {"id": ident} if version == 4 else {}
    probe = raw(ip(version, ME[version], DST[version], ttl=2, **extra) / layer)
    response = error(
        version, router(version, 1), probe, kind="unreach" if unreach else "ttl", quote=quote
    )
    assert response_keys(response) == _error_keys_quoted(response)
