"""asyncio shells around TlsEngine: TCP with TCP_NODELAY, TLS 1.3, verified pktlab peers."""

from __future__ import annotations

import asyncio
import contextlib
import socket

from OpenSSL import SSL

from packetlab.pki import VerifiedChain
from packetlab.tls.engine import PeerVerifier, TlsEngine, TlsError

READ_SIZE = 65536


class TlsStream:
    """One authenticated TLS connection. ``write`` hands TLS records to the socket at once
    (TCP_NODELAY: no Nagle delay, the reference loses ~40 ms per message to it)."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        engine: TlsEngine,
        early: bytes = b"",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._engine = engine
        self._early = early

    @property
    def peer(self) -> VerifiedChain:
        assert self._engine.peer is not None
        return self._engine.peer

    @property
    def sni(self) -> str | None:
        return self._engine.sni

    @property
    def peername(self) -> tuple[str, int]:
        name = self._writer.get_extra_info("peername")
        return (str(name[0]), int(name[1])) if name else ("?", 0)

    async def read(self) -> bytes:
        """Plaintext as it arrives; b"" when the peer has closed or the connection broke
        (a peer killed with our data unread resets it)."""
        if self._early:
            data, self._early = self._early, b""
            return data
        while True:
            try:
                raw = await self._reader.read(READ_SIZE)
            except OSError:
                return b""
            if not raw:
                return b""
            try:
                plain = self._engine.receive(raw)
            except TlsError:
                return b""
            out = self._engine.data_to_send()
            if out:
                self._writer.write(out)
            if plain:
                return plain
            if self._engine.peer_closed:
                return b""

    def write(self, plaintext: bytes) -> None:
        self._engine.send(plaintext)
        self._writer.write(self._engine.data_to_send())

    async def drain(self) -> None:
        await self._writer.drain()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            self._engine.close()
            self._writer.write(self._engine.data_to_send())
        self._writer.close()
        with contextlib.suppress(Exception):
            await self._writer.wait_closed()


def _nodelay(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


async def _handshake(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, engine: TlsEngine
) -> TlsStream:
    _nodelay(writer)
    early = bytearray()
    engine.start()
    writer.write(engine.data_to_send())
    while not engine.handshake_done:
        raw = await reader.read(READ_SIZE)
        if not raw:
            raise TlsError("connection closed during the TLS handshake")
        early += engine.receive(raw)
        writer.write(engine.data_to_send())
    await writer.drain()
    return TlsStream(reader, writer, engine, bytes(early))


async def connect_tls(
    host: str,
    port: int,
    context: SSL.Context,
    verifier: PeerVerifier,
    *,
    sni: str | None = None,
    timeout: float = 3.0,
) -> TlsStream:
    """Dial a controller as the TLS client (the endpoint's role). ``timeout`` covers TCP + TLS."""
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, port)
        engine = TlsEngine(context, server=False, verifier=verifier, sni=sni)
        try:
            return await _handshake(reader, writer, engine)
        except BaseException:
            writer.close()
            raise


async def accept_tls(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    context: SSL.Context,
    verifier: PeerVerifier,
    *,
    timeout: float = 10.0,
) -> TlsStream:
    """Run the server side of the handshake on an accepted connection (the controller's role)."""
    engine = TlsEngine(context, server=True, verifier=verifier)
    try:
        async with asyncio.timeout(timeout):
            return await _handshake(reader, writer, engine)
    except BaseException:
        writer.close()
        raise
