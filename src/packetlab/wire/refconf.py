"""The reference's configuration files (endpt.conf, xpmgr.conf): one `Key Value` per line,
`#` comments, blank lines ignored. Shared by the endpoint and controller loaders."""

from __future__ import annotations

from collections.abc import Iterator


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
