"""The experiment API against a real `packetlab endpoint` process over TLS on loopback:
npoll on NOTIFMASK, batched requests, notification collection."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from _harness import PACKETLAB, one_session  # noqa: E402
from packetlab import wire as w  # noqa: E402
from packetlab.controller.api import EndpointError, EndpointHandle  # noqa: E402

MS = 1_000_000


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("api") / "home"
    subprocess.run([*PACKETLAB, "init", str(root)], check=True, capture_output=True, timeout=60)
    return root


class Echo:
    """Answers every datagram with the same bytes, on 127.0.0.1."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        asyncio.get_running_loop().add_reader(self.sock.fileno(), self._answer)

    def _answer(self) -> None:
        data, addr = self.sock.recvfrom(2048)
        self.sock.sendto(data, addr)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


def test_npoll_collects_held_data_up_to_its_time_and_keeps_the_rest(home: Path) -> None:
    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        echo = Echo()
        try:
            await endpoint.open_udp(1)
            await endpoint.hold(1)  # NDATA waits on the endpoint
            start = await endpoint.now()
            until = start + 300 * MS
            for i in range(3):
                await endpoint.send_udp(1, "127.0.0.1", echo.port, b"now%d" % i)
            # a reply scheduled to come after `until` belongs to the next poll
            await endpoint.send_udp(1, "127.0.0.1", echo.port, b"late", at=until + 150 * MS)
            await asyncio.sleep(0.1)
            assert not [n for n in endpoint.pending_notifications() if isinstance(n, w.Ndata)]
            first = [n for n in await endpoint.npoll(until) if isinstance(n, w.Ndata)]
            assert sorted(n.data for n in first) == [b"now0", b"now1", b"now2"]
            assert all(start < n.time <= until for n in first)
            second = [n for n in await endpoint.npoll(until + 400 * MS) if isinstance(n, w.Ndata)]
            assert [n.data for n in second] == [b"late"]
            assert second[0].time > until
            await endpoint.close(1)
        finally:
            echo.close()

    asyncio.run(asyncio.wait_for(one_session(home, experiment, timeout=30), 40))


def test_call_many_pipelines_and_reports_the_first_failure(home: Path) -> None:
    async def experiment(endpoint: EndpointHandle, _: list[str]) -> None:
        await endpoint.open_udp(1)
        sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sink.bind(("127.0.0.1", 0))
        try:
            port = sink.getsockname()[1]
            to = w.addr_bytes("127.0.0.1")
            batch = [w.Nsend(1, 4, 0x11, 0, tag, b"x", to, port) for tag in range(1, 201)]
            await endpoint.call_many(batch)
            tags = await endpoint.collect(w.Ntag, 200, sktid=1, timeout=10)
            assert sorted(t.tag for t in tags) == list(range(1, 201))
            assert all(t.errid == 0 and t.time > 0 for t in tags)
            # socket 9 is not open: the whole batch is answered, the error names the request
            with pytest.raises(EndpointError, match="ESKTNOTOPEN") as failure:
                await endpoint.call_many([w.Nsend(9, 4, 0x11, 0, 0, b"x", to, port), w.Mread(0, 1)])
            assert failure.value.errid == w.ErrId.ESKTNOTOPEN
            assert await endpoint.now() > 0  # the session goes on
        finally:
            sink.close()
        await endpoint.close(1)

    asyncio.run(asyncio.wait_for(one_session(home, experiment, timeout=30), 40))
