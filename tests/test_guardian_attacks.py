"""The guardian against a hostile controller: Scriptroute's Table 2 attacks, on a testbed.

Two namespaces on one link, ``ep -- target``. The target has three addresses: its own, one
that opted out of ICMP, UDP and TCP (an opt-out file in the guardian config) and one outside
the ``valid_dest`` of the controller's chain (an exppriv minted with ``packetlab pki``).

The endpoint's policy is the default except ``allow_dest`` for those three addresses and a
tight ``certified`` profile: SYN 5/s burst 3, per destination 20 pkt/s burst 5, probes shaped
up to 300 ms. The target sits on the endpoint's own subnet, so the subnet's directed broadcast
is the target's, and ``ep`` has a multicast route: multicast the guardian let through would
reach the target (broadcasts would not: the kernel refuses them on sockets without
SO_BROADCAST, a second line of defence).

The target captures everything (AF_PACKET, ETH_P_ALL, kernel timestamps) from before the
controller starts until after it ends. tests/attack_experiment.py is the controller: it tries
every attack, a few allowed controls, then floods (connects, raw SYNs, echoes) and reports each
request's result. The tests judge that report, the endpoint's refusal log and the capture.
"""

from __future__ import annotations

import ipaddress
import json
import secrets
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from attack_experiment import (
    CONNECT_PORT,
    FLOOD_IDENT,
    Attack,
    Plan,
    attacks,
    hidden_attacks,
    loopback_source_attacks,
)
from netns_session import PACKETLAB, endpoint_config, init_home
from packetlab import packets
from packetlab.wire import ErrId

EXPERIMENT = Path(__file__).resolve().parent / "attack_experiment.py"
TOPOLOGY = """
name = "attacks"
[nodes.ep]
[nodes.target]
[[links]]
a = "ep"
b = "target"
"""
PORT = 7777
PKTDENY = int(ErrId.ESKTPKTDENY)
OPNDENY = int(ErrId.ESKTOPNDENY)
# the certified profile, tightened so that floods show
SYN_RATE, SYN_BURST = 5.0, 3
DEST_RATE, DEST_BURST = 20.0, 5
MAX_WAIT_MS = 300
TOLERANCE = 1.05
GUARDIAN = """
[guardian]
max_wait_ms = {max_wait}

[guardian.source_policy]
allow_dest = {allow}

[guardian.profiles.certified]
syn_per_s = {syn_rate}
syn_burst = {syn_burst}
dest_pkts_per_s = {dest_rate}
dest_burst_pkts = {dest_burst}

[guardian.optout]
file = "optout.txt"
"""
ETH_P_ALL = 0x0003
SO_TIMESTAMPNS = 35
SO_RCVBUFFORCE = 33
PACKET_OUTGOING = 4
CAPTURE_LIMIT_S = 90.0


# what the target saw -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One IP packet the target received (kernel timestamp, ns since the epoch)."""

    time: int
    ip: bytes

    @property
    def version(self) -> int:
        return self.ip[0] >> 4

    @property
    def src(self) -> str:
        raw = self.ip[12:16] if self.version == 4 else self.ip[8:24]
        return str(ipaddress.ip_address(raw))

    @property
    def dst(self) -> str:
        raw = self.ip[16:20] if self.version == 4 else self.ip[24:40]
        return str(ipaddress.ip_address(raw))

    def parsed(self) -> packets.IPv4 | packets.IPv6 | None:
        try:
            return packets.parse_ip(self.ip)
        except packets.PacketError:
            return None


class Capture:
    """Everything arriving in a namespace (an AF_PACKET socket made there), in a thread."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 8 << 20)
            sock.settimeout(0.05)
        except OSError:
            sock.close()
            raise
        self.frames: list[Frame] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        deadline = time.monotonic() + CAPTURE_LIMIT_S
        while not self._stop.is_set() and time.monotonic() < deadline:
            try:
                data, ancillary, _, address = self.sock.recvmsg(1 << 17, 64)
            except TimeoutError:
                continue
            except OSError:
                return
            if address[2] == PACKET_OUTGOING:
                continue
            stamp = time.time_ns()
            for level, kind, value in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanos = struct.unpack("qq", value[:16])
                    stamp = seconds * 1_000_000_000 + nanos
            if data[12:14] in (b"\x08\x00", b"\x86\xdd"):  # IPv4, IPv6 (not ARP)
                self.frames.append(Frame(stamp, data[14:]))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sock.close()


# the run ---------------------------------------------------------------------------------------


@dataclass
class Run:
    plan: Plan
    attacks: list[Attack]
    summary: dict[str, Any]
    refusals: list[str]
    """The endpoint's refusal log lines, in order."""
    frames: list[Frame]
    endpoint_log: str = field(repr=False)

    def result(self, attack: Attack) -> dict[str, Any]:
        return dict(self.summary["attacks"][str(attack.ident)])

    def arrivals(self, marker: bytes) -> list[Frame]:
        return [f for f in self.frames if marker in f.ip]


