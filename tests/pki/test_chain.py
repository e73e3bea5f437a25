"""Chain verification: valid shapes, and one rejected chain per broken rule."""

from __future__ import annotations

import pytest
from certmint import NOW, Spec, World, kid, mint, raw

from packetlab import pki

# helpers ---------------------------------------------------------------------------------


def controller(certs: list[bytes], w: World, **kw: object) -> pki.VerifiedChain:
    kw.setdefault("peer_key", raw(w.xc))
    return pki.verify_controller_chain(certs, [w.eop.public_key()], now=NOW, **kw)  # type: ignore[arg-type]


def delpriv(w: World, signer, subject, del_type="exppriv", **kw) -> bytes:  # type: ignore[no-untyped-def]
    return mint(Spec("delpriv", signer, subject, del_type=del_type, **kw))


def two_level(w: World, exp_kw=None, mid_kw=None, mid_del="exppriv"):  # type: ignore[no-untyped-def]
    """exppriv(eop -> exper) -> delpriv(exper -> mid) -> pubcmd(mid -> xc)."""
    mid = pki.generate_private_key()
    return [
        mint(Spec("pubcmd", mid, w.xc)),
        delpriv(w, w.exper, mid, del_type=mid_del, **(mid_kw or {})),
        w.exppriv(**(exp_kw or {})),
    ]


# valid chains ---------------------------------------------------------------------------


def test_controller_chain_in_any_order_gives_leaf_first() -> None:
    w = World()
    pub, exp = w.pubcmd(), w.exppriv()
    for order in ([pub, exp], [exp, pub]):
        verified = controller(order, w)
        assert [c.cert_type for c in verified.certs] == [pki.CertType.PUBCMD, pki.CertType.EXPPRIV]
        assert verified.root_key == raw(w.eop)
        assert verified.leaf_key == raw(w.xc)
        assert verified.root_key_id == kid(w.eop)


def test_delegation_chain_narrows_limits_and_unions_programs() -> None:
    w = World()
    digest_a, digest_b = bytes(range(32)), bytes(range(1, 33))
    chain = two_level(
        w,
        exp_kw={
            "limits": f"max_send_pkt=100;valid_dest=198.18.0.0/15;monitor={digest_a.hex()};"
            "max_burst_rate_pkt=10/1000000000;src_ip_spoofing=1;",
            "path_len": 1,
        },
        mid_kw={
            "limits": f"max_send_pkt=50;valid_dest=198.18.1.0/24;monitor={digest_b.hex()};"
            "max_burst_rate_pkt=100/60000000000;src_ip_spoofing=0;max_recv_pkt=7;"
        },
    )
    limits = controller(chain, w).limits
    assert limits.max_send_pkt == 50
    assert limits.max_recv_pkt == 7
    assert [str(n) for n in limits.valid_dest or ()] == ["198.18.1.0/24"]
    assert limits.monitor == (digest_a, digest_b)
    assert {str(r) for r in limits.max_burst_rate_pkt} == {"10/1000000000", "100/60000000000"}
    assert limits.src_ip_spoofing is False


def test_delegation_that_sets_nothing_inherits_the_signers_limits() -> None:
    w = World()
    chain = two_level(w, exp_kw={"limits": "max_send_byte=1000;"})
    assert controller(chain, w).limits.max_send_byte == 1000


def test_optional_unknown_limit_is_ignored() -> None:
    w = World()
    verified = controller([w.pubcmd(), w.exppriv(limits="*future_limit=abc;max_send_pkt=3;")], w)
    assert verified.limits.max_send_pkt == 3
    assert [u.name for u in verified.limits.unknown] == ["future_limit"]


def test_validity_bounds_are_inclusive() -> None:
    w = World()
    chain = [w.pubcmd(not_before=NOW), w.exppriv(not_after=NOW)]
    assert controller(chain, w).leaf.not_before == NOW


def test_endpoint_chain_with_reppriv_delegation() -> None:
    w = World()
    op2 = pki.generate_private_key()
    chain = [
        mint(Spec("subcmd", op2, w.ep)),
        mint(Spec("delpriv", w.eop, op2, del_type="exppriv,reppriv", path_len=0)),
    ]
    verified = pki.verify_endpoint_chain(chain, [w.eop.public_key()], now=NOW, peer_key=raw(w.ep))
    assert verified.root_key == raw(w.eop)
    assert verified.limits == pki.Limits.NONE


def test_endpoint_chain_without_trusted_keys_is_not_pinned() -> None:
    w = World()
    verified = pki.verify_endpoint_chain([w.subcmd()], None, now=NOW)
    assert verified.root_key is None


def test_agent_self_signed_and_trusted_signed() -> None:
    w = World()
    own = mint(Spec("agent", w.xc, w.xc))
    assert pki.verify_agent_cert([own], now=NOW, peer_key=raw(w.xc)).leaf_key == raw(w.xc)
    bop = pki.generate_private_key()
    signed = mint(Spec("agent", bop, w.xc))
    verified = pki.verify_agent_cert([signed], [bop.public_key()], now=NOW)
    assert verified.root_key == pki.raw_public_key(bop)


