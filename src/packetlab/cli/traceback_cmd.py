"""`packetlab traceback ADDR`: who sent what to an address, from the guardian's traffic index."""

from __future__ import annotations

import datetime
import json
import re
import time
from pathlib import Path

import click

from packetlab.cli._common import BadInput, home_of, parse_time

PROTOCOLS = {1: "icmp", 6: "tcp", 17: "udp", 58: "icmpv6"}
_AGO = re.compile(r"^-(\d+)([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _since_ns(text: str | None) -> int | None:
    if text is None:
        return None
    match = _AGO.match(text.strip())
    if match:
        return time.time_ns() - int(match.group(1)) * _UNITS[match.group(2)] * 1_000_000_000
    return parse_time(text, "--since") * 1_000_000_000


def _when(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns / 1e9, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{ns // 1_000_000 % 1000:03d}"


@click.command("traceback")
@click.argument("address")
@click.option(
    "--since",
    help="Only traffic since TIME: Unix seconds, an ISO date/time (UTC unless given), "
    "'-2h' (ago; s/m/h/d).",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="The endpoint's guardian state directory (default: HOME/guardian).",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def traceback(
    ctx: click.Context, address: str, since: str | None, state_dir: str | None, as_json: bool
) -> None:
    """Who sent what to ADDRESS (an address or a prefix such as 198.18.0.0/24)?

    Lists, per experiment, controller, protocol and direction, the packets and bytes the
    endpoint sent to (or received from) the address, with first and last times, and the pcapng
    files of the packet log that hold them.
    """
    from packetlab.guardian import GuardianError, TrafficIndex, parse_prefix
    from packetlab.packets import addr_text

    try:
        target = parse_prefix(address)
    except ValueError as exc:
        raise BadInput(f"{address!r} is not an address or prefix: {exc}") from None
    since_ns = _since_ns(since)
    state = Path(state_dir) if state_dir else home_of(ctx) / "guardian"
    db = state / "traffic.sqlite"
    if not db.is_file():
        raise BadInput(f"{db}: no traffic index (is {state} the endpoint's guardian state dir?)")
    try:
        index = TrafficIndex(db)
        try:
            rows = index.traceback(target, since_ns)
            files = (
                index.files_between(min(r.first_ns for r in rows), max(r.last_ns for r in rows))
                if rows
                else []
            )
        finally:
            index.close()
    except GuardianError as exc:
        raise BadInput(str(exc)) from None
    if as_json:
        for r in rows:
            click.echo(
                json.dumps(
                    {
                        "address": addr_text(r.addr),
                        "direction": r.direction,
                        "proto": r.proto,
                        "packets": r.pkts,
                        "bytes": r.nbytes,
                        "first_ns": r.first_ns,
                        "last_ns": r.last_ns,
                        "experiment": r.experiment_id,
                        "controller": r.controller,
                    }
                )
            )
        for f in files:
            click.echo(json.dumps({"pcapng": f.path, "first_ns": f.first_ns, "last_ns": f.last_ns}))
        return
    where = str(target) if target.length < (32 if target.family == 4 else 128) else address
    if not rows:
        click.echo(f"No traffic with {where} in {db}.")
        return
    click.echo(f"Traffic with {where}:")
    header = ("first", "last", "address", "dir", "proto", "packets", "bytes", "experiment",
              "controller")  # fmt: skip
    table = [header] + [
        (
            _when(r.first_ns),
            _when(r.last_ns),
            addr_text(r.addr),
            r.direction,
            PROTOCOLS.get(r.proto, str(r.proto)),
            str(r.pkts),
            str(r.nbytes),
            r.experiment_id,
            r.controller,
        )
        for r in rows
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if files:
        field = "ip.addr" if target.family == 4 else "ipv6.addr"
        click.echo(f"Packet log (Wireshark filter: {field} == {where}):")
        for f in files:
            click.echo(f"  {f.path}  {_when(f.first_ns)} .. {_when(f.last_ns)}")
