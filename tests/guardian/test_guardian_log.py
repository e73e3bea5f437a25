"""Stage 7: the pcapng packet log (read back with dpkt and scapy), rotation, kill -9, traceback."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import dpkt
import pytest
from click.testing import CliRunner
from guardian_helpers import (
    LOOSE,
    MS,
    OWN4,
    OWN6,
    REMOTE4,
    REMOTE6,
    T0,
    S,
    ip,
    make_guardian,
    open_guard,
    probe,
)
from scapy.layers.inet import ICMP, IP, UDP
from scapy.utils import rdpcap

from packetlab.cli.traceback_cmd import _since_ns, traceback
from packetlab.guardian import LogConfig, PacketLog, Prefix, TrafficIndex
from packetlab.guardian.pcapng import OUTBOUND, EpbOptions, synth_header, synth_header_len
from packetlab.guardian.traffic_index import MINUTE_NS


def udp_packet(src: str, dst: str, payload: bytes, sport: int = 40000, dport: int = 33434) -> bytes:
    return bytes(IP(src=src, dst=dst, ttl=7) / UDP(sport=sport, dport=dport) / payload)


def read_dpkt(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as f:
        reader = dpkt.pcapng.Reader(f)
        assert reader.datalink() == 101  # LINKTYPE_RAW
        return list(reader)


def log_files(state: Path) -> list[Path]:
    return sorted((state / "log").glob("packets-*.pcapng"))


def test_sent_and_received_packets_are_logged_with_their_experiment(tmp_path: Path) -> None:
    g = make_guardian(tmp_path, log=True)
    a = open_guard(g, experiment_id="a" * 64, controller="ctl-key-1")
    b = open_guard(g, experiment_id="anonymous:7", controller="192.0.2.9", profile="public")
    raw = udp_packet(OWN4, "198.19.7.7", b"raw probe")
    a.sent(probe(size=len(raw), raw=True), raw, T0)
    a.sent(probe(size=20 + 8 + 5, dport=5000), b"hello", T0 + MS)
    b.sent(probe(proto=1, size=28), None, T0 + 2 * MS)
    reply = bytes(IP(src="198.19.7.7", dst=OWN4) / ICMP(type=0))
    a.received(4, 1, ip("198.19.7.7"), ip(OWN4), reply, T0 + 3 * MS)
    a.received(4, 17, ip("198.19.7.7"), ip(OWN4), b"pong", T0 + 4 * MS, raw=False, sport=5000,
               dport=40000)  # fmt: skip
    v6 = probe("2001:db8:7::7", size=40 + 8 + 3, dport=7000)
    a.sent(v6, b"six", T0 + 5 * MS)
    g.close(T0 + 6 * MS)

    (path,) = log_files(tmp_path)
    packets = read_dpkt(path)
    assert len(packets) == 6
    assert [round(ts * 1000) for ts, _ in packets] == [
        round(T0 / 1e6) + i for i in range(6)
    ]  # nanosecond stamps, read at if_tsresol 9
    assert packets[0][1] == raw
    synthesized = dpkt.ip.IP(packets[1][1])
    assert synthesized.src == ip(OWN4) and synthesized.dst == ip("198.19.7.7")
    assert isinstance(synthesized.data, dpkt.udp.UDP)
    assert (synthesized.data.sport, synthesized.data.dport) == (40000, 5000)
    assert synthesized.data.data == b"hello"
    assert packets[3][1] == reply
    pong = dpkt.ip.IP(packets[4][1])
    assert pong.data.data == b"pong" and pong.data.dport == 40000
    six = dpkt.ip6.IP6(packets[5][1])
    assert six.data.data == b"six" and six.dst == ip("2001:db8:7::7")

    scapy_packets = rdpcap(str(path))
    comments = [b"".join(p.comments).decode() for p in scapy_packets]
    assert comments[0] == f"exp={'a' * 64} ctl=ctl-key-1 dir=sent"
    assert comments[1] == f"exp={'a' * 64} ctl=ctl-key-1 dir=sent synthesized-header"
    assert comments[2].startswith("exp=anonymous:7 ctl=192.0.2.9 dir=sent")
    assert comments[3] == f"exp={'a' * 64} ctl=ctl-key-1 dir=received"
    assert [p.direction for p in scapy_packets] == [2, 2, 2, 1, 1, 2]
    assert scapy_packets[0][UDP].dport == 33434
    assert scapy_packets[3][ICMP].type == 0


def test_snaplen_keeps_headers_and_the_length(tmp_path: Path) -> None:
    log = PacketLog(tmp_path, LogConfig(snaplen=64))
    big = udp_packet(OWN4, "198.19.7.7", bytes(1000))
    log.write(T0, b"", big, len(big), EpbOptions("x", OUTBOUND))
    log.close(T0)
    (path,) = tmp_path.glob("*.pcapng")
    data = path.read_bytes()
    # enhanced packet block after SHB and IDB: caplen 64, original length kept
    shb_len = struct.unpack_from("<I", data, 4)[0]
    idb_len = struct.unpack_from("<I", data, shb_len + 4)[0]
    epb = shb_len + idb_len
    block_type, _, _, _, _, caplen, origlen = struct.unpack_from("<7I", data, epb)
    assert (block_type, caplen, origlen) == (6, 64, len(big))
    ((_, captured),) = read_dpkt(path)
    assert captured == big[:64]


def test_rotation_and_retention(tmp_path: Path) -> None:
    log = PacketLog(tmp_path, LogConfig(rotate_bytes=2000, keep_bytes=6000, flush_ms=1))
    opts = EpbOptions("exp=r ctl=c dir=sent", OUTBOUND)
    pkt = udp_packet(OWN4, "198.19.7.7", bytes(100))
    for i in range(200):
        log.write(T0 + i * MS, b"", pkt, len(pkt), opts)
    log.close(T0 + S)
    files = sorted(tmp_path.glob("packets-*.pcapng"))
    assert 2 <= len(files) <= 5
    assert sum(f.stat().st_size for f in files) <= 6000 + 2000 + 200
    seen = []
    for f in files:  # every file is a whole pcapng section of its own
        seen += [round(ts * 1000) for ts, _ in read_dpkt(f)]
    assert seen == sorted(seen)
    assert seen[-1] == round((T0 + 199 * MS) / 1e6)  # the newest are kept


def test_retention_spares_another_writers_open_file(tmp_path: Path) -> None:
    config = LogConfig(rotate_bytes=2000, keep_bytes=3000, flush_ms=1)
    idle, busy = PacketLog(tmp_path, config), PacketLog(tmp_path, config)
    opts = EpbOptions("exp=r ctl=c dir=sent", OUTBOUND)
    pkt = udp_packet(OWN4, "198.19.7.7", bytes(100))
    idle.write(T0, b"", pkt, len(pkt), opts)
    idle.flush(T0)
    assert idle.current is not None
    idle_path = idle.current.path
    os.utime(idle_path, ns=(0, 0))  # idle for ages: its age must not matter
    busy.write(T0 + S, b"", pkt, len(pkt), opts)
    assert busy.current is not None
    busy_first = busy.current.path
    for i in range(200):
        busy.write(T0 + S + i * MS, b"", pkt, len(pkt), opts)
    busy.close(T0 + 2 * S)
    assert not busy_first.exists()  # retention ran ...
    assert idle_path.exists()  # ... and spared the oldest file: it is open
    assert sorted(tmp_path.glob("packets-*.pcapng"))[0] == idle_path
    idle.write(T0 + 3 * S, b"", pkt, len(pkt), opts)
    idle.flush(T0 + 3 * S)
    assert len(read_dpkt(idle_path)) == 2  # still the file the idle writer writes to
    idle.close(T0 + 3 * S)
    for i in range(200):  # closed, its lock is gone: now it can go
        busy.write(T0 + 4 * S + i * MS, b"", pkt, len(pkt), opts)
    busy.close(T0 + 5 * S)
    assert not idle_path.exists()


@pytest.mark.parametrize("cut", [1, 5, 13, 60])
def test_a_file_cut_short_is_repaired_by_the_next_log(tmp_path: Path, cut: int) -> None:
    config = LogConfig(flush_ms=1)
    pkt = udp_packet(OWN4, "198.19.7.7", bytes(40))
    dead, live = PacketLog(tmp_path, config), PacketLog(tmp_path, config)
    for start, log in ((T0, dead), (T0 + 9 * S, live)):  # distinct names: same pid, same seq
        for i in range(3):
            log.write(start + i * MS, b"", pkt, len(pkt), EpbOptions("x", OUTBOUND))
        log.flush(start + S)
    assert dead.current is not None and live.current is not None
    dead_path, live_path = dead.current.path, live.current.path
    dead.close(T0 + S)  # its lock is gone, as after a kill -9
    whole = dead_path.read_bytes()
    for path in (dead_path, live_path):  # both end in the middle of their last block
        with path.open("r+b") as f:
            f.truncate(len(whole) - cut)
    assert PacketLog(tmp_path, config).repaired == [dead_path]
    assert len(read_dpkt(dead_path)) == 2  # the whole blocks before the cut are all kept
    assert dead_path.stat().st_size == len(whole) - _last_block(whole)
    assert live_path.stat().st_size == len(whole) - cut  # a live writer's file is not touched
    live.close(T0 + S)


def _last_block(data: bytes) -> int:
    return int(struct.unpack_from("<I", data, len(data) - 4)[0])


def test_closed_files_are_not_kept_without_an_index(tmp_path: Path) -> None:
    toml = LOOSE + "[log]\nindex = false\nrotate_bytes = 2000\nflush_ms = 1\n"
    g = make_guardian(tmp_path, toml, log=True)
    try:
        guard = open_guard(g)
        for i in range(100):
            guard.sent(probe(size=128), bytes(100), T0 + i * 10 * MS)
        assert g.log is not None and len(g.log.closed_files) > 1  # rotated
        g.handle_timer(T0 + 20 * S)
        assert g.log.closed_files == []
    finally:
        g.close(T0 + 20 * S)
    assert g.log.closed_files == []


@pytest.mark.parametrize(("family", "proto"), [(4, 17), (4, 6), (4, 1), (6, 17), (6, 6), (6, 58)])
def test_synthesized_header_length(family: int, proto: int) -> None:
    addr = bytes(4 if family == 4 else 16)
    assert synth_header_len(family, proto) == len(synth_header(family, proto, addr, addr, 1, 2, 9))


@pytest.mark.parametrize("logged", [False, True])
def test_received_payload_counts_its_synthesized_header(tmp_path: Path, logged: bool) -> None:
    g = make_guardian(tmp_path, log=logged)
    guard = open_guard(g)
    guard.received(4, 17, ip(REMOTE4), ip(OWN4), b"pong", T0, raw=False, sport=53, dport=40000)
    guard.received(6, 6, ip(REMOTE6), ip(OWN6), bytes(10), T0, raw=False, sport=80, dport=40000)
    g.close(T0)
    g = make_guardian(tmp_path)
    usage = g.usage.usage("exp-a")
    g.close(T0)
    assert usage is not None and (usage.recv_pkt, usage.recv_byte) == (2, 20 + 8 + 4 + 40 + 20 + 10)
    if logged:
        (path,) = log_files(tmp_path)
        assert [len(data) for _, data in read_dpkt(path)] == [32, 70]


def test_a_busy_index_does_not_hold_up_the_timer(tmp_path: Path) -> None:
    g = make_guardian(tmp_path, log=True)
    try:
        guard = open_guard(g)
        for i in range(10):
            guard.sent(probe(size=100), None, T0 + i * MS)
        other = sqlite3.connect(tmp_path / "traffic.sqlite", isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
            started = time.monotonic()
            g.handle_timer(T0 + 10 * S)
            assert time.monotonic() - started < 1  # not the 5 s busy timeout
            other.execute("ROLLBACK")
        finally:
            other.close()
        g.handle_timer(T0 + 10 * S + 500 * MS)
        g.handle_timer(T0 + 11 * S)  # retried a second later
        index = TrafficIndex(tmp_path / "traffic.sqlite")
        try:
            (row,) = index.traceback(Prefix(4, int.from_bytes(ip(REMOTE4), "big"), 32))
            assert (row.pkts, row.nbytes) == (10, 1000)
        finally:
            index.close()
    finally:
        g.close(T0 + 12 * S)
    index = TrafficIndex(tmp_path / "traffic.sqlite")
    try:
        (row,) = index.traceback(Prefix(4, int.from_bytes(ip(REMOTE4), "big"), 32))
        assert (row.pkts, row.nbytes) == (10, 1000)  # counted once
        assert len(index.files_between(T0, T0 + S)) == 1
    finally:
        index.close()


def test_buffer_reaches_the_file_within_a_second(tmp_path: Path) -> None:
    g = make_guardian(tmp_path, log=True)
    try:
        guard = open_guard(g)
        for i in range(10):
            guard.sent(probe(), b"x", T0 + i * MS)
        (path,) = log_files(tmp_path)
        assert read_dpkt(path) == []  # buffered (headers only on disk, or nothing)
        assert g.get_timer() <= T0 + S
        g.handle_timer(T0 + S)
        assert len(read_dpkt(path)) == 10  # written, not closed
    finally:
        g.close(T0 + S)


LOG_CHILD = textwrap.dedent(
    """
    import os, sys
    from pathlib import Path
    from packetlab.guardian import ExperimentIdentity, Guardian, GuardianConfig, Probe

    state, progress = Path(sys.argv[1]), sys.argv[2]
    g = Guardian(GuardianConfig(), state, [(bytes([198, 18, 0, 1]), 24)])
    guard = g.open_experiment(ExperimentIdentity("k", "c"), 1_800_000_000_000_000_000)
    probe = Probe(4, 17, bytes([198, 18, 0, 1]), bytes([198, 19, 0, 1]), 40000, 33434, 36)
    fd = os.open(progress, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    now = 1_800_000_000_000_000_000
    for i in range(10_000_000):
        now += 1_000_000  # 1 ms of virtual time per packet
        guard.sent(probe, b"12345678", now)
        if i % 100 == 0:
            g.handle_timer(now)
        os.write(fd, b"%d\\n" % now)
    """
)


def test_kill_9_loses_at_most_the_last_second(tmp_path: Path) -> None:
    state, progress = tmp_path / "state", tmp_path / "progress"
    proc = subprocess.Popen([sys.executable, "-c", LOG_CHILD, str(state), str(progress)],
                            stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
            if progress.exists() and progress.stat().st_size > 5000 * 20:
                break
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        if proc.stderr:
            proc.stderr.close()
    last_sent = int(progress.read_bytes().splitlines()[-1])
    (path,) = log_files(state)
    PacketLog(state / "log", LogConfig())  # a restart repairs a last block the kill cut short
    logged = read_dpkt(path)
    assert logged, "nothing reached the file"
    last_logged_ns = round(logged[-1][0] * 1e3) * 1_000_000
    assert last_sent - last_logged_ns <= S  # virtual time: at most the last second is lost
    stamps = [round(ts * 1e3) for ts, _ in logged]
    assert stamps == list(range(stamps[0], stamps[0] + len(stamps)))  # nothing in between lost


def populate(state: Path) -> None:
    g = make_guardian(state, log=True)
    a = open_guard(g, experiment_id="exp-alpha", controller="ctl-one")
    b = open_guard(g, experiment_id="exp-beta", controller="ctl-two")
    for i in range(5):
        a.sent(probe("198.19.7.7", size=100), b"", T0 + i * S)
    for i in range(3):
        b.sent(probe("198.19.7.7", proto=1, size=84), None, T0 + 118 * S + i * S)
    for i in range(2):
        a.received(4, 17, ip("198.19.7.7"), ip(OWN4), bytes(50), T0 + i * S)
    b.sent(probe("198.19.8.8", size=60), None, T0 + 120 * S)
    g.handle_timer(T0 + 200 * S)
    g.close(T0 + 200 * S)


def test_traffic_index_aggregates_per_minute(tmp_path: Path) -> None:
    populate(tmp_path)
    index = TrafficIndex(tmp_path / "traffic.sqlite")
    try:
        rows = index.traceback(Prefix(4, int.from_bytes(ip("198.19.7.7"), "big"), 32))
        summary = {(r.experiment_id, r.controller, r.proto, r.direction): (r.pkts, r.nbytes)
                   for r in rows}  # fmt: skip
        assert summary == {
            ("exp-alpha", "ctl-one", 17, "sent"): (5, 500),
            ("exp-alpha", "ctl-one", 17, "received"): (2, 100),
            ("exp-beta", "ctl-two", 1, "sent"): (3, 252),
        }
        beta = next(r for r in rows if r.experiment_id == "exp-beta")
        assert (beta.first_ns, beta.last_ns) == (T0 + 118 * S, T0 + 120 * S)  # two minutes
        raw_rows = index._db.execute("SELECT count(*) FROM traffic").fetchone()[0]
        assert raw_rows == 5  # alpha sent, alpha received, beta in two minutes, beta to .8.8
        assert index.traceback(Prefix(4, int.from_bytes(ip("198.19.7.7"), "big"), 32),
                               since_ns=T0 + 91 * S)[0].experiment_id == "exp-beta"  # fmt: skip
        files = index.files_between(T0, T0 + 200 * S)
        assert len(files) == 1 and Path(files[0].path).is_file()
    finally:
        index.close()


def test_traceback_cli(tmp_path: Path) -> None:
    populate(tmp_path)
    runner = CliRunner()
    result = runner.invoke(traceback, ["198.19.7.7", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = result.output
    lines = out.splitlines()
    assert lines[0] == "Traffic with 198.19.7.7:"
    assert "experiment" in lines[1] and "controller" in lines[1]
    body = "\n".join(lines[2:5])
    for text in ("exp-alpha", "exp-beta", "ctl-one", "ctl-two", "udp", "icmp", "received"):
        assert text in body
    alpha_sent = next(line for line in lines if "exp-alpha" in line and " sent " in line)
    assert alpha_sent.split()[7:9] == ["5", "500"]
    assert "2027-01-15 08:00:00.000" in alpha_sent  # T0 in UTC
    assert "ip.addr == 198.19.7.7" in out
    (path,) = log_files(tmp_path)
    assert str(path) in out

    result = runner.invoke(traceback, ["198.19.0.0/16", "--state-dir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    records = [json.loads(line) for line in result.output.splitlines()]
    addresses = {r["address"] for r in records if "address" in r}
    assert addresses == {"198.19.7.7", "198.19.8.8"}
    assert sum(r["packets"] for r in records if "packets" in r) == 11
    assert [r["pcapng"] for r in records if "pcapng" in r] == [str(path)]
    text = runner.invoke(traceback, ["198.19.0.0/16", "--state-dir", str(tmp_path)]).output
    assert "ip.addr == 198.19.0.0/16" in text

    since = "2027-01-15T08:01:31"
    result = runner.invoke(
        traceback, ["198.19.7.7", "--state-dir", str(tmp_path), "--since", since]
    )
    assert result.exit_code == 0
    assert "exp-beta" in result.output and "exp-alpha" not in result.output

    result = runner.invoke(traceback, ["198.19.9.9", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0 and "No traffic with 198.19.9.9" in result.output


def test_since_ago_is_on_the_real_clock() -> None:
    before = time.time_ns()
    since = _since_ns("-1h")
    after = time.time_ns()
    assert since is not None and before - 3600 * S <= since <= after - 3600 * S
    assert _since_ns("1800000000") == T0
    assert _since_ns(None) is None


def test_traceback_cli_since_ago(tmp_path: Path) -> None:
    now = time.time_ns()
    index = TrafficIndex(tmp_path / "traffic.sqlite")
    try:
        for experiment, ago_s in (("exp-old", 7200), ("exp-recent", 600)):
            t = now - ago_s * S
            index.record([(ip(REMOTE4), t // MINUTE_NS, experiment, "ctl", 17, 0, 1, 100, t, t)])
    finally:
        index.close()
    args = [REMOTE4, "--state-dir", str(tmp_path), "--since", "-1h"]
    result = CliRunner().invoke(traceback, args)
    assert result.exit_code == 0, result.output
    assert "exp-recent" in result.output and "exp-old" not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["not-an-address"], "not an address or prefix"),
        (["198.19.0.1/16"], "not an address or prefix"),
        (["198.19.7.7", "--since", "yesterday-ish"], "--since"),
    ],
)
def test_traceback_cli_errors(tmp_path: Path, args: list[str], message: str) -> None:
    populate(tmp_path)
    result = CliRunner().invoke(traceback, [*args, "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert message in result.output


def test_traceback_cli_without_an_index(tmp_path: Path) -> None:
    result = CliRunner().invoke(traceback, ["198.19.7.7", "--state-dir", str(tmp_path)])
    assert result.exit_code == 2
    assert "no traffic index" in result.output
