"""Chain verification, one function per mode of reference section 6.4.

Theory of operation. A chain arrives as an unordered bag of certificates (TLS peers and users
give them in any order). We

1. reject an empty bag and byte-identical duplicates;
2. order it leaf-first by following each certificate's AuthorityKeyIdentifier to the certificate
   whose subject key hashes to it (AKI -> SKI), detecting loops, unlinked certificates and
   signers that are neither in the chain nor trusted;
3. refuse v0.x certificates unless asked not to;
4. check each certificate against the profile (KeyUsage, BasicConstraints, key identifiers,
   criticality, limits only where they may appear);
5. check the type at each position and the delegation types:
     controller chain (an endpoint checks its controller): pubcmd -> delpriv[exppriv]* -> exppriv
     endpoint chain (a controller checks an endpoint):     subcmd -> delpriv[reppriv]*
     agent (broker and proxy connections):                 one agent certificate
6. check the signatures, the top one against a trusted key (or, for agents without trusted
   keys, the certificate's own key: self-signed);
7. check validity at ``now`` (Unix seconds), pathLen, unknown non-optional limits, and compute
   the effective limits top-down (a delegation narrows, never widens);
8. bind the leaf's subject key to the peer's key when one is given.

The first broken rule raises its :class:`ChainError` subclass, naming the certificate.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from nacl.exceptions import BadSignatureError
from nacl.signing import VerifyKey

from packetlab.pki._errors import (
    BadSignature,
    BrokenChain,
    CertificateExpired,
    CertificateNotYetValid,
    ChainLoop,
    DuplicateCertificate,
    EmptyChain,
    ExpprivAsLeaf,
    LegacyFormat,
    LimitWidened,
    MissingExppriv,
    PathLenExceeded,
    PeerKeyMismatch,
    ProfileViolation,
    UnknownLimit,
    UntrustedRoot,
    WrongCertType,
    WrongDelType,
    WrongSigner,
)
from packetlab.pki.builder import can_carry_limits
from packetlab.pki.certificate import CertFormat, PktlabCert, parse_certificate
from packetlab.pki.info import CertType, DelType
from packetlab.pki.keys import Ed25519PublicKey, key_id, raw_public_key
from packetlab.pki.limits import Limits, LimitWidening, narrow


class ChainMode(enum.Enum):
    CONTROLLER = "controller"
    """An endpoint checks its controller: pubcmd -> delpriv[exppriv]* -> exppriv -> EOp key."""
    ENDPOINT = "endpoint"
    """A controller checks an endpoint: subcmd -> delpriv[reppriv]* -> EOp key."""
    AGENT = "agent"
    """Broker/proxy connections: one agent cert, self-signed or signed by a trusted key."""


KeyLike = Ed25519PublicKey | bytes


class TrustAnchors:
    """Trusted Ed25519 keys, looked up by key ID (SHA-256 of the raw key)."""

    __slots__ = ("_by_id",)

    def __init__(self, keys: Iterable[KeyLike] = ()) -> None:
        self._by_id: dict[bytes, bytes] = {}
        for key in keys:
            raw = key if isinstance(key, bytes) else raw_public_key(key)
            self._by_id[key_id(raw)] = raw

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, kid: bytes | None) -> bytes | None:
        return self._by_id.get(kid) if kid is not None else None


class SignatureCache:
    """Remembers which (signer key, exact certificate bytes) pairs have verified.

    An endpoint sees the same controller chain at every session; re-checking the same Ed25519
    signature over the same bytes is the dominant cost. The key is the full DER (which holds
    both the signed bytes and the signature) plus the signer's raw key, so a hit is a fact, not
    a guess. Everything else (order, types, validity at ``now``, limits, peer) is checked every
    time. Bounded; the oldest entries go first.
    """

    __slots__ = ("_max_entries", "_verified", "hits", "misses")

    def __init__(self, max_entries: int = 4096) -> None:
        self._max_entries = max_entries
        self._verified: dict[tuple[bytes, bytes], None] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._verified)

    def known_good(self, signer_key: bytes, der: bytes) -> bool:
        if (signer_key, der) in self._verified:
            self.hits += 1
            return True
        self.misses += 1
        return False

    def remember(self, signer_key: bytes, der: bytes) -> None:
        if len(self._verified) >= self._max_entries:
            del self._verified[next(iter(self._verified))]
        self._verified[(signer_key, der)] = None


@dataclass(frozen=True, slots=True)
class VerifiedChain:
    """A chain that passed every rule."""

    mode: ChainMode
    certs: tuple[PktlabCert, ...]
    """Leaf first."""
    root_key: bytes | None
    """Raw key of the trusted signer of the top certificate (None: not pinned)."""
    limits: Limits
    """Effective limits (controller chains); Limits.NONE otherwise."""

    @property
    def leaf(self) -> PktlabCert:
        return self.certs[0]

    @property
    def leaf_key(self) -> bytes:
        return self.certs[0].subject_key

    @property
    def root_key_id(self) -> bytes | None:
        return self.certs[-1].authority_key_id


_LEAF_TYPES = {
    ChainMode.CONTROLLER: CertType.PUBCMD,
    ChainMode.ENDPOINT: CertType.SUBCMD,
    ChainMode.AGENT: CertType.AGENT,
}


def _label(index: int, cert: PktlabCert) -> str:
    return f"certificate #{index} {cert.label()}"


def _parse_all(certs: Sequence[PktlabCert | bytes]) -> list[PktlabCert]:
    return [c if isinstance(c, PktlabCert) else parse_certificate(c) for c in certs]


def _check_duplicates(certs: list[PktlabCert]) -> None:
    seen: dict[bytes, int] = {}
    for index, cert in enumerate(certs):
        first = seen.setdefault(cert.der, index)
        if first != index:
            raise DuplicateCertificate(
                f"is given twice (also input #{first})",
                cert_index=index,
                cert_label=f"input certificate #{index} {cert.label()}",
            )


def _order(certs: list[PktlabCert], trust: TrustAnchors, mode: ChainMode) -> list[PktlabCert]:
    """Leaf-first order by AKI -> SKI."""
    by_ski: dict[bytes, PktlabCert] = {}
    for index, cert in enumerate(certs):
        ski = cert.computed_subject_key_id
        if ski in by_ski:
            raise BrokenChain(
                "certifies the same subject key as another certificate in the chain; "
                "the chain is ambiguous",
                cert_index=index,
                cert_label=f"input certificate #{index} {cert.label()}",
            )
        if cert.authority_key_id is None:
            raise ProfileViolation(
                "has no AuthorityKeyIdentifier, so it cannot be placed in a chain",
                cert_index=index,
                cert_label=f"input certificate #{index} {cert.label()}",
            )
        by_ski[ski] = cert

    def signer_in_chain(cert: PktlabCert) -> PktlabCert | None:
        aki = cert.authority_key_id
        if aki == cert.computed_subject_key_id:
            return None  # self-signed: a top
        return by_ski.get(aki)  # type: ignore[arg-type]

    referenced = {id(s) for c in certs if (s := signer_in_chain(c)) is not None}
    leaves = [c for c in certs if id(c) not in referenced]
    if not leaves:
        raise ChainLoop(
            "the certificates' AuthorityKeyIdentifier -> SubjectKeyIdentifier links form a "
            "loop; no certificate is a leaf",
            cert_label=f"chain of {len(certs)} certificates",
        )
    preferred = [c for c in leaves if c.cert_type is _LEAF_TYPES[mode]]
    leaf = preferred[0] if preferred else leaves[0]
    chain = [leaf]
    seen = {id(leaf)}
    current = leaf
    while (signer := signer_in_chain(current)) is not None:
        if id(signer) in seen:
            raise ChainLoop(
                "its signer link leads back into the chain (AKI/SKI loop)",
                cert_index=len(chain) - 1,
                cert_label=_label(len(chain) - 1, current),
            )
        seen.add(id(signer))
        chain.append(signer)
        current = signer
    if len(chain) == len(certs):
        return chain
    leftover = [c for c in certs if id(c) not in seen]
    top = chain[-1]
    if len(leaves) == 1:
        raise ChainLoop(
            "is part of an AuthorityKeyIdentifier/SubjectKeyIdentifier loop",
            cert_label=f"input certificate #{certs.index(leftover[0])} {leftover[0].label()}",
        )
    if not top.is_self_signed and trust.get(top.authority_key_id) is None:
        raise WrongSigner(
            f"is signed by key {_kid(top.authority_key_id)}, which is neither the subject of "
            "another certificate in the chain nor a trusted key",
            cert_index=len(chain) - 1,
            cert_label=_label(len(chain) - 1, top),
        )
    raise BrokenChain(
        "is not linked to the chain: no certificate in it is signed by its subject key",
        cert_label=f"input certificate #{certs.index(leftover[0])} {leftover[0].label()}",
    )


def _kid(kid: bytes | None) -> str:
    return kid.hex()[:16] + "…" if kid else "(none)"


def _check_profile(chain: list[PktlabCert], allow_legacy: bool) -> None:
    for index, cert in enumerate(chain):
        label = _label(index, cert)
        if cert.format is CertFormat.V0 and not allow_legacy:
            raise LegacyFormat(
                "is in the old v0.x certificate format (PacketLab <= 0.5); v1.x endpoints "
                "and controllers do not accept it",
                cert_index=index,
                cert_label=label,
            )
        if cert.profile_issues:
            raise ProfileViolation(cert.profile_issues[0], cert_index=index, cert_label=label)
        if cert.subject_key_id != cert.computed_subject_key_id:
            raise ProfileViolation(
                "SubjectKeyIdentifier is missing or is not SHA-256 of the subject key",
                cert_index=index,
                cert_label=label,
            )
        end = cert.cert_type.is_end_cert
        if cert.is_ca is None or cert.key_usage is None:
            raise ProfileViolation(
                "lacks KeyUsage or BasicConstraints", cert_index=index, cert_label=label
            )
        if end and (
            cert.is_ca
            or "digital_signature" not in cert.key_usage
            or "key_cert_sign" in cert.key_usage
        ):
            raise ProfileViolation(
                "an end certificate must be CA=false with KeyUsage digitalSignature",
                cert_index=index,
                cert_label=label,
            )
        if not end and (not cert.is_ca or "key_cert_sign" not in cert.key_usage):
            raise ProfileViolation(
                "a privilege certificate must be CA=true with KeyUsage keyCertSign",
                cert_index=index,
                cert_label=label,
            )
        if not can_carry_limits(cert.cert_type, cert.del_type) and not cert.limits.is_empty:
            raise ProfileViolation(
                "carries cert_limit, which only exppriv and delpriv(exppriv) may",
                cert_index=index,
                cert_label=label,
            )


def _check_types(chain: list[PktlabCert], mode: ChainMode) -> None:
    leaf_type = _LEAF_TYPES[mode]
    leaf = chain[0]
    if mode is ChainMode.AGENT:
        if leaf.cert_type is not CertType.AGENT:
            raise WrongCertType(
                "is not an agent certificate", cert_index=0, cert_label=_label(0, leaf)
            )
        if len(chain) != 1:
            raise WrongCertType(
                "agent authentication takes exactly one certificate",
                cert_index=1,
                cert_label=_label(1, chain[1]),
            )
        return
    if mode is ChainMode.CONTROLLER and leaf.cert_type is CertType.EXPPRIV:
        raise ExpprivAsLeaf(
            "an exppriv certificate cannot be the leaf; the controller's key must be "
            "certified by a pubcmd certificate",
            cert_index=0,
            cert_label=_label(0, leaf),
        )
    if leaf.cert_type is not leaf_type:
        raise WrongCertType(
            f"position 0 (the leaf) must be {leaf_type.label}",
            cert_index=0,
            cert_label=_label(0, leaf),
        )
    if mode is ChainMode.CONTROLLER:
        top = chain[-1]
        if len(chain) < 2 or top.cert_type is not CertType.EXPPRIV:
            raise MissingExppriv(
                "the chain has no exppriv certificate at its top (signed by the endpoint operator)",
                cert_index=len(chain) - 1,
                cert_label=_label(len(chain) - 1, top),
            )
        middle = range(1, len(chain) - 1)
        wanted, flag = "delpriv", DelType.EXPPRIV
    else:
        middle = range(1, len(chain))
        wanted, flag = "delpriv", DelType.REPPRIV
    for index in middle:
        cert = chain[index]
        if cert.cert_type is not CertType.DELPRIV:
            raise WrongCertType(
                f"position {index} must be {wanted}, not {cert.cert_type.label}",
                cert_index=index,
                cert_label=_label(index, cert),
            )
        if flag not in cert.del_type:
            raise WrongDelType(
                f"delegates {cert.del_type.label}, but this chain needs del_type {flag.label}",
                cert_index=index,
                cert_label=_label(index, cert),
            )


def _verify_signature(
    cert: PktlabCert, signer_key: bytes, index: int, cache: SignatureCache | None
) -> None:
    if cache is not None and cache.known_good(signer_key, cert.der):
        return
    try:
        VerifyKey(signer_key).verify(cert.tbs, cert.signature)
    except (BadSignatureError, ValueError):
        raise BadSignature(
            f"signature does not verify under key {_kid(key_id(signer_key))}",
            cert_index=index,
            cert_label=_label(index, cert),
        ) from None
    if cache is not None:
        cache.remember(signer_key, cert.der)


def _check_signatures(
    chain: list[PktlabCert],
    trust: TrustAnchors,
    mode: ChainMode,
    trust_any_root: bool,
    cache: SignatureCache | None,
) -> bytes | None:
    top_index = len(chain) - 1
    top = chain[top_index]
    root_key = trust.get(top.authority_key_id)
    if root_key is None:
        if mode is ChainMode.AGENT and len(trust) == 0 and top.is_self_signed:
            root_key = top.subject_key
        elif trust_any_root and len(trust) == 0:
            root_key = None
        elif mode is ChainMode.AGENT and len(trust) == 0:
            raise UntrustedRoot(
                "is not self-signed and no trusted key is configured",
                cert_index=top_index,
                cert_label=_label(top_index, top),
            )
        else:
            raise UntrustedRoot(
                f"is signed by key {_kid(top.authority_key_id)}, which is not a trusted key",
                cert_index=top_index,
                cert_label=_label(top_index, top),
            )
    for index, cert in enumerate(chain):
        signer = chain[index + 1].subject_key if index < top_index else root_key
        if signer is not None:
            _verify_signature(cert, signer, index, cache)
    return root_key


def _check_validity(chain: list[PktlabCert], now: float) -> None:
    for index, cert in enumerate(chain):
        if now < cert.not_before:
            raise CertificateNotYetValid(
                f"is not valid before {cert.not_before} (now {int(now)})",
                cert_index=index,
                cert_label=_label(index, cert),
            )
        if now > cert.not_after:
            raise CertificateExpired(
                f"expired at {cert.not_after} (now {int(now)})",
                cert_index=index,
                cert_label=_label(index, cert),
            )


def _check_path_len(chain: list[PktlabCert]) -> None:
    for index, cert in enumerate(chain):
        if cert.cert_type.is_end_cert or cert.path_len is None or index == 0:
            continue
        delegations_below = index - 1
        if delegations_below > cert.path_len:
            raise PathLenExceeded(
                f"allows {cert.path_len} further delegation(s) but {delegations_below} follow it",
                cert_index=index,
                cert_label=_label(index, cert),
            )


def _effective_limits(chain: list[PktlabCert], mode: ChainMode) -> Limits:
    for index, cert in enumerate(chain):
        for pair in cert.limits.unknown:
            if not pair.optional:
                raise UnknownLimit(
                    f"carries limit {pair.name!r}, which this endpoint does not know and which is "
                    "not marked optional ('*')",
                    cert_index=index,
                    cert_label=_label(index, cert),
                )
    if mode is not ChainMode.CONTROLLER:
        return Limits.NONE
    effective = chain[-1].limits
    for index in range(len(chain) - 2, 0, -1):
        try:
            effective = narrow(effective, chain[index].limits)
        except LimitWidening as exc:
            raise LimitWidened(
                f"widens its signer's limit {exc}",
                cert_index=index,
                cert_label=_label(index, chain[index]),
            ) from None
    return effective


def verify_chain(
    mode: ChainMode,
    certs: Sequence[PktlabCert | bytes],
    trusted: TrustAnchors | Iterable[KeyLike] | None,
    *,
    now: float,
    peer_key: KeyLike | None = None,
    allow_legacy: bool = False,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """Verify ``certs`` (any order, parsed or DER) in ``mode``; see the module docstring.

    ``trusted`` None means "no trusted key configured": agent certs must then be self-signed,
    and an endpoint chain's top signature cannot be checked (the reference's "any root").
    ``cache`` (optional) skips re-checking signatures already verified over the same bytes.
    """
    trust_any_root = trusted is None and mode is ChainMode.ENDPOINT
    trust = trusted if isinstance(trusted, TrustAnchors) else TrustAnchors(trusted or ())
    parsed = _parse_all(certs)
    if not parsed:
        raise EmptyChain("no certificate was given")
    _check_duplicates(parsed)
    chain = _order(parsed, trust, mode)
    _check_profile(chain, allow_legacy)
    _check_types(chain, mode)
    root_key = _check_signatures(chain, trust, mode, trust_any_root, cache)
    _check_validity(chain, now)
    _check_path_len(chain)
    limits = _effective_limits(chain, mode)
    if peer_key is not None:
        peer_raw = peer_key if isinstance(peer_key, bytes) else raw_public_key(peer_key)
        if chain[0].subject_key != peer_raw:
            raise PeerKeyMismatch(
                f"certifies key {_kid(chain[0].computed_subject_key_id)}, but the peer's key is "
                f"{_kid(key_id(peer_raw))}",
                cert_index=0,
                cert_label=_label(0, chain[0]),
            )
    return VerifiedChain(mode, tuple(chain), root_key, limits)


def verify_controller_chain(
    certs: Sequence[PktlabCert | bytes],
    trusted: TrustAnchors | Iterable[KeyLike],
    *,
    now: float,
    peer_key: KeyLike | None = None,
    allow_legacy: bool = False,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """ENDPOINT_AUTH_CONTROLLER: pubcmd -> delpriv[exppriv]* -> exppriv -> trusted EOp key."""
    return verify_chain(
        ChainMode.CONTROLLER,
        certs,
        trusted,
        now=now,
        peer_key=peer_key,
        allow_legacy=allow_legacy,
        cache=cache,
    )


def verify_endpoint_chain(
    certs: Sequence[PktlabCert | bytes],
    trusted: TrustAnchors | Iterable[KeyLike] | None,
    *,
    now: float,
    peer_key: KeyLike | None = None,
    allow_legacy: bool = False,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """CONTROLLER_AUTH_ENDPOINT: subcmd -> delpriv[reppriv]* -> trusted key (None: any root)."""
    return verify_chain(
        ChainMode.ENDPOINT,
        certs,
        trusted,
        now=now,
        peer_key=peer_key,
        allow_legacy=allow_legacy,
        cache=cache,
    )


def verify_agent_cert(
    certs: Sequence[PktlabCert | bytes],
    trusted: TrustAnchors | Iterable[KeyLike] | None = None,
    *,
    now: float,
    peer_key: KeyLike | None = None,
    allow_legacy: bool = False,
    cache: SignatureCache | None = None,
) -> VerifiedChain:
    """PKTLAB_AUTH_AGENT: one agent cert, self-signed (no trusted keys) or trusted-signed."""
    return verify_chain(
        ChainMode.AGENT,
        certs,
        trusted,
        now=now,
        peer_key=peer_key,
        allow_legacy=allow_legacy,
        cache=cache,
    )
