"""The endpoint's nsend frames as guardian probes: the fast construction gives exactly the
probe the dataclass would, for UDP, TCP and raw sends."""

from __future__ import annotations

import pytest

from packetlab import packets
from packetlab import wire as w
from packetlab.endpoint.guarding import raw_probe, send_time, tcp_probe, udp_probe
from packetlab.endpoint.vmem import SocketBlock
from packetlab.guardian import Probe
from packetlab.wire.codec import encode

HERE, THERE = w.addr_bytes("198.18.1.1"), w.addr_bytes("198.18.4.2")


def test_udp_and_tcp_probes_equal_the_dataclass_built_ones() -> None:
    udp = SocketBlock(4, 17, laddr=HERE, lport=4000)
    frame = encode(w.Nsend(1, 4, 17, 123, 7, b"x" * 10, THERE, 53))
    probe, payload = udp_probe(udp, frame)
    assert payload == b"x" * 10 and send_time(frame) == 123
    assert probe == Probe(4, 17, HERE, THERE, 4000, 53, 10 + 8 + 20)
    assert type(probe) is Probe
    with pytest.raises(AttributeError):
        probe.dport = 1  # type: ignore[misc]  # still frozen
    tcp = SocketBlock(6, 6, laddr=bytes(16), raddr=bytes(15) + b"\1", lport=5, rport=80)
    probe, payload = tcp_probe(tcp, encode(w.Nsend(1, 6, 6, 0, 0, b"GET /")))
    assert payload == b"GET /"
    assert probe == Probe(6, 6, bytes(16), bytes(15) + b"\1", 5, 80, 5 + 20 + 40, tcp_flags=0x18)


def test_raw_probes_come_from_the_packet_and_refuse_what_is_malformed() -> None:
    packet = packets.tcp_syn(HERE, THERE, 1234, 22, ttl=3)
    probe, sent = raw_probe(4, encode(w.Nsend(1, 4, 0, 0, 0, packet)))
    assert sent == packet
    assert probe == Probe(4, 6, HERE, THERE, 1234, 22, len(packet), True, False, -1, -1, 0x02)
    with pytest.raises(packets.PacketError):
        raw_probe(4, encode(w.Nsend(1, 4, 0, 0, 0, packet[:-3])))
    with pytest.raises(packets.PacketError, match="IPv4 packet on an IPv6"):
        raw_probe(6, encode(w.Nsend(1, 6, 0, 0, 0, packet)))
