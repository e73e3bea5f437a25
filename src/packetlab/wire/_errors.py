"""Errors of the wire layer.

WireError
├── ProtocolError            the peer broke the protocol; carries the reference's error code
│   └── MalformedMessage     a known message type whose body does not decode (ECTLBADMSG)
└── EncodeError              we were asked to encode something the protocol cannot carry
"""

from __future__ import annotations

from packetlab.wire.codes import ErrId


class WireError(Exception):
    """Base of the wire layer's errors."""


class ProtocolError(WireError):
    """The peer broke the protocol. ``errid`` is what goes back in a result."""

    errid: ErrId = ErrId.ECTLBADMSG

    def __init__(self, message: str, *, msg_type: int | None = None) -> None:
        super().__init__(message)
        self.msg_type = msg_type


class MalformedMessage(ProtocolError):
    """A known type whose body breaks the decoding rules; the session is reset."""

    errid = ErrId.ECTLBADMSG


class EncodeError(WireError, ValueError):
    """A message value out of the protocol's range (local misuse)."""
