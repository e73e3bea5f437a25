"""Keys (PEM, passphrases, key IDs) and the certificate/CSR builder's profile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtensionOID, NameOID

from packetlab import pki


def test_key_round_trip_plain_and_encrypted(tmp_path: Path) -> None:
    key = pki.generate_private_key()
    pki.save_private_key(key, tmp_path / "plain")
    pki.save_private_key(key, tmp_path / "enc", b"secret")
    pki.save_public_key(key, tmp_path / "k.pub")
    assert (tmp_path / "plain").stat().st_mode & 0o077 == 0
    assert b"ENCRYPTED" in (tmp_path / "enc").read_bytes()
    raw = pki.raw_public_key(key)
    assert pki.raw_public_key(pki.load_private_key(tmp_path / "plain")) == raw
    assert pki.raw_public_key(pki.load_private_key(tmp_path / "enc", b"secret")) == raw
    assert pki.raw_public_key(pki.load_public_key(tmp_path / "k.pub")) == raw
    assert pki.raw_public_key(pki.load_public_key(tmp_path / "plain")) == raw
    assert pki.key_id(key) == hashlib.sha256(raw).digest()


@pytest.mark.parametrize(
    ("content", "passphrase", "needle"),
    [
        (None, None, "no such file"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", None, "not a PEM"),
        (b"garbage", None, "not a PEM"),
        ("encrypted", b"wrong", "wrong passphrase"),
        ("encrypted", None, "no passphrase"),
        ("public", None, "is a public key"),
    ],
)
def test_bad_private_key_files_name_the_file(
    tmp_path: Path, content: object, passphrase: bytes | None, needle: str
) -> None:
    path = tmp_path / "key"
    key = pki.generate_private_key()
    if content == "encrypted":
        pki.save_private_key(key, path, b"right")
    elif content == "public":
        pki.save_public_key(key, path)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(pki.KeyFileError) as info:
        pki.load_private_key(path, passphrase)
    assert str(path) in str(info.value) and needle in str(info.value)


@pytest.mark.parametrize("cert_type", list(pki.CertType))
def test_builder_follows_the_reference_profile(cert_type: pki.CertType) -> None:
    signer, subject = pki.generate_private_key(), pki.generate_private_key()
    del_type = pki.DelType.EXPPRIV if cert_type is pki.CertType.DELPRIV else pki.DelType.NONE
    limits = (
        pki.parse_limits("max_send_pkt=5;") if pki.can_carry_limits(cert_type, del_type) else None
    )
    cert = pki.build_certificate(
        cert_type=cert_type,
        signer=signer,
        subject=subject.public_key(),
        not_before=0,
        not_after=2147483647,
        del_type=del_type,
        description="test run",
        path_len=None if cert_type.is_end_cert else 3,
        limits=limits,
    )
    x = x509.load_der_x509_certificate(cert.der)
    blank = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, " ")])
    assert x.issuer == blank and x.subject == blank
    oids = [e.oid.dotted_string for e in x.extensions]
    expected = [
        ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.SUBJECT_KEY_IDENTIFIER.dotted_string,
        ExtensionOID.KEY_USAGE.dotted_string,
        ExtensionOID.BASIC_CONSTRAINTS.dotted_string,
        "1.2.3.1",
    ] + (["1.2.3.3"] if limits else [])
    assert oids == expected
    crit = {e.oid.dotted_string: e.critical for e in x.extensions}
    assert crit["1.2.3.1"] and not crit[ExtensionOID.AUTHORITY_KEY_IDENTIFIER.dotted_string]
    ku = x.extensions.get_extension_for_class(x509.KeyUsage).value
    bc = x.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert ku.digital_signature is cert_type.is_end_cert
    assert ku.key_cert_sign is not cert_type.is_end_cert
    assert bc.ca is not cert_type.is_end_cert
    assert cert.authority_key_id == pki.key_id(signer)
    assert cert.subject_key_id == pki.key_id(subject)
    assert cert.info.description == "test run" and cert.profile_issues == ()
    assert pki.parse_certificate(cert.pem()).der == cert.der


@pytest.mark.parametrize(
    "kwargs",
    [
        {"cert_type": pki.CertType.PUBCMD, "limits": pki.parse_limits("max_send_pkt=1;")},
        {"cert_type": pki.CertType.DELPRIV},  # no del_type
        {"cert_type": pki.CertType.EXPPRIV, "del_type": pki.DelType.EXPPRIV},
        {"cert_type": pki.CertType.PUBCMD, "path_len": 1},
        {"cert_type": pki.CertType.EXPPRIV, "description": "semi;colon"},
        {"cert_type": pki.CertType.EXPPRIV, "not_before": 10, "not_after": 5},
    ],
)
def test_builder_refuses_what_the_profile_forbids(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "signer": pki.generate_private_key(),
        "subject": pki.generate_private_key().public_key(),
        "not_before": 0,
        "not_after": 100,
    }
    args.update(kwargs)
    with pytest.raises(pki.PkiInputError):
        pki.build_certificate(**args)  # type: ignore[arg-type]


def test_csr_carries_type_delegation_pathlen_and_limits() -> None:
    key = pki.generate_private_key()
    csr = pki.build_csr(
        cert_type=pki.CertType.DELPRIV,
        subject=key,
        del_type=pki.DelType.EXPPRIV,
        path_len=2,
        limits=pki.parse_limits("max_recv_pkt=9;"),
    )
    again = pki.parse_csr(csr.pem())
    assert again.signature_valid and again.subject_key == pki.raw_public_key(key)
    assert again.info is not None and again.info.del_type is pki.DelType.EXPPRIV
    assert again.path_len == 2 and again.limits.max_recv_pkt == 9


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x30\x03\x02\x01",
        b"-----BEGIN CERTIFICATE-----\nxx\n",
        b"-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA\n",
    ],
)
def test_malformed_certificates_raise_format_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "c.cert"
    path.write_bytes(data)
    with pytest.raises(pki.CertificateFormatError) as info:
        pki.load_certificates(path)
    assert str(path) in str(info.value)
