"""The `packetlab` command as a user runs it: real processes, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from packetlab import pki


def run(
    *args: str, home: Path | None = None, stdin: bytes = b""
) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "packetlab"]
    if home is not None:
        cmd += ["--home", str(home)]
    return subprocess.run(
        cmd + list(args),
        input=stdin.decode(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("home")
    result = run("init", str(root))
    assert result.returncode == 0, result.stderr
    return root


def test_init_creates_the_reference_layout_and_valid_chains(home: Path) -> None:
    for name in ("k_exper", "k_xc", "k_eop", "k_ep"):
        assert (home / "keys" / name).is_file() and (home / "keys" / f"{name}.pub").is_file()
        assert (home / "keys" / name).stat().st_mode & 0o077 == 0
    for name in (
        "agent_xc_xc",
        "agent_ep_ep",
        "exppriv_eop_exper",
        "pubcmd_exper_xc",
        "subcmd_eop_ep",
    ):
        assert pki.load_certificates(home / "certs" / f"{name}.cert")
    for name in ("exppriv_exper", "delpriv_exp_exper", "delpriv_rep_eop"):
        assert pki.load_csr(home / "csrs" / f"{name}.csr").signature_valid
    import tomllib

    for name in ("endpoint", "controller", "broker"):
        config = tomllib.loads((home / f"{name}.toml").read_text())
        text = str(config)
        assert "8.8.8.8" not in text and "caida" not in text.lower()
    chain = [
        c
        for f in ("pubcmd_exper_xc", "exppriv_eop_exper")
        for c in pki.load_certificates(home / "certs" / f"{f}.cert")
    ]
    pki.verify_controller_chain(
        chain,
        [pki.load_public_key(home / "keys/k_eop.pub")],
        now=time.time(),
        peer_key=pki.load_public_key(home / "keys/k_xc.pub"),
    )


def test_init_keeps_existing_files_unless_forced(tmp_path: Path) -> None:
    assert run("init", str(tmp_path)).returncode == 0
    before = (tmp_path / "keys/k_eop").read_bytes()
    again = run("init", str(tmp_path))
    assert again.returncode == 0 and "kept    keys/k_eop" in again.stdout
    assert (tmp_path / "keys/k_eop").read_bytes() == before
    forced = run("init", "--force", str(tmp_path))
    assert forced.returncode == 0 and "created keys/k_eop" in forced.stdout
    assert (tmp_path / "keys/k_eop").read_bytes() != before
    assert "controller chain (pubcmd + exppriv, rooted at k_eop): valid" in forced.stdout


def test_verify_exit_codes(home: Path) -> None:
    ok = run(
        "pki",
        "verify",
        "--mode",
        "controller",
        "--trusted",
        "k_eop.pub",
        "--peer",
        "k_xc.pub",
        "exppriv_eop_exper.cert",
        "pubcmd_exper_xc.cert",
        home=home,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("VALID controller chain of 2")
    wrong_root = run(
        "pki",
        "verify",
        "--mode",
        "controller",
        "--trusted",
        "k_ep.pub",
        "pubcmd_exper_xc.cert",
        "exppriv_eop_exper.cert",
        home=home,
    )
    assert wrong_root.returncode == 1 and "untrusted-root" in wrong_root.stdout
    missing = run(
        "pki",
        "verify",
        "--mode",
        "controller",
        "--trusted",
        "k_eop.pub",
        "pubcmd_exper_xc.cert",
        home=home,
    )
    assert missing.returncode == 1 and "missing-exppriv" in missing.stdout
    agent = run("pki", "verify", "--mode", "agent", "agent_ep_ep.cert", home=home)
    assert agent.returncode == 0
    expired = run(
        "pki",
        "verify",
        "--mode",
        "endpoint",
        "--trusted",
        "k_eop.pub",
        "--at",
        "2040-01-01",
        "subcmd_eop_ep.cert",
        home=home,
    )
    assert expired.returncode == 1 and "expired" in expired.stdout


def test_generate_with_every_limit_option_and_show(home: Path, tmp_path: Path) -> None:
    digest = "ab" * 32
    cert = tmp_path / "exp.cert"
    result = run(
        "pki",
        "gen",
        "cert",
        "exppriv",
        "k_eop",
        "0",
        "+365d",
        str(cert),
        "-k",
        "k_exper.pub",
        "--pathlen",
        "1",
        "-c",
        "lab run",
        "--max_num_priority",
        "3",
        "--max_socket_count",
        "8",
        "--max_exp_period",
        "60000000000",
        "--max_send_byte",
        "1000",
        "--max_send_pkt",
        "10",
        "--max_recv_byte",
        "2000",
        "--max_recv_pkt",
        "20",
        "--src_ip_spoofing",
        "0",
        "--opt_max_send_pkt",
        "--filter_digest",
        digest,
        "--monitor_digest",
        digest,
        digest.upper(),
        "--max_burst_rate_pkt",
        "5/1000",
        "10/100000",
        "--max_burst_rate_byte",
        "100/1000",
        "--valid_dest",
        "198.18.0.0/15",
        "2001:db8::/32",
        home=home,
    )
    assert result.returncode == 0, result.stderr
    parsed = pki.load_certificates(cert)[0]
    limits = parsed.limits
    assert (limits.max_num_priority, limits.max_socket_count, limits.max_send_pkt) == (3, 8, 10)
    assert limits.optional == frozenset({"max_send_pkt"})
    assert [str(n) for n in limits.valid_dest or ()] == ["198.18.0.0/15", "2001:db8::/32"]
    assert len(limits.monitor) == 2 and len(limits.max_burst_rate_pkt) == 2
    assert parsed.path_len == 1 and parsed.info.description == "lab run"
    shown = run("pki", "show", "cert", str(cert), "-k", "k_eop.pub", home=home)
    assert shown.returncode == 0
    for needle in (
        "exppriv",
        "max_send_pkt (optional)",
        "198.18.0.0/15",
        "valid under key",
        parsed.fingerprint.hex(),
    ):
        assert needle in shown.stdout


def test_csr_then_cert_from_csr(home: Path, tmp_path: Path) -> None:
    csr = tmp_path / "d.csr"
    made = run(
        "pki",
        "generate",
        "csr",
        "delpriv",
        "k_exper",
        str(csr),
        "--del_exppriv",
        "--max_send_pkt",
        "7",
        "-y",
        home=home,
    )
    assert made.returncode == 0, made.stderr
    cert = tmp_path / "d.cert"
    signed = run(
        "pki",
        "g",
        "cert",
        "delpriv",
        "k_exper",
        "now",
        "+1d",
        str(cert),
        "-r",
        str(csr),
        "--max_recv_pkt",
        "4",
        home=home,
    )
    assert signed.returncode == 0, signed.stderr
    parsed = pki.load_certificates(cert)[0]
    assert parsed.del_type is pki.DelType.EXPPRIV
    assert (parsed.limits.max_send_pkt, parsed.limits.max_recv_pkt) == (7, 4)
    listed = run("pki", "ls", home=home)
    assert "pubcmd_exper_xc.cert" in listed.stdout and "k_eop.pub" in listed.stdout


def test_key_generation_with_passphrase_file(home: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pass"
    secret.write_text("hunter2\n")
    made = run("pki", "generate", "key", "k_new", "--passphrase-file", str(secret), home=home)
    assert made.returncode == 0 and "encrypted" in made.stdout
    assert pki.load_private_key(home / "keys/k_new", b"hunter2")
    wrong = tmp_path / "wrong"
    wrong.write_text("nope\n")
    bad = run(
        "pki",
        "generate",
        "cert",
        "agent",
        "k_new",
        "0",
        "10",
        str(tmp_path / "a.cert"),
        "-k",
        "k_new.pub",
        "--passphrase-file",
        str(wrong),
        home=home,
    )
    assert bad.returncode == 2 and "wrong passphrase" in bad.stderr


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (
            b"-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
            "malformed",
        ),
        (b"\x30\x82\x01\x00\x30", "malformed"),
        (None, "no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, content: bytes | None, needle: str
) -> None:
    path = tmp_path / "bad.cert"
    if content is not None:
        path.write_bytes(content)
    for args in (
        ("pki", "show", "cert", str(path)),
        ("pki", "verify", "--mode", "agent", str(path)),
    ):
        result = run(*args, home=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "bad.cert" in lines[0] and needle in lines[0].lower()
        assert "Traceback" not in result.stderr
    debug = run("--debug", "pki", "show", "cert", str(path), home=tmp_path)
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_help_is_there() -> None:
    for args in ((), ("pki",), ("pki", "generate", "cert"), ("init",)):
        result = run(*args, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout
