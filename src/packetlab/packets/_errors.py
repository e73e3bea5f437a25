"""Errors of the packets layer.

PacketError (ValueError)    bytes that are not a well-formed packet, or field values a packet
                            cannot carry; the message says which field and why
"""

from __future__ import annotations


class PacketError(ValueError):
    """A packet is malformed, or a field value does not fit its header field."""
