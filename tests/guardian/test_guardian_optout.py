"""Stage 3: destination opt-outs from a file (reloaded on change) and DNS TXT (a real server)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from guardian_helpers import T0, S, make_guardian, open_guard, probe

from packetlab.guardian import (
    OptOut,
    OptOutFormatError,
    OptOutSource,
    OptOutTable,
    parse_optout_entry,
    parse_optout_text,
    parse_prefix,
)
from packetlab.guardian.config import OptOutConfig

NAME = "_optout.test.example."


class TxtServer:
    """A UDP DNS server on 127.0.0.1 answering TXT for one name (dnspython messages)."""

    def __init__(self, name: str, records: list[str]) -> None:
        self.name = dns.name.from_text(name)
        self.records = records
        self.answering = True
        self.queries = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(data)
            self.queries += 1
            if not self.answering:
                continue
            response = dns.message.make_response(query)
            question = query.question[0]
            if question.name != self.name:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT and self.records:
                response.answer.append(
                    dns.rrset.from_text_list(self.name, 300, "IN", "TXT", self.records)
                )
            self.sock.sendto(response.to_wire(), peer)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def server() -> Iterator[TxtServer]:
    srv = TxtServer(NAME, ['"198.18.9.0/24 icmp,udp"', '"2001:db8:9::/48 all; 198.18.10.7"'])
    try:
        yield srv
    finally:
        srv.close()


def dns_source(port: int, name: str = NAME) -> OptOutSource:
    return OptOutSource(
        OptOutConfig(dns_name=name, dns_server="127.0.0.1", dns_port=port, dns_timeout_ms=300)
    )


def test_entry_grammar() -> None:
    assert parse_optout_entry("198.18.9.0/24 icmp,udp", "t") == OptOut(
        parse_prefix("198.18.9.0/24"), frozenset({1, 17})
    )
    assert parse_optout_entry("198.18.9.0/24", "t") == OptOut(parse_prefix("198.18.9.0/24"))
    assert parse_optout_entry("198.18.9.0/24 TCP,all", "t").protocols is None
    assert parse_optout_entry("2001:db8::/32 icmp", "t").protocols == frozenset({58})
    assert parse_optout_entry("198.18.9.1 47,icmp6", "t") == OptOut(
        parse_prefix("198.18.9.1/32"), frozenset({47, 58})
    )
    assert str(parse_optout_entry("198.18.9.0/24 udp,icmp", "t")) == "198.18.9.0/24 1,17"


@pytest.mark.parametrize(
    "text",
    ["198.18.9.1/24 udp", "198.18.9.0/24 smtp", "198.18.9.0/24 256", "nonsense", "a b c"],
)
def test_bad_entries(text: str) -> None:
    with pytest.raises(OptOutFormatError, match="where"):
        parse_optout_entry(text, "where")


def test_file_text_names_the_line() -> None:
    text = "# opt-outs\n\n198.18.9.0/24 icmp  # a lab\n2001:db8:9::/48\n"
    entries = parse_optout_text(text, "f")
    assert [str(e.prefix) for e in entries] == ["198.18.9.0/24", "2001:db8:9::/48"]
    with pytest.raises(OptOutFormatError, match=r"optout\.txt:3"):
        parse_optout_text("198.18.9.0/24\n\n10.0.0.1/8\n", "optout.txt")


def test_table_lookup() -> None:
    table = OptOutTable(parse_optout_text("198.18.9.0/24 icmp\n198.18.9.128/25 udp\n", "t"))
    addr = bytes([198, 18, 9, 200])
    assert table.refuses(4, addr, 1) and table.refuses(4, addr, 17)
    assert not table.refuses(4, addr, 6)
    assert table.refuses(4, bytes([198, 18, 9, 1]), 1)
    assert not table.refuses(4, bytes([198, 18, 9, 1]), 17)
    assert not table.refuses(4, bytes([198, 18, 8, 1]), 1)
    assert table.matching(4, addr, 17) == OptOut(parse_prefix("198.18.9.128/25"), frozenset({17}))


def test_file_reloads_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text("198.18.9.0/24 icmp\n")
    source = OptOutSource(OptOutConfig(file=path))
    assert len(source.table) == 1
    assert source.check_file() is False  # unchanged
    gen = source.generation
    path.write_text("198.18.9.0/24 icmp\n198.18.10.0/24 all\n")
    os.utime(path, ns=(T0, T0))
    assert source.check_file() is True
    assert len(source.table) == 2 and source.generation == gen + 1
    # a broken edit keeps the previous entries
    path.write_text("198.18.9.0/24 icmp\n10.0.0.1/8\n")
    os.utime(path, ns=(T0 + S, T0 + S))
    assert source.check_file() is False
    assert len(source.table) == 2
    assert source.last_error is not None and "optout.txt:2" in source.last_error
    path.unlink()
    assert source.check_file() is False and len(source.table) == 2


def test_file_must_load_at_start(tmp_path: Path) -> None:
    with pytest.raises(OptOutFormatError, match="cannot read"):
        OptOutSource(OptOutConfig(file=tmp_path / "missing.txt"))
    (tmp_path / "bad.txt").write_text("198.18.9.0/33\n")
    with pytest.raises(OptOutFormatError, match=r"bad\.txt:1"):
        OptOutSource(OptOutConfig(file=tmp_path / "bad.txt"))


def test_guardian_refuses_opted_out_destinations(tmp_path: Path) -> None:
    path = tmp_path / "optout.txt"
    path.write_text("198.18.9.0/24 icmp,udp\n2001:db8:9::/48 icmp\n")
    source = OptOutSource(OptOutConfig(file=path))
    guardian = make_guardian(tmp_path / "state", optouts=source)
    try:
        guard = open_guard(guardian)
        for pkt in (probe("198.18.9.5"), probe("198.18.9.5", proto=1)):
            verdict = guard.check_send(pkt, T0)
            assert not verdict.allowed and "opted out" in verdict.reason
            assert "198.18.9.0/24" in verdict.reason
        assert guard.check_send(probe("198.18.9.5", proto=6, dport=80), T0).allowed
        assert guard.check_send(probe("198.18.8.5"), T0).allowed
        assert not guard.check_send(probe("2001:db8:9::1", proto=58), T0).allowed
        assert guard.check_send(probe("2001:db8:9::1"), T0).allowed
        # IPv4-mapped destinations are judged by the IPv4 opt-outs
        assert not guard.check_send(probe("::ffff:198.18.9.5"), T0).allowed
        # a TCP connect to an opted-out destination is refused at open
        assert guard.check_open(4, 17, bytes([198, 18, 9, 5]), 5000, T0).errid == 0x3A
        # the timer re-reads the file; the per-destination cache follows
        path.write_text("198.18.8.0/24 udp\n")
        os.utime(path, ns=(T0, T0))
        guardian.handle_timer(T0 + 2 * S)
        assert guard.check_send(probe("198.18.9.5"), T0 + 2 * S).allowed
        assert not guard.check_send(probe("198.18.8.5"), T0 + 2 * S).allowed
    finally:
        guardian.close(T0 + 2 * S)


def test_dns_answer_is_cached_five_minutes(server: TxtServer) -> None:
    source = dns_source(server.port)
    assert source.dns_due(T0)
    assert asyncio.run(source.refresh_async(T0)) is True
    assert server.queries == 1
    table = source.table
    assert table.refuses(4, bytes([198, 18, 9, 1]), 17)
    assert not table.refuses(4, bytes([198, 18, 9, 1]), 6)
    assert table.refuses(6, bytes.fromhex("20010db8000900000000000000000001"), 6)
    assert table.refuses(4, bytes([198, 18, 10, 7]), 6)
    assert asyncio.run(source.refresh_async(T0 + 299 * S)) is False
    assert server.queries == 1  # served from the cache
    server.records = ['"198.18.11.0/24 tcp"']
    assert asyncio.run(source.refresh_async(T0 + 300 * S)) is True
    assert server.queries == 2
    assert source.table.refuses(4, bytes([198, 18, 11, 1]), 6)
    assert not source.table.refuses(4, bytes([198, 18, 9, 1]), 17)


def test_dns_failure_keeps_the_last_answer(server: TxtServer) -> None:
    source = dns_source(server.port)
    asyncio.run(source.refresh_async(T0))
    before = source.table.entries
    server.answering = False
    now = T0 + 300 * S
    assert asyncio.run(source.refresh_async(now)) is False
    assert server.queries >= 2
    assert source.table.entries == before
    assert source.last_error is not None and "DNS" in source.last_error
    assert source.dns_next_ns == now + 30 * S  # retried sooner than the cache period
    assert not source.dns_due(now + 29 * S)
    server.answering = True
    server.records = []
    assert (
        asyncio.run(source.refresh_async(now + 30 * S)) is True
    )  # an empty answer: no opt-outs any more
    assert len(source.table) == 0 and source.last_error is None


def test_dns_nxdomain_means_no_optouts(server: TxtServer) -> None:
    source = dns_source(server.port, "_optout.other.example.")
    assert asyncio.run(source.refresh_async(T0)) is False
    assert len(source.table) == 0 and source.last_error is None
    assert source.dns_answered_ns == T0


def test_dns_bad_entry_is_skipped(server: TxtServer) -> None:
    server.records = ['"198.18.9.0/24 udp; 10.0.0.1/8 tcp; 198.18.12.0/24 smtp"']
    source = dns_source(server.port)
    asyncio.run(source.refresh_async(T0))
    assert [str(e) for e in source.table.entries] == ["198.18.9.0/24 17"]
    assert source.last_error is not None and "10.0.0.1/8" in source.last_error


def test_dns_multi_string_record_is_joined(server: TxtServer) -> None:
    server.records = ['"198.18.9.0/24 " "icmp,udp"']
    source = dns_source(server.port)
    asyncio.run(source.refresh_async(T0))
    assert [str(e) for e in source.table.entries] == ["198.18.9.0/24 1,17"]


def test_dns_refresh_async(server: TxtServer) -> None:
    source = dns_source(server.port)
    assert asyncio.run(source.refresh_async(T0)) is True
    assert source.table.refuses(4, bytes([198, 18, 9, 1]), 1)
    server.answering = False
    assert asyncio.run(source.refresh_async(T0 + 300 * S)) is False
    assert source.table.refuses(4, bytes([198, 18, 9, 1]), 1)


def test_guardian_uses_dns_optouts(tmp_path: Path, server: TxtServer) -> None:
    source = dns_source(server.port)
    guardian = make_guardian(tmp_path, optouts=source)
    try:
        guard = open_guard(guardian)
        assert guard.check_send(probe("198.18.9.1"), T0).allowed  # nothing fetched yet
        asyncio.run(source.refresh_async(T0))
        assert not guard.check_send(probe("198.18.9.1"), T0).allowed
    finally:
        guardian.close(T0)
