"""The endpoint reads its TOML and, for users of the reference, its endpt.conf."""

from __future__ import annotations

from pathlib import Path

import pytest

from packetlab.endpoint.config import ConfigError, load_endpoint_config

REFERENCE_STYLE = """\
# as pktlab_init writes it, with this test's paths
BufMax 4194304
TransprotoSup tcp,udp
RawModeLKM 0
VMemLocalAddrStrIPv4 lo,127.0.0.2/24
VMemLocalDNSAddrStrIPv4 127.0.0.53
HostID my-endpoint
BrokerAddr 127.0.0.1
EndpointOpPubKeyPath keys/k_eop.pub
ControllerCertChainPath certs/subcmd_eop_ep.cert
EndpointPrivKey keys/k_ep
NoSubMode 1
NoSubModeSNIKey abc123
MonitorDeadlineMillsec 100
"""


def test_reference_endpt_conf_keys_that_apply_are_read(tmp_path: Path) -> None:
    conf = tmp_path / "endpt.conf"
    conf.write_text(REFERENCE_STYLE)
    config = load_endpoint_config(conf)
    assert config.private_key == tmp_path / "keys/k_ep"
    assert config.cert_chain == (tmp_path / "certs/subcmd_eop_ep.cert",)
    assert config.trusted_eop_keys == (tmp_path / "keys/k_eop.pub",)
    assert config.buf_max == 4194304
    assert config.transports == ("tcp", "udp")
    assert config.local_ipv4 == ("127.0.0.1/8", "127.0.0.2/24")  # "lo" is an interface name
    assert config.dns_ipv4 == ("127.0.0.53",)
    assert (config.host_id, config.sni_key) == ("my-endpoint", "abc123")
    # keys for the broker, monitors and raw mode are kept for their components
    assert config.extra["BrokerAddr"] == "127.0.0.1"
    assert config.extra["MonitorDeadlineMillsec"] == "100"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("BufMax 4194304", "BufMax lots"), ":2: BufMax needs a number"),
        (("RawModeLKM 0", "RawModeLMK 0"), ":4: unknown endpt.conf key 'RawModeLMK'"),
        (("EndpointPrivKey keys/k_ep\n", ""), "EndpointPrivKey is required"),
        (("lo,", "no-such-if0,"), "interface 'no-such-if0' has no IPv4 address"),
        (("tcp,udp", "tcp,sctp"), "unknown transport 'sctp'"),
    ],
)
def test_bad_endpt_conf_names_the_line_or_key(
    tmp_path: Path, change: tuple[str, str], message: str
) -> None:
    conf = tmp_path / "endpt.conf"
    conf.write_text(REFERENCE_STYLE.replace(*change))
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        load_endpoint_config(conf)


def test_a_broken_toml_file_is_reported_as_toml(tmp_path: Path) -> None:
    conf = tmp_path / "endpoint.toml"
    conf.write_text("[endpoint]\nprivate_key = \n")
    with pytest.raises(ConfigError, match=r"endpoint\.toml: Invalid value"):
        load_endpoint_config(conf)


def _toml(tmp_path: Path, extra: str) -> Path:
    conf = tmp_path / "endpoint.toml"
    conf.write_text(f'[endpoint]\nprivate_key = "k"\n{extra}')
    return conf


def test_dial_timing_is_read_from_toml(tmp_path: Path) -> None:
    config = load_endpoint_config(
        _toml(tmp_path, "retry_delay_s = 0.02\nretry_delay_max_s = 0.5\nconnect_timeout_s = 2\n")
    )
    assert (config.retry_delay_s, config.retry_delay_max_s, config.connect_timeout_s) == (
        0.02, 0.5, 2.0)  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("retry_delay_s = 0\n", "retry_delay_s must be a positive"),
        ("retry_delay_s = 5\nretry_delay_max_s = 1\n", "retry_delay_max_s is below"),
        ('connect_timeout_s = "soon"\n', "could not convert"),
    ],
)
def test_bad_dial_timing_is_refused(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_endpoint_config(_toml(tmp_path, extra))
