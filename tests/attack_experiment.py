"""A hostile controller: every attack of Scriptroute's Table 2 tried through one endpoint.

    packetlab controller tests/attack_experiment.py PLAN_JSON

PLAN_JSON (see :class:`Plan`) names the endpoint's and the target's addresses. The experiment
sends each :class:`Attack` of :func:`attacks` one at a time (magic packets, the allowed controls
among them, TCP connects the policy forbids), then floods: TCP connects, raw TCP SYNs, ICMP
echoes with a few magic packets right behind them (:func:`hidden_attacks`), each flood as fast
as requests go. It judges nothing: it records every result (the errid of each refused request,
each ntag's time and errid; ``stray_ntags``: every ntag for a tag whose request was refused
or never made, or a tag's second) and prints one line ``ATTACK-SUMMARY {json}`` for the test
(tests/test_guardian_attacks.py) to judge against what the target captured.

Plain classes and NamedTuples only: the controller loads this file without registering it as a
module, which dataclasses need.

Every packet it builds carries a marker the target can find: ``PLATK<id>`` in attack and
control payloads, ``PLSYN<n>`` in the raw SYNs, ``PLFLD<n>`` in the flood echoes.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple

from packetlab import packets
from packetlab.controller.api import EndpointError, EndpointHandle
from packetlab.packets import ICMP, TCP, UDP, ICMPv6, IPv4, IPv6, IPv6Extension
from packetlab.wire import Nstat, Ntag

RAW4, RAW6, UDP4, UDP6 = 1, 2, 3, 4  # socket ids
CONNECT_FIRST = 20  # socket ids of the flood of connects start here
ECHO_IDENT = 0x504C  # "PL": the attacks' and the controls' echoes
FLOOD_IDENT = 0x464C  # "FL"
SYN_DPORT = 80  # an allowed port: the SYN flood is limited by rate, not by policy
SYN_SPORT = 40000
CONNECT_PORT = 8080
SYN_TAGS, FLOOD_TAGS = 1000, 2000  # tags of the floods' probes start after these
PROBE_PORT = 33434
SPOOF_HOST = 99  # an address on the link that nobody owns
STRAY_WAIT_S = 0.2
"""How long the experiment waits at its end for ntags nobody asked for."""


class Plan(NamedTuple):
    """The addresses and sizes of one run (from the test, as JSON)."""

    ep4: str
    ep6: str
    t4: str
    t6: str
    optout4: str
    """The target's second address, opted out for ICMP, UDP and TCP (not other protocols)."""
    optout6: str
    outside4: str
    """The target's third address, outside the chain's valid_dest."""
    outside6: str
    subnet4: str
    """The link's IPv4 subnet (its directed broadcast is an attack destination)."""
    subnet6: str
    connects: int = 6
    syns: int = 12
    flood: int = 40

    @classmethod
    def from_json(cls, text: str) -> Plan:
        return cls(**json.loads(text))

    def to_json(self) -> str:
        return json.dumps(self._asdict())


class Attack(NamedTuple):
    """One request a hostile controller makes: an attack, or an allowed control (no reason)."""

    ident: int
    kind: str
    """Table 2's row (or the guardian rule) it tries to get past."""
    name: str
    via: str
    """raw4, raw6 (``data`` is the whole IP packet), udp4, udp6 (``data`` is the payload,
    sent to ``dst``:``dport``), tcp (a connect to ``dst``:``dport``)."""
    data: bytes = b""
    dst: str = ""
    dport: int = 0
    reason: str = ""
    """What the endpoint's refusal log must say (a substring); empty for a control."""

    @property
    def allowed(self) -> bool:
        return not self.reason

    @property
    def marker(self) -> bytes:
        return b"PLATK%04d" % self.ident


Build = Callable[[bytes], bytes]
"""Makes a packet (or a payload) carrying the given marker."""