def test_legacy_chain_verifies_only_when_allowed() -> None:
    w = World()
    chain = [
        mint(Spec("pubcmd", w.exper, w.xc, v0=True)),
        mint(Spec("exppriv", w.eop, w.exper, v0=True)),
    ]
    with pytest.raises(pki.LegacyFormat):
        controller(chain, w)
    verified = controller(chain, w, allow_legacy=True)
    assert all(c.format is pki.CertFormat.V0 for c in verified.certs)


def test_signature_cache_skips_only_identical_bytes() -> None:
    w = World()
    cache = pki.SignatureCache(max_entries=4)
    chain = [w.pubcmd(), w.exppriv()]
    controller(chain, w, cache=cache)
    controller(chain, w, cache=cache)
    assert (cache.misses, cache.hits) == (2, 2)
    tampered = bytearray(chain[0])
    tampered[-1] ^= 1
    with pytest.raises(pki.BadSignature):
        controller([bytes(tampered), chain[1]], w, cache=cache)
    for _ in range(3):  # bounded
        controller([w.pubcmd(), w.exppriv()], w, cache=cache)
    assert len(cache) <= 4


# invalid chains: one broken rule each ------------------------------------------------------


def _tamper_signature(der: bytes) -> bytes:
    data = bytearray(der)
    data[-5] ^= 0x40
    return bytes(data)


def _loop(w: World) -> list[bytes]:
    a, b = pki.generate_private_key(), pki.generate_private_key()
    return [
        mint(Spec("delpriv", a, b, del_type="exppriv")),
        mint(Spec("delpriv", b, a, del_type="exppriv")),
    ]


def _middle(w: World, middle_type: str) -> list[bytes]:
    """pubcmd(mid -> xc) -> MIDDLE_TYPE(exper -> mid) -> exppriv: wrong type in the middle."""
    mid = pki.generate_private_key()
    return [mint(Spec("pubcmd", mid, w.xc)), mint(Spec(middle_type, w.exper, mid)), w.exppriv()]


def _duplicate(w: World) -> list[bytes]:
    pub = w.pubcmd()
    return [pub, w.exppriv(), pub]


