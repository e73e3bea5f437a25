"""Guardian configuration: one typed dataclass per part, loaded from TOML at the program's edge.

TOML layout (every key optional; defaults shown in the dataclasses; the tables may also sit under
a ``[guardian]`` table of a larger file)::

    max_wait_ms = 1000            # longest a probe is shaped before it is refused instead
    max_destinations = 65536      # per-destination buckets kept per profile (full ones expire)
    lease_packets = 64            # usage reserved durably ahead of sending, per lease (base)
    lease_bytes = 65536
    lease_packets_max = 4096      # a fast sender's leases grow up to this (bytes in proportion)

    [source_policy]               # every rule is a switch; true = the rule applies
    deny_broadcast = true
    deny_multicast = true
    deny_fragments = true
    deny_icmp_errors = true
    deny_tcp_rst = true
    deny_privileged_ports = true
    privileged_port_exceptions = [53, 80]
    deny_local_host = true
    deny_local_subnet = true
    deny_spoofing = true
    allow_dest = []               # prefixes exempt from the local host/subnet rules

    [profiles.public]             # and [profiles.certified]; rates per second, bursts in units
    syn_per_s = 1
    syn_burst = 4
    dest_bytes_per_s = 1000
    dest_burst_bytes = 8000
    dest_pkts_per_s = 3
    dest_burst_pkts = 10
    source_bytes_per_s = 3000
    source_burst_bytes = 100000

    [optout]
    file = "optout.txt"           # relative to the TOML file
    dns_name = "_optout.example.net"
    dns_server = "127.0.0.1"      # default: the system resolver's first nameserver
    dns_port = 53
    dns_timeout_ms = 2000
    cache_s = 300
    retry_s = 30

    [log]
    enabled = true
    index = true                  # the SQLite traffic index for `packetlab traceback`
    snaplen = 256
    rotate_bytes = 67108864
    keep_bytes = 1073741824
    flush_ms = 1000

Units: KB and MB in the profiles are decimal (1 KB = 1000 bytes).
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from packetlab.guardian._errors import GuardianConfigError
from packetlab.guardian.prefixes import Prefix, parse_prefix

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T")
_D = TypeVar("_D", bound="DataclassInstance")
PROFILE_NAMES = ("public", "certified")


@dataclass(frozen=True)
class SourcePolicy:
    """The operator's source filter (DESIGN.md guardian stage 2). True = the rule applies."""

    deny_broadcast: bool = True
    """255.255.255.255 and the directed broadcast address of every local IPv4 subnet."""
    deny_multicast: bool = True
    """224.0.0.0/4 and ff00::/8."""
    deny_fragments: bool = True
    deny_icmp_errors: bool = True
    """ICMP types 3, 4, 5, 11, 12; ICMPv6 types 1-4."""
    deny_tcp_rst: bool = True
    deny_privileged_ports: bool = True
    """TCP/UDP to ports below 1024 other than ``privileged_port_exceptions``."""
    privileged_port_exceptions: tuple[int, ...] = (53, 80)
    deny_local_host: bool = True
    """127.0.0.0/8, ::1, unspecified and the endpoint's own addresses."""
    deny_local_subnet: bool = True
    """The endpoint's subnets, 169.254.0.0/16 and fe80::/10."""
    deny_spoofing: bool = True
    """Sources other than the endpoint's own (or unspecified), unless the experiment may spoof."""
    allow_dest: tuple[Prefix, ...] = ()
    """Prefixes exempt from the local host and local subnet rules (tests on loopback, netns)."""


@dataclass(frozen=True)
class RateProfile:
    """Token-bucket parameters of one profile (Scriptroute Table 3 shape). Rates are per second."""

    syn_per_s: float
    """Per experiment: TCP SYNs (and TCP connects) per second."""
    syn_burst: int
    dest_bytes_per_s: float
    """Per destination, shared by the experiments of this profile."""
    dest_burst_bytes: int
    dest_pkts_per_s: float
    dest_burst_pkts: int
    source_bytes_per_s: float
    """All traffic of this profile from the endpoint process."""
    source_burst_bytes: int


