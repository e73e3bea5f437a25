"""packetlab.tls: TLS 1.3 with pktlab certificate chains (layer 1, over pki).

OpenSSL cannot verify pktlab chains (critical private extensions, roots that are bare Ed25519
keys), and Python's ssl module cannot request a client certificate without verifying it. So,
as the reference does, the handshake accepts any peer chain (pyOpenSSL verify callback), and
right after it the full peer chain is verified with packetlab.pki and its leaf key bound to the
key the peer proved in the handshake, before any pktlab message is processed.
"""

from packetlab.tls.context import TlsIdentity, client_context, server_context
from packetlab.tls.engine import PeerVerificationError, TlsEngine, TlsError

__all__ = [
    "PeerVerificationError",
    "TlsEngine",
    "TlsError",
    "TlsIdentity",
    "client_context",
    "server_context",
]
