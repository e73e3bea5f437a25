"""packetlab controller and packetlab endpoint as real processes over TLS on loopback, with the
certificates from `packetlab init`: the DNS and HTTP examples (experiment scripts)."""

from __future__ import annotations

import asyncio
import os
import select
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

from demo import PACKETLAB, free_port  # noqa: E402
from local_services import DnsResponder, HttpServer  # noqa: E402

from packetlab import pki  # noqa: E402
from packetlab import wire as w  # noqa: E402
from packetlab.endpoint.config import load_endpoint_config  # noqa: E402
from packetlab.endpoint.runner import Endpoint  # noqa: E402
from packetlab.tls import TlsIdentity, server_context  # noqa: E402
from packetlab.tls.aio import accept_tls  # noqa: E402

HERE = ROOT / "examples"


def measure(
    home: Path,
    experiment: str,
    *args: str,
    endpoint_config: Path | None = None,
    endpoint_args: Sequence[str] = (),
) -> str:
    port = free_port()
    controller = subprocess.Popen(
        [
            *PACKETLAB,
            "--home",
            str(home),
            "controller",
            "-a",
            f"127.0.0.1:{port}",
            "-n",
            "1",
            str(HERE / experiment),
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)
    endpoint = subprocess.run(
        [
            *PACKETLAB,
            "--home",
            str(home),
            "endpoint",
            *(["-c", str(endpoint_config)] if endpoint_config else []),
            *endpoint_args,
            f"127.0.0.1:{port}",
            "--sessions",
            "1",
            "--attempts",
            "10",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    try:
        out, err = controller.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        controller.kill()
        out, err = controller.communicate()
    if controller.returncode != 0 or endpoint.returncode != 0:
        sys.stderr.write(err + endpoint.stderr)
        raise SystemExit(f"demo: {experiment} failed")
    return out


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:

    root = tmp_path_factory.mktemp("e2e") / "home"
    subprocess.run([*PACKETLAB, "init", str(root)], check=True, capture_output=True, timeout=60)
    return root


def test_dns_example_through_a_real_endpoint(home: Path) -> None:
    responder = DnsResponder({"www.example.org": "10.1.2.3"})
    try:
        out = measure(home, "dns.py", "www.example.org", f"127.0.0.1:{responder.port}")
    finally:
        responder.close()
    assert "www.example.org is 10.1.2.3" in out
    assert responder.queries == 1


def test_endpoint_runs_from_a_reference_endpt_conf(home: Path, tmp_path: Path) -> None:
    """Users of the reference switch by changing the program name: same endpt.conf keys."""
    conf = tmp_path / "endpt.conf"
    conf.write_text(
        f"BufMax 8388608\nTransprotoSup tcp,udp\nVMemLocalAddrStrIPv4 127.0.0.1/8\n"
        f"HostID from-endpt-conf\nEndpointPrivKey {home}/keys/k_ep\n"
        f"EndpointOpPubKeyPath {home}/keys/k_eop.pub\n"
        f"ControllerCertChainPath {home}/certs/subcmd_eop_ep.cert\nNoSubMode 1\n"
    )
    # endpt.conf has no guardian keys; the DNS server is on this host, which the guardian
    # refuses unless the operator allows it
    policy = tmp_path / "guardian.toml"
    policy.write_text('[source_policy]\nallow_dest = ["127.0.0.0/8"]\n')
    responder = DnsResponder({"www.example.org": "10.1.2.3"})
    try:
        out = measure(
            home,
            "dns.py",
            "www.example.org",
            f"127.0.0.1:{responder.port}",
            endpoint_config=conf,
            endpoint_args=["--guardian", str(policy), "--state-dir", str(tmp_path / "state")],
        )
    finally:
        responder.close()
    assert "www.example.org is 10.1.2.3" in out


def test_http_example_returns_the_whole_response(home: Path, tmp_path: Path) -> None:
    body = "<html>" + "x" * 20000 + "</html>\n"
    (tmp_path / "big.html").write_text(body)
    server = HttpServer(tmp_path)
    try:
        out = measure(home, "http_get.py", f"127.0.0.1:{server.port}", "/big.html")
    finally:
        server.close()
    assert out.startswith("HTTP/1.0 200 OK")
    assert out.endswith(body)


def test_endpoint_survives_a_malformed_message_and_serves_the_next_session(home: Path) -> None:
    """A controller sends garbage: ECTLBADMSG, reset; the endpoint dials again and serves."""

    async def main() -> list[bytes]:
        config = load_endpoint_config(home / "endpoint.toml")
        key = pki.load_private_key(home / "keys/k_xc")
        chain = [
            c
            for f in ("pubcmd_exper_xc", "exppriv_eop_exper")
            for c in pki.load_certificates(home / f"certs/{f}.cert")
        ]
        context = server_context({"default": TlsIdentity(key, chain)}, "default")
        seen: list[bytes] = []
        sessions = asyncio.Queue[None]()

        async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            stream = await accept_tls(
                reader,
                writer,
                context,
                lambda d, k, s: pki.verify_endpoint_chain(d, None, now=time.time()),
            )
            stream.write(w.encode(w.Start()))
            seen.append(await stream.read())
            if len(seen) == 1:
                stream.write(bytes.fromhex("280000051001000000"))  # malformed mread
            else:
                stream.write(w.encode(w.Mread(0x10030000, 8)))
            seen.append(await stream.read())
            await stream.close()
            sessions.put_nowait(None)

        server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        endpoint = asyncio.create_task(
            Endpoint(config).serve(f"127.0.0.1:{port}", sessions=2, attempts=5)
        )
        served = await asyncio.wait_for(endpoint, 30)
        server.close()
        await server.wait_closed()
        assert served == 2
        return seen

    seen = asyncio.run(main())
    assert seen[0] == w.encode(w.Result())  # start
    assert seen[1] == w.encode(w.Result(w.ErrId.ECTLBADMSG))  # then reset
    assert seen[2] == w.encode(w.Result())  # second session: start
    assert seen[3] == w.encode(w.Mdata(0x10030000, b"pktendpt"))


LINGERING_EXPERIMENT = """
import asyncio, sys, time

async def experiment(endpoint, args):
    await endpoint.open_udp(1)
    await endpoint.send_udp(1, "127.0.0.1", 9999, b"x", at=time.time_ns() + 60_000_000_000, tag=1)
    print("ready", flush=True)
    await asyncio.sleep(60)
"""


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except FileNotFoundError:  # the process is gone, and so are its children links
        return []


def test_controller_killed_mid_experiment_leaves_nothing_on_the_endpoint(
    home: Path, tmp_path: Path
) -> None:
    """kill -9 of the controller: the endpoint ends the session, its packet I/O process (with
    the socket and the send scheduled a minute ahead) exits, and the endpoint goes on."""
    experiment = tmp_path / "linger.py"
    experiment.write_text(LINGERING_EXPERIMENT)
    port = free_port()
    controller = subprocess.Popen(
        [*PACKETLAB, "--home", str(home), "controller", "-a", f"127.0.0.1:{port}", str(experiment)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    endpoint = subprocess.Popen(
        [*PACKETLAB, "--home", str(home), "endpoint", f"127.0.0.1:{port}", "--sessions", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert controller.stdout is not None
        ready, _, _ = select.select([controller.stdout], [], [], 30)
        assert ready and controller.stdout.readline().strip() == "ready"
        workers = _children(endpoint.pid)
        assert len(workers) == 1  # the session's packet I/O process
        controller.kill()
        controller.wait(10)
        assert endpoint.wait(15) == 0  # the session ended; --sessions 1 is done
        assert _children(endpoint.pid) == []
        for worker in workers:
            with pytest.raises(ProcessLookupError):
                os.kill(worker, 0)
    finally:
        for process in (controller, endpoint):
            if process.poll() is None:
                process.kill()
                process.wait()
        controller.stdout.close()  # type: ignore[union-attr]
