"""Entry point of the `packetlab` command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from packetlab import __version__
from packetlab.cli._common import AliasedGroup, BadInput, expand_nargs
from packetlab.pki import PkiInputError


@click.group(cls=AliasedGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--home",
    type=click.Path(file_okay=False),
    default=None,
    help="packetlab home directory (keys/, certs/, csrs/, configs). "
    "Default: $PACKETLAB_HOME or ~/.packetlab.",
)
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(__version__, prog_name="packetlab")
@click.pass_context
def cli(ctx: click.Context, home: str | None, debug: bool) -> None:
    """PacketLab measurement endpoints, controllers and broker.

    Wire-compatible with the PacketLab reference implementation (pktendpt, pktxpmgr, ppksman).
    Start with `packetlab init`, then see `packetlab pki --help`.
    """
    ctx.ensure_object(dict)
    ctx.obj["home"] = home
    ctx.obj["debug"] = debug


def _register() -> None:
    from packetlab.cli.init_cmd import init
    from packetlab.cli.measure_cmds import COMMANDS
    from packetlab.cli.pki_cmd import pki_group
    from packetlab.cli.run_cmds import controller, endpoint
    from packetlab.cli.testbed_cmd import testbed
    from packetlab.cli.traceback_cmd import traceback

    cli.add_command(pki_group)
    cli.add_command(init)
    cli.add_command(endpoint)
    cli.add_command(controller)
    cli.add_command(testbed)
    cli.add_command(traceback)
    for command in COMMANDS:
        cli.add_command(command)


_register()


def main(argv: Sequence[str] | None = None) -> None:
    args = expand_nargs(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="packetlab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("packetlab: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        if debug:
            raise
        exc.show()
        sys.exit(exc.exit_code)
    except PkiInputError as exc:
        if debug:
            raise
        click.echo(f"packetlab: error: {exc}", err=True)
        sys.exit(BadInput.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("packetlab: interrupted", err=True)
        sys.exit(130)
    sys.exit(0)
