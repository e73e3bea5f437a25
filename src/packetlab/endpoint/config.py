"""Endpoint configuration: one typed dataclass, loaded from the TOML `packetlab init` writes."""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packetlab.wire.codes import DEFAULT_EXP_PORT
from packetlab.wire.hostport import split_host_port

__all__ = ["ConfigError", "EndpointConfig", "load_endpoint_config", "split_host_port"]


class ConfigError(ValueError):
    """The configuration file cannot be used; the message names the file and the key."""


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
    extra: dict[str, object] = field(default_factory=dict)


def load_endpoint_config(path: Path) -> EndpointConfig:
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run `packetlab init`)") from None
    except (tomllib.TOMLDecodeError, OSError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    section = data.get("endpoint")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no [endpoint] table")
    base = path.parent

    def paths(key: str) -> tuple[Path, ...]:
        value = section.get(key, [])
        if isinstance(value, str):
            value = [value]
        return tuple(base / Path(v) for v in value)

    try:
        config = EndpointConfig(
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
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: [endpoint] needs {exc.args[0]}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: {exc}") from None
    for net in (*config.local_ipv4, *config.local_ipv6):
        try:
            ipaddress.ip_interface(net)
        except ValueError:
            raise ConfigError(f"{path}: {net!r} is not ADDRESS/PREFIX") from None
    return config
