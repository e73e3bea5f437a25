"""`packetlab endpoint` and `packetlab controller`: the reference's pktendpt and pktxpmgr shapes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

import click

from packetlab.cli._common import BadInput, home_of


def _logging(verbose: int) -> None:
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)


def _run(main: object) -> object:
    """Run a coroutine; SIGINT/SIGTERM end it cleanly."""

    async def wrapper() -> object:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, task.cancel)
        try:
            return await main  # type: ignore[misc]
        except asyncio.CancelledError:
            click.echo("packetlab: stopped", err=True)
            return None

    return asyncio.run(wrapper())


@click.command("endpoint")
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Endpoint config: our TOML (default: HOME/endpoint.toml from `packetlab init`) or the "
    "reference's endpt.conf.",
)
@click.option(
    "--sessions",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after this many sessions (default: serve until stopped).",
)
@click.option(
    "--attempts",
    type=click.IntRange(min=1),
    default=None,
    help="Give up after this many failed dials in a row (default: keep trying).",
)
@click.option(
    "--guardian",
    "guardian_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Guardian policy TOML (source policy, rate profiles, opt-out, log), in place of the "
    "config's [guardian] table. Useful with a reference endpt.conf, which has none.",
)
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="Where the guardian keeps usage, the packet log and the traffic index "
    "(default: guardian/ beside the config).",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.argument("controller", required=False)
@click.pass_context
def endpoint(
    ctx: click.Context,
    config_path: str | None,
    sessions: int | None,
    attempts: int | None,
    guardian_path: str | None,
    state_dir: str | None,
    verbose: int,
    controller: str | None,
) -> None:
    """Run a measurement endpoint that dials CONTROLLER ([HOST]:PORT; default: the config's).

    Broker-less mode, like `pktendpt` with NoSubMode: dial, serve the session, and dial again,
    with backoff when the controller is not there. Every packet a controller asks for passes
    the guardian first (see --guardian); `packetlab traceback ADDR` tells who sent what.
    """
    from dataclasses import replace

    from packetlab.endpoint.config import ConfigError, load_endpoint_config
    from packetlab.endpoint.runner import Endpoint
    from packetlab.guardian import GuardianConfig, GuardianError

    _logging(verbose)
    path = Path(config_path) if config_path else home_of(ctx) / "endpoint.toml"
    try:
        config = load_endpoint_config(path)
        if guardian_path:
            config = replace(config, guardian=GuardianConfig.from_toml(Path(guardian_path)))
    except (ConfigError, GuardianError) as exc:
        raise BadInput(str(exc)) from None
    if state_dir:
        config = replace(config, state_dir=Path(state_dir))
    served = _run(Endpoint(config).serve(controller, sessions=sessions, attempts=attempts))
    click.echo(f"endpoint: {served or 0} session(s) served", err=True)


@click.command("controller", context_settings={"ignore_unknown_options": True})
@click.option(
    "-c",
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Controller config: TOML from `packetlab init` or a pktxpmgr xpmgr.conf "
    "(default: HOME/controller.toml).",
)
@click.option("-a", "--address", help="Listen on [ADDR]:PORT (default: the config's).")
@click.option(
    "-n",
    "--endpoints",
    type=click.IntRange(min=1),
    default=None,
    help="Stop after N endpoints have been served.",
)
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.argument("experiment", type=click.Path(dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def controller(
    ctx: click.Context,
    config_path: str | None,
    address: str | None,
    endpoints: int | None,
    verbose: int,
    experiment: str,
    args: tuple[str, ...],
) -> None:
    """Serve EXPERIMENT to every endpoint that dials in, like `pktxpmgr`.

    EXPERIMENT is a Python file defining `async def experiment(endpoint, args)`, or an
    executable mlet (e.g. the reference's test_dns), which gets the session as plain pktlab
    messages on its fd 0 and EPADDR in its environment. ARGS are passed to it.
    """
    from packetlab.controller.config import ConfigError, load_controller_config
    from packetlab.controller.server import Controller, ExperimentLoadError, load_experiment

    _logging(verbose)
    path = Path(config_path) if config_path else home_of(ctx) / "controller.toml"
    try:
        config = load_controller_config(path)
        program = load_experiment(Path(experiment))
    except (ConfigError, ExperimentLoadError) as exc:
        raise BadInput(str(exc)) from None
    server = Controller(config, program, list(args), listen=address, max_endpoints=endpoints)
    _run(server.serve())
    failed = [r for r in server.results if r is not None]
    if failed:
        click.echo(f"controller: {len(failed)} of {server.served} session(s) failed", err=True)
        sys.exit(1)
