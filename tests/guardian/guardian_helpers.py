"""Helpers for the guardian tests: a guardian in a temporary state dir, probes, a virtual clock."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from packetlab.guardian import (
    ExperimentGuard,
    ExperimentIdentity,
    Guardian,
    GuardianConfig,
    OptOutSource,
    Probe,
)
from packetlab.pki.limits import Limits, parse_limits

T0 = 1_800_000_000_000_000_000  # ns on the epoch clock
S = 1_000_000_000
MS = 1_000_000
OWN4 = "198.18.0.1"
OWN6 = "2001:db8::1"
LOCAL_NETS = [(ipaddress.ip_address(OWN4).packed, 24), (ipaddress.ip_address(OWN6).packed, 64)]
REMOTE4 = "198.19.7.7"
REMOTE6 = "2001:db8:7::7"

# Buckets loose enough never to shape, for tests of everything else.
LOOSE = """
[profiles.certified]
syn_per_s = 1e9
syn_burst = 1000000000
dest_bytes_per_s = 1e12
dest_burst_bytes = 1000000000000
dest_pkts_per_s = 1e9
dest_burst_pkts = 1000000000
source_bytes_per_s = 1e12
source_burst_bytes = 1000000000000
"""


def ip(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


def probe(
    dst: str = REMOTE4,
    *,
    proto: int = 17,
    src: str | None = None,
    sport: int = 40000,
    dport: int = 33434,
    size: int = 100,
    raw: bool = False,
    fragment: bool = False,
    icmp_type: int = -1,
    icmp_code: int = -1,
    tcp_flags: int = 0,
) -> Probe:
    family = ipaddress.ip_address(dst).version
    if src is None:
        src = OWN4 if family == 4 else OWN6
    if proto not in (6, 17):
        sport = dport = 0
    if proto in (1, 58) and icmp_type == -1:
        icmp_type, icmp_code = (8 if proto == 1 else 128), 0
    return Probe(
        family=family,
        proto=proto,
        src=ip(src),
        dst=ip(dst),
        sport=sport,
        dport=dport,
        size=size,
        raw=raw,
        fragment=fragment,
        icmp_type=icmp_type,
        icmp_code=icmp_code,
        tcp_flags=tcp_flags,
    )


def make_guardian(
    state: Path,
    toml: str = LOOSE,
    *,
    log: bool = False,
    optouts: OptOutSource | None = None,
) -> Guardian:
    text = toml + ("" if log else "\n[log]\nenabled = false\n")
    return Guardian(GuardianConfig.from_toml(text), state, LOCAL_NETS, optouts)


def open_guard(
    guardian: Guardian,
    limits: str | Limits | None = None,
    *,
    experiment_id: str = "exp-a",
    controller: str = "ctl-a",
    profile: str = "certified",
    spoofing: bool = False,
    now: int = T0,
) -> ExperimentGuard:
    parsed = parse_limits(limits) if isinstance(limits, str) else limits
    ident = ExperimentIdentity(experiment_id, controller, profile, parsed, spoofing)
    return guardian.open_experiment(ident, now)
