"""An HTTP GET through an endpoint: what the reference's test_http_get mlet does.

    packetlab controller examples/http_get.py [HOST[:PORT] [PATH]]

Prints the full response (headers and body) as the endpoint received it.
"""

from __future__ import annotations

import sys

from packetlab.controller.api import EndpointHandle
from packetlab.wire import Ndata, Nstat, NstatCode
from packetlab.wire.hostport import split_host_port

SKTID = 1


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    host, port = split_host_port(args[0] if args else "127.0.0.1", 80)
    path = args[1] if len(args) > 1 else "/"
    await endpoint.open_tcp(SKTID, host, port)
    try:
        status = await endpoint.next(Nstat, sktid=SKTID, timeout=5)
        if status.code != NstatCode.ESTABLISHED:
            raise SystemExit(f"cannot connect to {host}:{port} (nstat code {status.code})")
        request = f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode()
        await endpoint.send_tcp(SKTID, request, tag=1)
        response = bytearray()
        while True:
            note = await endpoint.next((Ndata, Nstat), sktid=SKTID, timeout=10)  # type: ignore[arg-type]
            if isinstance(note, Ndata):
                response += note.data
            elif isinstance(note, Nstat) and note.code != NstatCode.ESTABLISHED:
                break
    finally:
        await endpoint.close(SKTID)
    sys.stdout.write(response.decode("utf-8", "replace"))
    sys.stdout.flush()