class _Table:
    """Collects attacks in order: idents count from ``first``, ``kind`` is the current
    section."""

    def __init__(self, first: int = 1) -> None:
        self.rows: list[Attack] = []
        self.kind = ""
        self.first = first

    def _add(self, name: str, via: str, build: Build | None, **fields: Any) -> None:
        ident = self.first + len(self.rows)
        data = build(b"PLATK%04d" % ident) if build is not None else b""
        self.rows.append(Attack(ident, self.kind, name, via, data, **fields))

    def raw(self, name: str, build: Build, reason: str = "", family: int = 0) -> None:
        """A whole IP packet, on the raw socket of ``family`` (0: the packet's version)."""
        probe = build(b"")
        family = family or (6 if probe[0] >> 4 == 6 else 4)
        self._add(name, f"raw{family}", build, reason=reason)

    def udp(self, name: str, dst: str, dport: int, reason: str = "", size: int = 0) -> None:
        """A UDP payload (``size`` bytes, 0: just the marker) on the UDP socket."""
        via = "udp6" if ":" in dst else "udp4"
        pad: Build = lambda m: m.ljust(size, b"X")  # noqa: E731
        self._add(name, via, pad, dst=dst, dport=dport, reason=reason)

    def connect(self, name: str, dst: str, dport: int, reason: str) -> None:
        self._add(name, "tcp", None, dst=dst, dport=dport, reason=reason)


def echo(src: str, dst: str) -> Build:
    return lambda m: packets.icmp_echo(src, dst, ECHO_IDENT, 1, m)


def udp(src: str, dst: str, sport: int, dport: int) -> Build:
    return lambda m: packets.udp_probe(src, dst, sport, dport, m)


def tcp(src: str, dst: str, sport: int, dport: int, flags: int = packets.SYN, **kw: Any) -> Build:
    return lambda m: packets.ip_packet(src, dst, TCP(sport, dport, flags=flags, payload=m, **kw))


def icmp_error(src: str, dst: str, kind: int, code: int = 0) -> Build:
    """An ICMP (ICMPv6) error as from ``src`` about a UDP packet ``dst`` sent it."""
    quoted = packets.udp_probe(dst, src, PROBE_PORT, 53)
    message = ICMPv6 if ":" in src else ICMP
    return lambda m: packets.ip_packet(src, dst, message(kind, code, 0, 0, quoted + m))


