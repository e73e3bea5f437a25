"""A test controller that drives a SessionAgent over a socketpair (the reference's raw session)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from packetlab import wire as w
from packetlab.endpoint.agent import SessionAgent
from packetlab.endpoint.vmem import EndpointInfo
from packetlab.wire.session import (
    ControllerSession,
    NotificationReceived,
    ResponseReceived,
    SessionClosed,
)

LOOPBACK = w.addr_bytes("127.0.0.1")


class Ctl:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.core = ControllerSession()
        self.notes: list[w.Message] = []
        self.responses: asyncio.Queue[w.Message] = asyncio.Queue()
        self.closed = asyncio.Event()
        self._pump = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        while True:
            data = await self.reader.read(65536)
            if not data:
                self.closed.set()
                return
            for event in self.core.receive_data(data, time.time_ns()):
                if isinstance(event, ResponseReceived):
                    self.responses.put_nowait(event.response)
                elif isinstance(event, NotificationReceived):
                    self.notes.append(event.message)
                elif isinstance(event, SessionClosed):
                    self.closed.set()

    async def request(self, msg: w.Message, timeout: float = 5.0) -> w.Message:
        self.core.send_request(msg)
        self.writer.write(self.core.data_to_send())
        return await asyncio.wait_for(self.responses.get(), timeout)

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    async def wait_note(self, kind: type, count: int = 1, timeout: float = 5.0) -> list[w.Message]:
        deadline = time.monotonic() + timeout
        while True:
            found = [n for n in self.notes if isinstance(n, kind)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited for {count} {kind.__name__}, have {self.notes}")
            await asyncio.sleep(0.005)

    async def close(self) -> None:
        self._pump.cancel()
        self.writer.close()


@asynccontextmanager
async def session(
    info: EndpointInfo | None = None, start: bool = True, **agent_options: Any
) -> AsyncIterator[tuple[Ctl, SessionAgent, asyncio.Task[str]]]:
    a, b = socket.socketpair()
    ep_reader, ep_writer = await asyncio.open_connection(sock=a)
    c_reader, c_writer = await asyncio.open_connection(sock=b)

    async def read() -> bytes:
        return await ep_reader.read(65536)

    agent = SessionAgent(
        info or EndpointInfo(ipv4=[(LOOPBACK, w.addr_bytes("255.0.0.0"))]),
        read,
        ep_writer.write,
        **agent_options,
    )
    task = asyncio.get_running_loop().create_task(agent.run())
    ctl = Ctl(c_reader, c_writer)
    try:
        if start:
            assert await ctl.request(w.Start()) == w.Result()
        yield ctl, agent, task
    finally:
        await ctl.close()
        try:
            await asyncio.wait_for(task, 5)
        except (TimeoutError, asyncio.CancelledError):
            task.cancel()
        ep_writer.close()
