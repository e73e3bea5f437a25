"""Interop with the reference's certificate tool, ppksman (PyPI `pktlab`), driven as a peer.

ppksman 1.0.4 (v1.x format) and 0.3.0 (v0.x format) live in venvs of their own (see the
Makefile). Certificates go both ways: what ppksman makes must verify (or be rejected for the
right reason) in packetlab, and what packetlab makes must pass ppksman's own checks.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import count
from pathlib import Path

import pytest

from packetlab import pki

pytestmark = pytest.mark.interop

ROOT = Path(__file__).resolve().parents[1]
REF_VENV = Path(os.environ.get("PACKETLAB_REF_VENV") or ROOT / ".venv-ref")
REF0_VENV = Path(os.environ.get("PACKETLAB_REF0_VENV") or ROOT / ".venv-ref0")
TIMEOUT = 60
END_OF_TIME = 2147483647  # what ppksman users pass for "no expiry"
NOW = int(time.time())
START = NOW - 3600
END = NOW + 30 * 86400

DIGEST_A = "a1" * 32
DIGEST_B = "b2" * 32
DIGEST_C = "c3" * 32


def _packetlab_cmd() -> list[str]:
    script = Path(sys.executable).with_name("packetlab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from packetlab.cli.main import main; main()"]


@dataclass
class Ppksman:
    """Runs one installed ppksman; every call gets fresh key/state stores (so calls can run in
    parallel: ppksman keeps its state in a shelve database)."""

    exe: Path
    workdir: Path
    _ids: count[int] = field(default_factory=count)

    def _config(self) -> Path:
        store = self.workdir / f"store{next(self._ids)}"
        store.mkdir(parents=True)
        conf = store / "ppksman.conf"
        conf.write_text(
            "LocalFSPPKSKeyManagerConfigStr "
            f'{{"name": "LocalFSPPKSKeyManager", "dirpath": "{store}/keys"}}\n'
            "LocalFSPPKSStateManagerConfigStr "
            f'{{"name": "LocalFSPPKSStateManager", "dirpath": "{store}/certs"}}\n'
        )
        return conf

    def run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = [str(self.exe), "-g", str(self._config()), *map(str, args)]
        # No controlling tty (new session): getpass falls back to stdin, which says "no
        # passphrase".
        proc = subprocess.run(
            argv,
            input="\n",
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            start_new_session=True,
            check=False,
        )
        if check and proc.returncode != 0:
            pytest.fail(
                f"ppksman failed ({proc.returncode}): {' '.join(argv)}\n"
                f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
            )
        return proc

    def many(self, calls: Sequence[Sequence[str | Path]]) -> list[subprocess.CompletedProcess[str]]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: self.run(*args), calls))

    def gen_keys(self, directory: Path, *names: str) -> dict[str, Path]:
        directory.mkdir(parents=True, exist_ok=True)
        paths = {name: directory / name for name in names}
        self.many([("gen", "key", name, "-f", path) for name, path in paths.items()])
        for path in paths.values():
            assert path.exists(), path
            assert path.with_name(path.name + ".pub").exists(), path
        return paths

    def show_cert(self, cert: Path, signer_pub: Path) -> str:
        proc = self.run("show", "cert", cert, "-k", signer_pub)
        return proc.stdout + proc.stderr


def cert_call(
    cert_type: str,
    signer: Path,
    out: Path,
    *options: str | Path,
    subject: Path | None = None,
    csr: Path | None = None,
    start: int = START,
    end: int = END,
) -> list[str | Path]:
    """ppksman `gen cert` arguments; list-valued options must come last in ``options``."""
    call: list[str | Path] = ["gen", "cert", cert_type, signer, str(start), str(end), out]
    call += ["-k", subject] if subject is not None else ["-r", csr] if csr is not None else []
    return [*call, "-y", *options]


def opts(text: str) -> list[str]:
    return shlex.split(text)


def pub(key: Path) -> Path:
    return key.with_name(key.name + ".pub")


def raw(key_path: Path) -> bytes:
    return pki.raw_public_key(pki.load_public_key(key_path))


def load(path: Path) -> pki.PktlabCert:
    certs = pki.load_certificates(path)
    assert len(certs) == 1
    return certs[0]


def run_packetlab(home: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_packetlab_cmd(), "--home", str(home), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )


def show_fields(text: str) -> dict[str, str]:
    """ppksman `show` lines ``- Label (note): value`` as {label: value}; the two raw fields
    (value on the next line, quoted) as well."""
    fields: dict[str, str] = {}
    lines = text.splitlines()
    for index, line in enumerate(lines):
        if line.startswith("- Raw certificate") and index + 1 < len(lines):
            fields[line[2:].rstrip(":")] = lines[index + 1].strip().strip("'")
            continue
        match = re.match(r"^- ([^:(]+?)(?: \([^)]*\))?: (.+)$", line)
        if match:
            fields[match.group(1)] = match.group(2).strip()
    return fields


def assert_clean_and_valid(shown: str) -> None:
    assert "- Signature (valid):" in shown, shown
    assert "INVALID" not in shown, shown
    warnings = [line for line in shown.splitlines() if line.startswith("Warning")]
    assert not warnings, shown


# --- fixtures ---


@pytest.fixture(scope="module")
def ref(tmp_path_factory: pytest.TempPathFactory) -> Ppksman:
    exe = REF_VENV / "bin" / "ppksman"
    if not exe.exists():
        pytest.skip(f"reference ppksman 1.0.4 not installed at {exe} (make .venv-ref/.installed)")
    return Ppksman(exe, tmp_path_factory.mktemp("ppksman-1.0.4"))


@pytest.fixture(scope="module")
def ref0(tmp_path_factory: pytest.TempPathFactory) -> Ppksman:
    exe = REF0_VENV / "bin" / "ppksman"
    if not exe.exists():
        pytest.skip(f"reference ppksman 0.3.0 not installed at {exe} (make .venv-ref0/.installed)")
    return Ppksman(exe, tmp_path_factory.mktemp("ppksman-0.3.0"))


@dataclass(frozen=True)
class CertSpec:
    """What a certificate is asked to contain."""

    cert_type: pki.CertType
    signer: str
    subject: str
    description: str | None = None
    path_len: int | None = None
    limits: tuple[tuple[str, int], ...] = ()

    def options(self) -> list[str]:
        out: list[str] = []
        if self.description is not None:
            out += ["-c", self.description]
        if self.path_len is not None:
            out += ["--pathlen", str(self.path_len)]
        for limit, value in self.limits:
            out += [f"--{limit}", str(value)]
        return out


STANDARD = {
    "agent_xc": CertSpec(pki.CertType.AGENT, "xc", "xc", description="xc agent"),
    "agent_ep": CertSpec(pki.CertType.AGENT, "ep", "ep", description="ep agent"),
    "exppriv": CertSpec(
        pki.CertType.EXPPRIV,
        "eop",
        "exper",
        description="experiment privilege (test)",
        path_len=1,
        limits=(("max_send_pkt", 1000), ("max_send_byte", 65536)),
    ),
    "pubcmd": CertSpec(pki.CertType.PUBCMD, "exper", "xc"),
    "subcmd": CertSpec(pki.CertType.SUBCMD, "eop", "ep"),
}


@dataclass
class StandardPki:
    keys: dict[str, Path]
    certs: dict[str, Path]


@pytest.fixture(scope="module")
def std(ref: Ppksman) -> StandardPki:
    """ppksman keys and the five standard certificates of a PacketLab deployment."""
    keys = ref.gen_keys(
        ref.workdir / "keys", "eop", "exper", "xc", "ep", "deleg", "deleg2", "wrong"
    )
    out = ref.workdir / "certs"
    out.mkdir()
    certs = {name: out / f"{name}.cert" for name in STANDARD}
    ref.many(
        [
            cert_call(
                spec.cert_type.label,
                keys[spec.signer],
                certs[name],
                *spec.options(),
                subject=pub(keys[spec.subject]),
            )
            for name, spec in STANDARD.items()
        ]
    )
    return StandardPki(keys, certs)


# --- 1. standard certs ---


def test_standard_chains_verify(std: StandardPki) -> None:
    k, c = std.keys, std.certs
    eop, xc, ep = (pki.load_public_key(pub(k[n])) for n in ("eop", "xc", "ep"))

    controller = pki.verify_controller_chain(
        [load(c["pubcmd"]), load(c["exppriv"])], [eop], now=time.time(), peer_key=xc
    )
    assert [x.cert_type for x in controller.certs] == [pki.CertType.PUBCMD, pki.CertType.EXPPRIV]
    assert controller.root_key == raw(pub(k["eop"]))
    assert controller.leaf_key == raw(pub(k["xc"]))
    assert controller.limits.max_send_pkt == 1000
    assert controller.limits.max_send_byte == 65536

    # Order of the input does not matter.
    again = pki.verify_controller_chain(
        [load(c["exppriv"]), load(c["pubcmd"])], [eop], now=time.time(), peer_key=xc
    )
    assert again.certs == controller.certs

    endpoint = pki.verify_endpoint_chain([load(c["subcmd"])], [eop], now=time.time(), peer_key=ep)
    assert endpoint.leaf.cert_type is pki.CertType.SUBCMD
    assert endpoint.root_key == raw(pub(k["eop"]))

    for name, key in (("agent_xc", xc), ("agent_ep", ep)):
        agent = pki.verify_agent_cert([load(c[name])], now=time.time(), peer_key=key)
        assert agent.leaf.is_self_signed
        assert agent.root_key == pki.raw_public_key(key)

    # The peer binding has teeth: the controller chain does not certify the endpoint's key.
    with pytest.raises(pki.PeerKeyMismatch):
        pki.verify_controller_chain(
            [load(c["pubcmd"]), load(c["exppriv"])], [eop], now=time.time(), peer_key=ep
        )


@pytest.mark.parametrize("name", list(STANDARD))
def test_standard_cert_fields(std: StandardPki, name: str) -> None:
    spec = STANDARD[name]
    cert = load(std.certs[name])
    assert cert.format is pki.CertFormat.V1
    assert cert.profile_issues == ()
    assert cert.cert_type is spec.cert_type
    assert cert.del_type is pki.DelType.NONE
    assert cert.info.description == spec.description
    assert cert.not_before == START
    assert cert.not_after == END
    assert cert.subject_key == raw(pub(std.keys[spec.subject]))
    assert cert.subject_key_id == pki.key_id(cert.subject_key)
    assert cert.authority_key_id == pki.key_id(raw(pub(std.keys[spec.signer])))
    assert cert.path_len == spec.path_len
    assert cert.is_ca is (not cert.cert_type.is_end_cert)
    if spec.limits:
        assert cert.limit_string is not None
        assert cert.limits.to_string() == cert.limit_string
        assert pki.parse_limits(cert.limit_string) == cert.limits
        for limit, value in spec.limits:
            assert getattr(cert.limits, limit) == value
        assert {n for n in pki.limits.LIMIT_NAMES if cert.limits.is_set(n)} == dict(
            spec.limits
        ).keys()
    else:
        assert cert.limit_string is None
        assert cert.limits.is_empty
    # The parsed cert_info renders back to exactly what ppksman wrote.
    assert cert.info.to_string() == cert.info_string


# --- 2. limits ---


@dataclass
class LimitChains:
    exppriv: Path
    delpriv: Path
    pubcmd: Path
    wide_delpriv: Path
    wide_pubcmd: Path


@pytest.fixture(scope="module")
def limit_chains(ref: Ppksman, std: StandardPki) -> LimitChains:
    k = std.keys
    out = ref.workdir / "limits"
    out.mkdir()
    chains = LimitChains(*(out / f"{n}.cert" for n in LimitChains.__dataclass_fields__))
    ref.many(
        [
            cert_call(
                "exppriv",
                k["eop"],
                chains.exppriv,
                *opts(
                    "--max_send_pkt 100 --opt_max_send_pkt --max_burst_rate_pkt 50/1000000 "
                    f"--monitor_digest {DIGEST_A} --valid_dest 10.0.0.0/8 192.168.0.0/16"
                ),
                subject=pub(k["exper"]),
            ),
            cert_call(
                "delpriv",
                k["exper"],
                chains.delpriv,
                *opts(
                    f"--del_exppriv --max_send_pkt 10 --monitor_digest {DIGEST_B} "
                    "--valid_dest 10.1.0.0/16"
                ),
                subject=pub(k["deleg"]),
            ),
            cert_call("pubcmd", k["deleg"], chains.pubcmd, subject=pub(k["xc"])),
            cert_call(
                "delpriv",
                k["exper"],
                chains.wide_delpriv,
                *opts("--del_exppriv --max_send_pkt 101"),
                subject=pub(k["deleg2"]),
            ),
            cert_call("pubcmd", k["deleg2"], chains.wide_pubcmd, subject=pub(k["xc"])),
        ]
    )
    return chains


def test_reference_limits_parse(limit_chains: LimitChains) -> None:
    exppriv = load(limit_chains.exppriv)
    assert exppriv.limits.max_send_pkt == 100
    assert exppriv.limits.optional == frozenset({"max_send_pkt"})
    assert [str(n) for n in exppriv.limits.valid_dest or ()] == ["10.0.0.0/8", "192.168.0.0/16"]
    assert exppriv.limits.max_burst_rate_pkt == (pki.BurstRate(50, 1000000),)
    assert exppriv.limits.monitor == (bytes.fromhex(DIGEST_A),)
    assert exppriv.limits.to_string() == exppriv.limit_string

    delpriv = load(limit_chains.delpriv)
    assert delpriv.cert_type is pki.CertType.DELPRIV
    assert delpriv.del_type is pki.DelType.EXPPRIV
    assert delpriv.limits.to_string() == delpriv.limit_string


def test_delegation_narrows_limits(std: StandardPki, limit_chains: LimitChains) -> None:
    eop = pki.load_public_key(pub(std.keys["eop"]))
    certs = [load(p) for p in (limit_chains.delpriv, limit_chains.exppriv, limit_chains.pubcmd)]
    verified = pki.verify_controller_chain(
        certs, [eop], now=time.time(), peer_key=pki.load_public_key(pub(std.keys["xc"]))
    )
    assert [c.cert_type for c in verified.certs] == [
        pki.CertType.PUBCMD,
        pki.CertType.DELPRIV,
        pki.CertType.EXPPRIV,
    ]
    effective = verified.limits
    assert effective.max_send_pkt == 10  # the narrower delegation wins
    assert set(effective.monitor) == {bytes.fromhex(DIGEST_A), bytes.fromhex(DIGEST_B)}
    assert len(effective.monitor) == 2
    assert [str(n) for n in effective.valid_dest or ()] == ["10.1.0.0/16"]
    assert effective.max_burst_rate_pkt == (pki.BurstRate(50, 1000000),)  # inherited


def test_widening_delegation_rejected(std: StandardPki, limit_chains: LimitChains) -> None:
    eop = pki.load_public_key(pub(std.keys["eop"]))
    certs = [
        load(p) for p in (limit_chains.wide_pubcmd, limit_chains.wide_delpriv, limit_chains.exppriv)
    ]
    with pytest.raises(pki.LimitWidened, match="max_send_pkt") as info:
        pki.verify_controller_chain(certs, [eop], now=time.time())
    assert info.value.cert_index == 1  # the delpriv, between pubcmd (0) and exppriv (2)


# --- 3. invalid chains ---


@pytest.fixture(scope="module")
def bad_certs(ref: Ppksman, std: StandardPki) -> dict[str, Path]:
    k = std.keys
    out = ref.workdir / "bad"
    out.mkdir()
    paths = {n: out / f"{n}.cert" for n in ("wrong_pubcmd", "expired", "rep_delpriv", "rep_pub")}
    ref.many(
        [
            cert_call("pubcmd", k["wrong"], paths["wrong_pubcmd"], subject=pub(k["xc"])),
            cert_call(
                "exppriv",
                k["eop"],
                paths["expired"],
                subject=pub(k["exper"]),
                start=NOW - 7200,
                end=NOW - 3600,
            ),
            cert_call(
                "delpriv",
                k["exper"],
                paths["rep_delpriv"],
                "--del_reppriv",
                subject=pub(k["deleg"]),
            ),
            cert_call("pubcmd", k["deleg"], paths["rep_pub"], subject=pub(k["xc"])),
        ]
    )
    return paths


def _controller(std: StandardPki, *paths: Path) -> pki.VerifiedChain:
    eop = pki.load_public_key(pub(std.keys["eop"]))
    return pki.verify_controller_chain([load(p) for p in paths], [eop], now=time.time())


def test_pubcmd_signed_by_wrong_key(std: StandardPki, bad_certs: dict[str, Path]) -> None:
    with pytest.raises((pki.WrongSigner, pki.BadSignature)):
        _controller(std, bad_certs["wrong_pubcmd"], std.certs["exppriv"])


def test_expired_exppriv(std: StandardPki, bad_certs: dict[str, Path]) -> None:
    expired = load(bad_certs["expired"])
    assert expired.not_after < time.time()
    with pytest.raises(pki.CertificateExpired) as info:
        _controller(std, std.certs["pubcmd"], bad_certs["expired"])
    assert info.value.cert_index == 1
    # ... but it was valid at its last second (when the pubcmd had just become valid).
    eop = pki.load_public_key(pub(std.keys["eop"]))
    pki.verify_controller_chain([load(std.certs["pubcmd"]), expired], [eop], now=expired.not_after)


def test_exppriv_alone_is_no_controller_chain(std: StandardPki) -> None:
    with pytest.raises(pki.ExpprivAsLeaf):
        _controller(std, std.certs["exppriv"])


def test_reppriv_delegation_in_controller_chain(
    std: StandardPki, bad_certs: dict[str, Path]
) -> None:
    assert load(bad_certs["rep_delpriv"]).del_type is pki.DelType.REPPRIV
    with pytest.raises(pki.WrongDelType) as info:
        _controller(std, bad_certs["rep_pub"], bad_certs["rep_delpriv"], std.certs["exppriv"])
    assert info.value.cert_index == 1


def test_missing_exppriv(std: StandardPki, bad_certs: dict[str, Path]) -> None:
    with pytest.raises(pki.MissingExppriv):
        _controller(std, std.certs["pubcmd"])
    with pytest.raises(pki.MissingExppriv):
        _controller(std, bad_certs["rep_pub"], bad_certs["rep_delpriv"])


def test_invalid_chain_cli_exit_code(
    std: StandardPki, bad_certs: dict[str, Path], tmp_path: Path
) -> None:
    k = std.keys
    good = run_packetlab(
        tmp_path, "pki", "verify", "--mode", "controller", "--trusted", pub(k["eop"]),
        "--peer", pub(k["xc"]), std.certs["pubcmd"], std.certs["exppriv"],
    )  # fmt: skip
    assert good.returncode == 0, good.stdout + good.stderr
    bad = run_packetlab(
        tmp_path, "pki", "verify", "--mode", "controller", "--trusted", pub(k["eop"]),
        std.certs["pubcmd"], bad_certs["expired"],
    )  # fmt: skip
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "INVALID" in bad.stdout


# --- 4. packetlab to ppksman ---


def test_api_certs_pass_ppksman_checks(ref: Ppksman, std: StandardPki, tmp_path: Path) -> None:
    k = std.keys
    eop = pki.load_private_key(k["eop"])
    exper = pki.load_private_key(k["exper"])
    limits = pki.parse_limits(
        f"monitor={DIGEST_C};*max_send_byte=5000;max_send_pkt=100;"
        "max_burst_rate_pkt=10/1000;valid_dest=10.0.0.0/8,172.16.0.0/12;"
    )
    made = {
        "exppriv": pki.build_certificate(
            cert_type=pki.CertType.EXPPRIV,
            signer=eop,
            subject=exper.public_key(),
            not_before=0,
            not_after=END_OF_TIME,
            path_len=1,
            limits=limits,
            description="made by packetlab",
        ),
        "pubcmd": pki.build_certificate(
            cert_type=pki.CertType.PUBCMD,
            signer=exper,
            subject=pki.load_public_key(pub(k["xc"])),
            not_before=START,
            not_after=END,
        ),
        "delpriv": pki.build_certificate(
            cert_type=pki.CertType.DELPRIV,
            signer=exper,
            subject=pki.load_public_key(pub(k["deleg"])),
            not_before=START,
            not_after=END,
            del_type=pki.DelType.EXPPRIV,
            path_len=0,
            limits=pki.parse_limits("max_send_pkt=7;"),
        ),
        "agent": pki.build_certificate(
            cert_type=pki.CertType.AGENT,
            signer=pki.load_private_key(k["ep"]),
            subject=pki.load_public_key(pub(k["ep"])),
            not_before=START,
            not_after=END,
        ),
    }
    signer_of = {"exppriv": "eop", "pubcmd": "exper", "delpriv": "exper", "agent": "ep"}
    paths = {}
    for name, cert in made.items():
        paths[name] = tmp_path / f"{name}.cert"
        paths[name].write_bytes(cert.pem())
    shows = ref.many([("show", "cert", paths[n], "-k", pub(k[signer_of[n]])) for n in made])
    for name, proc in zip(made, shows, strict=True):
        shown = proc.stdout + proc.stderr
        assert_clean_and_valid(shown)
        fields = show_fields(shown)
        cert = made[name]
        assert fields["pktlab certificate type"] == name
        assert fields["Raw certificate information field"] == cert.info_string
        assert fields.get("Raw certificate limitation field") == cert.limit_string
    fields = show_fields(shows[0].stdout)
    assert fields["Pathlen restriction"] == "1"
    assert fields["Certificate description"] == "'made by packetlab'"
    assert fields["Max send packet count"] == "100"
    assert fields["Max send byte count"] == "5000"
    assert fields["Max burst rate in packets/ticks"] == "10/1000"
    assert fields["Valid destination"] == "10.0.0.0/8,172.16.0.0/12"
    assert show_fields(shows[2].stdout)["Delegation type"].count("exppriv") == 1

    # Control: the same check run against the wrong key does complain.
    wrong = ref.show_cert(paths["exppriv"], pub(k["xc"]))
    assert "- Signature (INVALID):" in wrong
    assert any(line.startswith("Warning") for line in wrong.splitlines())


def test_cli_certs_pass_ppksman_checks(ref: Ppksman, std: StandardPki, tmp_path: Path) -> None:
    k = std.keys
    delpriv = tmp_path / "delpriv.cert"
    made = run_packetlab(
        tmp_path / "home", "pki", "generate", "cert", "delpriv", k["exper"], str(START),
        str(END), delpriv, "-k", pub(k["deleg"]), "--del_exppriv", "--pathlen", "0",
        "-c", "cli delegation", "--max_send_pkt", "20", "--max_recv_pkt", "30",
        "--opt_max_recv_pkt", "--valid_dest", "10.2.0.0/16", "--valid_dest", "10.3.0.0/16",
        "--filter_digest", DIGEST_A, "-y",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    cert = load(delpriv)
    assert cert.del_type is pki.DelType.EXPPRIV
    assert cert.path_len == 0
    assert cert.limits.max_recv_pkt == 30
    assert cert.limits.optional == frozenset({"max_recv_pkt"})

    shown = ref.show_cert(delpriv, pub(k["exper"]))
    assert_clean_and_valid(shown)
    fields = show_fields(shown)
    assert fields["pktlab certificate type"] == "delpriv"
    assert fields["Pathlen restriction"] == "0"
    assert fields["Certificate description"] == "'cli delegation'"
    assert fields["Max send packet count"] == "20"
    assert fields["Max receive packet count"] == "30"
    assert fields["Valid destination"] == "10.2.0.0/16,10.3.0.0/16"
    assert fields["Raw certificate limitation field"] == cert.limit_string

    # And the delegation slots into a chain with ppksman's exppriv (pathlen 1).
    pubcmd = tmp_path / "pubcmd.cert"
    pubcmd.write_bytes(
        pki.build_certificate(
            cert_type=pki.CertType.PUBCMD,
            signer=pki.load_private_key(k["deleg"]),
            subject=pki.load_public_key(pub(k["xc"])),
            not_before=START,
            not_after=END,
        ).pem()
    )
    verified = _controller(std, pubcmd, delpriv, std.certs["exppriv"])
    assert verified.limits.max_send_pkt == 20
    assert verified.limits.max_send_byte == 65536  # from ppksman's exppriv
    assert verified.limits.filter == (bytes.fromhex(DIGEST_A),)


def test_packetlab_csr_signed_by_ppksman(ref: Ppksman, std: StandardPki, tmp_path: Path) -> None:
    k = std.keys
    csr = tmp_path / "exppriv.csr"
    made = run_packetlab(
        tmp_path / "home", "pki", "generate", "csr", "exppriv", k["exper"], csr,
        "--max_send_pkt", "5", "-y",
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    shown_csr = ref.run("show", "csr", csr)
    assert "- Signature (valid):" in shown_csr.stdout
    assert not [x for x in shown_csr.stderr.splitlines() if x.startswith("Warning")]

    exppriv = tmp_path / "exppriv.cert"
    ref.run(*cert_call("exppriv", k["eop"], exppriv, csr=csr, start=0, end=END_OF_TIME))
    cert = load(exppriv)
    assert cert.subject_key == raw(pub(k["exper"]))
    assert cert.not_before == 0
    assert cert.not_after == END_OF_TIME
    assert cert.limits.max_send_pkt == 5

    verified = _controller(std, std.certs["pubcmd"], exppriv)
    assert verified.limits.max_send_pkt == 5


def test_ppksman_csrs_signed_by_packetlab(ref: Ppksman, std: StandardPki, tmp_path: Path) -> None:
    k = std.keys
    pub_csr, del_csr = tmp_path / "pubcmd.csr", tmp_path / "delpriv.csr"
    ref.many(
        [
            ("gen", "csr", "pubcmd", k["xc"], pub_csr, "-y"),
            ("gen", "csr", "delpriv", k["deleg"], del_csr, "--del_exppriv", "-y",
             "--max_send_pkt", "7"),
        ]
    )  # fmt: skip
    home = tmp_path / "home"
    delpriv, pubcmd = tmp_path / "delpriv.cert", tmp_path / "pubcmd.cert"
    for cert_type, signer, csr, out in (
        ("delpriv", "exper", del_csr, delpriv),
        ("pubcmd", "deleg", pub_csr, pubcmd),
    ):
        made = run_packetlab(
            home, "pki", "generate", "cert", cert_type, k[signer], str(START), str(END), out,
            "-r", csr, "-y",
        )  # fmt: skip
        assert made.returncode == 0, made.stdout + made.stderr
    assert load(delpriv).del_type is pki.DelType.EXPPRIV
    assert load(delpriv).subject_key == raw(pub(k["deleg"]))
    assert load(pubcmd).subject_key == raw(pub(k["xc"]))

    verified = _controller(std, pubcmd, delpriv, std.certs["exppriv"])
    assert verified.leaf_key == raw(pub(k["xc"]))
    assert verified.limits.max_send_pkt == 7  # the CSR's limit, narrower than the exppriv's


# --- 5. v0.x format ---


@dataclass
class V0Pki:
    keys: dict[str, Path]
    exppriv: Path
    pubcmd: Path
    exppriv_full: Path
    delpriv: Path
    deleg_pubcmd: Path


@pytest.fixture(scope="module")
def v0(ref0: Ppksman) -> V0Pki:
    keys = ref0.gen_keys(ref0.workdir / "keys", "eop0", "exper0", "xc0", "deleg0")
    out = ref0.workdir / "certs"
    out.mkdir()
    names = ("exppriv", "pubcmd", "full", "delpriv", "deleg_pubcmd")
    made = V0Pki(keys, *(out / f"{n}.cert" for n in names))
    ref0.many(
        [
            cert_call("exppriv", keys["eop0"], made.exppriv, subject=pub(keys["exper0"])),
            cert_call("pubcmd", keys["exper0"], made.pubcmd, subject=pub(keys["xc0"])),
            cert_call(
                "exppriv",
                keys["eop0"],
                made.exppriv_full,
                *opts(f"-c 'old format' -l 1 -p 7 -m {DIGEST_A} {DIGEST_B}"),
                subject=pub(keys["exper0"]),
            ),
            cert_call(
                "delpriv",
                keys["exper0"],
                made.delpriv,
                "--del_exppriv",
                subject=pub(keys["deleg0"]),
            ),
            cert_call("pubcmd", keys["deleg0"], made.deleg_pubcmd, subject=pub(keys["xc0"])),
        ]
    )
    return made


def test_v0_certs_parse(v0: V0Pki) -> None:
    expected = {
        v0.exppriv: pki.CertType.EXPPRIV,
        v0.pubcmd: pki.CertType.PUBCMD,
        v0.exppriv_full: pki.CertType.EXPPRIV,
        v0.delpriv: pki.CertType.DELPRIV,
    }
    for path, cert_type in expected.items():
        cert = load(path)
        assert cert.format is pki.CertFormat.V0
        assert cert.cert_type is cert_type
        assert cert.not_before == START
        assert cert.not_after == END
    full = load(v0.exppriv_full)
    assert full.info.description == "old format"
    assert full.path_len == 1
    assert full.v0_priority == "7"
    assert full.limits.monitor == (bytes.fromhex(DIGEST_A), bytes.fromhex(DIGEST_B))
    assert full.subject_key == raw(pub(v0.keys["exper0"]))
    assert load(v0.delpriv).del_type is pki.DelType.EXPPRIV


def test_v0_chain_is_legacy(v0: V0Pki) -> None:
    eop = pki.load_public_key(pub(v0.keys["eop0"]))
    xc = pki.load_public_key(pub(v0.keys["xc0"]))
    certs = [load(v0.pubcmd), load(v0.exppriv)]
    with pytest.raises(pki.LegacyFormat):
        pki.verify_controller_chain(certs, [eop], now=time.time(), peer_key=xc)
    verified = pki.verify_chain(
        pki.ChainMode.CONTROLLER, certs, [eop], now=time.time(), peer_key=xc, allow_legacy=True
    )
    assert verified.leaf_key == pki.raw_public_key(xc)
    assert verified.root_key == pki.raw_public_key(eop)
    # Legacy mode still checks signatures: the wrong root is refused.
    with pytest.raises(pki.UntrustedRoot):
        pki.verify_chain(pki.ChainMode.CONTROLLER, certs, [xc], now=time.time(), allow_legacy=True)


def test_v0_chain_with_description_and_delegation_is_legacy_valid(v0: V0Pki) -> None:
    eop = pki.load_public_key(pub(v0.keys["eop0"]))
    certs = [load(v0.deleg_pubcmd), load(v0.delpriv), load(v0.exppriv_full)]
    verified = pki.verify_chain(
        pki.ChainMode.CONTROLLER, certs, [eop], now=time.time(), allow_legacy=True
    )
    assert verified.leaf_key == raw(pub(v0.keys["xc0"]))


def test_v0_cli_verify(v0: V0Pki, tmp_path: Path) -> None:
    args = [
        "pki", "verify", "--mode", "controller", "--trusted", pub(v0.keys["eop0"]),
        "--peer", pub(v0.keys["xc0"]), v0.pubcmd, v0.exppriv,
    ]  # fmt: skip
    strict = run_packetlab(tmp_path, *args)
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "v0.x" in strict.stdout + strict.stderr
    assert "INVALID" in strict.stdout
    legacy = run_packetlab(tmp_path, *args, "--legacy")
    assert legacy.returncode == 0, legacy.stdout + legacy.stderr
    assert "v0.x" in legacy.stderr
