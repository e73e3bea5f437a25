"""cert_limit (OID 1.2.3.3, v1.x): the limits an exppriv / delpriv(exppriv) places on experiments.

A limit name prefixed with ``*`` is optional: an endpoint that does not understand it may ignore
it. An unknown limit without ``*`` makes the certificate unacceptable (checked by the chain walk).

Delegation only narrows (see :func:`narrow`):

- counts (max_*): the child's value must be <= the signer's; an absent value inherits;
- src_ip_spoofing: a child may turn it off, never on;
- valid_dest: every child network must lie inside one of the signer's networks;
- burst rates: every rate of every certificate holds (effective = union); a child rate over the
  same window as a signer rate must not allow more;
- filter / monitor digests: the programs of every certificate must run (effective = union).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import ClassVar, TypeVar

from packetlab.pki._errors import NameValueError
from packetlab.pki.nvpairs import format_pairs, parse_pairs

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
DIGEST_LEN = 32
_T = TypeVar("_T")

# Limit names in the order ppksman writes them.
LIMIT_NAMES: tuple[str, ...] = (
    "filter",
    "monitor",
    "max_num_priority",
    "max_socket_count",
    "max_exp_period",
    "max_send_byte",
    "max_send_pkt",
    "max_recv_byte",
    "max_recv_pkt",
    "max_burst_rate_byte",
    "max_burst_rate_pkt",
    "valid_dest",
    "src_ip_spoofing",
)
COUNT_LIMITS: tuple[str, ...] = (
    "max_num_priority",
    "max_socket_count",
    "max_exp_period",
    "max_send_byte",
    "max_send_pkt",
    "max_recv_byte",
    "max_recv_pkt",
)


@dataclass(frozen=True, slots=True, order=True)
class BurstRate:
    """At most ``count`` units (bytes or packets) in any window of ``ticks`` nanoseconds."""

    count: int
    ticks: int

    def __post_init__(self) -> None:
        if self.count < 0 or self.ticks <= 0:
            raise NameValueError(f"burst rate {self.count}/{self.ticks}: ticks must be > 0")

    def __str__(self) -> str:
        return f"{self.count}/{self.ticks}"

    @classmethod
    def parse(cls, text: str) -> BurstRate:
        count, sep, ticks = text.partition("/")
        if not sep or not count.isdigit() or not ticks.isdigit() or not count.isascii():
            raise NameValueError(f"burst rate {text!r} is not COUNT/TICKS")
        if not ticks.isascii() or int(ticks) == 0:
            raise NameValueError(f"burst rate {text!r}: ticks must be > 0")
        return cls(int(count), int(ticks))


@dataclass(frozen=True, slots=True)
class UnknownLimitPair:
    """A limit this implementation does not know; ``optional`` if it was marked with ``*``."""

    name: str
    value: str
    optional: bool


class LimitWidening(ValueError):
    """A delegation tried to widen a limit (raised by :func:`narrow`, wrapped by the chain)."""

    def __init__(self, name: str, detail: str) -> None:
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Limits:
    """Parsed cert_limit. ``None`` / empty means "not limited by this certificate"."""

    filter: tuple[bytes, ...] = ()
    monitor: tuple[bytes, ...] = ()
    max_num_priority: int | None = None
    max_socket_count: int | None = None
    max_exp_period: int | None = None
    max_send_byte: int | None = None
    max_send_pkt: int | None = None
    max_recv_byte: int | None = None
    max_recv_pkt: int | None = None
    max_burst_rate_byte: tuple[BurstRate, ...] = ()
    max_burst_rate_pkt: tuple[BurstRate, ...] = ()
    valid_dest: tuple[IPNetwork, ...] | None = None
    src_ip_spoofing: bool | None = None
    optional: frozenset[str] = field(default=frozenset())
    unknown: tuple[UnknownLimitPair, ...] = ()

    NONE: ClassVar[Limits]

    def __post_init__(self) -> None:
        for name in COUNT_LIMITS:
            value = getattr(self, name)
            if value is not None and value < 0:
                raise NameValueError(f"{name} must not be negative")
        for digest in (*self.filter, *self.monitor):
            if len(digest) != DIGEST_LEN:
                raise NameValueError("program digests must be 32-byte SHA-256 values")
        if self.valid_dest is not None and not self.valid_dest:
            raise NameValueError("valid_dest must list at least one network")
        unknown_known = self.optional - set(LIMIT_NAMES)
        if unknown_known:
            raise NameValueError(f"optional marks for unknown names: {sorted(unknown_known)}")

    def is_set(self, name: str) -> bool:
        value = getattr(self, name)
        return value is not None and value != ()

    @property
    def is_empty(self) -> bool:
        return not any(self.is_set(n) for n in LIMIT_NAMES) and not self.unknown

    def value_string(self, name: str) -> str:
        """The cert_limit text form of one known limit's value."""
        value = getattr(self, name)
        if name in ("filter", "monitor"):
            return "".join(d.hex() for d in value)
        if name in ("max_burst_rate_byte", "max_burst_rate_pkt"):
            return ",".join(str(r) for r in value)
        if name == "valid_dest":
            return ",".join(str(n) for n in value)
        if name == "src_ip_spoofing":
            return "1" if value else "0"
        return str(value)

    def pairs(self) -> list[tuple[str, str]]:
        """(name, value) pairs in ppksman's order, optional names with their ``*``."""
        out: list[tuple[str, str]] = []
        for name in LIMIT_NAMES:
            if self.is_set(name):
                marker = "*" if name in self.optional else ""
                out.append((marker + name, self.value_string(name)))
        out.extend((("*" if u.optional else "") + u.name, u.value) for u in self.unknown)
        return out

    def to_string(self) -> str:
        return format_pairs(self.pairs())


