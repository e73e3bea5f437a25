"""Address prefixes as integers: parsing once, matching packed addresses quickly.

``ipaddress`` objects are parsed at configuration time only; the send path compares integers.
A :class:`PrefixSet` keeps, per prefix length, the set of network numbers shifted right to that
length, so a lookup is one shift and one set probe per distinct length present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

BITS = {4: 32, 6: 128}


@dataclass(frozen=True, slots=True, order=True)
class Prefix:
    """An IPv4 or IPv6 network: ``family`` 4/6, ``network`` as an int, ``length`` in bits."""

    family: int
    network: int
    length: int

    def __str__(self) -> str:
        addr = int_to_text(self.family, self.network)
        return f"{addr}/{self.length}"

    def contains(self, family: int, addr: int) -> bool:
        shift = BITS[family] - self.length
        return family == self.family and addr >> shift == self.network >> shift


def parse_prefix(text: str) -> Prefix:
    """``198.18.0.0/15``, ``2001:db8::/32`` or a bare address (a /32 or /128).

    Host bits must be zero. Raises ValueError with a short message otherwise.
    """
    try:
        net = ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        raise ValueError(str(exc)) from None
    return Prefix(net.version, int(net.network_address), net.prefixlen)


def int_to_text(family: int, value: int) -> str:
    if family == 4:
        return str(ipaddress.IPv4Address(value))
    return str(ipaddress.IPv6Address(value))


class PrefixSet:
    """A set of prefixes of both families, matched against integer addresses."""

    __slots__ = ("_by_family", "prefixes")

    def __init__(self, prefixes: Iterable[Prefix] = ()) -> None:
        self.prefixes: tuple[Prefix, ...] = tuple(sorted(set(prefixes)))
        table: dict[int, dict[int, set[int]]] = {4: {}, 6: {}}
        for p in self.prefixes:
            shift = BITS[p.family] - p.length
            table[p.family].setdefault(shift, set()).add(p.network >> shift)
        self._by_family: dict[int, tuple[tuple[int, frozenset[int]], ...]] = {
            fam: tuple(sorted((s, frozenset(v)) for s, v in shifts.items()))
            for fam, shifts in table.items()
        }

    def __len__(self) -> int:
        return len(self.prefixes)

    def __bool__(self) -> bool:
        return bool(self.prefixes)

    def matches(self, family: int, addr: int) -> bool:
        """Whether the integer address ``addr`` of ``family`` lies in one of the prefixes."""
        for shift, nets in self._by_family[family]:  # noqa: SIM110 - a loop is faster here
            if addr >> shift in nets:
                return True
        return False

    def matches_packed(self, addr: bytes) -> bool:
        family = 4 if len(addr) == 4 else 6
        return self.matches(family, int.from_bytes(addr, "big"))
