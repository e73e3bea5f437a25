"""cert_info / cert_limit strings, limit narrowing, xdescr/dattr matching, channels, snikeys."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packetlab import pki
from packetlab.pki import channels, descriptors
from packetlab.pki.info import parse_cert_info
from packetlab.pki.limits import BurstRate, LimitWidening, narrow

# cert_info ----------------------------------------------------------------------------------


def test_cert_info_round_trip_and_rules() -> None:
    info = parse_cert_info("cert_type=delpriv;del_type=exppriv,reppriv;cert_desc=a b(c);x-y=1;")
    assert info.cert_type is pki.CertType.DELPRIV
    assert info.del_type == pki.DelType.EXPPRIV | pki.DelType.REPPRIV
    assert info.description == "a b(c)"
    assert parse_cert_info(info.to_string()) == info


@pytest.mark.parametrize(
    "text",
    [
        "cert_type=exppriv",  # no trailing ';'
        "cert_desc=x;",  # no cert_type
        "cert_type=exppriv;del_type=exppriv;",  # del_type only on delpriv
        "cert_type=delpriv;",  # delpriv without del_type
        "cert_type=boss;",
        "cert_type=delpriv;del_type=exppriv,exppriv;",
        "cert_type=delpriv;del_type=everything;",
        "cert_type=exppriv;cert_type=pubcmd;",
        "cert_type=exppriv;bad name=1;",
        "cert_type=exppriv;x=semi*colon;",
    ],
)
def test_bad_cert_info_is_refused(text: str) -> None:
    with pytest.raises(pki.NameValueError):
        parse_cert_info(text)


# cert_limit ---------------------------------------------------------------------------------


def test_limits_round_trip_in_ppksman_order() -> None:
    text = (
        "*max_send_pkt=10;filter=" + "ab" * 32 + ";valid_dest=198.18.0.0/15,2001:db8::/32;"
        "max_burst_rate_byte=10/1,20/2;src_ip_spoofing=0;*zzz=1;"
    )
    limits = pki.parse_limits(text)
    assert limits.max_send_pkt == 10 and "max_send_pkt" in limits.optional
    assert limits.filter == (bytes([0xAB]) * 32,)
    assert limits.max_burst_rate_byte == (BurstRate(10, 1), BurstRate(20, 2))
    assert limits.src_ip_spoofing is False
    out = limits.to_string()
    assert out.index("filter=") < out.index("max_send_pkt=") < out.index("valid_dest=")
    assert pki.parse_limits(out) == limits


@pytest.mark.parametrize(
    "text",
    [
        "max_send_pkt=-1;",
        "max_send_pkt=ten;",
        "filter=abc;",
        "monitor=" + "zz" * 32 + ";",
        "valid_dest=10.0.0.1/8;",  # host bits set
        "valid_dest=;",
        "max_burst_rate_pkt=5;",
        "max_burst_rate_pkt=5/0;",
        "src_ip_spoofing=2;",
        "max_send_pkt=1;max_send_pkt=2;",
        "*=1;",
    ],
)
def test_bad_limits_are_refused(text: str) -> None:
    with pytest.raises(pki.NameValueError):
        pki.parse_limits(text)


counts = st.none() | st.integers(min_value=0, max_value=10**12)


@given(parent=counts, child=counts)
def test_narrowing_a_count_never_widens(parent: int | None, child: int | None) -> None:
    p = pki.Limits(max_send_byte=parent)
    c = pki.Limits(max_send_byte=child)
    if parent is not None and child is not None and child > parent:
        with pytest.raises(LimitWidening):
            narrow(p, c)
        return
    effective = narrow(p, c).max_send_byte
    allowed = [v for v in (parent, child) if v is not None]
    assert effective == (min(allowed) if allowed else None)


networks = st.builds(
    lambda addr, plen: ipaddress.ip_network((addr, plen), strict=False),
    st.integers(min_value=0, max_value=2**32 - 1),
    st.integers(min_value=8, max_value=32),
)


@given(
    parent=st.lists(networks, min_size=1, max_size=3),
    child=st.lists(networks, min_size=1, max_size=3),
)
def test_narrowed_destinations_stay_inside_the_signers(parent, child) -> None:  # type: ignore[no-untyped-def]
    p = pki.Limits(valid_dest=tuple(parent))
    c = pki.Limits(valid_dest=tuple(child))
    try:
        effective = narrow(p, c).valid_dest
    except LimitWidening:
        assert any(not any(n.subnet_of(q) for q in parent) for n in child)
        return
    assert effective is not None
    for net in effective:
        assert any(net.subnet_of(q) for q in parent)


# xdescr / dattr -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xdescr", "dattr", "match"),
    [
        ("hostid=geni-*;", "hostid=geni-us-oh-5fc8.edge-net.io;", True),
        ("hostid=geni-*;", "hostid=aws-1;", False),
        ("hostid=geni-*;", "", True),
        ("endpoint_country=USA;endpoint_country=CAN;", "endpoint_country=CAN;", True),
        ("endpoint_country=USA;", "hostid=x;", True),  # names absent from the xdescr match
        ("endpoint_location=FN3?;", "endpoint_location=FN31;", True),
        ("endpoint_location=FN3?;", "endpoint_location=FN312;", False),
        ("controller_addr=[2001:db8::1]:20556;", "controller_addr=[2001:db8::1]:20556;", True),
    ],
)
def test_xdescr_dattr_matching(xdescr: str, dattr: str, match: bool) -> None:
    assert descriptors.xdescr_matches(xdescr, dattr) is match


def test_dattr_may_not_repeat_or_hold_wildcards() -> None:
    with pytest.raises(pki.NameValueError):
        descriptors.parse_dattr("a=1;a=2;")
    with pytest.raises(pki.NameValueError):
        descriptors.parse_dattr("a=1*;")
    assert descriptors.xdescr_get("sni_key=abc;pub_end=5;", "pub_end") == "5"


@given(st.text(alphabet="ab*?", max_size=6), st.text(alphabet="ab", max_size=6))
def test_wildcards_agree_with_a_reference_matcher(pattern: str, value: str) -> None:
    def reference(p: str, v: str) -> bool:
        if not p:
            return not v
        if p[0] == "*":
            return any(reference(p[1:], v[i:]) for i in range(len(v) + 1))
        return bool(v) and (p[0] in ("?", v[0])) and reference(p[1:], v[1:])

    assert descriptors.wildcard_match(pattern, value) == reference(pattern, value)


@pytest.mark.parametrize(
    ("snikey", "ok"),
    [
        ("abc123", True),
        ("a" * 63, True),
        ("a" * 64, False),
        ("Abc", False),
        ("a-b", False),
        ("", False),
    ],
)
def test_snikey_rule(snikey: str, ok: bool) -> None:
    assert descriptors.is_valid_snikey(snikey) is ok


def test_private_channel_is_the_exppriv_aki() -> None:
    eop, exper = pki.generate_private_key(), pki.generate_private_key()
    cert = pki.build_certificate(
        cert_type=pki.CertType.EXPPRIV,
        signer=eop,
        subject=exper.public_key(),
        not_before=0,
        not_after=10,
    )
    assert channels.private_channel(eop.public_key()) == channels.publication_channel(cert)
    assert channels.subscribable_channels([cert, cert]) == [pki.key_id(eop)]
    assert channels.is_public_channel(b"x" * 31) and not channels.is_public_channel(b"x" * 32)
    assert channels.is_valid_channel(b"x" * 32) and not channels.is_valid_channel(b"")
