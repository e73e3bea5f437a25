"""GuardianConfig from TOML: defaults, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from packetlab.guardian import (
    CERTIFIED,
    PUBLIC,
    ExperimentIdentity,
    GuardianConfig,
    GuardianConfigError,
    parse_prefix,
)


def test_defaults_are_the_documented_profiles() -> None:
    config = GuardianConfig.from_toml("")
    # Scriptroute Table 3 (decimal KB)
    assert (PUBLIC.syn_per_s, PUBLIC.syn_burst) == (1, 4)
    assert (PUBLIC.dest_bytes_per_s, PUBLIC.dest_burst_bytes) == (1000, 8000)
    assert (PUBLIC.dest_pkts_per_s, PUBLIC.dest_burst_pkts) == (3, 10)
    assert (PUBLIC.source_bytes_per_s, PUBLIC.source_burst_bytes) == (3000, 100_000)
    assert (CERTIFIED.syn_per_s, CERTIFIED.syn_burst) == (100, 200)
    assert (CERTIFIED.dest_pkts_per_s, CERTIFIED.dest_burst_pkts) == (2000, 4000)
    assert (CERTIFIED.dest_bytes_per_s, CERTIFIED.dest_burst_bytes) == (2_000_000, 4_000_000)
    assert (CERTIFIED.source_bytes_per_s, CERTIFIED.source_burst_bytes) == (
        20_000_000,
        8_000_000,
    )
    assert config.max_wait_ms == 1000
    policy = config.source_policy
    assert policy.privileged_port_exceptions == (53, 80)
    assert all(
        getattr(policy, name)
        for name in (
            "deny_broadcast",
            "deny_multicast",
            "deny_fragments",
            "deny_icmp_errors",
            "deny_tcp_rst",
            "deny_privileged_ports",
            "deny_local_host",
            "deny_local_subnet",
            "deny_spoofing",
        )
    )


def test_a_full_file(tmp_path: Path) -> None:
    (tmp_path / "optout.txt").write_text("198.18.9.0/24 icmp\n")
    path = tmp_path / "guardian.toml"
    path.write_text(
        """
[guardian]
max_wait_ms = 250
max_destinations = 100
lease_packets = 16
lease_bytes = 4096

[guardian.source_policy]
deny_fragments = false
allow_dest = ["127.0.0.0/8", "::1"]
privileged_port_exceptions = [53, 80, 443]

[guardian.profiles.public]
syn_per_s = 0.5
dest_burst_pkts = 5

[guardian.optout]
file = "optout.txt"
dns_name = "_optout.example.net"
dns_server = "127.0.0.1"
dns_port = 5353
cache_s = 60

[guardian.log]
snaplen = 128
rotate_bytes = 1000000
keep_bytes = 5000000
"""
    )
    config = GuardianConfig.from_toml(path)
    assert config.max_wait_ms == 250
    assert config.max_destinations == 100
    assert (config.lease_packets, config.lease_bytes) == (16, 4096)
    assert config.source_policy.deny_fragments is False
    assert config.source_policy.deny_tcp_rst is True
    assert config.source_policy.allow_dest == (
        parse_prefix("127.0.0.0/8"),
        parse_prefix("::1/128"),
    )
    assert config.source_policy.privileged_port_exceptions == (53, 80, 443)
    assert config.public.syn_per_s == 0.5
    assert config.public.dest_burst_pkts == 5
    assert config.public.dest_pkts_per_s == PUBLIC.dest_pkts_per_s  # untouched keys keep defaults
    assert config.certified == CERTIFIED
    assert config.optout.file == tmp_path / "optout.txt"  # relative to the TOML file
    assert config.optout.dns_port == 5353
    assert config.optout.cache_s == 60
    assert config.log.snaplen == 128
    assert config.profile("public") is config.public


BAD = [
    ("max_wait_ms = -1", "max_wait_ms"),
    ("max_wait_ms = 1.5", "max_wait_ms"),
    ("lease_packets = 0", "lease_packets"),
    ("bogus = 1", "bogus"),
    ("[source_policy]\ndeny_fragments = 1", "source_policy.deny_fragments"),
    ("[source_policy]\nallow_dest = ['10.0.0.1/8']", "source_policy.allow_dest[0]"),
    ("[source_policy]\nallow_dest = '10.0.0.0/8'", "source_policy.allow_dest"),
    (
        "[source_policy]\nprivileged_port_exceptions = [70000]",
        "source_policy.privileged_port_exceptions[0]",
    ),
    ("[source_policy]\ndeny_everything = true", "source_policy.deny_everything"),
    ("[profiles.public]\nsyn_per_s = 0", "profiles.public.syn_per_s"),
    ("[profiles.public]\nsyn_per_s = 'fast'", "profiles.public.syn_per_s"),
    ("[profiles.public]\nsyn_per_s = inf", "profiles.public.syn_per_s"),
    ("[profiles.certified]\ndest_burst_bytes = 0", "profiles.certified.dest_burst_bytes"),
    ("[profiles.certified]\nburst = 3", "profiles.certified.burst"),
    ("[profiles.premium]\nsyn_per_s = 3", "profiles.premium"),
    ("source_policy = 3", "source_policy"),
    ("[optout]\ndns_port = 0", "optout.dns_port"),
    ("[optout]\nfile = ''", "optout.file"),
    ("[log]\nsnaplen = 10", "log.snaplen"),
    ("[log]\nenabled = 'yes'", "log.enabled"),
    ("[guardian]\nmax_wait_ms = 'x'", "guardian.max_wait_ms"),
    ("this is not toml", "(toml)"),
]


@pytest.mark.parametrize(("text", "key"), BAD, ids=[b[1] for b in BAD])
def test_errors_name_the_key(text: str, key: str) -> None:
    with pytest.raises(GuardianConfigError) as info:
        GuardianConfig.from_toml(text)
    assert info.value.key == key
    assert key in str(info.value)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(GuardianConfigError, match="cannot read"):
        GuardianConfig.from_toml(tmp_path / "missing.toml")


def test_identity_checks_its_profile() -> None:
    with pytest.raises(GuardianConfigError, match="profile"):
        ExperimentIdentity("e", "c", "premium")
    with pytest.raises(GuardianConfigError, match="experiment_id"):
        ExperimentIdentity("", "c")
    with pytest.raises(GuardianConfigError, match="profile"):
        GuardianConfig().profile("premium")
