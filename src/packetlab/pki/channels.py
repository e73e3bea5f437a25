"""Broker channels (reference section 6.5).

A private channel is SHA-256 of an endpoint operator's raw public key (the AKI of the exppriv it
signed); public channels are IDs of 1-31 bytes. An endpoint may subscribe to the private
channels named by the AKIs of its subcmd/delpriv chain.
"""

from __future__ import annotations

from collections.abc import Iterable

from packetlab.pki.certificate import PktlabCert
from packetlab.pki.keys import Ed25519PublicKey, key_id

CHANNEL_MAX_LEN = 32
PUBLIC_CHANNEL_MAX_LEN = 31


def private_channel(eop_key: Ed25519PublicKey | bytes) -> bytes:
    """The private channel of an endpoint operator: SHA-256 of its raw public key."""
    return key_id(eop_key)


def is_valid_channel(channel: bytes) -> bool:
    return 1 <= len(channel) <= CHANNEL_MAX_LEN


def is_public_channel(channel: bytes) -> bool:
    return 1 <= len(channel) <= PUBLIC_CHANNEL_MAX_LEN


def subscribable_channels(chain: Iterable[PktlabCert]) -> list[bytes]:
    """Private channels an endpoint may subscribe to: the AKIs of its chain, in order, unique."""
    out: list[bytes] = []
    for cert in chain:
        aki = cert.authority_key_id
        if aki is not None and aki not in out:
            out.append(aki)
    return out


def publication_channel(exppriv: PktlabCert) -> bytes | None:
    """The private channel an experiment published under ``exppriv`` goes to."""
    return exppriv.authority_key_id
