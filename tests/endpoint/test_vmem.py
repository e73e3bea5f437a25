"""The info memory against the reference's observed reads and writes (sections 4, 13.3-4)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from packetlab import wire as w
from packetlab.endpoint import vmem
from packetlab.endpoint.vmem import EndpointInfo, InfoMemory, SocketBlock

NOW = 0x1800000000000000


def memory() -> InfoMemory:
    info = EndpointInfo(ipv4=[(w.addr_bytes("127.0.0.1"), w.addr_bytes("255.0.0.0"))])
    return InfoMemory(info, {}, {})


def test_observed_reads_of_the_reference_endpoint() -> None:
    mem = memory()
    read = lambda a, n: mem.read(a, n, now=NOW, buf_used=0)  # noqa: E731
    assert read(0x10000000, 6).hex() == "010000000006"
    assert read(0x10000100, 8).hex() == "7f000001ff000000"
    assert read(0x10030000, 16) == b"pktendpt" + bytes(8)
    assert read(0x10010000, 8) == NOW.to_bytes(8, "big")
    assert read(0x10010010, 8).hex() == "0080000000000000"
    assert read(0x60000000, 32) == bytes(32)


def test_socket_block_after_udp_open_and_notifmask_write() -> None:
    mem = memory()
    mem.sockets[1] = SocketBlock(4, 0x11, w.SocketState.OPEN, bytes(4), b"", 0xD0AD, 0, 4096)
    block = mem.read(0x20000400, 0x80, now=NOW, buf_used=0)
    assert block[:3].hex() == "041102"
    assert block[0x30:0x32].hex() == "d0ad"
    assert block[0x40:0x44].hex() == "00001000"
    mem.write(0x20000470, b"\x00\x08")
    assert mem.read(0x20000470, 2, now=NOW, buf_used=0) == b"\x00\x08"
    assert mem.sockets[1].notifmask == w.NotifMask.NDATA


def test_writes_outside_writable_fields_change_nothing() -> None:
    mem = memory()
    mem.sockets[0] = SocketBlock(4, 6, w.SocketState.OPEN, bytes(4), bytes(4), 1, 2, 100)
    before = mem.read(0x20000000, 0x400, now=NOW, buf_used=0)
    mem.write(0x10010000, bytes(8))  # TIME: accepted, no effect
    mem.write(0x20000000, b"\xff\xff\xff")  # family/proto/stat: read-only
    mem.write(0x20000030, b"\x99\x99")  # lport: read-only
    assert mem.read(0x20000000, 0x400, now=NOW, buf_used=0) == before
    mem.write(0x20000040, (4096).to_bytes(4, "big"))
    assert mem.sockets[0].rbufsz == 4096
    mem.write(0x20000060, b"\x05\x12\x34")
    assert (mem.sockets[0].nsend_err, mem.sockets[0].nsend_err_tag) == (5, 0x1234)


def test_nsendtstp_holds_send_times_by_tag() -> None:
    mem = memory()
    mem.send_times[1234] = NOW + 5
    assert mem.read(vmem.NSENDTSTP + 1234 * 8, 8, now=NOW, buf_used=0) == (NOW + 5).to_bytes(
        8, "big"
    )
    assert mem.read(vmem.NSENDTSTP + 1235 * 8, 8, now=NOW, buf_used=0) == bytes(8)


def test_buffer_usage_is_exported() -> None:
    assert memory().read(vmem.BUFUSED, 4, now=NOW, buf_used=77) == (77).to_bytes(4, "big")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 0x1000))
def test_reads_anywhere_have_the_asked_length(addr: int, length: int) -> None:
    length = min(length, 2**32 - addr)
    mem = memory()
    mem.sockets[255] = SocketBlock(6, 6, 2, bytes(16), bytes(16), 1, 2, 3)
    data = mem.read(addr, length, now=NOW, buf_used=1)
    assert len(data) == length
    # byte-wise consistency: reading one byte at a time gives the same bytes
    if length <= 64:
        assert b"".join(mem.read(addr + i, 1, now=NOW, buf_used=1) for i in range(length)) == data
