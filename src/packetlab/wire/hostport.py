"""HOST[:PORT] strings as the reference's command lines take them."""

from __future__ import annotations

from packetlab.wire.codes import DEFAULT_EXP_PORT


def split_host_port(text: str, default_port: int = DEFAULT_EXP_PORT) -> tuple[str, int]:
    """HOST, HOST:PORT, [V6] or [V6]:PORT."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
        return host, port
    if text.count(":") == 1:
        host, port_text = text.split(":")
        return host, int(port_text)
    return text, default_port
