"""ppksman's certificate content options, with its names, shared by `generate csr` and `cert`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from packetlab.cli._common import BadInput
from packetlab.pki import Limits, NameValueError, parse_limits
from packetlab.pki.nvpairs import parse_pairs

# (option name, limit name, kind) in ppksman's order
_LIMIT_OPTIONS: tuple[tuple[str, str, str], ...] = (
    ("filter_digest", "filter", "digests"),
    ("monitor_digest", "monitor", "digests"),
    ("max_num_priority", "max_num_priority", "int"),
    ("max_socket_count", "max_socket_count", "int"),
    ("max_exp_period", "max_exp_period", "int"),
    ("max_send_byte", "max_send_byte", "int"),
    ("max_send_pkt", "max_send_pkt", "int"),
    ("max_recv_byte", "max_recv_byte", "int"),
    ("max_recv_pkt", "max_recv_pkt", "int"),
    ("max_burst_rate_byte", "max_burst_rate_byte", "list"),
    ("max_burst_rate_pkt", "max_burst_rate_pkt", "list"),
    ("valid_dest", "valid_dest", "list"),
    ("src_ip_spoofing", "src_ip_spoofing", "bool"),
)
# ppksman spells the two digest flags in the plural
_OPT_FLAG = {"filter_digest": "opt_filter_digests", "monitor_digest": "opt_monitor_digests"}

_HELP = {
    "filter_digest": "SHA-256 (hex) of eBPF filter programs the endpoint must run (repeatable).",
    "monitor_digest": "SHA-256 (hex) of WASM monitor programs the endpoint must run (repeatable).",
    "max_num_priority": "Maximum experiment priority.",
    "max_socket_count": "Maximum sockets open at once.",
    "max_exp_period": "Maximum experiment period, in pktlab ticks (ns).",
    "max_send_byte": "Maximum bytes sent.",
    "max_send_pkt": "Maximum packets sent.",
    "max_recv_byte": "Maximum bytes received.",
    "max_recv_pkt": "Maximum packets received.",
    "max_burst_rate_byte": "Burst rate BYTES/TICKS (repeatable).",
    "max_burst_rate_pkt": "Burst rate PKTS/TICKS (repeatable).",
    "valid_dest": "Allowed destination network, e.g. 198.18.0.0/15 (repeatable).",
    "src_ip_spoofing": "Allow source address spoofing (0 or 1).",
}


def content_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Attach --pathlen, delegation, description, every limit and every --opt_<limit>."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option("--pathlen", type=click.IntRange(min=0), help="BasicConstraints pathLen."),
        click.option("--del_exppriv", is_flag=True, help="Delegate experiment privilege."),
        click.option("--del_reppriv", is_flag=True, help="Delegate representation privilege."),
        click.option("-c", "--cert_description", help="Certificate description (cert_desc)."),
        click.option("--aux_info_str", help="Extra 'name=value;' pairs for cert_info."),
    ]
    for opt, _, kind in _LIMIT_OPTIONS:
        if kind in ("digests", "list"):
            options.append(click.option(f"--{opt}", multiple=True, help=_HELP[opt]))
        elif kind == "bool":
            options.append(click.option(f"--{opt}", type=click.IntRange(0, 1), help=_HELP[opt]))
        else:
            options.append(click.option(f"--{opt}", type=click.IntRange(min=0), help=_HELP[opt]))
    options.append(
        click.option("--aux_limit_str", help="Extra 'name=value;' pairs for cert_limit.")
    )
    for opt, limit, _ in _LIMIT_OPTIONS:
        flag = _OPT_FLAG.get(opt, f"opt_{opt}")
        options.append(
            click.option(f"--{flag}", is_flag=True, help=f"Mark {limit} optional ('*').")
        )
    for option in reversed(options):
        func = option(func)
    return func


def _split(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v for v in value.replace(",", " ").split() if v)
    return out


def limits_from_options(params: dict[str, Any]) -> tuple[Limits | None, set[str]]:
    """Limits given on the command line, and the names that were given (for CSR overrides)."""
    pairs: list[tuple[str, str]] = []
    given: set[str] = set()
    for opt, limit, kind in _LIMIT_OPTIONS:
        value = params.get(opt)
        if value is None or value == ():
            continue
        if kind == "digests":
            digests = [v[2:] if v.lower().startswith("0x") else v for v in _split(value)]
            text = "".join(digests).lower()
        elif kind == "list":
            text = ",".join(_split(value))
        else:
            text = str(int(value))
        optional = params.get(_OPT_FLAG.get(opt, f"opt_{opt}"), False)
        pairs.append((("*" if optional else "") + limit, text))
        given.add(limit)
    aux = params.get("aux_limit_str")
    text = "".join(f"{n}={v};" for n, v in pairs) + (aux or "")
    if not text:
        return None, given
    try:
        if aux:
            parse_pairs(aux, what="--aux_limit_str", allow_optional_marker=True)
        limits = parse_limits(text)
    except NameValueError as exc:
        raise BadInput(str(exc)) from None
    given.update(u.name for u in limits.unknown)
    for pair in limits.unknown:
        note = "optional, ignored by endpoints that do not know it"
        if not pair.optional:
            note = "NOT optional: endpoints will reject chains carrying it"
        click.echo(f"packetlab: warning: unknown limit {pair.name!r} ({note})", err=True)
    return limits, given


def aux_info_pairs(text: str | None) -> tuple[tuple[str, str], ...]:
    if not text:
        return ()
    try:
        pairs = parse_pairs(text, what="--aux_info_str")
    except NameValueError as exc:
        raise BadInput(str(exc)) from None
    reserved = {"cert_type", "del_type", "cert_desc"} & {n for n, _ in pairs}
    if reserved:
        raise BadInput(f"--aux_info_str may not set {', '.join(sorted(reserved))}")
    return tuple(pairs)