def attacks(plan: Plan) -> list[Attack]:
    """Everything the hostile controller tries before it floods, in order."""
    net4 = ipaddress.IPv4Network(plan.subnet4)
    net6 = ipaddress.IPv6Network(plan.subnet6)
    bcast = str(net4.broadcast_address)
    spoof4 = str(net4.network_address + SPOOF_HOST)
    spoof6 = str(net6.network_address + SPOOF_HOST)
    ep4, ep6, t4, t6 = plan.ep4, plan.ep6, plan.t4, plan.t6
    all4 = "255.255.255.255"
    t = _Table()

    t.kind = "well-formed (Ping of Death)"
    t.raw("runt: 19 bytes", lambda m: (b"\x45" + m).ljust(19, b"\0"), "shorter than any IP")
    t.raw("IPv4 IHL 4", lambda m: b"\x44" + echo(ep4, t4)(m)[1:], "IHL 4 is below 5")
    t.raw("IP version 7", lambda m: b"\x75" + echo(ep4, t4)(m)[1:], "neither 4 nor 6")
    t.raw("IPv4 total length short", lambda m: echo(ep4, t4)(m) + b"\0\0", "total length")
    t.raw(
        "UDP length 8, datagram longer",
        lambda m: IPv4(ep4, t4, 17, UDP(9, 9, m, checksum=0, length=8)).build(),
        "UDP length",
    )
    t.raw("TCP data offset 2", tcp(ep4, t4, SYN_SPORT, CONNECT_PORT, data_offset=2), "data offset")
    t.raw(
        "ICMP header truncated",
        lambda m: IPv4(ep4, t4, 1, b"\x08\0\0\0", options=m + b"\0\0\0").build(),
        "ICMP header truncated",
    )
    t.raw("IPv6 payload length wrong", lambda m: echo(ep6, t6)(m) + b"\0", "payload length")
    t.raw("IPv6 packet on the IPv4 socket", echo(ep6, t6), "on an IPv4 raw socket", family=4)
    t.raw(
        "one 70000-byte echo",
        lambda m: IPv4(
            ep4, t4, 1, ICMP(8, 0, 1, 1, m.ljust(69972, b"X")), total_length=65535
        ).build(),
        "total length 65535 but the packet is 70000 bytes",
    )
    t.udp("a 65536-byte UDP datagram", t4, PROBE_PORT, "out of range", size=65508)
    t.udp("a 65576-byte UDP/IPv6 datagram", t6, PROBE_PORT, "out of range", size=65528)

    t.kind = "spoofed source"
    t.raw("echo from another host of the link", echo(spoof4, t4), "spoofed source")
    t.raw("echo from the target to itself", echo(t4, t4), "spoofed source")
    t.raw("land: SYN from the target to itself, 80 to 80", tcp(t4, t4, 80, 80), "spoofed source")
    t.raw("IPv6 echo from another host of the link", echo(spoof6, t6), "spoofed source")

    t.kind = "UDP storm with echo/chargen"
    t.udp("UDP to echo (7)", t4, 7, "privileged destination port 7")
    t.udp("UDP to chargen (19)", t4, 19, "privileged destination port 19")
    t.raw("raw UDP chargen -> echo", udp(ep4, t4, 19, 7), "port 7")
    t.raw("raw UDP echo -> chargen, from the target", udp(t4, t4, 7, 19), "port 19")
    t.udp("UDP/IPv6 to echo (7)", t6, 7, "privileged destination port 7")
    t.udp("UDP/IPv6 to chargen (19)", t6, 19, "privileged destination port 19")

    t.kind = "fragments"
    t.raw(
        "first fragment of an echo (MF)",
        lambda m: IPv4(ep4, t4, 1, ICMP(8, 0, 1, 1, m), ident=7, mf=True).build(),
        "IP fragment",
    )
    t.raw(
        "overlapping fragment (teardrop), offset 8",
        lambda m: IPv4(ep4, t4, 1, m.ljust(24, b"T"), ident=7, frag_offset=1).build(),
        "IP fragment",
    )
    t.raw(
        "ping of death: last fragment at offset 65528",
        lambda m: IPv4(ep4, t4, 1, m.ljust(100, b"D"), ident=7, frag_offset=8191).build(),
        "IP fragment",
    )
    t.raw(
        "IPv6 echo in a fragment header",
        lambda m: IPv6(
            ep6, t6, 58, ICMPv6(128, 0, 1, 1, m), extensions=(IPv6Extension.fragment(0, True, 7),)
        ).build(),
        "IP fragment",
    )

    t.kind = "ICMP errors"
    t.raw("port unreachable", icmp_error(ep4, t4, 3, 3), "ICMP error message (type 3)")
    t.raw("host unreachable", icmp_error(ep4, t4, 3, 1), "ICMP error message (type 3)")
    t.raw("time exceeded", icmp_error(ep4, t4, 11), "ICMP error message (type 11)")
    t.raw("source quench", icmp_error(ep4, t4, 4), "ICMP error message (type 4)")
    t.raw("redirect", icmp_error(ep4, t4, 5, 1), "ICMP error message (type 5)")
    t.raw("parameter problem", icmp_error(ep4, t4, 12), "ICMP error message (type 12)")
    t.raw("ICMPv6 unreachable", icmp_error(ep6, t6, 1, 4), "ICMPv6 error message (type 1)")
    t.raw("ICMPv6 packet too big", icmp_error(ep6, t6, 2), "ICMPv6 error message (type 2)")
    t.raw("ICMPv6 time exceeded", icmp_error(ep6, t6, 3), "ICMPv6 error message (type 3)")
    t.raw("ICMPv6 parameter problem", icmp_error(ep6, t6, 4), "ICMPv6 error message (type 4)")

    t.kind = "broadcast (smurf, fraggle)"
    t.raw("echo to 255.255.255.255", echo(ep4, all4), "broadcast destination")
    t.raw("echo to the directed broadcast", echo(ep4, bcast), "broadcast destination")
    t.raw("smurf: echo to the directed broadcast from the target", echo(t4, bcast), "broadcast")
    t.udp("UDP to 255.255.255.255", all4, PROBE_PORT, "broadcast destination")
    t.udp("UDP to the directed broadcast", bcast, PROBE_PORT, "broadcast destination")
    t.raw("fraggle: UDP echo to the broadcast from the target", udp(t4, bcast, 7, 7), "broadcast")

    t.kind = "multicast"
    t.raw("echo to 224.0.0.1", echo(ep4, "224.0.0.1"), "multicast destination")
    t.udp("UDP to 239.1.2.3", "239.1.2.3", PROBE_PORT, "multicast destination")
    t.raw("IPv6 echo to ff02::1", echo(ep6, "ff02::1"), "multicast destination")
    t.udp("UDP/IPv6 to ff02::1", "ff02::1", PROBE_PORT, "multicast destination")

    t.kind = "source policy"
    t.raw("TCP RST", tcp(ep4, t4, SYN_SPORT, CONNECT_PORT, packets.RST | packets.ACK), "TCP RST")
    t.raw("SYN to ssh (22)", tcp(ep4, t4, SYN_SPORT, 22), "privileged destination port 22")
    t.raw("echo to 127.0.0.1", echo(ep4, "127.0.0.1"), "destination is the local host")
    t.raw("echo to the endpoint itself", echo(ep4, ep4), "destination is the local host")
    t.raw("echo to a neighbour", echo(ep4, str(net4.network_address + 7)), "local subnet")
    t.raw("IPv6 echo to ::1", echo(ep6, "::1"), "destination is the local host")

    t.kind = "opt-out"
    t.raw("echo to an opted-out target", echo(ep4, plan.optout4), "opted out")
    t.udp("UDP to an opted-out target", plan.optout4, PROBE_PORT, "opted out")
    t.raw("IPv6 echo to an opted-out target", echo(ep6, plan.optout6), "opted out")
    t.udp("UDP/IPv6 to an opted-out target", plan.optout6, PROBE_PORT, "opted out")

    t.kind = "valid_dest"
    t.raw("echo outside valid_dest", echo(ep4, plan.outside4), "valid_dest")
    t.udp("UDP outside valid_dest", plan.outside4, PROBE_PORT, "valid_dest")
    t.raw("IPv6 echo outside valid_dest", echo(ep6, plan.outside6), "valid_dest")
    t.udp("UDP/IPv6 outside valid_dest", plan.outside6, PROBE_PORT, "valid_dest")

    t.kind = "control"  # the same kinds of packets, harmless: they must arrive
    t.raw("echo to the target", echo(ep4, t4))
    t.udp("UDP to the target", t4, PROBE_PORT)
    t.raw("raw UDP to the target's port 53 (an exception)", udp(ep4, t4, PROBE_PORT, 53))
    t.raw(
        "protocol 253 to the opted-out address", lambda m: IPv4(ep4, plan.optout4, 253, m).build()
    )
    t.raw("IPv6 echo to the target", echo(ep6, t6))
    t.udp("UDP/IPv6 to the target", t6, PROBE_PORT)
    t.raw(
        "IPv6 protocol 253 to the opted-out address",
        lambda m: IPv6(ep6, plan.optout6, 253, m).build(),
    )

    t.kind = "TCP connects (nopen)"
    t.connect("connect outside valid_dest", plan.outside4, CONNECT_PORT, "valid_dest")
    t.connect("connect to 255.255.255.255", all4, CONNECT_PORT, "broadcast destination")
    t.connect("connect to ssh (22)", t4, 22, "privileged destination port 22")
    t.connect("connect to 224.0.0.1", "224.0.0.1", CONNECT_PORT, "multicast destination")
    t.connect("connect to an opted-out target", plan.optout4, CONNECT_PORT, "opted out")
    t.connect("IPv6 connect outside valid_dest", plan.outside6, CONNECT_PORT, "valid_dest")
    return t.rows


