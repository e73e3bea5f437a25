"""Endpoint configuration: one typed dataclass, loaded from the TOML `packetlab init` writes."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packetlab.endpoint.sockets import interface_ipv4
from packetlab.guardian import GuardianConfig, GuardianError
from packetlab.wire.codes import DEFAULT_EXP_PORT
from packetlab.wire.hostport import split_host_port
from packetlab.wire.refconf import ConfigError, conf_lines, conf_list, read_config

__all__ = ["ConfigError", "EndpointConfig", "load_endpoint_config", "split_host_port"]


@dataclass(frozen=True)
class EndpointConfig:
    private_key: Path
    """The endpoint's Ed25519 key (k_ep)."""
    cert_chain: tuple[Path, ...]
    """The subcmd chain shown to controllers (reference: ControllerCertChainPath)."""
    trusted_eop_keys: tuple[Path, ...]
    """Endpoint-operator keys controller chains must be rooted at (EndpointOpPubKeyPath)."""
    controller: str = f"127.0.0.1:{DEFAULT_EXP_PORT}"
    """Broker-less mode: the controller to dial, HOST:PORT or [V6]:PORT."""
    sni_key: str = ""
    host_id: str = "pktendpt"
    buf_max: int = 8388608
    """Bytes of received data the endpoint holds for controllers at most (BUFMAX)."""
    local_ipv4: tuple[str, ...] = ("127.0.0.1/8",)
    local_ipv6: tuple[str, ...] = ()
    dns_ipv4: tuple[str, ...] = ()
    dns_ipv6: tuple[str, ...] = ()
    transports: tuple[str, ...] = ("tcp", "udp")
    connect_timeout_s: float = 3.0
    retry_delay_s: float = 1.0
    retry_delay_max_s: float = 30.0
    guardian: GuardianConfig = field(default_factory=GuardianConfig)
    """The guardian's policy, buckets, opt-out and log (the ``[guardian]`` table)."""
    state_dir: Path = Path("guardian")
    """Usage database, packet log and traffic index (loaders: ``guardian/`` beside the file)."""
    extra: dict[str, object] = field(default_factory=dict)


