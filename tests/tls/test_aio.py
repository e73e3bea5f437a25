"""A real TLS session over loopback TCP: mutual pktlab auth, then pktlab messages both ways."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from test_engine import Principals, controller_verifier, endpoint_verifier

from packetlab import wire as w
from packetlab.tls import PeerVerificationError, client_context, server_context
from packetlab.tls.aio import accept_tls, connect_tls
from packetlab.wire.session import ControllerSession, EndpointSession, RequestReceived


async def _session_over_loopback(p: Principals, trust_endpoint: list) -> dict[str, object]:  # type: ignore[type-arg]
    result: dict[str, object] = {}
    server_ctx = server_context({"exp1": p.controller_identity()}, None)
    done = asyncio.Event()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            stream = await accept_tls(
                reader, writer, server_ctx, controller_verifier([p.eop.public_key()])
            )
            result["server_peer"] = stream.peer.leaf_key
            result["nodelay"] = writer.get_extra_info("socket").getsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY
            )
            core = ControllerSession()
            core.send_request(w.Start())
            stream.write(core.data_to_send())
            reply = await stream.read()
            result["controller_events"] = core.receive_data(reply, time.time_ns())
            await stream.close()
        except Exception as exc:  # surfaced to the test
            result["server_error"] = exc
        finally:
            done.set()

    server = await asyncio.start_server(on_connect, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        stream = await connect_tls(
            "127.0.0.1",
            port,
            client_context(p.endpoint_identity()),
            endpoint_verifier(trust_endpoint),
            sni="exp1",
        )
        result["client_peer"] = stream.peer.leaf_key
        core = EndpointSession(now=time.time_ns())
        events = core.receive_data(await stream.read(), time.time_ns())
        assert events == [RequestReceived(w.Start())]
        core.accept_start()
        stream.write(core.data_to_send())
        await asyncio.wait_for(done.wait(), 5)
        await stream.close()
    finally:
        server.close()
        await server.wait_closed()
    return result


def test_start_and_result_over_real_tls() -> None:
    p = Principals()
    result = asyncio.run(_session_over_loopback(p, [p.eop.public_key()]))
    assert "server_error" not in result, result.get("server_error")
    from packetlab import pki

    assert result["client_peer"] == pki.raw_public_key(p.xc)
    assert result["server_peer"] == pki.raw_public_key(p.ep)
    assert result["nodelay"] == 1
    [event] = result["controller_events"]  # type: ignore[misc]
    assert event.response == w.Result()


def test_endpoint_refuses_a_controller_outside_its_trust() -> None:
    p = Principals()
    from packetlab import pki

    with pytest.raises(PeerVerificationError):
        asyncio.run(_session_over_loopback(p, [pki.generate_private_key().public_key()]))
