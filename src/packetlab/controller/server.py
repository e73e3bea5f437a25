"""The controller: TLS listener, setup phase, and the experiment for every endpoint that dials in.

An experiment is either a Python file defining ``async def experiment(endpoint, args)`` or an
executable mlet run the reference's way: its fd 0 is a socketpair carrying plain pktlab
messages, EPADDR holds the endpoint's address, and the controller relays bytes both ways.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.util
import logging
import os
import socket
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from packetlab import pki
from packetlab import wire as w
from packetlab.controller.api import EndpointHandle, SessionGone
from packetlab.controller.config import ControllerConfig, ExperimentEntry
from packetlab.tls import TlsError, TlsIdentity, server_context
from packetlab.tls.aio import TlsStream, accept_tls
from packetlab.wire.hostport import split_host_port
from packetlab.wire.session import ControllerSession

log = logging.getLogger("packetlab.controller")
Experiment = Callable[[EndpointHandle, list[str]], Awaitable[None]]
DEFAULT_ENTRY = "default"


class ExperimentLoadError(ValueError):
    pass


@dataclass(frozen=True)
class MletProgram:
    """An executable mlet (e.g. the reference's test_dns)."""

    path: Path


def load_experiment(path: Path) -> Experiment | MletProgram:
    if not path.exists():
        raise ExperimentLoadError(f"{path}: no such file")
    if path.suffix == ".py":
        spec = importlib.util.spec_from_file_location(f"packetlab_experiment_{path.stem}", path)
        if spec is None or spec.loader is None:
            raise ExperimentLoadError(f"{path}: cannot load as Python")
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # dataclasses and typing look their module up there
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(spec.name, None)
            raise ExperimentLoadError(f"{path}: {type(exc).__name__}: {exc}") from exc
        function = getattr(module, "experiment", None)
        if function is None or not asyncio.iscoroutinefunction(function):
            raise ExperimentLoadError(f"{path}: defines no `async def experiment(endpoint, args)`")
        return function  # type: ignore[no-any-return]
    if os.access(path, os.X_OK):
        return MletProgram(path)
    raise ExperimentLoadError(f"{path}: neither a .py experiment nor an executable mlet")


def _entry_name(entry: ExperimentEntry) -> str:
    return entry.sni_key or DEFAULT_ENTRY


def _programs(chain: list[pki.PktlabCert]) -> list[tuple[str, bytes]]:
    """(hint, digest) of every program the chain requires the endpoint to run."""
    out: list[tuple[str, bytes]] = []
    for cert in chain:
        out += [("filter", d) for d in cert.limits.filter if ("filter", d) not in out]
        out += [("monitor", d) for d in cert.limits.monitor if ("monitor", d) not in out]
    return out


def _find_program(program_dir: Path | None, digest: bytes) -> bytes | None:
    """The encoded program (type byte + body) in ``program_dir`` whose SHA-256 is ``digest``."""
    if program_dir is None or not program_dir.is_dir():
        return None
    for path in sorted(program_dir.iterdir()):
        if not path.is_file():
            continue
        raw = path.read_bytes()
        candidates = [raw]
        if path.suffix == ".wasm":
            candidates.append(b"\x01" + raw)
        for encoded in candidates:
            if hashlib.sha256(encoded).digest() == digest:
                return encoded
    return None


class Controller:
    def __init__(
        self,
        config: ControllerConfig,
        experiment: Experiment | MletProgram,
        args: list[str],
        *,
        listen: str | None = None,
        max_endpoints: int | None = None,
    ) -> None:
        self.config = config
        self.experiment = experiment
        self.args = args
        self.listen = listen or config.listen
        self.max_endpoints = max_endpoints
        key = pki.load_private_key(config.private_key)
        self.entries: dict[str, ExperimentEntry] = {}
        self.chains: dict[str, list[pki.PktlabCert]] = {}
        self.trust: dict[str, pki.TrustAnchors | None] = {}
        identities: dict[str, TlsIdentity] = {}
        default = None
        for entry in config.experiments:
            name = _entry_name(entry)
            chain = [c for p in entry.cert_chain for c in pki.load_certificates(p)]
            keys = [pki.load_public_key(p) for p in entry.trusted_eop_keys]
            self.entries[name] = entry
            self.chains[name] = chain
            self.trust[name] = pki.TrustAnchors(keys) if keys else None
            identities[name] = TlsIdentity(key, chain)
            if entry.default:
                default = name
        self.default = default
        self.context = server_context(identities, default)
        self.cache = pki.SignatureCache()
        self.served = 0
        self.results: list[BaseException | None] = []
        self._done = asyncio.Event()
        self._sessions: set[asyncio.Task[None]] = set()

    def _verify_endpoint(self, ders: list[bytes], key: bytes, sni: str | None) -> pki.VerifiedChain:
        name = sni if sni in self.entries else self.default
        if name is None:
            raise pki.UntrustedRoot("no experiment entry for this SNI")
        return pki.verify_endpoint_chain(
            ders, self.trust[name], now=time.time(), peer_key=key, cache=self.cache
        )

    async def serve(
        self,
        ready: Callable[[tuple[str, int]], None] | None = None,
        *,
        listen_socket: socket.socket | None = None,
    ) -> int:
        """Listen (on ``listen_socket`` when given, e.g. one made in another network
        namespace, else on the configured address) and serve endpoints until ``max_endpoints``
        sessions have ended (or forever)."""
        if listen_socket is not None:
            server = await asyncio.start_server(self._on_connect, sock=listen_socket)
        else:
            host, port = split_host_port(self.listen)
            server = await asyncio.start_server(self._on_connect, host, port)
        bound = server.sockets[0].getsockname()
        log.info("controller listening on %s:%d", bound[0], bound[1])
        if ready is not None:
            ready((str(bound[0]), int(bound[1])))
        try:
            await self._done.wait()
        finally:
            server.close()
            for task in list(self._sessions):
                task.cancel()
            with contextlib.suppress(Exception):
                await server.wait_closed()
        return self.served

    def stop(self) -> None:
        self._done.set()

    @property
    def active_sessions(self) -> int:
        """Endpoints connected (or in their TLS setup) right now."""
        return len(self._sessions)

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._sessions.add(task)
        try:
            stream = await accept_tls(
                reader,
                writer,
                self.context,
                self._verify_endpoint,
                timeout=self.config.setup_timeout_s,
            )
        except (TlsError, OSError, TimeoutError) as exc:
            log.warning("TLS with %s failed: %s", writer.get_extra_info("peername"), exc)
            self._sessions.discard(task)
            return
        error: BaseException | None = None
        try:
            await self._session(stream)
        except (SessionGone, OSError) as exc:
            error = exc
            log.warning("session with %s ended early: %s", stream.peername, exc)
        except Exception as exc:
            error = exc
            log.exception("experiment failed for %s", stream.peername)
        finally:
            await stream.close()
            self._sessions.discard(task)
            self.served += 1
            self.results.append(error)
            if self.max_endpoints is not None and self.served >= self.max_endpoints:
                self._done.set()

    async def _session(self, stream: TlsStream) -> None:
        name = stream.sni if stream.sni in self.entries else self.default
        assert name is not None
        core = ControllerSession()
        handle = EndpointHandle(core, stream.write, stream.peer, stream.peername)

        async def pump() -> None:
            while True:
                data = await stream.read()
                if not data:
                    handle.gone("endpoint closed the session")
                    return
                handle.feed(data)

        pump_task = asyncio.get_running_loop().create_task(pump())
        try:
            for hint, digest in _programs(self.chains[name]):
                encoded = _find_program(self.config.program_dir, digest)
                if encoded is None:
                    raise SessionGone(f"{hint} {digest.hex()} is not in the program directory")
                await handle.call(w.Cdata(hint, encoded))
            await handle.call(w.Start())
            if isinstance(self.experiment, MletProgram):
                pump_task.cancel()
                await self._run_mlet(stream, self.experiment)
            else:
                await self.experiment(handle, self.args)
        finally:
            pump_task.cancel()

    async def _run_mlet(self, stream: TlsStream, mlet: MletProgram) -> None:
        ours, theirs = socket.socketpair()
        env = dict(os.environ, EPADDR=stream.peername[0])
        process = await asyncio.create_subprocess_exec(
            str(mlet.path), *self.args, stdin=theirs.fileno(), env=env
        )
        theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)

        async def to_mlet() -> None:
            while data := await stream.read():
                writer.write(data)
                await writer.drain()
            writer.close()

        async def to_endpoint() -> None:
            while data := await reader.read(65536):
                stream.write(data)
                await stream.drain()

        tasks = [asyncio.create_task(to_mlet()), asyncio.create_task(to_endpoint())]
        try:
            await process.wait()
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            if process.returncode is None:
                process.kill()
                await process.wait()
