"""pktlab certificates and CSRs: parsing the X.509 profile of reference sections 6.2-6.3.

Both formats are read. v1.x (PacketLab >= 1.0): cert_info (1.2.3.1) and cert_limit (1.2.3.3)
name=value strings. v0.x (PacketLab <= 0.5): a bare type string in 1.2.3.1, description in
1.2.3.3, raw digests in 1.2.3.5/1.2.3.6, priority in 1.2.3.7, a del_type byte in 1.2.3.8.
Parsing never judges a certificate: departures from the profile are listed in
``profile_issues`` and judged by the chain walk.
"""

from __future__ import annotations

import enum
import hashlib
import os
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtensionOID

from packetlab.pki._der import unwrap_octet_string
from packetlab.pki._errors import CertificateFormatError, NameValueError
from packetlab.pki._files import first_line, read_input
from packetlab.pki._x509_der import (
    OID_AKI,
    OID_BASIC_CONSTRAINTS,
    OID_KEY_USAGE,
    OID_SKI,
    oid_from_dotted,
    oid_to_dotted,
    read_basic_constraints,
    read_certificate,
    read_key_identifier,
    read_key_usage,
    read_octet_string,
)
from packetlab.pki.info import CertInfo, CertType, DelType, parse_cert_info
from packetlab.pki.keys import raw_public_key
from packetlab.pki.limits import DIGEST_LEN, Limits, parse_limits

OID_CERT_INFO = "1.2.3.1"
OID_CERT_LIMIT = "1.2.3.3"  # v1.x; in v0.x the same OID holds the description
OID_V0_FILTER = "1.2.3.5"
OID_V0_MONITOR = "1.2.3.6"
OID_V0_PRIORITY = "1.2.3.7"
OID_V0_DEL_TYPE = "1.2.3.8"
_V0_ONLY_OIDS = (OID_V0_FILTER, OID_V0_MONITOR, OID_V0_PRIORITY, OID_V0_DEL_TYPE)
_PKTLAB_OIDS = (OID_CERT_INFO, OID_CERT_LIMIT, *_V0_ONLY_OIDS)
_PKTLAB_OID_BYTES = {oid_from_dotted(oid): oid for oid in _PKTLAB_OIDS}

_BC = ExtensionOID.BASIC_CONSTRAINTS.dotted_string


class CertFormat(enum.IntEnum):
    V0 = 0
    V1 = 1

    @property
    def label(self) -> str:
        return "v1.x" if self is CertFormat.V1 else "v0.x (old format, PacketLab <= 0.5)"


class PktlabCert(NamedTuple):
    """One parsed pktlab certificate (immutable). ``der`` is the exact signed encoding.

    A NamedTuple rather than a frozen dataclass: it is built on the session set-up path, and a
    frozen dataclass of this size costs ~8 µs more per certificate.
    """

    der: bytes
    format: CertFormat
    info: CertInfo
    info_string: str
    limits: Limits
    limit_string: str | None
    subject_key: bytes
    subject_key_id: bytes | None
    """The SubjectKeyIdentifier extension as written (None if absent)."""
    authority_key_id: bytes | None
    computed_subject_key_id: bytes
    """SHA-256 of the subject key: what the SKI must be."""
    serial: int
    not_before: int
    not_after: int
    is_ca: bool | None
    path_len: int | None
    key_usage: frozenset[str] | None
    signature: bytes
    tbs: bytes
    profile_issues: tuple[str, ...]
    v0_priority: str | None = None

    @property
    def cert_type(self) -> CertType:
        return self.info.cert_type

    @property
    def del_type(self) -> DelType:
        return self.info.del_type

    @property
    def fingerprint(self) -> bytes:
        """SHA-256 over the DER encoding."""
        return hashlib.sha256(self.der).digest()

    @property
    def is_self_signed(self) -> bool:
        return self.authority_key_id is not None and self.authority_key_id == self.subject_key_id

    def label(self) -> str:
        return f"{self.cert_type.label} (subject {self.computed_subject_key_id.hex()[:16]})"

    def pem(self) -> bytes:
        return x509.load_der_x509_certificate(self.der).public_bytes(Encoding.PEM)


@dataclass(frozen=True, slots=True, eq=False)
class PktlabCsr:
    """A parsed PKCS#10 request for a pktlab certificate."""

    der: bytes
    subject_key: bytes
    info: CertInfo | None
    info_string: str | None
    limits: Limits
    limit_string: str | None
    path_len: int | None
    signature_valid: bool

    @property
    def subject_key_id(self) -> bytes:
        return hashlib.sha256(self.subject_key).digest()

    def pem(self) -> bytes:
        return x509.load_der_x509_csr(self.der).public_bytes(Encoding.PEM)