def load_endpoint_config(path: Path) -> EndpointConfig:
    """TOML (from `packetlab init`) or, if the file is not TOML, the reference's endpt.conf."""
    text = read_config(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        if not _looks_like_endpt_conf(text):
            raise ConfigError(f"{path}: {exc}") from None
        return _load_endpt_conf(path, text)
    section = data.get("endpoint")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no [endpoint] table")
    base = path.parent
    try:
        guardian = GuardianConfig.from_mapping(
            data.get("guardian", {}), base_dir=base, prefix="guardian."
        )
    except GuardianError as exc:
        raise ConfigError(f"{path}: {exc}") from None

    def paths(key: str) -> tuple[Path, ...]:
        value = section.get(key, [])
        if isinstance(value, str):
            value = [value]
        return tuple(base / Path(v) for v in value)

    try:
        return _checked(
            path,
            EndpointConfig(
                private_key=base / section["private_key"],
                cert_chain=paths("cert_chain"),
                trusted_eop_keys=paths("trusted_eop_keys"),
                controller=str(section.get("controller", f"127.0.0.1:{DEFAULT_EXP_PORT}")),
                sni_key=str(section.get("sni_key", "")),
                host_id=str(section.get("host_id", "pktendpt")),
                buf_max=int(section.get("buf_max", 8388608)),
                local_ipv4=tuple(section.get("local_ipv4", ["127.0.0.1/8"])),
                local_ipv6=tuple(section.get("local_ipv6", [])),
                dns_ipv4=tuple(section.get("dns_ipv4", [])),
                dns_ipv6=tuple(section.get("dns_ipv6", [])),
                transports=tuple(section.get("transports", ["tcp", "udp"])),
                guardian=guardian,
                state_dir=base / section.get("state_dir", "guardian"),
                connect_timeout_s=float(section.get("connect_timeout_s", 3.0)),
                retry_delay_s=float(section.get("retry_delay_s", 1.0)),
                retry_delay_max_s=float(section.get("retry_delay_max_s", 30.0)),
            ),
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: [endpoint] needs {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None


def _checked(path: Path, config: EndpointConfig) -> EndpointConfig:
    for net in (*config.local_ipv4, *config.local_ipv6):
        try:
            ipaddress.ip_interface(net)
        except ValueError:
            raise ConfigError(f"{path}: {net!r} is not ADDRESS/PREFIX") from None
    unknown = set(config.transports) - {"raw", "tcp", "udp"}
    if unknown:
        raise ConfigError(f"{path}: unknown transport {sorted(unknown)[0]!r} (raw, tcp, udp)")
    for name in ("connect_timeout_s", "retry_delay_s", "retry_delay_max_s"):
        if not getattr(config, name) > 0:
            raise ConfigError(f"{path}: {name} must be a positive number of seconds")
    if config.retry_delay_max_s < config.retry_delay_s:
        raise ConfigError(f"{path}: retry_delay_max_s is below retry_delay_s")
    return config


# the reference's endpt.conf ----------------------------------------------------------------

_ENDPT_KEYS = {
    "BufMax", "TransprotoSup", "RawModeLKM", "VMemLocalAddrStrIPv4", "VMemLocalAddrStrIPv6",
    "VMemLocalDNSAddrStrIPv4", "VMemLocalDNSAddrStrIPv6", "HostID", "BrokerAddr",
    "BrokerChannel", "AutoExtractChannel", "EndpointAgentCertPath", "BrokerChainRootPath",
    "EndpointOpPubKeyPath", "SubPrivCertChainPath", "ControllerCertChainPath", "EndpointPrivKey",
    "EndpointAttr", "NoSubMode", "NoSubModeSNIKey", "RLimDBPath", "WorkerBusyWaitMode",
    "MonitorReportCrash", "MonitorDeadlineMillsec", "MonitorMemoryMax",
}  # fmt: skip


def _looks_like_endpt_conf(text: str) -> bool:
    return any(key in _ENDPT_KEYS for _, key, _ in conf_lines(text))


def _load_endpt_conf(path: Path, text: str) -> EndpointConfig:
    """The keys of the reference's endpt.conf that apply (reference section 8). Relative
    paths are taken from the file's directory; broker, monitor and raw-mode keys are kept in
    ``extra`` for the components that will use them."""
    base = path.parent
    found: dict[str, tuple[int, str]] = {}
    for number, key, value in conf_lines(text):
        if key not in _ENDPT_KEYS:
            raise ConfigError(f"{path}:{number}: unknown endpt.conf key {key!r}")
        found[key] = (number, value)

    def get(key: str, default: str = "") -> str:
        return found[key][1] if key in found else default

    def paths(key: str) -> tuple[Path, ...]:
        return tuple(base / Path(p).expanduser() for p in conf_list(get(key)))

    def integer(key: str, default: int) -> int:
        try:
            return int(get(key, str(default)), 0)
        except ValueError:
            raise ConfigError(f"{path}:{found[key][0]}: {key} needs a number") from None

    if not get("EndpointPrivKey"):
        raise ConfigError(f"{path}: EndpointPrivKey is required")
    if not get("EndpointOpPubKeyPath"):
        raise ConfigError(f"{path}: EndpointOpPubKeyPath is required")
    used = {
        "BufMax", "TransprotoSup", "VMemLocalAddrStrIPv4", "VMemLocalAddrStrIPv6",
        "VMemLocalDNSAddrStrIPv4", "VMemLocalDNSAddrStrIPv6", "HostID", "EndpointOpPubKeyPath",
        "ControllerCertChainPath", "EndpointPrivKey", "NoSubModeSNIKey",
    }  # fmt: skip
    return _checked(
        path,
        EndpointConfig(
            private_key=base / Path(get("EndpointPrivKey")).expanduser(),
            cert_chain=paths("ControllerCertChainPath"),
            trusted_eop_keys=paths("EndpointOpPubKeyPath"),
            sni_key=get("NoSubModeSNIKey"),
            host_id=get("HostID", "pktendpt"),
            buf_max=integer("BufMax", 8388608),
            local_ipv4=tuple(
                _interface_ipv4(path, item) if "/" not in item and ":" not in item else item
                for item in conf_list(get("VMemLocalAddrStrIPv4", "127.0.0.1/24,127.0.0.2/24"))
            ),
            local_ipv6=tuple(conf_list(get("VMemLocalAddrStrIPv6"))),
            dns_ipv4=tuple(conf_list(get("VMemLocalDNSAddrStrIPv4"))),
            dns_ipv6=tuple(conf_list(get("VMemLocalDNSAddrStrIPv6"))),
            transports=tuple(conf_list(get("TransprotoSup", "tcp,udp"))),
            state_dir=base / "guardian",
            extra={key: value for key, (_, value) in found.items() if key not in used},
        ),
    )


def _interface_ipv4(path: Path, name: str) -> str:
    """ADDRESS/PREFIX of a Linux interface (the reference allows a name in the address list)."""
    found = interface_ipv4(name)
    if found is None:
        raise ConfigError(f"{path}: interface {name!r} has no IPv4 address")
    addr, mask = found
    prefix = ipaddress.IPv4Network(f"0.0.0.0/{ipaddress.IPv4Address(mask)}").prefixlen
    return f"{ipaddress.IPv4Address(addr)}/{prefix}"
