"""A small certificate mint for tests, trustme-style: keys and certificates made per test.

It uses cryptography directly (not packetlab's builder), so tests can make any certificate,
including ones our builder refuses to make.
"""

from __future__ import annotations

import datetime
import hashlib
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, " ")])
FAR_FUTURE = 2147483647
NOW = 1_800_000_000  # a fixed "now" for tests (2027-01-15)


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def kid(key: Ed25519PrivateKey) -> bytes:
    return hashlib.sha256(raw(key)).digest()


def octet(payload: bytes) -> bytes:
    assert len(payload) < 0x80 or len(payload) < 0x100
    if len(payload) < 0x80:
        return bytes((0x04, len(payload))) + payload
    return bytes((0x04, 0x81, len(payload))) + payload


@dataclass
class Spec:
    """Everything that goes into one certificate; defaults follow the reference profile."""

    cert_type: str
    signer: Ed25519PrivateKey
    subject: Ed25519PrivateKey
    info: str | None = None  # default: cert_type=...; (+ del_type)
    del_type: str | None = None
    limits: str | None = None
    path_len: int | None = None
    not_before: int = 0
    not_after: int = FAR_FUTURE
    aki: bytes | None = None  # default: key id of signer
    ski: bytes | None = None  # default: key id of subject
    omit_aki: bool = False
    is_ca: bool | None = None  # default by type
    key_cert_sign: bool | None = None
    digital_signature: bool | None = None
    info_critical: bool = True
    extra: list[tuple[str, bytes, bool]] = field(default_factory=list)
    v0: bool = False


END_TYPES = {"subcmd", "pubcmd", "agent"}


def mint(spec: Spec) -> bytes:
    end = spec.cert_type in END_TYPES
    builder = (
        x509.CertificateBuilder()
        .serial_number(x509.random_serial_number())
        .issuer_name(NAME)
        .subject_name(NAME)
        .public_key(spec.subject.public_key())
        .not_valid_before(datetime.datetime.fromtimestamp(spec.not_before, datetime.UTC))
        .not_valid_after(datetime.datetime.fromtimestamp(spec.not_after, datetime.UTC))
    )
    if not spec.omit_aki:
        aki = spec.aki if spec.aki is not None else kid(spec.signer)
        builder = builder.add_extension(x509.AuthorityKeyIdentifier(aki, None, None), False)
    ski = spec.ski if spec.ski is not None else kid(spec.subject)
    builder = builder.add_extension(x509.SubjectKeyIdentifier(ski), False)
    ds = end if spec.digital_signature is None else spec.digital_signature
    kcs = (not end) if spec.key_cert_sign is None else spec.key_cert_sign
    builder = builder.add_extension(
        x509.KeyUsage(ds, False, False, False, False, kcs, False, False, False), True
    )
    is_ca = (not end) if spec.is_ca is None else spec.is_ca
    builder = builder.add_extension(
        x509.BasicConstraints(is_ca, spec.path_len if is_ca else None), True
    )
    if spec.v0:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier("1.2.3.1"), octet(spec.cert_type.encode())
            ),
            True,
        )
        if spec.del_type:
            flags = (1 if "exppriv" in spec.del_type else 0) | (
                2 if "reppriv" in spec.del_type else 0
            )
            builder = builder.add_extension(
                x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.8"), octet(bytes([flags]))),
                True,
            )
    else:
        info = spec.info
        if info is None:
            info = f"cert_type={spec.cert_type};"
            if spec.del_type:
                info += f"del_type={spec.del_type};"
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier("1.2.3.1"), octet(info.encode())),
            spec.info_critical,
        )
        if spec.limits is not None:
            builder = builder.add_extension(
                x509.UnrecognizedExtension(
                    x509.ObjectIdentifier("1.2.3.3"), octet(spec.limits.encode())
                ),
                True,
            )
    for oid, value, critical in spec.extra:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(oid), value), critical
        )
    return builder.sign(spec.signer, None).public_bytes(Encoding.DER)


@dataclass
class World:
    """The four principals of reference section 6.4 and a stranger."""

    eop: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    exper: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    xc: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    ep: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    stranger: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)

    def exppriv(self, **kw: object) -> bytes:
        return mint(Spec("exppriv", self.eop, self.exper, **kw))  # type: ignore[arg-type]

    def pubcmd(self, signer: Ed25519PrivateKey | None = None, **kw: object) -> bytes:
        return mint(Spec("pubcmd", signer or self.exper, self.xc, **kw))  # type: ignore[arg-type]

    def subcmd(self, **kw: object) -> bytes:
        return mint(Spec("subcmd", self.eop, self.ep, **kw))  # type: ignore[arg-type]
