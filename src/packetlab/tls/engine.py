"""A TLS connection over memory buffers: bytes from the network in, plaintext out, and back.

The asyncio shells move bytes; this engine does the TLS work and, once the handshake is done,
verifies the peer's pktlab chain before any application data is handed up.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from OpenSSL import SSL

from packetlab.pki import ChainError, PkiError, VerifiedChain

PeerVerifier = Callable[[list[bytes], bytes, str | None], VerifiedChain]
"""(peer chain DERs, peer's raw Ed25519 key proven in the handshake, SNI) -> verified chain."""


class TlsError(Exception):
    """The TLS layer failed (handshake, record, or closed connection)."""


class PeerVerificationError(TlsError):
    """The peer's pktlab chain does not verify; ``chain_error`` says which rule it broke."""

    def __init__(self, message: str, chain_error: Exception | None = None) -> None:
        super().__init__(message)
        self.chain_error = chain_error


class TlsEngine:
    __slots__ = ("_conn", "_verifier", "peer", "peer_closed", "sni")

    def __init__(
        self,
        context: SSL.Context,
        *,
        server: bool,
        verifier: PeerVerifier,
        sni: str | None = None,
    ) -> None:
        self._conn = SSL.Connection(context, None)
        self._verifier = verifier
        self.peer: VerifiedChain | None = None
        self.peer_closed = False
        self.sni: str | None = sni
        if server:
            self._conn.set_accept_state()
        else:
            if sni:
                self._conn.set_tlsext_host_name(sni.encode("ascii"))
            self._conn.set_connect_state()

    @property
    def protocol(self) -> str:
        """The negotiated TLS version, e.g. "TLSv1.3"."""
        return str(self._conn.get_protocol_version_name())

    @property
    def handshake_done(self) -> bool:
        return self.peer is not None

    def start(self) -> None:
        """Begin the handshake (the client's ClientHello goes to data_to_send)."""
        self._handshake()

    def _handshake(self) -> None:
        try:
            self._conn.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as exc:
            raise TlsError(f"TLS handshake failed: {exc}") from None
        self._verify_peer()

    def _verify_peer(self) -> None:
        leaf = self._conn.get_peer_certificate(as_cryptography=True)
        if leaf is None:
            raise PeerVerificationError("the peer sent no certificate")
        key = leaf.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise PeerVerificationError("the peer's TLS key is not Ed25519")
        chain = self._conn.get_peer_cert_chain(as_cryptography=True) or []
        ders = [leaf.public_bytes(Encoding.DER)]
        ders += [
            c.public_bytes(Encoding.DER) for c in chain if c.public_bytes(Encoding.DER) != ders[0]
        ]
        raw_key = key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        server_name = self._conn.get_app_data()
        if isinstance(server_name, str):
            self.sni = server_name
        try:
            self.peer = self._verifier(ders, raw_key, self.sni)
        except ChainError as exc:
            raise PeerVerificationError(f"peer chain rejected: {exc}", exc) from None
        except PkiError as exc:
            raise PeerVerificationError(f"peer chain unreadable: {exc}", exc) from None

    def receive(self, data: bytes) -> bytes:
        """Feed bytes from the network; returns the plaintext now available (may be b"")."""
        if data:
            self._conn.bio_write(data)
        if not self.handshake_done:
            self._handshake()
            if not self.handshake_done:
                return b""
        out = bytearray()
        while True:
            try:
                chunk = self._conn.recv(65536)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.peer_closed = True  # close_notify: what came before it is still returned
                break
            except SSL.Error as exc:
                raise TlsError(f"TLS record error: {exc}") from None
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def send(self, plaintext: bytes) -> None:
        if not self.handshake_done:
            raise TlsError("handshake not complete")
        view = memoryview(plaintext)
        while view:
            sent = self._conn.send(view[:16384].tobytes())
            view = view[sent:]

    def data_to_send(self) -> bytes:
        out = bytearray()
        while True:
            try:
                chunk = self._conn.bio_read(65536)
            except SSL.WantReadError:
                break
            if not chunk:
                break
            out += chunk
        return bytes(out)

    def close(self) -> None:
        with contextlib.suppress(SSL.Error):
            self._conn.shutdown()
