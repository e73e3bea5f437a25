"""pyOpenSSL contexts for the endpoint (TLS client) and the controller (TLS server, one
context per SNI key)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cryptography import x509
from OpenSSL import SSL

from packetlab.pki import PktlabCert
from packetlab.pki.keys import Ed25519PrivateKey

# the reference offers TLS 1.3 only: 0x1302, 0x1303, 0x1301
_TLS13_SUITES = b"TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"


@dataclass(frozen=True)
class TlsIdentity:
    """What one side shows: its private key and its pktlab chain (leaf first or any order)."""

    private_key: Ed25519PrivateKey
    chain: Sequence[PktlabCert]

    def leaf(self) -> PktlabCert:
        from packetlab.pki import key_id

        own = key_id(self.private_key)
        for cert in self.chain:
            if cert.computed_subject_key_id == own:
                return cert
        raise ValueError("no certificate in the chain certifies this private key")


def _accept_in_handshake(
    conn: SSL.Connection, cert: object, errno: int, depth: int, ok: int
) -> bool:
    """Accept any chain during the handshake; packetlab.pki judges it right after."""
    return True


def _base_context(method: int, identity: TlsIdentity) -> SSL.Context:
    ctx = SSL.Context(SSL.TLS_METHOD)
    ctx.set_min_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_max_proto_version(SSL.TLS1_3_VERSION)
    ctx.set_tls13_ciphersuites(_TLS13_SUITES)
    ctx.set_options(SSL.OP_NO_TICKET)
    ctx.use_privatekey(identity.private_key)
    leaf = identity.leaf()
    ctx.use_certificate(x509.load_der_x509_certificate(leaf.der))
    for cert in identity.chain:
        if cert.der != leaf.der:
            ctx.add_extra_chain_cert(x509.load_der_x509_certificate(cert.der))
    ctx.check_privatekey()
    ctx.set_verify(SSL.VERIFY_PEER | method, _accept_in_handshake)
    return ctx


def client_context(identity: TlsIdentity) -> SSL.Context:
    """The endpoint's context: it shows its subcmd chain and takes any server chain."""
    return _base_context(0, identity)


def server_context(
    identities: Mapping[str, TlsIdentity],
    default: str | None,
    on_unknown_sni: Callable[[str | None], None] | None = None,
) -> SSL.Context:
    """The controller's context: the certificate chain is chosen by the client's SNI.

    ``identities`` maps SNI keys to identities; ``default`` names the entry used when the
    client sends no SNI or an unknown one (None: such handshakes fail, as in the reference).
    """
    contexts = {
        sni: _base_context(SSL.VERIFY_FAIL_IF_NO_PEER_CERT, identity)
        for sni, identity in identities.items()
    }
    if default is not None and default not in contexts:
        raise ValueError(f"default entry {default!r} is not among the identities")
    first = contexts[default] if default is not None else next(iter(contexts.values()))

    def pick(conn: SSL.Connection) -> None:
        raw = conn.get_servername()
        sni = raw.decode("ascii", "replace") if raw else None
        chosen = contexts.get(sni) if sni is not None else None
        if chosen is None:
            if default is None:
                if on_unknown_sni is not None:
                    on_unknown_sni(sni)
                raise SSL.Error(f"no experiment entry for SNI {sni!r} and no default entry")
            chosen = contexts[default]
        conn.set_context(chosen)
        conn.set_app_data(sni)

    for ctx in contexts.values():
        ctx.set_tlsext_servername_callback(pick)
    return first