def hidden_attacks(plan: Plan) -> list[Attack]:
    """Magic packets sent right behind the flood ping, while it waits for tokens."""
    t = _Table(first=201)
    t.kind = "behind a shaped backlog"
    t.raw(
        "echo to the directed broadcast",
        echo(plan.ep4, str(ipaddress.IPv4Network(plan.subnet4).broadcast_address)),
        "broadcast",
    )
    t.raw("echo from the target to itself", echo(plan.t4, plan.t4), "spoofed source")
    t.raw("time exceeded", icmp_error(plan.ep4, plan.t4, 11), "ICMP error")
    t.raw("UDP to chargen (19)", udp(plan.ep4, plan.t4, 7, 19), "port 19")
    return t.rows


def loopback_source_attacks(plan: Plan) -> list[Attack]:
    """Raw packets from a loopback source to the target: spoofed, though the guardian counts
    loopback sources as the endpoint's own (tried after :func:`attacks`)."""
    t = _Table(first=301)
    t.kind = "spoofed source"
    t.raw("echo from 127.0.0.1", echo("127.0.0.1", plan.t4), "spoofed source")
    t.raw("IPv6 echo from ::1", echo("::1", plan.t6), "spoofed source")
    return t.rows


def syn_packet(plan: Plan, n: int) -> bytes:
    """The n-th SYN of the raw SYN flood (to an allowed port: only the rate limits it)."""
    tcp = TCP(SYN_SPORT + n, SYN_DPORT, seq=n, flags=packets.SYN, payload=b"PLSYN%04d" % n)
    return IPv4(plan.ep4, plan.t4, 6, tcp, ident=n).build()