def _mint_limited_chain(home: Path, valid_dest: Sequence[str]) -> None:
    """An exppriv for the controller's key whose cert_limit has ``valid_dest``; the
    controller presents it instead of `packetlab init`'s unlimited one."""
    limits = [arg for net in valid_dest for arg in ("--valid_dest", net)]
    minted = subprocess.run(
        [*PACKETLAB, "--home", str(home), "pki", "generate", "cert", "exppriv",
         str(home / "keys" / "k_eop"), "0", "2147483647", str(home / "certs" / "limited.cert"),
         "-k", str(home / "keys" / "k_exper.pub"), *limits],
        check=False, capture_output=True, text=True,
    )  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    config = home / "controller.toml"
    text = config.read_text()
    assert "certs/exppriv_eop_exper.cert" in text
    config.write_text(text.replace("certs/exppriv_eop_exper.cert", "certs/limited.cert"))


def _plan(tb: Any) -> Plan:
    iface = tb.interface("target", "ep")
    net4, net6 = iface.addr4.network, iface.addr6.network
    return Plan(
        ep4=tb.addr("ep", "target", 4),
        ep6=tb.addr("ep", "target", 6),
        t4=tb.addr("target", "ep", 4),
        t6=tb.addr("target", "ep", 6),
        optout4=str(net4.network_address + 20),
        optout6=str(net6.network_address + 0x20),
        outside4=str(net4.network_address + 200),
        outside6=str(net6.network_address + 0x10200),
        subnet4=str(net4),
        subnet6=str(net6),
    )


