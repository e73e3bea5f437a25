"""Readable tables for keys, certificates, CSRs and verdicts (rich, imported lazily)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from packetlab.cli._common import format_time
from packetlab.pki import CertFormat, Limits, PktlabCert, PktlabCsr, VerifiedChain
from packetlab.pki.limits import LIMIT_NAMES

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


def console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=120)


def _table(title: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, show_header=False)
    table.add_column("field", style="bold", no_wrap=True)
    table.add_column("value", overflow="fold")
    return table


def _digest_lines(digests: tuple[bytes, ...]) -> str:
    return "\n".join(d.hex() for d in digests)


def limit_rows(limits: Limits) -> list[tuple[str, str]]:
    rows = []
    for name in LIMIT_NAMES:
        if not limits.is_set(name):
            continue
        value = (
            _digest_lines(getattr(limits, name))
            if name in ("filter", "monitor")
            else limits.value_string(name)
        )
        marker = " (optional)" if name in limits.optional else ""
        rows.append((f"limit {name}{marker}", value))
    for pair in limits.unknown:
        state = "optional, ignored" if pair.optional else "NOT optional: chains are rejected"
        rows.append((f"limit {pair.name} (unknown)", f"{pair.value}  [{state}]"))
    return rows


def cert_table(
    cert: PktlabCert, source: str, signature_verdict: str | None, now: float | None = None
) -> Table:
    now = time.time() if now is None else now
    table = _table(f"{source}")
    table.add_row("format", cert.format.label)
    table.add_row("type", cert.cert_type.label)
    if cert.del_type:
        table.add_row("del_type", cert.del_type.label)
    if cert.info.description is not None:
        table.add_row("description", cert.info.description)
    for name, value in cert.info.aux:
        table.add_row(f"info {name}", value)
    table.add_row("subject key id", cert.computed_subject_key_id.hex())
    signer = cert.authority_key_id.hex() if cert.authority_key_id else "(no AuthorityKeyIdentifier)"
    if cert.is_self_signed:
        signer += "  (self-signed)"
    table.add_row("signer key id", signer)
    table.add_row("serial", f"{cert.serial:x}")
    state = "valid now"
    if now < cert.not_before:
        state = "NOT YET VALID"
    elif now > cert.not_after:
        state = "EXPIRED"
    table.add_row("valid from", f"{format_time(cert.not_before)}  ({cert.not_before})")
    table.add_row("valid until", f"{format_time(cert.not_after)}  ({cert.not_after})  {state}")
    if not cert.cert_type.is_end_cert:
        table.add_row("pathLen", "unlimited" if cert.path_len is None else str(cert.path_len))
    for name, value in limit_rows(cert.limits):
        table.add_row(name, value)
    if cert.format is CertFormat.V0 and cert.v0_priority is not None:
        table.add_row("priority (v0.x)", cert.v0_priority)
    for issue in cert.profile_issues:
        table.add_row("PROFILE PROBLEM", issue)
    table.add_row("sha256 (DER)", cert.fingerprint.hex())
    if signature_verdict is not None:
        table.add_row("signature", signature_verdict)
    return table


def csr_table(csr: PktlabCsr, source: str) -> Table:
    table = _table(source)
    table.add_row("kind", "PKCS#10 certificate signing request")
    table.add_row(
        "signature", "valid (self-signed by the subject)" if csr.signature_valid else "INVALID"
    )
    table.add_row("subject key id", csr.subject_key_id.hex())
    if csr.info is None:
        table.add_row("cert_info", "(none: not a pktlab CSR)")
    else:
        table.add_row("type", csr.info.cert_type.label)
        if csr.info.del_type:
            table.add_row("del_type", csr.info.del_type.label)
        if csr.info.description is not None:
            table.add_row("description", csr.info.description)
    if csr.path_len is not None:
        table.add_row("pathLen", str(csr.path_len))
    for name, value in limit_rows(csr.limits):
        table.add_row(name, value)
    return table


def key_table(info: dict[str, Any], source: str) -> Table:
    table = _table(source)
    for name, value in info.items():
        table.add_row(name, str(value))
    return table


def chain_table(verified: VerifiedChain) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAD, title="chain (leaf first)", title_justify="left")
    for column in ("#", "type", "subject key id", "signer key id", "valid until"):
        table.add_column(column, no_wrap=True)
    for index, cert in enumerate(verified.certs):
        signer = cert.authority_key_id.hex()[:16] if cert.authority_key_id else "-"
        table.add_row(
            str(index),
            cert.cert_type.label + (f" [{cert.del_type.label}]" if cert.del_type else ""),
            cert.computed_subject_key_id.hex()[:16],
            signer,
            format_time(cert.not_after),
        )
    return table


def limits_table(limits: Limits) -> Table:
    table = _table("effective limits")
    rows = limit_rows(limits)
    if not rows:
        table.add_row("limits", "none (unlimited by certificates)")
    for name, value in rows:
        table.add_row(name.removeprefix("limit "), value)
    return table
