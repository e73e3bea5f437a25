"""Errors of the guardian layer.

    GuardianError
    ├── GuardianConfigError   operator configuration that cannot be used (names the key)
    ├── OptOutFormatError     an opt-out entry (file or DNS TXT) that does not parse (names where)
    ├── UsageStoreError       the usage database cannot be opened or updated
    └── PacketLogError        the packet log or traffic index cannot be written or read

A refused packet is not an error: it is a :class:`~packetlab.guardian.probe.Verdict`.
"""

from __future__ import annotations


class GuardianError(Exception):
    """Base of every error raised by packetlab.guardian."""


class GuardianConfigError(GuardianError):
    """A guardian configuration value is missing, of the wrong type or out of range."""

    def __init__(self, key: str, detail: str) -> None:
        super().__init__(f"guardian config: {key}: {detail}")
        self.key = key
        self.detail = detail


class OptOutFormatError(GuardianError):
    """An opt-out entry does not parse; ``where`` is ``file:line`` or the DNS name."""

    def __init__(self, where: str, detail: str) -> None:
        super().__init__(f"opt-out list {where}: {detail}")
        self.where = where
        self.detail = detail


class UsageStoreError(GuardianError):
    """The persistent usage store failed (unreadable file, locked past the busy timeout)."""


class PacketLogError(GuardianError):
    """The pcapng packet log or the traffic index failed."""