def _experiment(tb: Any, home: Path, config: Path, plan: Plan) -> tuple[str, str]:
    """Run the hostile controller against the endpoint, both in ``ep``: (controller's
    stdout, endpoint's stderr)."""
    controller = tb.popen(
        "ep",
        [*PACKETLAB, "--home", str(home), "controller", "-a", f"127.0.0.1:{PORT}", "-n", "1",
         str(EXPERIMENT), plan.to_json()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    endpoint = tb.popen(
        "ep",
        [*PACKETLAB, "--home", str(home), "endpoint", "-v", "-c", str(config),
         f"127.0.0.1:{PORT}", "--sessions", "1", "--attempts", "20"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        out, err = _finish(controller, 50)
        _, log = _finish(endpoint, 10)
    finally:
        for process in (controller, endpoint):
            if process.poll() is None:
                process.kill()
                process.communicate()
    if controller.returncode != 0 or "ATTACK-SUMMARY " not in out:
        raise AssertionError(f"controller failed:\n{out}\n{err}\nendpoint:\n{log}")
    return out, log


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """(stdout, stderr) of ``process`` once it ends; killed after ``timeout`` seconds."""
    try:
        return process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.communicate()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    from packetlab.testbed import Testbed, Topology, preflight

    reason = preflight(need_tc=False)
    if reason:
        pytest.skip(reason)
    tb = Testbed.start(Topology.parse(TOPOLOGY), name=f"attacks_{secrets.token_hex(3)}")
    capture: Capture | None = None
    try:
        plan = _plan(tb)
        iface = tb.interface("target", "ep")
        for address, length in ((plan.optout4, 24), (plan.outside4, 24)):
            tb.exec("target", ["ip", "addr", "add", f"{address}/{length}", "dev", iface.name],
                    check=True)  # fmt: skip
        for address in (plan.optout6, plan.outside6):
            tb.exec("target", ["ip", "addr", "add", f"{address}/64", "dev", iface.name, "nodad"],
                    check=True)  # fmt: skip
        # a route for IPv4 multicast, so that any the guardian let through would reach the target
        ep_iface = tb.interface("ep", "target").name
        tb.exec("ep", ["ip", "route", "add", "224.0.0.0/4", "dev", ep_iface], check=True)
        home = init_home(tmp_path_factory.mktemp("attacks") / "home")
        valid = [
            ipaddress.ip_network(f"{a}/{n}", strict=False)
            for a, n in ((plan.t4, 27), (plan.t6, 120))
        ]
        _mint_limited_chain(home, [str(net) for net in valid])
        (home / "optout.txt").write_text(
            f"# the target's second address asked not to be measured\n"
            f"{plan.optout4}/32 icmp,udp,tcp\n{plan.optout6}/128 icmp,udp,tcp\n"
        )
        allow = [f"{plan.t4}/32", f"{plan.optout4}/32", f"{plan.outside4}/32"]
        allow += [f"{plan.t6}/128", f"{plan.optout6}/128", f"{plan.outside6}/128"]
        guardian = GUARDIAN.format(
            max_wait=MAX_WAIT_MS,
            allow=json.dumps(allow),
            syn_rate=SYN_RATE,
            syn_burst=SYN_BURST,
            dest_rate=DEST_RATE,
            dest_burst=DEST_BURST,
        )
        config = endpoint_config(home, tb, "ep", guardian)
        sock = tb.socket("target", socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        capture = Capture(sock)
        out, log = _experiment(tb, home, config, plan)
        time.sleep(0.3)  # the last packets' way to the target
        capture.stop()
        line = next(x for x in out.splitlines() if x.startswith("ATTACK-SUMMARY "))
        yield Run(
            plan=plan,
            attacks=attacks(plan),
            summary=json.loads(line.split(" ", 1)[1]),
            refusals=[x.split(" refused: ", 1)[1] for x in log.splitlines() if " refused: " in x],
            frames=capture.frames,
            endpoint_log=log,
        )
    finally:
        if capture is not None:
            capture.stop()
        tb.down()


# the checks ------------------------------------------------------------------------------------


def _phase1_refused(run: Run) -> list[Attack]:
    return [a for a in run.attacks if run.result(a)["errid"]]


def test_every_attack_is_refused_with_the_guardian_error(run: Run) -> None:
    """Each forbidden nsend is answered ESKTPKTDENY, each forbidden connect ESKTOPNDENY, and
    no ntag says any of them was sent."""
    wrong = []
    for attack in run.attacks:
        if attack.allowed:
            continue
        result = run.result(attack)
        expected = OPNDENY if attack.via == "tcp" else PKTDENY
        if result["errid"] != expected or result["ntag"] is not None:
            wrong.append((attack.kind, attack.name, hex(result["errid"]), result["ntag"]))
    assert not wrong, wrong
    kinds = {a.kind for a in run.attacks if not a.allowed}
    assert len(kinds) >= 10  # every Table 2 row and the other rules were tried


def test_each_refusal_names_the_rule_the_attack_breaks(run: Run) -> None:
    """The endpoint logs why it refused, in order: each attack is refused for its own rule
    (a spoofed echo for spoofing, not for some other reason)."""
    refused = _phase1_refused(run)
    assert len(run.refusals) >= len(refused), run.endpoint_log
    mismatched = [
        (attack.name, attack.reason, logged)
        for attack, logged in zip(refused, run.refusals, strict=False)
        if attack.reason not in logged
    ]
    assert not mismatched, mismatched


def test_allowed_controls_arrive_once_and_are_reported_sent(run: Run) -> None:
    """The same kinds of packets, harmless, pass and arrive: the capture sees what is sent."""
    controls = [a for a in run.attacks if a.allowed]
    assert len(controls) >= 5
    for attack in controls:
        result = run.result(attack)
        assert result["errid"] == 0, attack.name
        assert result["ntag"] is not None and result["ntag"][1] == 0, (attack.name, result)
        assert len(run.arrivals(attack.marker)) == 1, attack.name


def test_nothing_forbidden_reaches_the_target(run: Run) -> None:
    """No attack's marker in any frame, and nothing that any rule forbids, whoever made it."""
    plan = run.plan
    forbidden = [a for a in run.attacks if not a.allowed and a.via != "tcp"]
    reached = [a.name for a in forbidden if run.arrivals(a.marker)]
    assert not reached, reached
    bcast4 = str(ipaddress.IPv4Network(plan.subnet4).broadcast_address)
    assert run.frames, "the capture saw nothing"
    for frame in run.frames:
        ip = frame.parsed()
        assert ip is not None, f"a malformed packet arrived: {frame.ip.hex()}"
        proto = ip.proto if isinstance(ip, packets.IPv4) else ip.next_header
        payload = ip.payload
        where = f"{frame.src} -> {frame.dst} proto {proto}"
        assert frame.dst not in (plan.outside4, plan.outside6), where
        if frame.dst in (plan.optout4, plan.optout6):
            assert proto == 253, where
        if isinstance(ip, packets.IPv4):
            assert frame.src == plan.ep4, f"spoofed: {where}"
            assert not ip.mf and not ip.frag_offset, f"fragment: {where}"
            destination = ipaddress.IPv4Address(frame.dst)
            if frame.dst in ("255.255.255.255", bcast4) or destination.is_multicast:
                assert proto == 2, f"broadcast or multicast: {where}"  # only the kernel's IGMP
            if isinstance(payload, packets.ICMP):
                assert payload.type not in packets.ICMP_ERROR_TYPES, f"ICMP error: {where}"
        else:
            source = ipaddress.IPv6Address(frame.src)
            assert frame.src == plan.ep6 or source.is_link_local or source.is_unspecified, where
            assert all(ext.kind != 44 for ext in ip.extensions), f"fragment: {where}"
            if ipaddress.IPv6Address(frame.dst).is_multicast:  # only the kernel's NDP and MLD
                assert isinstance(payload, packets.ICMPv6) and payload.type >= 130, where
            if isinstance(payload, packets.ICMPv6):
                assert payload.type not in packets.ICMPV6_ERROR_TYPES, f"ICMPv6 error: {where}"
        if isinstance(payload, packets.TCP):
            assert not payload.flags & packets.RST, f"TCP RST: {where}"
        if isinstance(payload, packets.TCP | packets.UDP):
            assert payload.dport >= 1024 or payload.dport in (53, 80), f"port: {where}"


def _worst_window(times: list[int], burst: int, rate: float) -> tuple[float, int, float]:
    """The window of arrivals most over ``burst + rate * span * TOLERANCE + 1``:
    (excess, count, span in s). Excess > 0 means the rate was broken."""
    times = sorted(times)
    worst = (float("-inf"), 0, 0.0)
    for i, first in enumerate(times):
        for j in range(i, len(times)):
            span = (times[j] - first) / 1e9
            count = j - i + 1
            excess = count - (burst + rate * span * TOLERANCE + 1)
            if excess > worst[0]:
                worst = (excess, count, span)
    return worst


def _probes(run: Run, phase: str) -> list[dict[str, Any]]:
    return list(run.summary[phase]["probes"])


def _tcp_syns(run: Run) -> list[tuple[Frame, packets.TCP]]:
    out = []
    for frame in run.frames:
        ip = frame.parsed()
        if ip is None or frame.src != run.plan.ep4 or frame.dst != run.plan.t4:
            continue
        tcp = ip.payload
        if isinstance(tcp, packets.TCP) and tcp.flags & packets.SYN and not tcp.flags & packets.ACK:
            out.append((frame, tcp))
    return out


def _outcomes(run: Run, phase: str) -> tuple[set[int], set[int]]:
    """(sent, refused) probe numbers of a flood; every probe is one or the other."""
    sent, refused = set(), set()
    for p in _probes(run, phase):
        errid, ntag = p["errid"], p["ntag"]
        if errid == 0 and ntag is not None and ntag[1] == 0:
            sent.add(p["n"])
        elif errid == PKTDENY or (errid == 0 and ntag is not None and ntag[1] == PKTDENY):
            refused.add(p["n"])
        else:
            raise AssertionError(f"{phase} probe {p['n']}: neither sent nor refused: {p}")
    return sent, refused


def test_syn_flood_is_held_to_the_syn_bucket(run: Run) -> None:
    """Connects past the SYN burst are refused; raw SYNs reported sent arrive, the others do
    not; all SYNs together arrive within the SYN bucket's rate."""
    syns = _tcp_syns(run)
    sent, _ = _outcomes(run, "syn_flood")
    arrived = [bytes(tcp.payload) for _, tcp in syns if tcp.payload.startswith(b"PLSYN")]
    assert sorted(arrived) == sorted(b"PLSYN%04d" % n for n in sent)
    tries = run.summary["connects"]["tries"]
    allowed = [t for t in tries if t["errid"] == 0]
    assert all(t["errid"] in (0, OPNDENY) for t in tries), tries
    assert SYN_BURST <= len(allowed) < len(tries), tries
    connect_syns = [f for f, tcp in syns if tcp.dport == CONNECT_PORT and not tcp.payload]
    assert len(connect_syns) == len(allowed)
    excess, count, span = _worst_window([f.time for f, _ in syns], SYN_BURST, SYN_RATE)
    assert excess <= 0, f"{count} SYNs within {span:.3f} s"


def test_flood_ping_is_held_to_the_destination_bucket(run: Run) -> None:
    """Echoes reported sent arrive, the others do not, and they (and everything else the
    guardian let through to the target) arrive within the destination's packet bucket."""
    sent, _ = _outcomes(run, "flood_ping")
    echoes = []
    for frame in run.frames:
        ip = frame.parsed()
        if ip is not None and isinstance(ip.payload, packets.ICMP):
            icmp = ip.payload
            if icmp.type == 8 and icmp.ident == FLOOD_IDENT:
                echoes.append((frame.time, icmp.seq))
    assert sorted(seq for _, seq in echoes) == sorted(sent)
    assert len(sent) >= DEST_BURST
    excess, count, span = _worst_window([t for t, _ in echoes], DEST_BURST, DEST_RATE)
    assert excess <= 0, f"{count} echoes within {span:.3f} s"
    # every packet the guardian let through to the target (connect SYNs take no packet tokens)
    guarded = [
        f.time
        for f in run.frames
        if f.src == run.plan.ep4 and f.dst == run.plan.t4 and not _is_connect_syn(f)
    ]
    excess, count, span = _worst_window(guarded, DEST_BURST, DEST_RATE)
    assert excess <= 0, f"{count} packets within {span:.3f} s"


def _is_connect_syn(frame: Frame) -> bool:
    ip = frame.parsed()
    tcp = ip.payload if ip is not None else None
    return isinstance(tcp, packets.TCP) and tcp.dport == CONNECT_PORT and not tcp.payload


def test_forbidden_packets_behind_a_shaped_backlog_are_still_refused(run: Run) -> None:
    """Sent while the flood waits for tokens, magic packets are answered later (their turn in
    the queue) but still refused: an ntag with ESKTPKTDENY, nothing on the wire."""
    hidden = hidden_attacks(run.plan)
    results = run.summary["flood_ping"]["hidden"]
    assert len(hidden) == len(results) >= 3
    for attack in hidden:
        result = results[str(attack.ident)]
        refused = result["errid"] == PKTDENY or (
            result["errid"] == 0 and result["ntag"] is not None and result["ntag"][1] == PKTDENY
        )
        assert refused, (attack.name, result)
        assert not run.arrivals(attack.marker), attack.name


def test_loopback_sources_are_spoofed_sources_too(run: Run) -> None:
    """A raw packet from 127.0.0.1 or ::1 to another host carries a source the endpoint does
    not own there: it must be refused like any spoofed source, and never arrive."""
    for attack in loopback_source_attacks(run.plan):
        result = run.result(attack)
        assert (result["errid"], result["ntag"]) == (PKTDENY, None), (attack.name, result)
        assert not run.arrivals(attack.marker), attack.name


def test_shaped_probes_wait_no_longer_than_max_wait(run: Run) -> None:
    """A probe short of tokens waits up to max_wait_ms, then is refused (DESIGN.md, guardian
    stage 6): no probe of a flood leaves later than max_wait_ms (+100 ms of slack) after the
    flood's last request was answered, so a flood sent at once gets at most
    burst + rate * (its duration + max_wait) through; the rest is refused."""
    late = []
    floods = (("syn_flood", SYN_BURST, SYN_RATE), ("flood_ping", DEST_BURST, DEST_RATE))
    for phase, burst, rate in floods:
        start, end = run.summary[phase]["start"], run.summary[phase]["end"]
        sent = [p for p in _probes(run, phase) if p["ntag"] and p["ntag"][1] == 0]
        for p in sent:
            waited_ms = (p["ntag"][0] - end) / 1e6
            if waited_ms > MAX_WAIT_MS + 100:
                late.append((phase, p["n"], round(waited_ms)))
        bound = burst + rate * ((end - start) / 1e9 + MAX_WAIT_MS / 1e3) * TOLERANCE + 1
        assert len(sent) <= bound, (phase, len(sent), bound)
    assert not late, late
