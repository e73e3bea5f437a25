"""Ed25519 keys as PacketLab uses them.

Private keys are PEM PKCS#8 (optionally passphrase-encrypted), public keys PEM
SubjectPublicKeyInfo, the raw public key is 32 bytes and its key ID is SHA-256 of those bytes.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from packetlab.pki._errors import KeyFileError
from packetlab.pki._files import first_line, read_input

RAW_PUBLIC_KEY_LEN = 32
KEY_ID_LEN = 32

__all__ = [
    "Ed25519PrivateKey",
    "Ed25519PublicKey",
    "generate_private_key",
    "key_id",
    "load_private_key",
    "load_public_key",
    "private_key_is_encrypted",
    "public_key_from_raw",
    "raw_public_key",
    "save_private_key",
    "save_public_key",
]


def generate_private_key() -> Ed25519PrivateKey:
    """A fresh Ed25519 private key."""
    return Ed25519PrivateKey.generate()


def raw_public_key(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    """The 32 raw bytes of the public key (of a private key: its public half)."""
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey | Ed25519PrivateKey | bytes) -> bytes:
    """PacketLab key ID: SHA-256 over the raw 32-byte public key."""
    raw = key if isinstance(key, bytes) else raw_public_key(key)
    if len(raw) != RAW_PUBLIC_KEY_LEN:
        raise ValueError(f"raw Ed25519 public key must be 32 bytes, got {len(raw)}")
    return hashlib.sha256(raw).digest()


def public_key_from_raw(raw: bytes) -> Ed25519PublicKey:
    if len(raw) != RAW_PUBLIC_KEY_LEN:
        raise ValueError(f"raw Ed25519 public key must be 32 bytes, got {len(raw)}")
    return Ed25519PublicKey.from_public_bytes(raw)


def private_key_is_encrypted(data: bytes) -> bool:
    """True if ``data`` is a PEM private key that needs a passphrase."""
    return b"-----BEGIN ENCRYPTED PRIVATE KEY-----" in data


def load_private_key(
    path: str | os.PathLike[str], passphrase: bytes | None = None
) -> Ed25519PrivateKey:
    """Load a PEM PKCS#8 Ed25519 private key (encrypted ones need ``passphrase``)."""
    data = read_input(path, KeyFileError)
    if private_key_is_encrypted(data) and not passphrase:
        raise KeyFileError(f"{path}: the private key is encrypted and no passphrase was given")
    if not private_key_is_encrypted(data):
        passphrase = None
    try:
        key = serialization.load_pem_private_key(data, password=passphrase)
    except ValueError as exc:
        if private_key_is_encrypted(data):
            raise KeyFileError(f"{path}: wrong passphrase or corrupt encrypted key") from None
        if b"-----BEGIN PUBLIC KEY-----" in data:
            raise KeyFileError(f"{path}: is a public key; a private key is needed here") from None
        raise KeyFileError(f"{path}: not a PEM private key ({first_line(exc)})") from None
    except TypeError:
        raise KeyFileError(f"{path}: cannot load the private key") from None
    except Exception as exc:
        raise KeyFileError(f"{path}: cannot load the private key ({first_line(exc)})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: str | os.PathLike[str]) -> Ed25519PublicKey:
    """Load a PEM SPKI Ed25519 public key; a private key file gives its public half."""
    data = read_input(path, KeyFileError)
    if b"PRIVATE KEY-----" in data:
        if private_key_is_encrypted(data):
            raise KeyFileError(f"{path}: is an encrypted private key; give the .pub file instead")
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except Exception as exc:
        raise KeyFileError(f"{path}: not a PEM public key ({first_line(exc)})") from None
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(f"{path}: not an Ed25519 key ({type(key).__name__})")
    return key


def private_key_pem(key: Ed25519PrivateKey, passphrase: bytes | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption
    if passphrase:
        encryption = serialization.BestAvailableEncryption(passphrase)
    else:
        encryption = serialization.NoEncryption()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def public_key_pem(key: Ed25519PublicKey | Ed25519PrivateKey) -> bytes:
    pub = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return pub.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def save_private_key(
    key: Ed25519PrivateKey, path: str | os.PathLike[str], passphrase: bytes | None = None
) -> None:
    """Write the key as PEM PKCS#8 with mode 0600, atomically."""
    _write_private(Path(path), private_key_pem(key, passphrase))


def save_public_key(
    key: Ed25519PublicKey | Ed25519PrivateKey, path: str | os.PathLike[str]
) -> None:
    Path(path).write_bytes(public_key_pem(key))
