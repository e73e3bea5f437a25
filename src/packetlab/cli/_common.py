"""Helpers shared by the subcommands: aliases, the home directory, errors, passphrases, times."""

from __future__ import annotations

import datetime
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

HOME_ENV = "PACKETLAB_HOME"
PASSPHRASE_ENV = "PACKETLAB_PASSPHRASE"


class BadInput(click.ClickException):
    """A one-line error about the user's input; exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"packetlab: error: {self.format_message()}", err=True)


class AliasedGroup(click.Group):
    """A group whose commands also answer to short aliases (ppksman's g/gen, ls, s, rm)."""

    def __init__(self, *args: Any, aliases: dict[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.aliases = aliases or {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        name = self.aliases.get(cmd_name.lower(), cmd_name.lower())
        return super().get_command(ctx, name)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        _, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else None), cmd, rest


def default_home() -> Path:
    env = os.environ.get(HOME_ENV)
    return Path(env).expanduser() if env else Path.home() / ".packetlab"


def home_of(ctx: click.Context) -> Path:
    obj = ctx.find_root().obj or {}
    home = obj.get("home")
    return Path(home) if home else default_home()


def read_passphrase_file(path: str | None) -> bytes | None:
    if path is None:
        env = os.environ.get(PASSPHRASE_ENV)
        return env.encode() if env else None
    try:
        text = Path(path).read_bytes()
    except OSError as exc:
        raise BadInput(f"{path}: cannot read passphrase file: {exc.strerror}") from None
    return text.rstrip(b"\r\n")


def load_private_key_interactive(path: Path, passphrase: bytes | None) -> Any:
    """Load a private key, prompting for its passphrase on a terminal if it needs one."""
    from packetlab.pki.keys import load_private_key, private_key_is_encrypted

    if passphrase is None and path.is_file() and sys.stdin.isatty():
        try:
            encrypted = private_key_is_encrypted(path.read_bytes())
        except OSError:
            encrypted = False
        if encrypted:
            passphrase = click.prompt(
                f"Passphrase for {path}", hide_input=True, default="", show_default=False
            ).encode()
    return load_private_key(path, passphrase)


def resolve_file(target: str, home: Path, subdir: str, kind: str) -> Path:
    """A path as given, or a name/index in the home directory's ``subdir``."""
    path = Path(target).expanduser()
    if path.exists():
        return path
    store = home / subdir
    for candidate in (store / target, home / target):
        if candidate.exists():
            return candidate
    if target.isdigit():
        entries = list_store(home, subdir)
        index = int(target)
        if index < len(entries):
            return entries[index]
        raise BadInput(f"{kind} index {index}: only {len(entries)} {kind}(s) in {store}")
    raise BadInput(f"{target}: no such file (nor a {kind} named so in {store})")


def list_store(home: Path, subdir: str) -> list[Path]:
    store = home / subdir
    if not store.is_dir():
        return []
    return sorted(p for p in store.iterdir() if p.is_file() and not p.name.startswith("."))


_RELATIVE = re.compile(r"^\+(\d+)([smhdy]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "y": 365 * 86400}


def parse_time(text: str, what: str, now: float | None = None) -> int:
    """Unix seconds from: an integer, 'now', '+N[smhdy]' (from now) or an ISO 8601 date/time."""
    now = time.time() if now is None else now
    text = text.strip()
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    if text == "now":
        return int(now)
    match = _RELATIVE.match(text)
    if match:
        return int(now) + int(match.group(1)) * _UNITS[match.group(2)]
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(
            f"{what} {text!r}: give Unix seconds, 'now', '+30d' or an ISO date"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


def format_time(seconds: int) -> str:
    moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


NARGS_OPTIONS = (
    "--filter_digest",
    "--monitor_digest",
    "--max_burst_rate_byte",
    "--max_burst_rate_pkt",
    "--valid_dest",
)


def expand_nargs(argv: Sequence[str]) -> list[str]:
    """Let ppksman's space-separated list options work under click.

    ``--valid_dest A B`` becomes ``--valid_dest A --valid_dest B``: like argparse's nargs='+',
    the values run to the next token that starts with '-'.
    """
    out: list[str] = []
    current: str | None = None
    for arg in argv:
        if arg == "--":
            current = None
            out.append(arg)
        elif arg in NARGS_OPTIONS:
            current = arg
            out.append(arg)
        elif current is not None and out[-1] != current and not arg.startswith("-"):
            out.extend((current, arg))
        else:
            if arg.startswith("-"):
                current = None
            out.append(arg)
    return out
