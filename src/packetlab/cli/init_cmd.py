"""`packetlab init`: the non-interactive equivalent of the reference's pktlab_init.

It writes, under DIR (default ~/.packetlab):

    keys/   k_exper k_xc k_eop k_ep (+ k_bop for the embedded broker), each with a .pub
    certs/  agent_xc_xc agent_ep_ep exppriv_eop_exper pubcmd_exper_xc subcmd_eop_ep
            (+ agent_bop_bop).cert, valid 0 .. 2147483647 as pktlab_init makes them
    csrs/   exppriv_exper delpriv_exp_exper delpriv_rep_eop .csr
    progs/  programs (eBPF filters, WASM monitors) a controller uploads
    endpoint.toml controller.toml broker.toml   loopback-only embedded defaults

It never contacts any outside address (pktlab_init probes 8.8.8.8; we do not).
"""

from __future__ import annotations

import os
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import click

from packetlab import pki
from packetlab.cli._common import BadInput, default_home, read_passphrase_file
from packetlab.pki.keys import Ed25519PrivateKey

KEY_NAMES = ("k_exper", "k_xc", "k_eop", "k_ep", "k_bop")
NOT_BEFORE = 0
NOT_AFTER = 2147483647
CONTROLLER_PORT = 20556
BROKER_SUBSCRIBE_PORT = 20557
BROKER_PUBLISH_PORT = 20558  # the reference uses 20556, which the controller holds here


@dataclass(frozen=True)
class CertSpec:
    file: str
    cert_type: pki.CertType
    signer: str
    subject: str


CERTS = (
    CertSpec("agent_xc_xc.cert", pki.CertType.AGENT, "k_xc", "k_xc"),
    CertSpec("agent_ep_ep.cert", pki.CertType.AGENT, "k_ep", "k_ep"),
    CertSpec("exppriv_eop_exper.cert", pki.CertType.EXPPRIV, "k_eop", "k_exper"),
    CertSpec("pubcmd_exper_xc.cert", pki.CertType.PUBCMD, "k_exper", "k_xc"),
    CertSpec("subcmd_eop_ep.cert", pki.CertType.SUBCMD, "k_eop", "k_ep"),
    CertSpec("agent_bop_bop.cert", pki.CertType.AGENT, "k_bop", "k_bop"),
)
CSRS = (
    ("exppriv_exper.csr", pki.CertType.EXPPRIV, pki.DelType.NONE, "k_exper"),
    ("delpriv_exp_exper.csr", pki.CertType.DELPRIV, pki.DelType.EXPPRIV, "k_exper"),
    ("delpriv_rep_eop.csr", pki.CertType.DELPRIV, pki.DelType.REPPRIV, "k_eop"),
)

ENDPOINT_TOML = f"""\
# packetlab endpoint configuration, written by `packetlab init`.
# Relative paths are relative to this file's directory. Loopback only by default.
[endpoint]
host_id = "pktendpt"
private_key = "keys/k_ep"
# the subcmd chain shown to controllers (reference: ControllerCertChainPath)
cert_chain = ["certs/subcmd_eop_ep.cert"]
# endpoint operator keys that controller chains must be rooted at (EndpointOpPubKeyPath)
trusted_eop_keys = ["keys/k_eop.pub"]
agent_cert = "certs/agent_ep_ep.cert"
# broker-less mode (the reference's NoSubMode): dial this controller
controller = "127.0.0.1:{CONTROLLER_PORT}"
sni_key = ""
# no broker by default; set to "127.0.0.1:{BROKER_SUBSCRIBE_PORT}" to use the embedded one
broker = ""
dattr = ""
buf_max = 8388608
local_ipv4 = ["127.0.0.1/8"]
local_ipv6 = []
dns_ipv4 = []
dns_ipv6 = []
transports = ["tcp", "udp"]
# the guardian's usage database, packet log (pcapng) and traffic index (packetlab traceback)
state_dir = "guardian"

# The guardian (Scriptroute's network guardian) judges every packet this endpoint sends.
# By default it refuses anything to this host or its subnets; this embedded set-up measures
# services on loopback, so it allows that. Remove allow_dest on an endpoint that others use.
[guardian.source_policy]
allow_dest = ["127.0.0.0/8", "::1/128"]
"""

CONTROLLER_TOML = f"""\
# packetlab controller configuration, written by `packetlab init`.
# Relative paths are relative to this file's directory. Loopback only by default.
[controller]
private_key = "keys/k_xc"
listen = "127.0.0.1:{CONTROLLER_PORT}"
program_dir = "progs"
agent_cert = "certs/agent_xc_xc.cert"
# no broker by default; set to "127.0.0.1:{BROKER_PUBLISH_PORT}" to publish to the embedded one
broker = ""

# One entry per experiment, chosen by the endpoint's SNI (the reference's ExpExec lines).
[[controller.experiment]]
default = true
sni_key = ""
cert_chain = ["certs/pubcmd_exper_xc.cert", "certs/exppriv_eop_exper.cert"]
trusted_eop_keys = ["keys/k_eop.pub"]
channels = []
"""

BROKER_TOML = f"""\
# packetlab broker configuration, written by `packetlab init`.
# Relative paths are relative to this file's directory. Loopback only by default.
[broker]
private_key = "keys/k_bop"
agent_cert = "certs/agent_bop_bop.cert"
publish_listen = "127.0.0.1:{BROKER_PUBLISH_PORT}"
subscribe_listen = "127.0.0.1:{BROKER_SUBSCRIBE_PORT}"
# agents (controllers, endpoints) must be self-signed when no root is listed
trusted_agent_roots = []
storage = "broker.sqlite"
bus = "memory"
"""

