"""The endpoint's session agent driven by a test controller over a socketpair, with real
UDP/TCP sockets on loopback (reference section 13, scenarios 2-10)."""

from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest
from harness import LOOPBACK, session

from packetlab import wire as w
from packetlab.endpoint import vmem

ANY = bytes(4)


def _udp_port_in_use(port: int) -> bool:
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        probe.bind(("0.0.0.0", port))
    except OSError:
        return True
    finally:
        probe.close()
    return False


def run(coro) -> None:  # type: ignore[no-untyped-def]
    asyncio.run(asyncio.wait_for(coro, 20))


class UdpResponder:
    """A DNS-like responder: answers every datagram with b"re:" + payload."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]

    def attach(self) -> None:
        loop = asyncio.get_running_loop()

        def answer() -> None:
            data, addr = self.sock.recvfrom(2048)
            self.sock.sendto(b"re:" + data, addr)

        loop.add_reader(self.sock.fileno(), answer)

    def close(self) -> None:
        asyncio.get_running_loop().remove_reader(self.sock.fileno())
        self.sock.close()


def test_dns_flow_with_tx_and_rx_kernel_stamps() -> None:
    async def main() -> None:
        responder = UdpResponder()
        responder.attach()
        async with session() as (ctl, _agent, _):
            assert await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY, 0)) == w.Result()
            query = w.Nsend(1, 4, 0x11, 0, 1234, b"query", LOOPBACK, responder.port)
            assert await ctl.request(query) == w.Result()
            [tag] = await ctl.wait_note(w.Ntag)
            [data] = await ctl.wait_note(w.Ndata)
            assert isinstance(tag, w.Ntag) and isinstance(data, w.Ndata)
            assert tag.tag == 1234 and data.data == b"re:query"
            assert (data.raddr, data.rport) == (LOOPBACK, responder.port)
            rtt = data.time - tag.time
            assert 0 < rtt < 50_000_000
            stamp = await ctl.request(w.Mread(vmem.NSENDTSTP + 1234 * 8, 8))
            assert isinstance(stamp, w.Mdata) and stamp.data == tag.time.to_bytes(8, "big")
            assert await ctl.request(w.Nclose(1)) == w.Result()
        responder.close()

    run(main())


def test_error_paths_match_the_reference() -> None:
    async def main() -> None:
        async with session() as (ctl, _, _):
            assert await ctl.request(w.Nclose(9)) == w.Result(w.ErrId.ESKTNOTOPEN)
            assert await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY)) == w.Result()
            assert await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY)) == w.Result(w.ErrId.ESKTINUSE)
            assert await ctl.request(w.Nopen(2, 4, 0, 4096, ANY)) == w.Result(w.ErrId.ESKTNOPROTO)
            assert await ctl.request(w.Nopen(3, 6, 0x11, 4096, bytes(16))) == w.Result(
                w.ErrId.ESKTNOPRFAM
            )
            send = w.Nsend(5, 4, 0x11, 0, 1, b"x", LOOPBACK, 9)
            assert await ctl.request(send) == w.Result(w.ErrId.ESKTNOTOPEN)
            cap = w.Ncap(1, 4, 6, 0, b"\x00" + bytes(8))
            assert await ctl.request(cap) == w.Result(w.ErrId.ESKTNOMATCH)
            assert await ctl.request(w.Start()) == w.Result(w.ErrId.ECTLNOTSUP)
            info = await ctl.request(w.Mread(0x10000000, 6))
            assert isinstance(info, w.Mdata) and info.data.hex() == "010000000006"

    run(main())


def test_tcp_connect_refused_reads_stat_minus_one() -> None:
    async def main() -> None:
        closed = socket.socket()
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        closed.close()
        async with session() as (ctl, _, _):
            nopen = w.Nopen(1, 4, 6, 4096, ANY, 0, LOOPBACK, port)
            assert await ctl.request(nopen) == w.Result()
            await ctl.wait_note(w.Nstat)
            stat = await ctl.request(w.Mread(vmem.SOCKETS + 0x400 + 2, 1))
            assert isinstance(stat, w.Mdata) and stat.data == b"\xff"

    run(main())


def test_http_get_flow_with_half_close() -> None:
    async def main() -> None:
        got: list[bytes] = []

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            got.append(await reader.read())  # until the endpoint's FIN
            writer.write(b"HTTP/1.0 200 OK\r\n\r\nhello")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with session() as (ctl, _, _):
            assert await ctl.request(w.Nopen(1, 4, 6, 4096, ANY, 0, LOOPBACK, port)) == w.Result()
            [est] = await ctl.wait_note(w.Nstat)
            assert isinstance(est, w.Nstat) and est.code == 0 and est.rport == port
            request = b"GET / HTTP/1.0\r\n\r\n"
            assert await ctl.request(w.Nsend(1, 4, 6, 0, 7, request)) == w.Result()
            assert await ctl.request(w.Nctl(1, 4, 6, 0, 1)) == w.Result()
            await ctl.wait_note(w.Ntag)
            stats = await ctl.wait_note(w.Nstat, 2)
            assert stats[1].code == w.NstatCode.PEERCLOSED  # type: ignore[attr-defined]
            body = b"".join(n.data for n in ctl.notes if isinstance(n, w.Ndata))
            assert body == b"HTTP/1.0 200 OK\r\n\r\nhello"
            assert got == [request]
            assert await ctl.request(w.Nclose(1)) == w.Result()
        server.close()
        await server.wait_closed()

    run(main())


def test_scheduled_send_and_untagged_send() -> None:
    async def main() -> None:
        responder = UdpResponder()
        responder.attach()
        async with session() as (ctl, _, _):
            await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY))
            now = await ctl.request(w.Mread(vmem.TIME, 8))
            assert isinstance(now, w.Mdata)
            when = int.from_bytes(now.data, "big") + 200_000_000
            await ctl.request(w.Nsend(1, 4, 0x11, 0, 0, b"untagged", LOOPBACK, responder.port))
            await ctl.request(w.Nsend(1, 4, 0x11, when, 9, b"later", LOOPBACK, responder.port))
            [tag] = await ctl.wait_note(w.Ntag)
            assert isinstance(tag, w.Ntag) and tag.tag == 9
            # the send starts early by the shortest recent send path: a few µs early at most
            assert when - 100_000 <= tag.time < when + 20_000_000
            await ctl.wait_note(w.Ndata, 2)
            assert len([n for n in ctl.notes if isinstance(n, w.Ntag)]) == 1
        responder.close()

    run(main())


def test_notifmask_holds_data_and_counts_drops_exactly() -> None:
    async def main() -> None:
        responder = UdpResponder()
        responder.attach()
        try:
            async with session() as (ctl, agent, _):
                await ctl.request(w.Nopen(1, 4, 0x11, 20, ANY))  # 20-byte receive buffer
                mask = vmem.SOCKETS + 0x400 + vmem.SK_NOTIFMASK
                assert await ctl.request(w.Mwrite(mask, b"\x00\x08")) == w.Result()  # hold NDATA
                for i in range(4):  # replies of 9 bytes each: two fit, two are dropped
                    await ctl.request(
                        w.Nsend(1, 4, 0x11, 0, 0, b"abc%03d" % i, LOOPBACK, responder.port)
                    )
                deadline = asyncio.get_running_loop().time() + 10
                while agent.blocks[1].drop_units < 2:  # all four replies are in (a busy host)
                    assert asyncio.get_running_loop().time() < deadline, "replies never came"
                    await asyncio.sleep(0.02)
                assert not [n for n in ctl.notes if isinstance(n, w.Ndata)]
                used = await ctl.request(w.Mread(vmem.BUFUSED, 4))
                assert isinstance(used, w.Mdata) and int.from_bytes(used.data, "big") == 18
                assert await ctl.request(w.Mwrite(mask, b"\x00\x00")) == w.Result()
                data = await ctl.wait_note(w.Ndata, 2)
                [drop] = await ctl.wait_note(w.Ndrop)
                assert [d.data for d in data] == [b"re:abc000", b"re:abc001"]  # type: ignore[attr-defined]
                assert isinstance(drop, w.Ndrop) and (drop.unitcnt, drop.bytecnt) == (2, 18)
                assert agent.blocks[1].drop_units == 2
        finally:
            responder.close()

    run(main())


def test_malformed_message_resets_and_vanished_controller_leaves_nothing() -> None:
    async def main() -> None:
        async with session() as (ctl, agent, task):
            await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY))
            await ctl.request(w.Nopen(2, 4, 6, 4096, ANY, 0))  # listening TCP
            ctl.send_raw(bytes.fromhex("2800000510010000 00".replace(" ", "")))
            await asyncio.wait_for(ctl.closed.wait(), 5)
            reason = await asyncio.wait_for(task, 5)
            assert "malformed" in reason
            assert agent.blocks == {}
            # the packet I/O process, which held both sockets, is gone
            assert agent.io.process.returncode == 0

    run(main())


@pytest.mark.parametrize("action", ["eof", "yield"])
def test_session_end_closes_every_socket(action: str) -> None:
    async def main() -> None:
        async with session() as (ctl, agent, task):
            await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY))
            far = time.time_ns() + 60_000_000_000
            await ctl.request(w.Nsend(1, 4, 0x11, far, 3, b"x", LOOPBACK, 9))
            worker = agent.io.process.pid
            bound = agent.blocks[1].lport
            assert _udp_port_in_use(bound) and agent.io.process.poll() is None
            if action == "yield":
                assert await ctl.request(w.Yield(0)) == w.Result()
            else:
                ctl.writer.close()
            await asyncio.wait_for(task, 5)
            # the packet I/O process exited by itself, its socket and pending send with it
            assert agent.io.process.returncode == 0 and agent.blocks == {}
            assert not _udp_port_in_use(bound)
            with pytest.raises(ProcessLookupError):
                os.kill(worker, 0)

    run(main())


def test_tcp_listen_is_a_passive_open_on_its_sktid() -> None:
    async def main() -> None:
        async with session() as (ctl, agent, _):
            assert await ctl.request(w.Nopen(4, 4, 6, 4096, LOOPBACK, 0)) == w.Result()
            port = agent.blocks[4].lport
            assert port != 0 and agent.blocks[4].state == w.SocketState.OPENING
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            [est] = await ctl.wait_note(w.Nstat)
            client_port = writer.get_extra_info("sockname")[1]
            assert isinstance(est, w.Nstat) and est.code == 0
            assert (est.raddr, est.rport) == (LOOPBACK, client_port)
            writer.write(b"hello endpoint")
            await writer.drain()
            [data] = await ctl.wait_note(w.Ndata)
            assert isinstance(data, w.Ndata) and data.data == b"hello endpoint"
            assert await ctl.request(w.Nsend(4, 4, 6, 0, 0, b"hello peer")) == w.Result()
            assert await asyncio.wait_for(reader.readexactly(10), 5) == b"hello peer"
            writer.close()
            assert await ctl.request(w.Nclose(4)) == w.Result()

    run(main())


def test_packet_io_process_dying_ends_the_session_cleanly() -> None:
    async def main() -> None:
        async with session() as (ctl, agent, task):
            await ctl.request(w.Nopen(1, 4, 0x11, 4096, ANY))
            agent.io.process.kill()
            reason = await asyncio.wait_for(task, 5)
            assert "packet I/O process ended" in reason
            assert agent.blocks == {} and agent.io.closed

    run(main())


needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="raw sockets need CAP_NET_RAW (root)")


def _icmp_echo(src: bytes, dst: bytes, seq: int) -> bytes:
    """An IPv4 ICMP echo request built by hand (the packets module has its own tests)."""
    import struct

    def checksum(data: bytes) -> int:
        total = sum(struct.unpack(f"!{len(data) // 2}H", data))
        total = (total >> 16) + (total & 0xFFFF)
        return ~(total + (total >> 16)) & 0xFFFF

    icmp = struct.pack("!BBHHH", 8, 0, 0, 0x4242, seq) + b"probe!"
    icmp = icmp[:2] + struct.pack("!H", checksum(icmp)) + icmp[4:]
    return struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(icmp), 0, 0, 64, 1, 0, src, dst) + icmp


@needs_root
def test_raw_socket_sends_whole_packets_with_tx_stamps_and_receives_nothing_unfiltered() -> None:
    async def main() -> None:
        info = vmem.EndpointInfo(
            ipv4=[(LOOPBACK, bytes((255, 0, 0, 0)))],
            transports=vmem.TRANSSUP_RAW | vmem.TRANSSUP_UDP,
        )
        async with session(info) as (ctl, _, _):
            supported = await ctl.request(w.Mread(vmem.TRANSSUP, 4))
            assert isinstance(supported, w.Mdata) and supported.data == bytes((0, 0, 0, 5))
            assert await ctl.request(w.Nopen(1, 4, 0, 4096, ANY)) == w.Result()
            block = await ctl.request(w.Mread(vmem.SOCKETS + vmem.SOCKET_BLOCK, 3))
            assert isinstance(block, w.Mdata) and block.data == bytes((4, 0, 2))
            before = time.time_ns()
            for seq in range(3):
                packet = _icmp_echo(LOOPBACK, LOOPBACK, seq)
                assert await ctl.request(w.Nsend(1, 4, 0, 0, 10 + seq, packet)) == w.Result()
            tags = await ctl.wait_note(w.Ntag, 3)
            assert sorted(t.tag for t in tags) == [10, 11, 12]  # type: ignore[attr-defined]
            assert all(before < t.time < time.time_ns() for t in tags)  # type: ignore[attr-defined]
            await asyncio.sleep(0.2)  # the echo and its reply went by: no filter, no ndata
            assert not [n for n in ctl.notes if isinstance(n, w.Ndata)]
            assert await ctl.request(w.Nclose(1)) == w.Result()

    run(main())


def _raw_info() -> vmem.EndpointInfo:
    return vmem.EndpointInfo(
        ipv4=[(LOOPBACK, bytes((255, 0, 0, 0)))],
        transports=vmem.TRANSSUP_RAW | vmem.TRANSSUP_UDP,
    )


@needs_root
def test_ncap_filter_delivers_matching_packets_until_endtime_and_refuses_bad_programs() -> None:
    from packetlab.programs import builtin_program, encode_program
    from packetlab.programs.ebpf import Insn

    async def main() -> None:
        async with session(_raw_info()) as (ctl, _, _):
            assert await ctl.request(w.Nopen(1, 4, 0, 4096, ANY)) == w.Result()
            # r0 is read before it is written: the kernel's verifier refuses it
            bad = encode_program([Insn(0x95)])
            assert await ctl.request(w.Ncap(1, 4, 0, 0, bad)) == w.Result(w.ErrId.ESKTBADFILT)
            assert await ctl.request(w.Ncap(1, 4, 0, 0, b"\x01\x00")) == w.Result(
                w.ErrId.ESKTBADFILT
            )
            until = time.time_ns() + 400_000_000
            program = builtin_program("traceroute_recv")  # echo replies, not requests
            assert await ctl.request(w.Ncap(1, 4, 0, until, program)) == w.Result()
            packet = _icmp_echo(LOOPBACK, LOOPBACK, 1)
            assert await ctl.request(w.Nsend(1, 4, 0, 0, 1, packet)) == w.Result()
            [reply] = await ctl.wait_note(w.Ndata)
            assert isinstance(reply, w.Ndata) and reply.data[20] == 0  # an echo reply
            assert reply.data[24:] == packet[24:]  # ident, seq and payload echoed
            await asyncio.sleep(max(0.0, (until - time.time_ns()) / 1e9) + 0.05)
            assert await ctl.request(w.Nsend(1, 4, 0, 0, 2, packet)) == w.Result()
            await ctl.wait_note(w.Ntag, 2)
            await asyncio.sleep(0.2)  # the filter's time is over: nothing more comes
            assert len([n for n in ctl.notes if isinstance(n, w.Ndata)]) == 1

    run(main())


@needs_root
def test_certificate_filters_must_be_uploaded_and_then_filter_raw_receives() -> None:
    from packetlab.pki import ChainMode, Limits, VerifiedChain
    from packetlab.programs import builtin_program, digest
    from packetlab.programs.pcap import compile_expression

    wanted = builtin_program("traceroute_recv")  # keeps echo replies, drops requests
    chain = VerifiedChain(ChainMode.CONTROLLER, (), None, Limits(filter=(digest(wanted),)))

    async def main() -> None:
        async with session(_raw_info(), start=False, chain=chain) as (ctl, _, _):
            other = compile_expression("icmp")
            assert await ctl.request(w.Cdata("filter", other)) == w.Result(w.ErrId.ECRTBADHDAT)
            assert await ctl.request(w.Cdata("nonsense", wanted)) == w.Result(w.ErrId.ECRTBADHINT)
            assert await ctl.request(w.Cdata("filter", wanted)) == w.Result()
            assert await ctl.request(w.Start()) == w.Result()
            assert await ctl.request(w.Nopen(1, 4, 0, 4096, ANY)) == w.Result()
            # the capture filter takes every ICMP packet: request and reply on loopback
            assert await ctl.request(w.Ncap(1, 4, 0, 0, other)) == w.Result()
            for seq in range(3):
                packet = _icmp_echo(LOOPBACK, LOOPBACK, seq)
                assert await ctl.request(w.Nsend(1, 4, 0, 0, 0, packet)) == w.Result()
            got = await ctl.wait_note(w.Ndata, 3)
            await asyncio.sleep(0.2)
            types = [n.data[20] for n in ctl.notes if isinstance(n, w.Ndata)]
            assert len(got) == 3 and types == [0, 0, 0]  # the certificate's filter held

    run(main())


def test_start_is_refused_until_every_listed_program_is_uploaded() -> None:
    from packetlab.pki import ChainMode, Limits, VerifiedChain

    chain = VerifiedChain(ChainMode.CONTROLLER, (), None, Limits(filter=(bytes(32),)))

    async def main() -> None:
        async with session(start=False, chain=chain) as (ctl, _, task):
            assert await ctl.request(w.Start()) == w.Result(w.ErrId.ECRTNOHDAT)
            reason = await asyncio.wait_for(task, 5)  # the session is reset
            assert "not uploaded" in reason

    run(main())
