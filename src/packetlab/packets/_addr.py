"""IP addresses as raw network-order bytes."""

from __future__ import annotations

import functools
import ipaddress

from packetlab.packets._errors import PacketError


def addr_bytes(address: str | bytes) -> bytes:
    """Raw bytes (4 or 16) of an address given as text or as raw bytes."""
    if isinstance(address, str):
        return _of_text(address)
    if len(address) not in (4, 16):
        raise PacketError(f"an address is 4 or 16 bytes, not {len(address)}")
    return bytes(address)


@functools.lru_cache(maxsize=4096)
def _of_text(address: str) -> bytes:
    try:
        return ipaddress.ip_address(address).packed
    except ValueError:
        raise PacketError(f"{address!r} is not an IP address") from None


def addr_text(raw: bytes) -> str:
    """Text form of a 4- or 16-byte address."""
    if len(raw) not in (4, 16):
        raise PacketError(f"an address is 4 or 16 bytes, not {len(raw)}")
    return str(ipaddress.ip_address(bytes(raw)))
