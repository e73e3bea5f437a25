"""Range checks shared by the header classes.

Constructors test all their fields in one expression (fast): ``(a | b) >> 16 == 0`` holds
exactly when both are ints in 0..65535 (a float or str raises TypeError, a negative number
shifts to -1). Only when it fails do they call ``explain``, to name the first bad field.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NoReturn

from packetlab.packets._errors import PacketError

U4, U8, U13, U16, U20, U32 = 0xF, 0xFF, 0x1FFF, 0xFFFF, 0xFFFFF, 0xFFFFFFFF


def check(name: str, value: int, limit: int) -> None:
    """Raise unless ``value`` is an int in ``0..limit``."""
    if not isinstance(value, int):
        raise PacketError(f"{name} must be an int, not {type(value).__name__}")
    if not 0 <= value <= limit:
        raise PacketError(f"{name}={value} is out of range 0..{limit}")


def explain(kind: str, fields: Iterable[tuple[str, int | None, int]]) -> NoReturn:
    """Raise for the first ``(name, value, limit)`` whose value (None allowed) is not in range."""
    for name, value, limit in fields:
        if value is not None:
            check(f"{kind} {name}", value, limit)
    raise PacketError(f"{kind}: a field is out of range")


def pad4(options: bytes) -> bytes:
    """Options padded with zero bytes (end-of-options) to a multiple of 4."""
    extra = -len(options) % 4
    return bytes(options) + bytes(extra) if extra else bytes(options)
