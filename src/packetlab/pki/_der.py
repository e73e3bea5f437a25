"""The one piece of DER the pktlab extensions need: an OCTET STRING around the value bytes.

Every pktlab extension (v0.x and v1.x) carries, as its extnValue, the DER encoding of an
OCTET STRING whose content is the payload (a UTF-8 string or raw digests).
"""

from __future__ import annotations

from packetlab.pki._errors import CertificateFormatError

_OCTET_STRING = 0x04


def wrap_octet_string(payload: bytes) -> bytes:
    """DER-encode ``payload`` as an OCTET STRING (definite, minimal length)."""
    n = len(payload)
    if n < 0x80:
        header = bytes((_OCTET_STRING, n))
    else:
        length = n.to_bytes((n.bit_length() + 7) // 8, "big")
        header = bytes((_OCTET_STRING, 0x80 | len(length))) + length
    return header + payload


def unwrap_octet_string(der: bytes) -> bytes:
    """Return the content of a DER OCTET STRING that spans all of ``der``, exactly."""
    if len(der) < 2 or der[0] != _OCTET_STRING:
        raise CertificateFormatError("pktlab extension value is not a DER OCTET STRING")
    first = der[1]
    if first < 0x80:
        length, offset = first, 2
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or len(der) < 2 + count:
            raise CertificateFormatError("pktlab extension value has a bad DER length")
        length = int.from_bytes(der[2 : 2 + count], "big")
        offset = 2 + count
        if length < 0x80 or der[2] == 0:
            raise CertificateFormatError("pktlab extension value has a non-minimal DER length")
    if offset + length != len(der):
        raise CertificateFormatError("pktlab extension value length does not match its content")
    return der[offset:]
