"""Configuration files, shared by the endpoint and controller loaders: reading one with a
clear error, and the reference's format (endpt.conf, xpmgr.conf): one `Key Value` per line,
`#` comments, blank lines ignored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path


class ConfigError(ValueError):
    """The configuration cannot be used; the message names the file and the key or line."""


def read_config(path: Path) -> str:
    """The text of a configuration file, or ConfigError saying why it cannot be read."""
    try:
        return path.read_text()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file (run `packetlab init`)") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None


def conf_lines(text: str) -> Iterator[tuple[int, str, str]]:
    """(line number, key, value) for each setting, in file order."""
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        yield number, key, value.strip()


def conf_list(value: str) -> list[str]:
    """A comma-separated value, empty items dropped."""
    return [item.strip() for item in value.split(",") if item.strip()]