PUBLIC = RateProfile(
    syn_per_s=1,
    syn_burst=4,
    dest_bytes_per_s=1_000,
    dest_burst_bytes=8_000,
    dest_pkts_per_s=3,
    dest_burst_pkts=10,
    source_bytes_per_s=3_000,
    source_burst_bytes=100_000,
)
CERTIFIED = RateProfile(
    syn_per_s=100,
    syn_burst=200,
    dest_bytes_per_s=2_000_000,
    dest_burst_bytes=4_000_000,
    dest_pkts_per_s=2_000,
    dest_burst_pkts=4_000,
    source_bytes_per_s=20_000_000,
    source_burst_bytes=8_000_000,
)


@dataclass(frozen=True)
class OptOutConfig:
    """Where destination opt-outs come from (see packetlab.guardian.optout for the formats)."""

    file: Path | None = None
    """A text file of ``PREFIX [PROTO,...]`` lines, reloaded when it changes."""
    dns_name: str | None = None
    """A DNS name whose TXT RRset lists opt-outs, one ``PREFIX [PROTO,...]`` per string."""
    dns_server: str | None = None
    """Resolver address; None: the system resolver's first nameserver."""
    dns_port: int = 53
    dns_timeout_ms: int = 2000
    cache_s: int = 300
    """How long a DNS answer is used before it is asked again."""
    retry_s: int = 30
    """After a failed lookup (the last answer is kept), ask again this much later."""


@dataclass(frozen=True)
class LogConfig:
    """The packet log (pcapng under STATE/log/) and the traffic index (STATE/traffic.sqlite)."""

    enabled: bool = True
    index: bool = True
    snaplen: int = 256
    """Bytes of each packet kept in the pcapng file (headers; the length is recorded whole)."""
    rotate_bytes: int = 64 * 1024 * 1024
    """Start a new pcapng file past this size."""
    keep_bytes: int = 1024 * 1024 * 1024
    """Delete the oldest pcapng files while all of them together exceed this."""
    flush_ms: int = 1000
    """Buffered packets reach the file at least this often (and at close)."""