CONFIGS = {
    "endpoint.toml": ENDPOINT_TOML,
    "controller.toml": CONTROLLER_TOML,
    "broker.toml": BROKER_TOML,
}


class _Report:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[str] = []
        self.kept: list[str] = []

    def note(self, path: Path, created: bool) -> None:
        (self.created if created else self.kept).append(str(path.relative_to(self.root)))


def _keys(
    root: Path, force: bool, passphrase: bytes | None, report: _Report
) -> tuple[dict[str, Ed25519PrivateKey], set[str]]:
    keys: dict[str, Ed25519PrivateKey] = {}
    fresh: set[str] = set()
    for name in KEY_NAMES:
        path = root / "keys" / name
        if path.exists() and not force:
            keys[name] = pki.load_private_key(path, passphrase)
            report.note(path, created=False)
            continue
        key = pki.generate_private_key()
        pki.save_private_key(key, path, passphrase)
        pki.save_public_key(key, path.with_name(name + ".pub"))
        keys[name] = key
        fresh.add(name)
        report.note(path, created=True)
    return keys, fresh


def run_init(root: Path, force: bool, passphrase: bytes | None) -> _Report:
    report = _Report(root)
    for sub in ("keys", "certs", "csrs", "progs"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(root / "keys", 0o700)
    keys, fresh = _keys(root, force, passphrase, report)
    for spec in CERTS:
        path = root / "certs" / spec.file
        if path.exists() and not force:
            report.note(path, created=False)
            if {spec.signer, spec.subject} & fresh:
                click.echo(
                    f"warning: kept {path}, but its key was just created; it no longer "
                    "matches (run with --force)",
                    err=True,
                )
            continue
        cert = pki.build_certificate(
            cert_type=spec.cert_type,
            signer=keys[spec.signer],
            subject=keys[spec.subject].public_key(),
            not_before=NOT_BEFORE,
            not_after=NOT_AFTER,
        )
        path.write_bytes(cert.pem())
        report.note(path, created=True)
    for file, cert_type, del_type, subject in CSRS:
        path = root / "csrs" / file
        if path.exists() and not force:
            report.note(path, created=False)
            continue
        csr = pki.build_csr(cert_type=cert_type, subject=keys[subject], del_type=del_type)
        path.write_bytes(csr.pem())
        report.note(path, created=True)
    for file, text in CONFIGS.items():
        path = root / file
        tomllib.loads(text)  # our own templates must parse
        if path.exists() and not force:
            report.note(path, created=False)
            continue
        path.write_text(text)
        report.note(path, created=True)
    return report


def check_home(root: Path) -> list[tuple[str, str]]:
    """Verify the standard chains of a home directory; (what, verdict) pairs."""
    now = time.time()
    eop = pki.load_public_key(root / "keys" / "k_eop.pub")
    verdicts = []
    checks = (
        (
            "controller chain (pubcmd + exppriv, rooted at k_eop)",
            pki.ChainMode.CONTROLLER,
            ["pubcmd_exper_xc.cert", "exppriv_eop_exper.cert"],
            [eop],
            "k_xc",
        ),
        (
            "endpoint chain (subcmd, rooted at k_eop)",
            pki.ChainMode.ENDPOINT,
            ["subcmd_eop_ep.cert"],
            [eop],
            "k_ep",
        ),
        ("controller agent cert", pki.ChainMode.AGENT, ["agent_xc_xc.cert"], None, "k_xc"),
        ("endpoint agent cert", pki.ChainMode.AGENT, ["agent_ep_ep.cert"], None, "k_ep"),
    )
    for what, mode, files, trusted, peer in checks:
        try:
            certs = [c for f in files for c in pki.load_certificates(root / "certs" / f)]
            pki.verify_chain(
                mode,
                certs,
                trusted,
                now=now,
                peer_key=pki.load_public_key(root / "keys" / f"{peer}.pub"),
            )
            verdicts.append((what, "valid"))
        except pki.PkiError as exc:
            verdicts.append((what, f"INVALID: {exc}"))
    return verdicts


@click.command("init")
@click.argument("directory", required=False, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="Overwrite existing keys, certificates and configs.")
@click.option(
    "--passphrase-file",
    type=click.Path(dir_okay=False),
    help="Encrypt the private keys with the passphrase in this file. Default: "
    "unencrypted (mode 0600), so endpoint and controller start unattended.",
)
@click.pass_context
def init(
    ctx: click.Context, directory: str | None, force: bool, passphrase_file: str | None
) -> None:
    """Create keys, the standard certificates, CSRs and configs in DIRECTORY.

    DIRECTORY defaults to --home, $PACKETLAB_HOME or ~/.packetlab. Existing files are kept
    (and said so) unless --force.
    """
    home = ctx.find_root().obj.get("home")
    root = Path(directory or home or default_home()).expanduser()
    if root.exists() and not root.is_dir():
        raise BadInput(f"{root}: exists and is not a directory")
    report = run_init(root, force, read_passphrase_file(passphrase_file))
    click.echo(f"packetlab home: {root}")
    for name in report.created:
        click.echo(f"  created {name}")
    for name in report.kept:
        click.echo(f"  kept    {name} (exists; --force to overwrite)")
    if passphrase_file is None:
        for what, verdict in check_home(root):
            click.echo(f"{what}: {verdict}")