Limits.NONE = Limits()


def _parse_count(name: str, text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise NameValueError(f"cert_limit: {name}={text!r} is not a decimal number")
    return int(text)


def _parse_digests(name: str, text: str) -> tuple[bytes, ...]:
    width = DIGEST_LEN * 2
    if not text or len(text) % width:
        raise NameValueError(f"cert_limit: {name} must be hex SHA-256 digests (64 hex digits each)")
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise NameValueError(f"cert_limit: {name} holds non-hex characters") from None
    return tuple(raw[i : i + DIGEST_LEN] for i in range(0, len(raw), DIGEST_LEN))


def _parse_networks(text: str) -> tuple[IPNetwork, ...]:
    nets: list[IPNetwork] = []
    for item in text.split(","):
        try:
            nets.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise NameValueError(f"cert_limit: valid_dest {item!r}: {exc}") from None
    return tuple(nets)


@lru_cache(maxsize=512)
def parse_limits(text: str) -> Limits:
    """Parse a cert_limit string such as ``max_send_pkt=100;*valid_dest=10.0.0.0/8;``.

    Memoised: the result is immutable and the same limit strings recur in every session.
    """
    values: dict[str, object] = {}
    optional: set[str] = set()
    unknown: list[UnknownLimitPair] = []
    for raw_name, value in parse_pairs(text, what="cert_limit", allow_optional_marker=True):
        is_optional = raw_name.startswith("*")
        name = raw_name[1:] if is_optional else raw_name
        if name not in LIMIT_NAMES:
            unknown.append(UnknownLimitPair(name, value, is_optional))
            continue
        if is_optional:
            optional.add(name)
        if name in ("filter", "monitor"):
            values[name] = _parse_digests(name, value)
        elif name in COUNT_LIMITS:
            values[name] = _parse_count(name, value)
        elif name in ("max_burst_rate_byte", "max_burst_rate_pkt"):
            values[name] = tuple(BurstRate.parse(item) for item in value.split(","))
        elif name == "valid_dest":
            values[name] = _parse_networks(value)
        else:  # src_ip_spoofing
            if value not in ("0", "1"):
                raise NameValueError(f"cert_limit: src_ip_spoofing={value!r} must be 0 or 1")
            values[name] = value == "1"
    return Limits(optional=frozenset(optional), unknown=tuple(unknown), **values)  # type: ignore[arg-type]


def _union(first: tuple[_T, ...], second: tuple[_T, ...]) -> tuple[_T, ...]:
    return first + tuple(item for item in second if item not in first)


def _net_inside(net: IPNetwork, parents: tuple[IPNetwork, ...]) -> bool:
    return any(
        parent.version == net.version and net.subnet_of(parent)  # type: ignore[arg-type]
        for parent in parents
    )


def narrow(parent: Limits, child: Limits) -> Limits:
    """Effective limits after ``child`` (a delegation) is applied under ``parent``.

    Raises :class:`LimitWidening` if ``child`` tries to allow more than ``parent``.
    """
    changes: dict[str, object] = {}
    for name in COUNT_LIMITS:
        p, c = getattr(parent, name), getattr(child, name)
        if c is None:
            continue
        if p is not None and c > p:
            raise LimitWidening(name, f"{c} exceeds the signer's {p}")
        changes[name] = c
    if child.src_ip_spoofing is not None:
        if child.src_ip_spoofing and parent.src_ip_spoofing is False:
            raise LimitWidening("src_ip_spoofing", "turns on what the signer turned off")
        changes["src_ip_spoofing"] = child.src_ip_spoofing
    if child.valid_dest is not None:
        if parent.valid_dest is not None:
            for net in child.valid_dest:
                if not _net_inside(net, parent.valid_dest):
                    raise LimitWidening("valid_dest", f"{net} is outside the signer's networks")
        changes["valid_dest"] = child.valid_dest
    for name in ("max_burst_rate_byte", "max_burst_rate_pkt"):
        p_rates, c_rates = getattr(parent, name), getattr(child, name)
        for rate in c_rates:
            for p_rate in p_rates:
                if p_rate.ticks == rate.ticks and rate.count > p_rate.count:
                    raise LimitWidening(name, f"{rate} allows more than the signer's {p_rate}")
        changes[name] = _union(p_rates, c_rates)
    changes["filter"] = _union(parent.filter, child.filter)
    changes["monitor"] = _union(parent.monitor, child.monitor)
    set_names = {n for n in LIMIT_NAMES if child.is_set(n)}
    optional = (parent.optional - set_names) | (child.optional & set_names)
    changes["optional"] = frozenset(optional)
    changes["unknown"] = parent.unknown + child.unknown
    return replace(parent, **changes)  # type: ignore[arg-type]