@dataclass(frozen=True)
class GuardianConfig:
    """Everything the operator tunes about the guardian."""

    source_policy: SourcePolicy = field(default_factory=SourcePolicy)
    public: RateProfile = PUBLIC
    certified: RateProfile = CERTIFIED
    max_wait_ms: int = 1000
    """A probe short of tokens waits (is shaped) up to this long; longer, it is refused."""
    max_destinations: int = 65536
    lease_packets: int = 64
    """Usage reserved in one transaction ahead of sending (the base block; see usage.py)."""
    lease_bytes: int = 65536
    lease_packets_max: int = 4096
    """A fast sender's lease grows up to this many packets (bytes grow in proportion). After a
    kill -9 at most one lease per experiment is counted but not sent."""
    optout: OptOutConfig = field(default_factory=OptOutConfig)
    log: LogConfig = field(default_factory=LogConfig)

    def profile(self, name: str) -> RateProfile:
        if name == "public":
            return self.public
        if name == "certified":
            return self.certified
        raise GuardianConfigError("profile", f"{name!r} is not one of {', '.join(PROFILE_NAMES)}")

    @classmethod
    def from_toml(cls, source: str | Path) -> GuardianConfig:
        """Load from TOML text (a ``str``) or a file (a ``Path``)."""
        base: Path | None = None
        if isinstance(source, Path):
            try:
                text = source.read_text()
            except (OSError, UnicodeDecodeError) as exc:
                raise GuardianConfigError(str(source), f"cannot read: {exc}") from None
            base = source.parent
        else:
            text = source
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise GuardianConfigError("(toml)", str(exc)) from None
        if isinstance(data.get("guardian"), dict):
            return cls.from_mapping(data["guardian"], base_dir=base, prefix="guardian.")
        return cls.from_mapping(data, base_dir=base)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, base_dir: Path | None = None, prefix: str = ""
    ) -> GuardianConfig:
        """Load from an already parsed TOML table; key names in errors start with ``prefix``."""
        _no_unknown(
            data, prefix, {f.name for f in fields(cls)} - {"public", "certified"} | {"profiles"}
        )
        changes: dict[str, Any] = {}
        for key in (
            "max_wait_ms",
            "max_destinations",
            "lease_packets",
            "lease_bytes",
            "lease_packets_max",
        ):
            if key in data:
                changes[key] = _int(
                    prefix + key, data[key], minimum=1 if key != "max_wait_ms" else 0
                )
        if "source_policy" in data:
            changes["source_policy"] = _section(
                prefix + "source_policy", data["source_policy"], SourcePolicy(), _policy_key
            )
        if "profiles" in data:
            profiles = _table(prefix + "profiles", data["profiles"])
            _no_unknown(profiles, prefix + "profiles.", set(PROFILE_NAMES))
            for name in PROFILE_NAMES:
                if name in profiles:
                    base_profile = PUBLIC if name == "public" else CERTIFIED
                    changes[name] = _section(
                        f"{prefix}profiles.{name}", profiles[name], base_profile, _profile_key
                    )
        if "optout" in data:
            changes["optout"] = _section(
                prefix + "optout", data["optout"], OptOutConfig(), partial(_optout_key, base_dir)
            )
        if "log" in data:
            changes["log"] = _section(prefix + "log", data["log"], LogConfig(), _log_key)
        config = replace(cls(), **changes)
        if config.lease_packets_max < config.lease_packets:
            raise GuardianConfigError(
                prefix + "lease_packets_max",
                f"must be >= lease_packets ({config.lease_packets}),"
                f" got {config.lease_packets_max}",
            )
        return config

    @property
    def lease_scale(self) -> int:
        """How many base blocks a lease may grow to."""
        return max(1, self.lease_packets_max // self.lease_packets)


def _no_unknown(data: Mapping[str, Any], prefix: str, known: set[str]) -> None:
    for key in data:
        if key not in known:
            raise GuardianConfigError(
                prefix + key, f"unknown key (known: {', '.join(sorted(known))})"
            )


def _table(key: str, value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise GuardianConfigError(key, f"must be a table, got {type(value).__name__}")
    return value


def _bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise GuardianConfigError(key, f"must be true or false, got {value!r}")
    return value


def _int(key: str, value: object, *, minimum: int = 0, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GuardianConfigError(key, f"must be an integer, got {value!r}")
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" and <= {maximum}" if maximum is not None else ""
        raise GuardianConfigError(key, f"must be >= {minimum}{upper}, got {value}")
    return value


def _rate(key: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise GuardianConfigError(key, f"must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0.001:
        raise GuardianConfigError(key, f"must be a finite rate >= 0.001 per second, got {value}")
    return float(value) if isinstance(value, float) else value


def _str(key: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise GuardianConfigError(key, f"must be a non-empty string, got {value!r}")
    return value


def _list(key: str, value: object, item: Callable[[str, object], _T]) -> tuple[_T, ...]:
    if not isinstance(value, list):
        raise GuardianConfigError(key, f"must be a list, got {value!r}")
    return tuple(item(f"{key}[{i}]", v) for i, v in enumerate(value))


def _prefix(key: str, value: object) -> Prefix:
    try:
        return parse_prefix(_str(key, value))
    except ValueError as exc:
        raise GuardianConfigError(key, f"not a prefix: {exc}") from None


def _section(
    where: str, value: object, base: _D, parse: Callable[[str, str, object], object]
) -> _D:
    """``base`` with the keys of the table ``value`` (at ``where``) changed; ``parse(name, key,
    value)`` checks one (``key`` is its full name, for errors)."""
    data = _table(where, value)
    _no_unknown(data, where + ".", {f.name for f in fields(base)})
    return replace(base, **{name: parse(name, f"{where}.{name}", v) for name, v in data.items()})


def _policy_key(name: str, key: str, value: object) -> object:
    if name == "privileged_port_exceptions":
        return _list(key, value, lambda k, v: _int(k, v, minimum=0, maximum=65535))
    if name == "allow_dest":
        return _list(key, value, _prefix)
    return _bool(key, value)


def _profile_key(name: str, key: str, value: object) -> object:
    if name.endswith("_per_s"):
        return _rate(key, value)
    return _int(key, value, minimum=1)


def _optout_key(base_dir: Path | None, name: str, key: str, value: object) -> object:
    if name == "file":
        path = Path(_str(key, value)).expanduser()
        return base_dir / path if base_dir is not None else path
    if name in ("dns_name", "dns_server"):
        return _str(key, value)
    if name == "dns_port":
        return _int(key, value, minimum=1, maximum=65535)
    return _int(key, value, minimum=1)


def _log_key(name: str, key: str, value: object) -> object:
    if name in ("enabled", "index"):
        return _bool(key, value)
    if name == "snaplen":
        return _int(key, value, minimum=20, maximum=262144)
    return _int(key, value, minimum=1)