def _payload(ext: x509.Extension[x509.ExtensionType]) -> bytes:
    value = ext.value
    if not isinstance(value, x509.UnrecognizedExtension):
        raise CertificateFormatError(f"extension {ext.oid.dotted_string} is not a pktlab extension")
    return unwrap_octet_string(value.value)


def _text(payload: bytes, what: str) -> str:
    try:
        return payload.decode("ascii")
    except UnicodeDecodeError:
        raise CertificateFormatError(f"{what} is not an ASCII string") from None


def _digests(payload: bytes, what: str) -> tuple[bytes, ...]:
    if not payload or len(payload) % DIGEST_LEN:
        raise CertificateFormatError(f"{what} is not a list of 32-byte digests")
    return tuple(payload[i : i + DIGEST_LEN] for i in range(0, len(payload), DIGEST_LEN))


def _pktlab_fields(
    pktlab: dict[str, bytes], issues: list[str], *, context: str
) -> tuple[CertFormat, CertInfo, str, Limits, str | None, str | None]:
    """Decode the pktlab extensions of a certificate or CSR (both formats)."""
    if OID_CERT_INFO not in pktlab:
        raise CertificateFormatError(
            f"not a pktlab {context}: no cert_info extension (OID {OID_CERT_INFO})"
        )
    info_text = _text(pktlab[OID_CERT_INFO], "cert_info")
    try:
        if "=" in info_text or info_text.endswith(";"):
            info = parse_cert_info(info_text)
            limit_text = None
            limits = Limits.NONE
            if OID_CERT_LIMIT in pktlab:
                limit_text = _text(pktlab[OID_CERT_LIMIT], "cert_limit")
                limits = parse_limits(limit_text)
            stray = [oid for oid in _V0_ONLY_OIDS if oid in pktlab]
            if stray:
                issues.append(f"v0.x extensions {', '.join(stray)} in a v1.x {context}")
            return CertFormat.V1, info, info_text, limits, limit_text, None
        cert_type = CertType.from_label(info_text)
    except NameValueError as exc:
        raise CertificateFormatError(str(exc)) from None
    except ValueError:
        raise CertificateFormatError(f"cert_info {info_text!r} names no certificate type") from None
    # v0.x
    description = None
    if OID_CERT_LIMIT in pktlab:
        description = _text(pktlab[OID_CERT_LIMIT], "description")
    del_type = DelType.NONE
    if OID_V0_DEL_TYPE in pktlab:
        raw = pktlab[OID_V0_DEL_TYPE]
        if len(raw) != 1 or raw[0] & ~0x3:
            raise CertificateFormatError("v0.x del_type is not one byte of flags 0x1/0x2")
        del_type = DelType(raw[0])
    priority = None
    if OID_V0_PRIORITY in pktlab:
        priority = _text(pktlab[OID_V0_PRIORITY], "priority")
    limits = Limits(
        filter=_digests(pktlab[OID_V0_FILTER], "filter digests") if OID_V0_FILTER in pktlab else (),
        monitor=(
            _digests(pktlab[OID_V0_MONITOR], "monitor digests") if OID_V0_MONITOR in pktlab else ()
        ),
    )
    try:
        info = CertInfo(cert_type, del_type, description, ())
    except NameValueError as exc:
        raise CertificateFormatError(str(exc)) from None
    return CertFormat.V0, info, info_text, limits, None, priority


def parse_certificate(data: bytes) -> PktlabCert:
    """Parse one certificate from DER (or a single PEM block)."""
    if data.lstrip().startswith(b"-----BEGIN"):
        certs = parse_certificates(data)
        if len(certs) != 1:
            raise CertificateFormatError(f"expected one certificate, found {len(certs)}")
        return certs[0]
    return _from_der(bytes(data))


