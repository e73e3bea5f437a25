"""The engine under `packetlab ping|trace|dig|http|bw|alias`: a controller for one measurement.

It listens, serves the measurement to every endpoint that dials in (each session its own task,
so endpoints measure concurrently), prints each result as it comes, tagged with the endpoint's
host id, and stops after ``--endpoints`` endpoints or ``--wait`` seconds without them (the
measurements under way finish first). Progress goes to stderr: a live line on a terminal,
plain lines otherwise; results go to stdout (or ``--output``, appended, one per line).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import click

from packetlab.cli._common import BadInput, home_of

log = logging.getLogger("packetlab.measure")
Measurement = Callable[[Any], Awaitable[Any]]


@dataclass
class RunOptions:
    config_path: str | None
    address: str | None
    endpoints: int
    wait: float
    fmt: str
    output: str | None
    verbose: int


@dataclass
class Tally:
    connected: int = 0
    done: int = 0
    failed: int = 0
    hosts: list[str] = field(default_factory=list)


def common_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options every measurement command shares (listening, endpoints, output)."""
    options = [
        click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
                     help="Controller config (default: HOME/controller.toml from "
                          "`packetlab init`)."),
        click.option("-a", "--address", metavar="[ADDR]:PORT",
                     help="Listen here for endpoints (default: the config's)."),
        click.option("-n", "--endpoints", type=click.IntRange(min=1), default=1,
                     show_default=True, help="Measure from this many endpoints, then stop."),
        click.option("--wait", type=click.FloatRange(min=0.1), default=60.0, show_default=True,
                     metavar="SECONDS",
                     help="Stop waiting for endpoints after this long (measurements under way "
                          "finish)."),
        click.option("--format", "fmt", type=click.Choice(["json", "text"]), default="json",
                     show_default=True,
                     help="json: one RIPE Atlas result per line (ripe.atlas.sagan reads them); "
                          "text: as ping(8)/traceroute(8)/dig print."),
        click.option("-o", "--output", type=click.Path(dir_okay=False),
                     help="Append results to this file instead of stdout."),
        click.option("-v", "--verbose", count=True, help="More log output (-vv for debug)."),
    ]  # fmt: skip
    for option in reversed(options):
        command = option(command)
    return command


def json_of(result: Any) -> dict[str, Any]:
    """RIPE Atlas JSON for ping/traceroute/DNS/HTTP; our own record for the others."""
    from packetlab.measure import atlas, results

    if isinstance(result, (results.PingResult, results.TraceResult, results.DnsResult,
                           results.HttpResult)):  # fmt: skip
        atlas_record: dict[str, Any] = atlas.to_atlas(result)
        return atlas_record
    record = dataclasses.asdict(result)
    kind = {"BandwidthResult": "bw", "AliasResult": "alias"}.get(type(result).__name__, "other")
    origin = record.pop("origin")
    return {"type": kind, "prb_id": result.origin.prb_id, "from": origin["src_addr"],
            "timestamp": int(time.time()), "packetlab": origin, **record}  # fmt: skip


def text_of(result: Any, tag: str) -> str:
    from packetlab.measure import results, text

    render: dict[type, Callable[..., str]] = {
        results.PingResult: text.ping_text,
        results.TraceResult: text.trace_text,
        results.DnsResult: text.dns_text,
        results.HttpResult: text.http_text,
        results.BandwidthResult: text.bw_text,
        results.AliasResult: text.alias_text,
    }
    return render[type(result)](result, tag=tag)


class Progress:
    """Where the run stands, on stderr: a live status line on a terminal, else plain lines."""

    def __init__(self, what: str, opts: RunOptions, tally: Tally) -> None:
        self.what, self.opts, self.tally = what, opts, tally
        self.started = time.monotonic()
        self._status: Any = None
        if sys.stderr.isatty():
            from rich.console import Console

            self._console = Console(stderr=True)
            self._status = self._console.status(self._line())
            self._status.start()

    def _line(self) -> str:
        t = self.tally
        left = max(0.0, self.opts.wait - (time.monotonic() - self.started))
        return (f"{self.what}: {t.connected}/{self.opts.endpoints} endpoint(s) connected, "
                f"{t.done} done, {t.failed} failed; waiting up to {left:.0f} s more")  # fmt: skip

    def say(self, message: str) -> None:
        if self._status is not None:
            self._console.print(message, highlight=False, markup=False)
            self._status.update(self._line())
        else:
            click.echo(message, err=True)

    def tick(self) -> None:
        if self._status is not None:
            self._status.update(self._line())

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def run(ctx: click.Context, opts: RunOptions, what: str, measurement: Measurement) -> None:
    """Serve ``measurement`` (an async function of an EndpointHandle returning a result) to
    endpoints as the options say; exit 1 when no endpoint came or any measurement failed."""
    from packetlab.cli.run_cmds import _logging, _run
    from packetlab.controller.config import ConfigError, load_controller_config
    from packetlab.controller.server import Controller

    _logging(opts.verbose)
    path = Path(opts.config_path) if opts.config_path else home_of(ctx) / "controller.toml"
    try:
        config = load_controller_config(path)
    except ConfigError as exc:
        raise BadInput(str(exc)) from None
    tally = Tally()
    sink: IO[str] = sys.stdout
    if opts.output:
        try:
            sink = Path(opts.output).open("a")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise BadInput(f"{opts.output}: {exc.strerror}") from None
    progress = Progress(what, opts, tally)

    async def experiment(endpoint: Any, _: list[str]) -> None:
        from packetlab.measure.errors import MeasurementError

        tally.connected += 1
        host = await endpoint.host_id()
        tally.hosts.append(host)
        progress.say(f"{what}: endpoint {host} ({endpoint.address[0]}) connected")
        try:
            result = await measurement(endpoint)
        except MeasurementError as exc:
            tally.failed += 1
            progress.say(f"{what}: endpoint {host}: {exc}")
            return
        tally.done += 1
        out = json.dumps(json_of(result)) if opts.fmt == "json" else text_of(result, host)
        sink.write(out.rstrip("\n") + "\n")
        sink.flush()
        progress.tick()

    try:
        server = Controller(config, experiment, [], listen=opts.address,
                            max_endpoints=opts.endpoints)  # fmt: skip
    except Exception as exc:  # keys or certificates that do not load
        progress.close()
        raise BadInput(f"controller: {exc}") from None

    async def main() -> None:
        def ready(bound: tuple[str, int]) -> None:
            progress.say(f"{what}: listening on {bound[0]}:{bound[1]} for "
                         f"{opts.endpoints} endpoint(s), up to {opts.wait:g} s")  # fmt: skip

        serving = asyncio.create_task(server.serve(ready=ready))
        deadline = time.monotonic() + opts.wait
        while not serving.done():
            if time.monotonic() >= deadline and not server.active_sessions:
                server.stop()  # nobody (more) came: finish with what we have
            progress.tick()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(serving), 0.25)
        serving.result()

    try:
        _run(main())
    except OSError as exc:
        raise BadInput(f"controller: cannot listen: {exc.strerror or exc}") from None
    finally:
        progress.close()
        if sink is not sys.stdout:
            sink.close()
    failed = tally.failed + sum(1 for r in server.results if r is not None)
    if not tally.connected:
        click.echo(f"{what}: no endpoint connected within {opts.wait:g} s", err=True)
        sys.exit(1)
    if failed:
        click.echo(f"{what}: {failed} of {tally.connected} endpoint(s) failed", err=True)
        sys.exit(1)
