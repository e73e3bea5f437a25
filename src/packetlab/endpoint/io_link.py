"""The session process's end of the channel to a packet I/O process (packet_io.py).

``spawn()`` starts the process at once (it imports while the TLS handshake runs); frames and
sockets sent before it is ready wait in the socketpair. Writes are buffered and leave in one
send per flush; a socket handed over travels with its ADOPT frame (SCM_RIGHTS) in order with
the other frames. Closing the channel ends the process and every socket it holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import sys
from array import array
from collections import deque
from collections.abc import Callable

from packetlab.endpoint import io_frames as f

READ_SIZE = 1 << 18
EXIT_WAIT_S = 5.0
DRAIN_WAIT_S = 5.0


class PacketIOLink:
    def __init__(self, process: subprocess.Popen[bytes], channel: socket.socket) -> None:
        self.process = process
        self._channel = channel
        self._fd = channel.fileno()
        # [bytes to write, sockets whose descriptors travel with the first byte, or None]
        self._chunks: deque[list[object]] = deque()
        self._writing = False
        self._inbuf = bytearray()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_frames: Callable[[list[bytes]], None] | None = None
        self._on_lost: Callable[[], None] | None = None
        self.closed = False

    @classmethod
    def spawn(cls) -> PacketIOLink:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "packetlab.endpoint.packet_io", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        return cls(process, ours)

    def attach(
        self,
        loop: asyncio.AbstractEventLoop,
        on_frames: Callable[[list[bytes]], None],
        on_lost: Callable[[], None],
    ) -> None:
        """Start delivering the process's frames (in batches) and its end (``on_lost``)."""
        self._loop = loop
        self._on_frames = on_frames
        self._on_lost = on_lost
        loop.add_reader(self._fd, self._readable)
        self.flush()

    # writing ------------------------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        if self.closed:
            return
        if self._chunks and self._chunks[-1][1] is None:
            buf = self._chunks[-1][0]
            assert isinstance(buf, bytearray)
            buf += frame
        else:
            self._chunks.append([bytearray(frame), None])

    def hand_over(
        self, socks: list[socket.socket], sktid: int, family: int, proto: int, kind: int
    ) -> None:
        """Move ``socks`` (one, or a raw socket's sender and receiver) to the packet I/O
        process as ``sktid``; our copies close once sent."""
        if self.closed:
            for sock in socks:
                sock.close()
            return
        body = f.ADOPT_BODY.pack(sktid, family, proto, kind)
        self._chunks.append([bytearray(f.frame(f.ADOPT, body)), socks])

    def flush(self) -> None:
        if self._writing or self.closed:
            return
        chunks = self._chunks
        while chunks:
            data, sock = chunks[0]
            assert isinstance(data, bytearray)
            try:
                if isinstance(sock, list):
                    fds = array("i", [s.fileno() for s in sock])
                    sent = self._channel.sendmsg(
                        [data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)]
                    )
                    for s in sock:
                        s.close()  # the process has its own descriptors now
                    chunks[0][1] = None
                else:
                    sent = self._channel.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                self._lost()
                return
            del data[:sent]
            if data:
                if self._loop is not None:
                    self._writing = True
                    self._loop.add_writer(self._fd, self._writable)
                return
            chunks.popleft()

    def _writable(self) -> None:
        assert self._loop is not None
        self._loop.remove_writer(self._fd)
        self._writing = False
        self.flush()

    # reading ------------------------------------------------------------------------------

    def _readable(self) -> None:
        try:
            data = self._channel.recv(READ_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._inbuf += data
        frames, used = f.split_frames(self._inbuf)
        del self._inbuf[:used]
        if frames and self._on_frames is not None:
            self._on_frames(frames)

    def _lost(self) -> None:
        was_closed = self.closed
        self.close_channel()
        if not was_closed and self._on_lost is not None:
            self._on_lost()

    # ending -------------------------------------------------------------------------------

    def close_channel(self) -> None:
        """Close our end: the process closes its sockets and exits."""
        if self.closed:
            return
        self.closed = True
        if self._loop is not None:
            for remove in (self._loop.remove_reader, self._loop.remove_writer):
                with contextlib.suppress(Exception):
                    remove(self._fd)
        for _, socks in self._chunks:
            if isinstance(socks, list):
                for sock in socks:
                    sock.close()
        self._chunks.clear()
        self._channel.close()

    async def drain(self, timeout: float = DRAIN_WAIT_S) -> None:
        """Wait until every queued frame has been written to the process (or it is gone, or
        ``timeout`` passes)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._chunks and not self.closed and loop.time() < deadline:
            if self.process.poll() is not None:
                return
            self.flush()
            await asyncio.sleep(0.001)

    async def close(self, timeout: float = EXIT_WAIT_S) -> None:
        """Close the channel and wait for the process to close its sockets and exit."""
        self.close_channel()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.process.poll() is None and loop.time() < deadline:
            await asyncio.sleep(0.005)
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
