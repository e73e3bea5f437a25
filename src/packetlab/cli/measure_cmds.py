"""`packetlab ping|trace|dig|http|bw|alias`: one measurement, run from every endpoint that
dials in (see _measure_run.py for the controller, progress and output they share)."""

from __future__ import annotations

import functools
import ipaddress
import socket
from typing import Any

import click

from packetlab.cli._common import BadInput
from packetlab.cli._measure_run import RunOptions, common_options, run

PROTO = click.Choice(["icmp", "udp", "tcp"], case_sensitive=False)


def _opts(kw: dict[str, Any]) -> RunOptions:
    names = ("config_path", "address", "endpoints", "wait", "fmt", "output", "verbose")
    return RunOptions(**{name: kw.pop(name) for name in names})


def resolve(target: str, family: int | None) -> str:
    """An address for ``target`` (a literal, or a name looked up here, on the controller)."""
    try:
        address = ipaddress.ip_address(target)
    except ValueError:
        pass
    else:
        if family and address.version != family:
            raise BadInput(f"{target} is not an IPv{family} address")
        return str(address)
    want = {4: socket.AF_INET, 6: socket.AF_INET6}.get(family or 0, socket.AF_UNSPEC)
    try:
        infos = socket.getaddrinfo(target, None, want, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise BadInput(f"cannot resolve {target!r}: {exc.strerror}") from None
    return str(infos[0][4][0])


def _family_flags(command: Any) -> Any:
    command = click.option("-6", "v6", is_flag=True, help="Use IPv6 when TARGET is a name.")(
        command
    )
    return click.option("-4", "v4", is_flag=True, help="Use IPv4 when TARGET is a name.")(command)


def _family(v4: bool, v6: bool) -> int | None:
    if v4 and v6:
        raise BadInput("-4 and -6 exclude each other")
    return 4 if v4 else 6 if v6 else None


@click.command("ping")
@click.argument("target")
@click.option(
    "--count",
    "-C",
    type=click.IntRange(1, 10_000),
    default=5,
    show_default=True,
    help="Probes to send.",
)
@click.option(
    "-i",
    "--interval",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    help="Seconds between probes (scheduled on the endpoint's clock).",
)
@click.option(
    "-P",
    "--proto",
    type=PROTO,
    default="icmp",
    show_default=True,
    help="icmp: echo request; udp: to a closed port; tcp: SYN to --port.",
)
@click.option(
    "-s",
    "--size",
    type=click.IntRange(0, 1400),
    default=56,
    show_default=True,
    help="Payload bytes (ICMP and UDP).",
)
@click.option("-t", "--ttl", type=click.IntRange(1, 255), default=64, show_default=True)
@click.option("-p", "--port", type=click.IntRange(1, 65535), help="UDP/TCP port "
              "(default 33434 for udp, 80 for tcp).")  # fmt: skip
@click.option(
    "-W",
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="Seconds to wait for each answer.",
)
@_family_flags
@common_options
@click.pass_context
def ping(ctx: click.Context, /, target: str, **kw: Any) -> None:  # fmt: skip
    """Ping TARGET from each endpoint that connects.

    \b
    Examples:
      packetlab ping 198.18.4.2                      # 5 ICMP echoes, Atlas JSON lines
      packetlab ping 198.18.4.2 --format text -C 10 -i 0.2
      packetlab ping 2001:db8:0:4::2 -P tcp -p 80 -n 3 --wait 120
    """
    from packetlab.measure.ping import ping as run_ping

    opts = _opts(kw)
    address = resolve(target, _family(kw.pop("v4"), kw.pop("v6")))
    measurement = functools.partial(
        run_ping, target=address, count=kw["count"], interval=kw["interval"],
        proto=kw["proto"].upper(), size=kw["size"], ttl=kw["ttl"], port=kw["port"],
        timeout=kw["timeout"], target_name=target,
    )  # fmt: skip
    run(ctx, opts, "ping", measurement)


@click.command("trace")
@click.argument("target")
@click.option(
    "-P",
    "--proto",
    type=PROTO,
    default="udp",
    show_default=True,
    help="Probe kind (Paris-style: constant flow identifiers).",
)
@click.option("-f", "--first-ttl", type=click.IntRange(1, 255), default=1, show_default=True)
@click.option("-m", "--max-ttl", type=click.IntRange(1, 255), default=30, show_default=True)
@click.option(
    "-q",
    "--attempts",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    help="Probes per hop.",
)
@click.option(
    "-g",
    "--gap-limit",
    type=click.IntRange(min=1),
    default=5,
    show_default=True,
    help="Stop after this many silent hops in a row.",
)
@click.option(
    "-W",
    "--timeout",
    type=click.FloatRange(min=0.01),
    default=2.0,
    show_default=True,
    help="Seconds to wait for answers after each round.",
)
@click.option(
    "-p",
    "--port",
    type=click.IntRange(1, 65535),
    help="Destination port (default 33435 for udp, 80 for tcp).",
)
@click.option(
    "--paris-id",
    type=click.IntRange(0, 255),
    default=0,
    show_default=True,
    help="Picks the flow (source port / ICMP ident): vary it to see other paths.",
)
@_family_flags
@common_options
@click.pass_context
def trace(ctx: click.Context, /, target: str, **kw: Any) -> None:  # fmt: skip
    """Paris traceroute to TARGET from each endpoint that connects.

    All TTLs of a round leave as one train scheduled on the endpoint; answers are matched to
    probes by their quoted headers, times come from the endpoint's kernel stamps.

    \b
    Examples:
      packetlab trace 198.18.4.2 --format text
      packetlab trace 2001:db8:0:4::2 -P icmp -q 1
      packetlab trace 198.18.4.2 -P tcp -p 80 -n 4 -o traces.jsonl
    """
    from packetlab.measure.traceroute import traceroute

    opts = _opts(kw)
    address = resolve(target, _family(kw.pop("v4"), kw.pop("v6")))
    if kw["first_ttl"] > kw["max_ttl"]:
        raise BadInput("--first-ttl is above --max-ttl")
    measurement = functools.partial(
        traceroute, target=address, proto=kw["proto"].upper(), first_ttl=kw["first_ttl"],
        max_ttl=kw["max_ttl"], attempts=kw["attempts"], gap_limit=kw["gap_limit"],
        timeout=kw["timeout"], port=kw["port"], paris_id=kw["paris_id"], target_name=target,
    )  # fmt: skip
    run(ctx, opts, "trace", measurement)


@click.command("dig")
@click.argument("server")
@click.argument("qname")
@click.argument("qtype", default="A")
@click.option("--tcp", is_flag=True, help="Query over TCP (default UDP).")
@click.option("-p", "--port", type=click.IntRange(1, 65535), default=53, show_default=True)
@click.option("-W", "--timeout", type=click.FloatRange(min=0.01), default=5.0, show_default=True)
@common_options
@click.pass_context
def dig(ctx: click.Context, /, server: str, qname: str, qtype: str, **kw: Any) -> None:  # fmt: skip
    """Ask SERVER (an address) for QNAME's QTYPE records from each endpoint.

    \b
    Examples:
      packetlab dig 198.18.4.2 www.example.test
      packetlab dig 198.18.4.2 example.test AAAA --tcp --format text
    """
    import dns.rdatatype

    from packetlab.measure.dns import dns_query

    opts = _opts(kw)
    address = resolve(server, None)
    try:
        dns.rdatatype.from_text(qtype)
    except dns.rdatatype.UnknownRdatatype:
        raise BadInput(f"unknown DNS record type {qtype!r}") from None
    proto = "TCP" if kw["tcp"] else "UDP"
    run(ctx, opts, "dig", lambda endpoint: dns_query(
        endpoint, address, qname, qtype.upper(), proto=proto, port=kw["port"],
        timeout=kw["timeout"]))  # fmt: skip


@click.command("http")
@click.argument("url")
@click.option("--connect-to", "connect_to", metavar="ADDR", help="Connect to this address "
              "(default: the URL's host, which must then be an address).")  # fmt: skip
@click.option("-W", "--timeout", type=click.FloatRange(min=0.01), default=10.0, show_default=True)
@common_options
@click.pass_context
def http(ctx: click.Context, /, url: str, connect_to: str | None, **kw: Any) -> None:  # fmt: skip
    """HTTP GET URL (http:// only) from each endpoint: status, sizes, connect and first-byte
    times.

    \b
    Examples:
      packetlab http http://198.18.4.2/index.html
      packetlab http http://www.example.test/ --connect-to 198.18.4.2 --format text
    """
    from packetlab.measure.http import http_get

    opts = _opts(kw)
    run(ctx, opts, "http", lambda endpoint: http_get(endpoint, url, address=connect_to,
                                                     timeout=kw["timeout"]))  # fmt: skip


@click.command("bw")
@click.argument("receiver")
@click.option(
    "--packets",
    type=click.IntRange(2, 65535),
    default=1000,
    show_default=True,
    help="Datagrams in the burst.",
)
@click.option(
    "-s",
    "--size",
    type=click.IntRange(64, 1472),
    default=1200,
    show_default=True,
    help="UDP payload bytes per datagram.",
)
@click.option("--start-in", type=click.FloatRange(min=0), default=5.0, show_default=True,
              help="The burst leaves at the endpoint's t0 + this many seconds (the paper's "
              "t0+5).")  # fmt: skip
@click.option(
    "-p",
    "--port",
    type=click.IntRange(0, 65535),
    default=0,
    help="Receiver UDP port (default: any free one).",
)
@common_options
@click.pass_context
def bw(ctx: click.Context, /, receiver: str, **kw: Any) -> None:  # fmt: skip
    """UDP bandwidth from each endpoint to RECEIVER, an address of this machine.

    The endpoint sends a scheduled burst; a receiver here stamps the arrivals (kernel
    timestamps) and computes the rate the path let through.

    \b
    Examples:
      packetlab bw 198.18.4.2 --packets 2000 --format text
    """
    from packetlab.measure.bandwidth import bandwidth

    opts = _opts(kw)
    address = resolve(receiver, None)
    family = socket.AF_INET6 if ":" in address else socket.AF_INET

    async def measure(endpoint: Any) -> Any:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind((address, kw["port"]))
            except OSError as exc:
                from packetlab.measure.errors import MeasurementError

                raise MeasurementError(f"cannot receive on {address}: {exc.strerror}") from None
            sock.setblocking(False)
            return await bandwidth(endpoint, sock, packets=kw["packets"], size=kw["size"],
                                   start_in=kw["start_in"])  # fmt: skip

    run(ctx, opts, "bw", measure)


@click.command("alias")
@click.argument("addr_a")
@click.argument("addr_b")
@click.option(
    "--rounds", type=click.IntRange(1, 50), default=3, show_default=True, help="A-B probe pairs."
)
@click.option(
    "--spacing",
    type=click.FloatRange(min=0),
    default=0.01,
    show_default=True,
    help="Seconds between probes.",
)
@common_options
@click.pass_context
def alias(ctx: click.Context, /, addr_a: str, addr_b: str, **kw: Any) -> None:  # fmt: skip
    """Are ADDR_A and ADDR_B (IPv4) one router? Ally's shared IP-ID counter test.

    \b
    Examples:
      packetlab alias 198.18.1.2 198.18.2.1 --format text
    """
    from packetlab.measure.alias import alias as run_alias

    opts = _opts(kw)
    a, b = resolve(addr_a, 4), resolve(addr_b, 4)
    run(ctx, opts, "alias", lambda endpoint: run_alias(
        endpoint, a, b, rounds=kw["rounds"], spacing=kw["spacing"]))  # fmt: skip


COMMANDS = (ping, trace, dig, http, bw, alias)
