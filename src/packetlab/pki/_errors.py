"""Errors of the PKI layer.

    PkiError
    ├── PkiInputError            bad local input: something the caller or user gave is unusable
    │   ├── KeyFileError         an unreadable key (missing, malformed PEM, wrong passphrase)
    │   ├── CertificateFormatError  DER/PEM or a pktlab extension that won't parse
    │   └── NameValueError       a cert_info/cert_limit/xdescr/dattr string breaking the grammar
    └── ChainError               a certificate chain that does not verify (remote data is at fault)
        ├── EmptyChain
        ├── DuplicateCertificate
        ├── ChainLoop            AKI→SKI links form a cycle
        ├── BrokenChain          a certificate is not linked to the others
        ├── WrongSigner          its named signer is neither in the chain nor trusted
        ├── UntrustedRoot        the chain's top is signed by a key that is not trusted
        ├── BadSignature
        ├── CertificateExpired
        ├── CertificateNotYetValid
        ├── WrongCertType        a certificate of the wrong type at a position
        │   ├── ExpprivAsLeaf
        │   └── MissingExppriv
        ├── PathLenExceeded
        ├── WrongDelType
        ├── LimitWidened         a delegation widens a limit of its signer
        ├── UnknownLimit         a limit we do not understand and that is not marked optional (`*`)
        ├── PeerKeyMismatch      the leaf's subject key is not the peer's key
        ├── ProfileViolation     KeyUsage, BasicConstraints, key identifiers, algorithm, extensions
        └── LegacyFormat         a v0.x certificate where v1.x is required

Each ChainError names the certificate (its position in the ordered chain, type and subject key
ID) and the rule it broke (``rule``, a stable short string).
"""

from __future__ import annotations


class PkiError(Exception):
    """Base of every error raised by packetlab.pki."""


class PkiInputError(PkiError):
    """Local input that cannot be used (files, PEM, strings)."""


class KeyFileError(PkiInputError):
    """A key file is missing, malformed, or its passphrase is wrong."""


class CertificateFormatError(PkiInputError):
    """A certificate or CSR does not parse, or a pktlab extension is malformed."""


class NameValueError(PkiInputError):
    """A `name=value;` string (cert_info, cert_limit, xdescr, dattr) breaks the grammar."""


class ChainError(PkiError):
    """A certificate chain failed verification.

    ``rule`` is a short stable identifier of the broken rule; ``cert_index`` the position of the
    offending certificate (0 = leaf once ordered, else its index in the input), or None when the
    failure concerns the chain as a whole.
    """

    rule = "chain"

    def __init__(
        self, message: str, *, cert_index: int | None = None, cert_label: str = ""
    ) -> None:
        self.cert_index = cert_index
        self.cert_label = cert_label
        text = f"{cert_label}: {message}" if cert_label else message
        super().__init__(f"{text} [rule: {self.rule}]")
        self.reason = message


class EmptyChain(ChainError):
    rule = "empty-chain"


class DuplicateCertificate(ChainError):
    rule = "duplicate-certificate"


class ChainLoop(ChainError):
    rule = "aki-ski-loop"


class BrokenChain(ChainError):
    rule = "unlinked-certificate"


class WrongSigner(ChainError):
    rule = "wrong-signer"


class UntrustedRoot(ChainError):
    rule = "untrusted-root"


class BadSignature(ChainError):
    rule = "bad-signature"


class CertificateExpired(ChainError):
    rule = "expired"


class CertificateNotYetValid(ChainError):
    rule = "not-yet-valid"


class WrongCertType(ChainError):
    rule = "wrong-cert-type"


class ExpprivAsLeaf(WrongCertType):
    rule = "exppriv-as-leaf"


class MissingExppriv(WrongCertType):
    rule = "missing-exppriv"


class PathLenExceeded(ChainError):
    rule = "pathlen-exceeded"


class WrongDelType(ChainError):
    rule = "wrong-del-type"


class LimitWidened(ChainError):
    rule = "limit-widened"


class UnknownLimit(ChainError):
    rule = "unknown-limit"


class PeerKeyMismatch(ChainError):
    rule = "peer-key-mismatch"


class ProfileViolation(ChainError):
    rule = "profile"


class LegacyFormat(ChainError):
    rule = "legacy-format"