@lru_cache(maxsize=1024)
def _from_der(der: bytes) -> PktlabCert:
    """Parse DER. Memoised by the exact bytes: the result is immutable, and the same
    certificates arrive at every session."""
    raw = read_certificate(der)
    issues: list[str] = []
    if raw.version != 2:
        issues.append("not an X.509 v3 certificate")
    if not raw.signature_is_ed25519:
        issues.append("signature algorithm is not Ed25519")
    aki = ski = None
    is_ca = path_len = None
    key_usage: frozenset[str] | None = None
    pktlab: dict[str, bytes] = {}
    not_critical: list[str] = []
    for oid, ext in raw.extensions.items():
        if oid == OID_AKI:
            aki = read_key_identifier(ext.value)
            if ext.critical:
                issues.append("AuthorityKeyIdentifier is marked critical")
        elif oid == OID_SKI:
            ski = read_octet_string(ext.value, "SubjectKeyIdentifier")
            if ext.critical:
                issues.append("SubjectKeyIdentifier is marked critical")
        elif oid == OID_KEY_USAGE:
            key_usage = read_key_usage(ext.value)
            if not ext.critical:
                issues.append("KeyUsage is not marked critical")
        elif oid == OID_BASIC_CONSTRAINTS:
            is_ca, path_len = read_basic_constraints(ext.value)
            if not ext.critical:
                issues.append("BasicConstraints is not marked critical")
        elif (dotted := _PKTLAB_OID_BYTES.get(oid)) is not None:
            pktlab[dotted] = unwrap_octet_string(ext.value)
            if not ext.critical:
                not_critical.append(dotted)
        elif ext.critical:
            issues.append(f"unrecognised critical extension {oid_to_dotted(oid)}")
    fmt, info, info_text, limits, limit_text, priority = _pktlab_fields(
        pktlab, issues, context="certificate"
    )
    # v1.x marks every pktlab extension critical; v0.x (ppksman <= 0.3) only the type (1.2.3.1)
    for dotted in not_critical:
        if fmt is CertFormat.V1 or dotted == OID_CERT_INFO:
            issues.append(f"pktlab extension {dotted} is not marked critical")
    return PktlabCert(
        der=der,
        format=fmt,
        info=info,
        info_string=info_text,
        limits=limits,
        limit_string=limit_text,
        subject_key=raw.subject_key,
        subject_key_id=ski,
        authority_key_id=aki,
        computed_subject_key_id=hashlib.sha256(raw.subject_key).digest(),
        serial=raw.serial,
        not_before=raw.not_before,
        not_after=raw.not_after,
        is_ca=is_ca,
        path_len=path_len,
        key_usage=key_usage,
        signature=raw.signature,
        tbs=raw.tbs,
        profile_issues=tuple(issues),
        v0_priority=priority,
    )


def parse_certificates(data: bytes) -> list[PktlabCert]:
    """All certificates in ``data``: any number of PEM blocks, or one DER certificate."""
    if b"-----BEGIN" in data:
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise CertificateFormatError("no PEM CERTIFICATE block (is this a key or a CSR?)")
        try:
            certs = x509.load_pem_x509_certificates(data)
        except ValueError as exc:
            raise CertificateFormatError(f"malformed PEM certificate ({first_line(exc)})") from None
        return [_from_der(c.public_bytes(Encoding.DER)) for c in certs]
    return [parse_certificate(data)]


def load_certificates(path: str | os.PathLike[str]) -> list[PktlabCert]:
    """Load every certificate in a file; errors name the file."""
    data = read_input(path, CertificateFormatError)
    try:
        certs = parse_certificates(data)
    except CertificateFormatError as exc:
        raise CertificateFormatError(f"{path}: {exc}") from None
    if not certs:
        raise CertificateFormatError(f"{path}: holds no certificate")
    return certs


def parse_csr(data: bytes) -> PktlabCsr:
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            csr = x509.load_pem_x509_csr(data)
        else:
            csr = x509.load_der_x509_csr(data)
        public_key = csr.public_key()
        extensions = csr.extensions
        der = csr.public_bytes(Encoding.DER)
        signature_valid = csr.is_signature_valid
    except (ValueError, x509.DuplicateExtension) as exc:
        raise CertificateFormatError(
            f"not a PKCS#10 certificate signing request ({first_line(exc)})"
        ) from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise CertificateFormatError("CSR subject key is not Ed25519")
    pktlab: dict[str, bytes] = {}
    path_len = None
    for ext in extensions:
        oid = ext.oid.dotted_string
        if oid in _PKTLAB_OIDS:
            pktlab[oid] = _payload(ext)
        elif oid == _BC:
            assert isinstance(ext.value, x509.BasicConstraints)
            path_len = ext.value.path_length
    info: CertInfo | None = None
    info_text: str | None = None
    limits = Limits.NONE
    limit_text: str | None = None
    if OID_CERT_INFO in pktlab:
        _, info, info_text, limits, limit_text, _ = _pktlab_fields(pktlab, [], context="CSR")
    return PktlabCsr(
        der=der,
        subject_key=raw_public_key(public_key),
        info=info,
        info_string=info_text,
        limits=limits,
        limit_string=limit_text,
        path_len=path_len,
        signature_valid=signature_valid,
    )


def load_csr(path: str | os.PathLike[str]) -> PktlabCsr:
    data = read_input(path, CertificateFormatError)
    try:
        return parse_csr(data)
    except CertificateFormatError as exc:
        raise CertificateFormatError(f"{path}: {exc}") from None
