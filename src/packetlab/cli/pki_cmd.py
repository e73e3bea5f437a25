"""`packetlab pki`: what the reference's ppksman does, with its command and option names."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import click

from packetlab import pki
from packetlab.cli import _render
from packetlab.cli._common import (
    AliasedGroup,
    BadInput,
    home_of,
    list_store,
    load_private_key_interactive,
    parse_time,
    read_passphrase_file,
    resolve_file,
)
from packetlab.cli._limit_options import aux_info_pairs, content_options, limits_from_options
from packetlab.pki.keys import private_key_is_encrypted, public_key_pem, save_private_key

_ALIASES = {"g": "generate", "gen": "generate", "ls": "list", "s": "show", "v": "verify"}
_KIND_ALIASES = {
    "k": "key",
    "key": "key",
    "csr": "csr",
    "certificatesigningrequest": "csr",
    "cert": "cert",
    "certificate": "cert",
}
_TYPE_CHOICE = click.Choice([t.label for t in pki.CertType], case_sensitive=False)
_STORE = {"key": "keys", "csr": "csrs", "cert": "certs"}


@click.group("pki", cls=AliasedGroup, aliases=_ALIASES)
def pki_group() -> None:
    """Keys, certificates and CSRs in the PacketLab (ppksman) format.

    \b
    packetlab pki generate key NAME [-f PATH]
    packetlab pki generate csr CERT_TYPE SIGNEE_PRIVKEY FILE [options]
    packetlab pki generate cert CERT_TYPE SIGNER_PRIVKEY START END FILE (-k PUB | -r CSR)
    packetlab pki show key|csr|cert TARGET... [-k SIGNER_PUB]
    packetlab pki list [key|csr|cert]
    packetlab pki verify --mode controller|endpoint|agent --trusted KEY.pub CERT...

    Keys, CSRs and certs can be named by path, by name in the home directory, or by their
    index in `packetlab pki list`.
    """


@pki_group.group(
    cls=AliasedGroup,
    aliases={"k": "key", "cert": "cert", "certificate": "cert", "certificatesigningrequest": "csr"},
)
def generate() -> None:
    """Generate a key, a CSR, or a certificate (aliases: g, gen)."""


def _passphrase_option(func: Any) -> Any:
    return click.option(
        "--passphrase-file",
        type=click.Path(dir_okay=False),
        help="Read the key passphrase from this file (or set $PACKETLAB_PASSPHRASE).",
    )(func)


@generate.command("key")
@click.argument("keyname")
@click.option("-f", "--file", "path", help="Also write the key to PATH and PATH.pub.")
@_passphrase_option
@click.option("--no-passphrase", is_flag=True, help="Store the private key unencrypted.")
@click.pass_context
def generate_key(
    ctx: click.Context,
    keyname: str,
    path: str | None,
    passphrase_file: str | None,
    no_passphrase: bool,
) -> None:
    """Generate an Ed25519 key KEYNAME (stored in the home directory's keys/)."""
    if "/" in keyname or keyname.startswith("."):
        raise BadInput(f"key name {keyname!r} must be a plain file name")
    passphrase = None if no_passphrase else read_passphrase_file(passphrase_file)
    if passphrase is None and not no_passphrase and sys.stdin.isatty():
        first = click.prompt(
            "Passphrase for the new private key (enter for none)",
            hide_input=True,
            default="",
            show_default=False,
        )
        if first and first != click.prompt("Repeat it", hide_input=True):
            raise BadInput("the passphrases do not match")
        passphrase = first.encode() or None
    store = home_of(ctx) / "keys"
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = pki.generate_private_key()
    targets = [store / keyname] + ([Path(path)] if path else [])
    for target in targets:
        if target.exists():
            raise BadInput(f"{target}: exists; remove it first")
    for target in targets:
        save_private_key(key, target, passphrase)
        pki.save_public_key(key, target.with_name(target.name + ".pub"))
    click.echo(f"key id {pki.key_id(key).hex()}")
    for target in targets:
        state = "encrypted" if passphrase else "unencrypted"
        click.echo(f"wrote {target} ({state}) and {target}.pub")


def _limits_and_info(params: dict[str, Any]) -> tuple[pki.DelType, pki.Limits | None, set[str]]:
    del_type = pki.DelType.NONE
    if params["del_exppriv"]:
        del_type |= pki.DelType.EXPPRIV
    if params["del_reppriv"]:
        del_type |= pki.DelType.REPPRIV
    limits, given = limits_from_options(params)
    return del_type, limits, given


def _write(path: str, data: bytes, yes: bool) -> None:
    target = Path(path)
    if target.exists() and not yes:
        raise BadInput(f"{target}: exists; use -y to overwrite")
    target.write_bytes(data)


@generate.command("csr")
@click.argument("cert_type", type=_TYPE_CHOICE)
@click.argument("signee_privkey")
@click.argument("file", type=click.Path(dir_okay=False))
@content_options
@_passphrase_option
@click.option("-y", "--yes", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
def generate_csr(
    ctx: click.Context,
    /,
    cert_type: str,
    signee_privkey: str,
    file: str,
    passphrase_file: str | None,
    yes: bool,
    **params: Any,
) -> None:
    """Make a PKCS#10 request for a CERT_TYPE certificate of SIGNEE_PRIVKEY's key."""
    key_path = resolve_file(signee_privkey, home_of(ctx), "keys", "key")
    key = load_private_key_interactive(key_path, read_passphrase_file(passphrase_file))
    del_type, limits, _ = _limits_and_info(params)
    try:
        csr = pki.build_csr(
            cert_type=pki.CertType.from_label(cert_type),
            subject=key,
            del_type=del_type,
            description=params["cert_description"],
            path_len=params["pathlen"],
            limits=limits,
            aux_info=aux_info_pairs(params["aux_info_str"]),
        )
    except pki.PkiInputError as exc:
        raise BadInput(str(exc)) from None
    _write(file, csr.pem(), yes)
    click.echo(f"wrote {file}: {cert_type} CSR for key {csr.subject_key_id.hex()[:16]}")


@generate.command("cert")
@click.argument("cert_type", type=_TYPE_CHOICE)
@click.argument("signer_privkey")
@click.argument("start_time")
@click.argument("end_time")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("-k", "--signee_pubkey", help="The subject's public key (path, name or index).")
@click.option("-r", "--csr_path", help="Take the subject key and content from this CSR.")
@content_options
@_passphrase_option
@click.option("-y", "--yes", is_flag=True, help="Overwrite FILE if it exists.")
@click.pass_context
def generate_cert(
    ctx: click.Context,
    /,
    cert_type: str,
    signer_privkey: str,
    start_time: str,
    end_time: str,
    file: str,
    signee_pubkey: str | None,
    csr_path: str | None,
    passphrase_file: str | None,
    yes: bool,
    **params: Any,
) -> None:
    """Sign a CERT_TYPE certificate valid from START_TIME to END_TIME into FILE.

    Times are Unix seconds (as ppksman takes them), 'now', '+365d', or ISO dates. The subject
    comes from -k or from a CSR (-r); options given here override the CSR's content.
    """
    home = home_of(ctx)
    signer = load_private_key_interactive(
        resolve_file(signer_privkey, home, "keys", "key"), read_passphrase_file(passphrase_file)
    )
    csr = None
    if csr_path is not None:
        csr = pki.load_csr(resolve_file(csr_path, home, "csrs", "CSR"))
        if not csr.signature_valid:
            raise BadInput(f"{csr_path}: the CSR's signature is INVALID")
    if signee_pubkey is not None:
        subject = pki.load_public_key(resolve_file(signee_pubkey, home, "keys", "key"))
    elif csr is not None:
        subject = pki.keys.public_key_from_raw(csr.subject_key)
    else:
        raise BadInput("give the subject's key with -k SIGNEE_PUBKEY or a CSR with -r CSR")
    wanted = pki.CertType.from_label(cert_type)
    del_type, limits, given = _limits_and_info(params)
    description = params["cert_description"]
    path_len = params["pathlen"]
    aux_info = aux_info_pairs(params["aux_info_str"])
    if csr is not None and csr.info is not None:
        if csr.info.cert_type is not wanted:
            click.echo(
                f"packetlab: warning: the CSR asks for {csr.info.cert_type.label}, "
                f"signing {wanted.label}",
                err=True,
            )
        del_type = del_type or csr.info.del_type
        description = description if description is not None else csr.info.description
        aux_info = aux_info or csr.info.aux
        path_len = path_len if path_len is not None else csr.path_len
        limits = _overlay(csr.limits, limits, given)
    start = parse_time(start_time, "START_TIME")
    end = parse_time(end_time, "END_TIME")
    try:
        cert = pki.build_certificate(
            cert_type=wanted,
            signer=signer,
            subject=subject,
            not_before=start,
            not_after=end,
            del_type=del_type,
            description=description,
            path_len=path_len,
            limits=limits,
            aux_info=aux_info,
        )
    except pki.PkiInputError as exc:
        raise BadInput(str(exc)) from None
    _write(file, cert.pem(), yes)
    click.echo(f"wrote {file}: {cert.label()} signed by {pki.key_id(signer).hex()[:16]}")


def _overlay(base: pki.Limits, override: pki.Limits | None, given: set[str]) -> pki.Limits:
    """The CSR's limits with each limit given on the command line replacing the CSR's."""
    if override is None:
        return base
    pairs = [(n, v) for n, v in base.pairs() if n.lstrip("*") not in given]
    pairs += override.pairs()
    return pki.parse_limits("".join(f"{n}={v};" for n, v in pairs))


def _kind(value: str) -> str:
    kind = _KIND_ALIASES.get(value.lower())
    if kind is None:
        raise BadInput(f"{value!r}: say key, csr or cert")
    return kind


def _key_info(path: Path, passphrase: bytes | None) -> dict[str, Any]:
    data = path.read_bytes()
    if b"PRIVATE KEY-----" in data:
        if private_key_is_encrypted(data) and passphrase is None and not sys.stdin.isatty():
            info: dict[str, Any] = {"kind": "Ed25519 private key (encrypted)"}
            info["note"] = "give --passphrase-file to see its public key"
            return info
        key = load_private_key_interactive(path, passphrase)
        kind = "Ed25519 private key" + (" (encrypted)" if private_key_is_encrypted(data) else "")
        public = key.public_key()
    else:
        public = pki.load_public_key(path)
        kind = "Ed25519 public key"
    raw = pki.raw_public_key(public)
    return {
        "kind": kind,
        "key id (sha256 of raw key)": pki.key_id(raw).hex(),
        "raw public key": raw.hex(),
        "public key PEM": public_key_pem(public).decode().strip(),
    }


@pki_group.command("show")
@click.argument("kind")
@click.argument("targets", nargs=-1, required=True)
@click.option("-k", "--signer_pubkey", help="Check the certificates' signature with this key.")
@_passphrase_option
@click.pass_context
def show(
    ctx: click.Context,
    kind: str,
    targets: tuple[str, ...],
    signer_pubkey: str | None,
    passphrase_file: str | None,
) -> None:
    """Show keys, CSRs or certificates (KIND: key, csr or cert; alias: s)."""
    kind = _kind(kind)
    home = home_of(ctx)
    out = _render.console()
    signer = None
    if signer_pubkey is not None:
        signer = pki.load_public_key(resolve_file(signer_pubkey, home, "keys", "key"))
    for target in targets:
        path = resolve_file(target, home, _STORE[kind], kind)
        if kind == "key":
            out.print(
                _render.key_table(_key_info(path, read_passphrase_file(passphrase_file)), str(path))
            )
        elif kind == "csr":
            out.print(_render.csr_table(pki.load_csr(path), str(path)))
        else:
            certs = pki.load_certificates(path)
            for index, cert in enumerate(certs):
                source = str(path) if len(certs) == 1 else f"{path} [{index}]"
                out.print(_render.cert_table(cert, source, _signature_verdict(cert, signer)))


def _signature_verdict(cert: pki.PktlabCert, signer: Any) -> str | None:
    if signer is None:
        return None
    from nacl.exceptions import BadSignatureError
    from nacl.signing import VerifyKey

    raw = pki.raw_public_key(signer)
    try:
        VerifyKey(raw).verify(cert.tbs, cert.signature)
    except BadSignatureError:
        return f"INVALID under key {pki.key_id(raw).hex()[:16]}"
    note = "" if cert.authority_key_id == pki.key_id(raw) else " (but the AKI names another key)"
    return f"valid under key {pki.key_id(raw).hex()[:16]}{note}"


@pki_group.command("list")
@click.argument("kind", required=False)
@click.pass_context
def list_items(ctx: click.Context, kind: str | None) -> None:
    """List the keys, CSRs and certificates in the home directory (alias: ls)."""
    home = home_of(ctx)
    kinds = [_kind(kind)] if kind else ["key", "csr", "cert"]
    for item in kinds:
        entries = list_store(home, _STORE[item])
        click.echo(
            f"{item}s in {home / _STORE[item]}:"
            if entries
            else f"{item}s in {home / _STORE[item]}: none"
        )
        for index, path in enumerate(entries):
            click.echo(f"  {index:3d}. {path.name}{_describe(item, path)}")


def _describe(kind: str, path: Path) -> str:
    try:
        if kind == "cert":
            certs = pki.load_certificates(path)
            return "  " + ", ".join(c.label() for c in certs)
        if kind == "csr":
            csr = pki.load_csr(path)
            return f"  {csr.info.cert_type.label if csr.info else '?'} request"
        data = path.read_bytes()
        if b"PRIVATE KEY-----" in data:
            return "  private" + (" (encrypted)" if private_key_is_encrypted(data) else "")
        return f"  public, id {pki.key_id(pki.load_public_key(path)).hex()[:16]}"
    except (pki.PkiInputError, OSError) as exc:
        return f"  (unreadable: {exc})"


@pki_group.command("verify")
@click.option(
    "--mode",
    type=click.Choice([m.value for m in pki.ChainMode]),
    required=True,
    help="controller: an endpoint checks a controller's chain; endpoint: a "
    "controller checks an endpoint's chain; agent: broker/proxy agent cert.",
)
@click.option(
    "--trusted",
    "trusted",
    multiple=True,
    help="Trusted root public key (repeatable). Agents without one must be self-signed.",
)
@click.option("--peer", help="The peer's public key: the leaf must certify it.")
@click.option("--at", "at_time", help="Check validity at this time instead of now.")
@click.option("--legacy", is_flag=True, help="Judge v0.x certificates by the same rules.")
@click.argument("certs", nargs=-1, required=True)
@click.pass_context
def verify(
    ctx: click.Context,
    mode: str,
    trusted: tuple[str, ...],
    peer: str | None,
    at_time: str | None,
    legacy: bool,
    certs: tuple[str, ...],
) -> None:
    """Verify a certificate chain (files in any order); exit 0 valid, 1 invalid, 2 bad input."""
    home = home_of(ctx)
    chain_mode = pki.ChainMode(mode)
    if not trusted and chain_mode is pki.ChainMode.CONTROLLER:
        raise BadInput("--trusted KEY.pub is required: the endpoint operator's key")
    keys = [pki.load_public_key(resolve_file(t, home, "keys", "key")) for t in trusted]
    peer_key = pki.load_public_key(resolve_file(peer, home, "keys", "key")) if peer else None
    parsed: list[pki.PktlabCert] = []
    for target in certs:
        parsed.extend(pki.load_certificates(resolve_file(target, home, "certs", "cert")))
    now = parse_time(at_time, "--at") if at_time else time.time()
    old = [c for c in parsed if c.format is pki.CertFormat.V0]
    if old:
        click.echo(
            f"note: {len(old)} certificate(s) in the old v0.x format (PacketLab <= 0.5); "
            "v1.x endpoints and controllers reject them",
            err=True,
        )
    try:
        verified = pki.verify_chain(
            chain_mode, parsed, keys or None, now=now, peer_key=peer_key, allow_legacy=legacy
        )
    except pki.ChainError as exc:
        click.echo(f"INVALID {mode} chain: {exc}")
        sys.exit(1)
    out = _render.console()
    root = "not pinned (no trusted key)"
    if verified.root_key is not None:
        root = f"trusted key {pki.key_id(verified.root_key).hex()[:16]}"
    click.echo(f"VALID {mode} chain of {len(verified.certs)} certificate(s), rooted at {root}")
    out.print(_render.chain_table(verified))
    if chain_mode is pki.ChainMode.CONTROLLER:
        out.print(_render.limits_table(verified.limits))