INVALID_CONTROLLER_CHAINS = {
    "wrong signer (AKI names a stranger)": (
        lambda w: [w.pubcmd(signer=w.stranger), w.exppriv()],
        pki.WrongSigner,
    ),
    "wrong signer (right AKI, stranger's signature)": (
        lambda w: [w.pubcmd(signer=w.stranger, aki=kid(w.exper)), w.exppriv()],
        pki.BadSignature,
    ),
    "expired exppriv": (
        lambda w: [w.pubcmd(), w.exppriv(not_after=NOW - 1)],
        pki.CertificateExpired,
    ),
    "pubcmd not yet valid": (
        lambda w: [w.pubcmd(not_before=NOW + 1), w.exppriv()],
        pki.CertificateNotYetValid,
    ),
    "exppriv as leaf": (lambda w: [w.exppriv()], pki.ExpprivAsLeaf),
    "missing exppriv": (lambda w: [w.pubcmd()], pki.MissingExppriv),
    "top is a delpriv, not exppriv": (
        lambda w: [w.pubcmd(), delpriv(w, w.eop, w.exper)],
        pki.MissingExppriv,
    ),
    "subcmd at the leaf": (
        lambda w: [mint(Spec("subcmd", w.exper, w.xc)), w.exppriv()],
        pki.WrongCertType,
    ),
    "agent cert in the middle": (lambda w: _middle(w, "agent"), pki.WrongCertType),
    "exppriv in the middle": (lambda w: _middle(w, "exppriv"), pki.WrongCertType),
    "pathLen exceeded": (lambda w: two_level(w, exp_kw={"path_len": 0}), pki.PathLenExceeded),
    "delpriv with del_type reppriv": (lambda w: two_level(w, mid_del="reppriv"), pki.WrongDelType),
    "widened count limit": (
        lambda w: two_level(
            w, exp_kw={"limits": "max_send_pkt=10;"}, mid_kw={"limits": "max_send_pkt=11;"}
        ),
        pki.LimitWidened,
    ),
    "widened valid_dest": (
        lambda w: two_level(
            w,
            exp_kw={"limits": "valid_dest=198.18.0.0/24;"},
            mid_kw={"limits": "valid_dest=198.18.0.0/23;"},
        ),
        pki.LimitWidened,
    ),
    "spoofing turned on by a delegation": (
        lambda w: two_level(
            w, exp_kw={"limits": "src_ip_spoofing=0;"}, mid_kw={"limits": "src_ip_spoofing=1;"}
        ),
        pki.LimitWidened,
    ),
    "widened burst rate over the same window": (
        lambda w: two_level(
            w,
            exp_kw={"limits": "max_burst_rate_pkt=5/1000;"},
            mid_kw={"limits": "max_burst_rate_pkt=6/1000;"},
        ),
        pki.LimitWidened,
    ),
    "unknown non-optional limit": (
        lambda w: [w.pubcmd(), w.exppriv(limits="max_teleport_km=3;")],
        pki.UnknownLimit,
    ),
    "tampered signature": (
        lambda w: [w.pubcmd(), _tamper_signature(w.exppriv())],
        pki.BadSignature,
    ),
    "duplicate certificate": (_duplicate, pki.DuplicateCertificate),
    "AKI/SKI loop": (_loop, pki.ChainLoop),
    "untrusted root": (
        lambda w: [w.pubcmd(), mint(Spec("exppriv", w.stranger, w.exper))],
        pki.UntrustedRoot,
    ),
    "unlinked extra certificate": (
        lambda w: [w.pubcmd(), w.exppriv(), w.subcmd()],
        pki.BrokenChain,
    ),
    "exppriv without keyCertSign": (
        lambda w: [w.pubcmd(), w.exppriv(key_cert_sign=False)],
        pki.ProfileViolation,
    ),
    "pubcmd marked CA": (lambda w: [w.pubcmd(is_ca=True), w.exppriv()], pki.ProfileViolation),
    "SubjectKeyIdentifier not the subject's key id": (
        lambda w: [w.pubcmd(ski=bytes(32)), w.exppriv()],
        pki.ProfileViolation,
    ),
    "cert_info not critical": (
        lambda w: [w.pubcmd(info_critical=False), w.exppriv()],
        pki.ProfileViolation,
    ),
    "limits on a pubcmd": (
        lambda w: [w.pubcmd(limits="max_send_pkt=1;"), w.exppriv()],
        pki.ProfileViolation,
    ),
    "unrecognised critical extension": (
        lambda w: [w.pubcmd(extra=[("1.2.3.99", b"\x04\x00", True)]), w.exppriv()],
        pki.ProfileViolation,
    ),
    "no AuthorityKeyIdentifier": (
        lambda w: [w.pubcmd(omit_aki=True), w.exppriv()],
        pki.ProfileViolation,
    ),
    "v0.x certificate": (
        lambda w: [w.pubcmd(), mint(Spec("exppriv", w.eop, w.exper, v0=True))],
        pki.LegacyFormat,
    ),
    "two certificates for one subject key": (
        lambda w: [w.pubcmd(), w.exppriv(), w.exppriv(not_after=NOW + 10)],
        pki.BrokenChain,
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID_CONTROLLER_CHAINS))
def test_invalid_controller_chain_is_rejected_with_its_rule(case: str) -> None:
    make, error = INVALID_CONTROLLER_CHAINS[case]
    w = World()
    with pytest.raises(pki.ChainError) as info:
        controller(make(w), w)
    assert type(info.value) is error, f"{case}: got {type(info.value).__name__}: {info.value}"
    # every error names the certificate it is about (or the chain) and the rule it broke
    assert info.value.cert_label
    assert f"[rule: {error.rule}]" in str(info.value)


def test_leaf_key_not_the_peers_key() -> None:
    w = World()
    with pytest.raises(pki.PeerKeyMismatch):
        controller([w.pubcmd(), w.exppriv()], w, peer_key=raw(w.stranger))


def test_empty_chain() -> None:
    with pytest.raises(pki.EmptyChain):
        pki.verify_controller_chain([], [], now=NOW)


def test_distinct_invalid_cases_cover_at_least_twenty_rules() -> None:
    assert len(INVALID_CONTROLLER_CHAINS) >= 20
    rules = {error.rule for _, error in INVALID_CONTROLLER_CHAINS.values()}
    assert len(rules) >= 15


def test_endpoint_chain_rejects_exppriv_delegation() -> None:
    w = World()
    op2 = pki.generate_private_key()
    chain = [mint(Spec("subcmd", op2, w.ep)), mint(Spec("delpriv", w.eop, op2, del_type="exppriv"))]
    with pytest.raises(pki.WrongDelType):
        pki.verify_endpoint_chain(chain, [w.eop.public_key()], now=NOW)


def test_endpoint_chain_rejects_pubcmd_leaf() -> None:
    w = World()
    with pytest.raises(pki.WrongCertType):
        pki.verify_endpoint_chain(
            [mint(Spec("pubcmd", w.eop, w.ep))], [w.eop.public_key()], now=NOW
        )


def test_agent_rules() -> None:
    w = World()
    bop = pki.generate_private_key()
    signed = mint(Spec("agent", bop, w.xc))
    with pytest.raises(pki.UntrustedRoot):  # no trusted key: must be self-signed
        pki.verify_agent_cert([signed], now=NOW)
    own = mint(Spec("agent", w.xc, w.xc))
    with pytest.raises(pki.UntrustedRoot):  # a root is configured: self-signed is not enough
        pki.verify_agent_cert([own], [bop.public_key()], now=NOW)
    with pytest.raises(pki.WrongCertType):
        pki.verify_agent_cert([w.pubcmd()], [w.exper.public_key()], now=NOW)
