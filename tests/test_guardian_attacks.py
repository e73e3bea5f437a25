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
import subprocess
import time
from collections.abc import Callable, Sequence
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
from netns_session import PACKETLAB, NodeSession, PacketCapture, endpoint_config, init_home
from packetlab import packets
from packetlab.testbed import Topology
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
CAPTURE_LIMIT_S = 90.0


# what the target saw -------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One IP packet the target received (kernel timestamp, ns since the epoch), parsed."""

    time: int
    ip: bytes = field(repr=False)
    packet: packets.IPv4 | packets.IPv6 | None
    """None when the bytes do not parse (nothing malformed may arrive: a test checks)."""
    src: str
    dst: str

    @classmethod
    def of(cls, time_ns: int, ip: bytes) -> Frame:
        try:
            packet: packets.IPv4 | packets.IPv6 | None = packets.parse_ip(ip)
        except packets.PacketError:
            packet = None
        if packet is not None:
            src, dst = packets.addr_text(packet.src), packets.addr_text(packet.dst)
        elif ip and ip[0] >> 4 == 4 and len(ip) >= 20:
            src, dst = packets.addr_text(ip[12:16]), packets.addr_text(ip[16:20])
        elif ip and ip[0] >> 4 == 6 and len(ip) >= 40:
            src, dst = packets.addr_text(ip[8:24]), packets.addr_text(ip[24:40])
        else:
            src = dst = "?"
        return cls(time_ns, ip, packet, src, dst)

    @property
    def transport(self) -> packets.Transport | bytes | None:
        return None if self.packet is None else self.packet.payload


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
    with NodeSession(
        tb, "ep", home, config, EXPERIMENT, plan.to_json(), endpoint_args=("-v",)
    ) as session:
        out = session.finish(50, 10)
        if "ATTACK-SUMMARY " not in out:
            raise AssertionError(f"no ATTACK-SUMMARY from the controller\n{session.logs_text()}")
        return out, session.log("endpoint")


@pytest.fixture(scope="module")
def run(testbed_module: Callable[..., Any], tmp_path_factory: pytest.TempPathFactory) -> Run:
    tb = testbed_module(Topology.parse(TOPOLOGY))
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
        ipaddress.ip_network(f"{a}/{n}", strict=False) for a, n in ((plan.t4, 27), (plan.t6, 120))
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
    frames: list[Frame] = []
    capture = PacketCapture(
        tb, "target", lambda t, ip: frames.append(Frame.of(t, ip)), limit_s=CAPTURE_LIMIT_S
    )
    try:
        out, log = _experiment(tb, home, config, plan)
        time.sleep(0.3)  # the last packets' way to the target
    except BaseException:
        capture.close()
        raise
    capture.stop()  # raises if the capture ended early or the kernel dropped frames
    line = next(x for x in out.splitlines() if x.startswith("ATTACK-SUMMARY "))
    return Run(
        plan=plan,
        attacks=attacks(plan),
        summary=json.loads(line.split(" ", 1)[1]),
        refusals=[x.split(" refused: ", 1)[1] for x in log.splitlines() if " refused: " in x],
        frames=frames,
        endpoint_log=log,
    )


# the checks ------------------------------------------------------------------------------------


def _phase1_refused(run: Run) -> list[Attack]:
    return [a for a in run.attacks if run.result(a)["errid"]]


def test_every_attack_is_refused_with_the_guardian_error(run: Run) -> None:
    """Each forbidden nsend is answered ESKTPKTDENY, each forbidden connect ESKTOPNDENY, and
    no ntag says any of them was sent: none came for a tag whose request was refused."""
    wrong = []
    for attack in run.attacks:
        if attack.allowed:
            continue
        result = run.result(attack)
        expected = OPNDENY if attack.via == "tcp" else PKTDENY
        if result["errid"] != expected or result["ntag"] is not None:
            wrong.append((attack.kind, attack.name, hex(result["errid"]), result["ntag"]))
    assert not wrong, wrong
    assert run.summary["stray_ntags"] == [], run.summary["stray_ntags"]
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
        ip = frame.packet
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
        if frame.packet is None or frame.src != run.plan.ep4 or frame.dst != run.plan.t4:
            continue
        tcp = frame.packet.payload
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
        icmp = frame.transport
        flood_echo = (packets.ICMPType.ECHO_REQUEST, FLOOD_IDENT)
        if isinstance(icmp, packets.ICMP) and (icmp.type, icmp.ident) == flood_echo:
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
    tcp = frame.transport
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
