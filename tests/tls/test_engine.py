"""TLS 1.3 between an endpoint (client) and a controller (server) with pktlab chains, in memory."""

from __future__ import annotations

import time

import pytest

from packetlab import pki
from packetlab.tls import (
    PeerVerificationError,
    TlsEngine,
    TlsError,
    TlsIdentity,
    client_context,
    server_context,
)

FAR = 2147483647


class Principals:
    def __init__(self) -> None:
        self.eop, self.exper, self.xc, self.ep = (pki.generate_private_key() for _ in range(4))

    def cert(self, cert_type: pki.CertType, signer, subject) -> pki.PktlabCert:  # type: ignore[no-untyped-def]
        return pki.build_certificate(
            cert_type=cert_type,
            signer=signer,
            subject=subject.public_key(),
            not_before=0,
            not_after=FAR,
        )

    def controller_identity(self) -> TlsIdentity:
        return TlsIdentity(
            self.xc,
            [
                self.cert(pki.CertType.EXPPRIV, self.eop, self.exper),
                self.cert(pki.CertType.PUBCMD, self.exper, self.xc),
            ],
        )

    def endpoint_identity(self) -> TlsIdentity:
        return TlsIdentity(self.ep, [self.cert(pki.CertType.SUBCMD, self.eop, self.ep)])


def endpoint_verifier(trusted: list[pki.keys.Ed25519PublicKey]):  # type: ignore[no-untyped-def]
    """The endpoint checks the controller's chain."""
    return lambda ders, key, sni: pki.verify_controller_chain(
        ders, trusted, now=time.time(), peer_key=key
    )


def controller_verifier(trusted: list[pki.keys.Ed25519PublicKey]):  # type: ignore[no-untyped-def]
    return lambda ders, key, sni: pki.verify_endpoint_chain(
        ders, trusted, now=time.time(), peer_key=key
    )


def shuttle(client: TlsEngine, server: TlsEngine) -> tuple[bytes, bytes]:
    """Move bytes both ways until quiet; returns plaintext received by (client, server)."""
    got_c, got_s = bytearray(), bytearray()
    for _ in range(20):
        a = client.data_to_send()
        if a:
            got_s += server.receive(a)
        b = server.data_to_send()
        if b:
            got_c += client.receive(b)
        if not a and not b:
            break
    return bytes(got_c), bytes(got_s)


def connect(
    p: Principals,
    sni: str | None,
    entries: dict[str, TlsIdentity],
    default: str | None,
    trust_c=None,
    trust_e=None,
) -> tuple[TlsEngine, TlsEngine]:  # type: ignore[no-untyped-def]
    client = TlsEngine(
        client_context(p.endpoint_identity()),
        server=False,
        sni=sni,
        verifier=endpoint_verifier(trust_e or [p.eop.public_key()]),
    )
    server = TlsEngine(
        server_context(entries, default),
        server=True,
        verifier=controller_verifier(trust_c or [p.eop.public_key()]),
    )
    client.start()
    shuttle(client, server)
    return client, server


def test_mutual_pktlab_authentication_and_data() -> None:
    p = Principals()
    client, server = connect(p, "exp1", {"exp1": p.controller_identity()}, None)
    assert client.handshake_done and server.handshake_done
    assert client.protocol == server.protocol == "TLSv1.3"
    assert client.peer is not None and client.peer.leaf_key == pki.raw_public_key(p.xc)
    assert server.peer is not None and server.peer.leaf_key == pki.raw_public_key(p.ep)
    assert server.sni == "exp1"
    client.send(bytes.fromhex("40000000"))
    server.send(bytes.fromhex("21000000"))
    got_c, got_s = shuttle(client, server)
    assert (got_c, got_s) == (bytes.fromhex("21000000"), bytes.fromhex("40000000"))


def test_sni_picks_the_entry_and_default_serves_no_sni() -> None:
    p = Principals()
    other = Principals()
    entries = {"exp1": p.controller_identity(), "exp2": other.controller_identity()}
    client, _ = connect(p, None, entries, default="exp1")
    assert client.peer is not None and client.peer.leaf_key == pki.raw_public_key(p.xc)
    with pytest.raises(PeerVerificationError):  # exp2's chain is rooted at another EOp
        connect(p, "exp2", entries, default="exp1")


def test_unknown_sni_without_default_fails_the_handshake() -> None:
    p = Principals()
    with pytest.raises(TlsError):
        connect(p, "nope", {"exp1": p.controller_identity()}, default=None)


def test_untrusted_endpoint_is_refused_by_the_controller() -> None:
    p = Principals()
    stranger = pki.generate_private_key()
    with pytest.raises(PeerVerificationError) as info:
        connect(p, "exp1", {"exp1": p.controller_identity()}, None, trust_c=[stranger.public_key()])
    assert isinstance(info.value.chain_error, pki.UntrustedRoot)


def test_controller_chain_shown_as_endpoint_chain_is_refused() -> None:
    p = Principals()
    wrong = TlsIdentity(p.ep, [p.cert(pki.CertType.PUBCMD, p.eop, p.ep)])
    client = TlsEngine(
        client_context(wrong),
        server=False,
        sni="exp1",
        verifier=endpoint_verifier([p.eop.public_key()]),
    )
    server = TlsEngine(
        server_context({"exp1": p.controller_identity()}, None),
        server=True,
        verifier=controller_verifier([p.eop.public_key()]),
    )
    client.start()
    with pytest.raises(PeerVerificationError) as info:
        shuttle(client, server)
    assert isinstance(info.value.chain_error, pki.WrongCertType)