def flood_packet(plan: Plan, n: int) -> bytes:
    """The n-th echo of the flood ping."""
    return packets.icmp_echo(plan.ep4, plan.t4, FLOOD_IDENT, n, b"PLFLD%04d" % n)


# running ---------------------------------------------------------------------------------------


async def _attempt(request: Awaitable[None]) -> int:
    """The errid of one request (0: accepted)."""
    try:
        await request
    except EndpointError as exc:
        return int(exc.result.errid)
    return 0


async def _ntags(
    endpoint: EndpointHandle,
    want: set[tuple[int, int]],
    timeout: float,
    strays: list[list[int]],
) -> dict[tuple[int, int], tuple[int, int]]:
    """(sktid, tag) -> (time, errid) of the ntags for ``want``, waiting up to ``timeout``;
    every other ntag that comes meanwhile, [sktid, tag, time, errid], goes to ``strays``."""
    got: dict[tuple[int, int], tuple[int, int]] = {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while want - set(got) and (left := deadline - loop.time()) > 0:
        for note in await endpoint.collect(Ntag, 1, timeout=left):
            key = (note.sktid, note.tag)
            if key in want and key not in got:
                got[key] = (note.time, note.errid)
            else:  # for a refused request, or a second one
                strays.append([note.sktid, note.tag, note.time, note.errid])
    return got


async def _send(endpoint: EndpointHandle, attack: Attack, tag: int) -> int:
    if attack.via in ("raw4", "raw6"):
        sktid = RAW4 if attack.via == "raw4" else RAW6
        return await _attempt(
            endpoint.send_raw(sktid, attack.data, tag=tag, family=int(attack.via[3]))
        )
    sktid = UDP4 if attack.via == "udp4" else UDP6
    return await _attempt(endpoint.send_udp(sktid, attack.dst, attack.dport, attack.data, tag=tag))


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    plan = Plan.from_json(args[0])
    await endpoint.open_raw(RAW4, 4)
    await endpoint.open_raw(RAW6, 6)
    await endpoint.open_udp(UDP4, "0.0.0.0")
    await endpoint.open_udp(UDP6, "::")
    summary: dict[str, object] = {}

    # 1. the magic packets and the controls, one at a time; the forbidden connects
    results: dict[int, dict[str, object]] = {}
    sent: dict[tuple[int, int], int] = {}
    tagged: dict[tuple[int, int], int] = {}
    for tag, attack in enumerate([*attacks(plan), *loopback_source_attacks(plan)], start=1):
        if attack.via == "tcp":
            errid = await _attempt(endpoint.open_tcp(10, attack.dst, attack.dport))
            if not errid:
                await endpoint.close(10)
            results[attack.ident] = {"errid": errid, "tag": 0, "ntag": None}
            continue
        errid = await _send(endpoint, attack, tag)
        results[attack.ident] = {"errid": errid, "tag": tag, "ntag": None}
        sktid = {"raw4": RAW4, "raw6": RAW6, "udp4": UDP4, "udp6": UDP6}[attack.via]
        tagged[(sktid, tag)] = attack.ident
        if not errid:
            sent[(sktid, tag)] = attack.ident
    strays: list[list[int]] = []
    for key, (time_ns, errid) in (await _ntags(endpoint, set(sent), 3.0, strays)).items():
        results[sent[key]]["ntag"] = [time_ns, errid]
    for sktid, tag, time_ns, errid in strays:  # an ntag for a refused request
        if (sktid, tag) in tagged:
            results[tagged[(sktid, tag)]]["ntag"] = [time_ns, errid]
    summary["attacks"] = results

    # 2. a flood of TCP connects to the target, as fast as requests go
    connects: list[dict[str, int]] = []
    start = await endpoint.now()
    for i in range(plan.connects):
        sktid = CONNECT_FIRST + i
        errid = await _attempt(endpoint.open_tcp(sktid, plan.t4, CONNECT_PORT))
        connects.append({"sktid": sktid, "errid": errid})
    summary["connects"] = {"start": start, "end": await endpoint.now(), "tries": connects}
    opened = [c["sktid"] for c in connects if not c["errid"]]
    for _ in opened:  # the connect's outcome (refused by the target): the SYN went out
        try:
            await endpoint.next(Nstat, timeout=2)
        except TimeoutError:
            break
    for sktid in opened:
        await endpoint.close(sktid)

    # 3. a raw SYN flood and 4. a flood ping: all requests at once, then every ntag
    syns = [syn_packet(plan, n) for n in range(1, plan.syns + 1)]
    summary["syn_flood"] = await _flood(endpoint, syns, SYN_TAGS, strays)
    echoes = [flood_packet(plan, n) for n in range(1, plan.flood + 1)]
    summary["flood_ping"] = await _flood(endpoint, echoes, FLOOD_TAGS, strays, hidden_attacks(plan))
    for sktid in (RAW4, RAW6, UDP4, UDP6):
        await endpoint.close(sktid)
    for note in await endpoint.collect(Ntag, 1 << 20, timeout=STRAY_WAIT_S):  # late ones
        strays.append([note.sktid, note.tag, note.time, note.errid])
    summary["stray_ntags"] = strays
    print("ATTACK-SUMMARY " + json.dumps(summary), flush=True)


async def _flood(
    endpoint: EndpointHandle,
    probes: list[bytes],
    tag0: int,
    strays: list[list[int]],
    hidden: Sequence[Attack] = (),
) -> dict[str, object]:
    """Send ``probes`` on RAW4 as fast as requests go (pipelined; the n-th, from 1, tagged
    ``tag0 + n``), then the ``hidden`` attacks right behind them: each one's result and ntag,
    and the endpoint's clock before the first request and after the last result."""
    start = await endpoint.now()
    tags = [tag0 + n for n in range(1, len(probes) + 1)]
    hidden_tags = [tag0 + 500 + i for i in range(len(hidden))]
    sends = [*zip(probes, tags, strict=True)]
    sends += [(a.data, t) for a, t in zip(hidden, hidden_tags, strict=True)]
    errids = await asyncio.gather(*(_attempt(endpoint.send_raw(RAW4, p, tag=t)) for p, t in sends))
    end = await endpoint.now()
    want = {(RAW4, t) for (_, t), e in zip(sends, errids, strict=True) if not e}
    # a shaped probe waits at most max_wait_ms; give a slow (or wrong) endpoint time to say
    got = await _ntags(endpoint, want, 10.0, strays)
    results = [
        {"errid": e, "ntag": list(got[(RAW4, t)]) if (RAW4, t) in got else None}
        for (_, t), e in zip(sends, errids, strict=True)
    ]
    return {
        "start": start,
        "end": end,
        "probes": [{"n": n, **r} for n, r in enumerate(results[: len(probes)], start=1)],
        "hidden": {a.ident: r for a, r in zip(hidden, results[len(probes) :], strict=True)},
    }
