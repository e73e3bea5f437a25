"""Controller configuration: TOML from `packetlab init`, or the reference's xpmgr.conf."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from packetlab.wire.codes import DEFAULT_EXP_PORT
from packetlab.wire.refconf import ConfigError, conf_lines, read_config

__all__ = ["ConfigError", "ControllerConfig", "ExperimentEntry", "load_controller_config"]


@dataclass(frozen=True)
class ExperimentEntry:
    """One experiment the controller serves, chosen by the endpoint's SNI (an ExpExec line)."""

    sni_key: str
    cert_chain: tuple[Path, ...]
    """exppriv [+ delpriv...] + pubcmd, any order."""
    trusted_eop_keys: tuple[Path, ...]
    """Endpoint-operator keys endpoint chains must be rooted at (empty: any root)."""
    default: bool = False
    channels: tuple[str, ...] = ()


@dataclass(frozen=True)
class ControllerConfig:
    private_key: Path
    experiments: tuple[ExperimentEntry, ...]
    listen: str = f"0.0.0.0:{DEFAULT_EXP_PORT}"
    program_dir: Path | None = None
    setup_timeout_s: float = 10.0


def load_controller_config(path: Path) -> ControllerConfig:
    """TOML (from `packetlab init`) or, if the file is not TOML, the reference's xpmgr.conf."""
    text = read_config(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return _load_xpmgr_conf(path, text)
    section = data.get("controller")
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: no [controller] table")
    base = path.parent
    entries = []
    for item in section.get("experiment", []):
        entries.append(
            ExperimentEntry(
                sni_key=str(item.get("sni_key", "")),
                cert_chain=tuple(base / p for p in item.get("cert_chain", [])),
                trusted_eop_keys=tuple(base / p for p in item.get("trusted_eop_keys", [])),
                default=bool(item.get("default", False)),
                channels=tuple(item.get("channels", [])),
            )
        )
    try:
        config = ControllerConfig(
            private_key=base / section["private_key"],
            experiments=tuple(entries),
            listen=str(section.get("listen", f"0.0.0.0:{DEFAULT_EXP_PORT}")),
            program_dir=base / section["program_dir"] if section.get("program_dir") else None,
        )
    except KeyError as exc:
        raise ConfigError(f"{path}: [controller] needs {exc.args[0]}") from None
    _check(path, config)
    return config


def _check(path: Path, config: ControllerConfig) -> None:
    if not config.experiments:
        raise ConfigError(f"{path}: no experiment entry ([[controller.experiment]] / ExpExec)")
    if sum(e.default for e in config.experiments) > 1:
        raise ConfigError(f"{path}: more than one default experiment entry")
    for entry in config.experiments:
        if not entry.cert_chain:
            raise ConfigError(f"{path}: experiment {entry.sni_key!r} has no certificate chain")


def _load_xpmgr_conf(path: Path, text: str) -> ControllerConfig:
    """The reference's `Key Value` lines: ControllerPrivkeyPath, ProgramDirPath, ExpExec."""
    private_key: Path | None = None
    program_dir: Path | None = None
    entries: list[ExperimentEntry] = []
    for number, key, value in conf_lines(text):
        if key == "ControllerPrivkeyPath":
            private_key = Path(value).expanduser()
        elif key == "ProgramDirPath":
            program_dir = Path(value).expanduser()
        elif key == "ExpExec":
            fields = value.split(":")
            if len(fields) != 6:
                raise ConfigError(
                    f"{path}:{number}: ExpExec needs IS_DEFAULT:SNIKEY:EXPPRIVCHAIN_PATHS:"
                    "TRUSTEDEOP_PATHS:PUB_CHANNELS:OVERRIDE_XDESCR"
                )
            is_default, sni, chain, trusted, channels, _xdescr = fields
            entries.append(
                ExperimentEntry(
                    sni_key=sni,
                    cert_chain=tuple(Path(p).expanduser() for p in chain.split(",") if p),
                    trusted_eop_keys=tuple(Path(p).expanduser() for p in trusted.split(",") if p),
                    default=is_default.strip() == "1",
                    channels=tuple(c for c in channels.split(",") if c),
                )
            )
        # publication, proxy and other keys belong to later issues; ignored here
    if private_key is None:
        raise ConfigError(f"{path}: ControllerPrivkeyPath is required")
    config = ControllerConfig(private_key, tuple(entries), program_dir=program_dir)
    _check(path, config)
    return config
