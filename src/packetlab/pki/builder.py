"""Making pktlab v1.x certificates and CSRs exactly as the reference's ppksman lays them out.

Issuer and subject are ``CN=" "``; extensions in ppksman's order: AuthorityKeyIdentifier and
SubjectKeyIdentifier (SHA-256 of raw keys, non-critical), KeyUsage and BasicConstraints
(critical; end certs digitalSignature / CA=false, privilege certs keyCertSign / CA=true with an
optional pathLen), then cert_info and cert_limit (critical, DER OCTET STRINGs).
"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Sequence

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from packetlab.pki._der import wrap_octet_string
from packetlab.pki._errors import NameValueError, PkiInputError
from packetlab.pki.certificate import (
    OID_CERT_INFO,
    OID_CERT_LIMIT,
    PktlabCert,
    PktlabCsr,
    parse_certificate,
    parse_csr,
)
from packetlab.pki.info import CertInfo, CertType, DelType
from packetlab.pki.keys import Ed25519PrivateKey, Ed25519PublicKey, key_id
from packetlab.pki.limits import Limits

_EMPTY_NAME = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, " ")])
MAX_VALIDITY_TIME = 253402300799  # 9999-12-31T23:59:59Z, the last instant X.509 can state


def can_carry_limits(cert_type: CertType, del_type: DelType) -> bool:
    """Only exppriv and delpriv(exppriv) certificates may carry cert_limit."""
    return cert_type is CertType.EXPPRIV or (
        cert_type is CertType.DELPRIV and DelType.EXPPRIV in del_type
    )


def _key_usage(cert_type: CertType) -> x509.KeyUsage:
    end = cert_type.is_end_cert
    return x509.KeyUsage(
        digital_signature=end,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=not end,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _basic_constraints(cert_type: CertType, path_len: int | None) -> x509.BasicConstraints:
    if cert_type.is_end_cert:
        return x509.BasicConstraints(ca=False, path_length=None)
    return x509.BasicConstraints(ca=True, path_length=path_len)


def _check_request(
    cert_type: CertType, del_type: DelType, path_len: int | None, limits: Limits | None
) -> None:
    if (cert_type is CertType.DELPRIV) != bool(del_type):
        raise PkiInputError(
            "a delpriv certificate needs --del_exppriv and/or --del_reppriv, "
            "and no other type may carry them"
        )
    if path_len is not None:
        if cert_type.is_end_cert:
            raise PkiInputError(f"--pathlen applies to exppriv and delpriv, not {cert_type.label}")
        if path_len < 0:
            raise PkiInputError("--pathlen must be >= 0")
    if limits is not None and not limits.is_empty and not can_carry_limits(cert_type, del_type):
        raise PkiInputError(
            f"limits can only be placed on exppriv or delpriv(exppriv), not {cert_type.label}"
        )


def _pktlab_extensions(info: CertInfo, limits: Limits | None) -> list[x509.UnrecognizedExtension]:
    try:
        info_text = info.to_string()
    except NameValueError as exc:
        raise PkiInputError(str(exc)) from None
    exts = [
        x509.UnrecognizedExtension(
            x509.ObjectIdentifier(OID_CERT_INFO), wrap_octet_string(info_text.encode("ascii"))
        )
    ]
    if limits is not None and not limits.is_empty:
        exts.append(
            x509.UnrecognizedExtension(
                x509.ObjectIdentifier(OID_CERT_LIMIT),
                wrap_octet_string(limits.to_string().encode("ascii")),
            )
        )
    return exts


def _utc(seconds: int) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)


def build_certificate(
    *,
    cert_type: CertType,
    signer: Ed25519PrivateKey,
    subject: Ed25519PublicKey,
    not_before: int,
    not_after: int,
    del_type: DelType = DelType.NONE,
    description: str | None = None,
    path_len: int | None = None,
    limits: Limits | None = None,
    aux_info: Sequence[tuple[str, str]] = (),
    serial: int | None = None,
) -> PktlabCert:
    """Sign a v1.x certificate for ``subject`` with ``signer``. Times are Unix seconds (UTC)."""
    _check_request(cert_type, del_type, path_len, limits)
    if not 0 <= not_before <= not_after <= MAX_VALIDITY_TIME:
        raise PkiInputError(
            f"validity {not_before}..{not_after}: need 0 <= start <= end <= {MAX_VALIDITY_TIME}"
        )
    info = CertInfo(cert_type, del_type, description, tuple(aux_info))
    builder = (
        x509.CertificateBuilder()
        .serial_number(serial if serial is not None else secrets.randbits(127) | 1 << 120)
        .issuer_name(_EMPTY_NAME)
        .subject_name(_EMPTY_NAME)
        .public_key(subject)
        .not_valid_before(_utc(not_before))
        .not_valid_after(_utc(not_after))
        .add_extension(x509.AuthorityKeyIdentifier(key_id(signer), None, None), critical=False)
        .add_extension(x509.SubjectKeyIdentifier(key_id(subject)), critical=False)
        .add_extension(_key_usage(cert_type), critical=True)
        .add_extension(_basic_constraints(cert_type, path_len), critical=True)
    )
    for ext in _pktlab_extensions(info, limits):
        builder = builder.add_extension(ext, critical=True)
    cert = builder.sign(signer, None)

    return parse_certificate(cert.public_bytes(Encoding.DER))


def build_csr(
    *,
    cert_type: CertType,
    subject: Ed25519PrivateKey,
    del_type: DelType = DelType.NONE,
    description: str | None = None,
    path_len: int | None = None,
    limits: Limits | None = None,
    aux_info: Sequence[tuple[str, str]] = (),
) -> PktlabCsr:
    """A PKCS#10 request carrying the pktlab extensions a signer will copy into the cert."""
    _check_request(cert_type, del_type, path_len, limits)
    info = CertInfo(cert_type, del_type, description, tuple(aux_info))
    builder = x509.CertificateSigningRequestBuilder().subject_name(_EMPTY_NAME)
    if path_len is not None:
        builder = builder.add_extension(_basic_constraints(cert_type, path_len), critical=True)
    for ext in _pktlab_extensions(info, limits):
        builder = builder.add_extension(ext, critical=True)
    csr = builder.sign(subject, None)

    return parse_csr(csr.public_bytes(Encoding.DER))
