"""Built testbeds (root): what the kernel sees, hop by hop, and that nothing escapes or remains."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from tb_probes import (
    echo_once,
    kernel_rtts,
    percentile,
    udp_ttl_probe,
)

from packetlab.packets import ICMPType, ICMPv6Type
from packetlab.testbed import InstanceError, Names, SetupError, Testbed, Topology
from packetlab.testbed._netns import list_netns, read_sysctl
from packetlab.testbed._procs import is_relay_of
from packetlab.testbed.build import Builder

Factory = Callable[..., Testbed]


def pair(**link: Any) -> Topology:
    """Two hosts joined by one link with the given options."""
    return Topology.from_dict(
        {"name": "pair", "nodes": {"a": {}, "b": {}}, "links": [{"a": "a", "b": "b", **link}]}
    )


def host_links() -> str:
    return subprocess.run(["ip", "-o", "link"], capture_output=True, text=True, check=True).stdout


def test_line_is_built_isolated_and_as_planned(testbed: Factory) -> None:
    tb = testbed("line")
    present = set(list_netns())
    assert {tb.netns(n) for n in tb.nodes} <= present
    assert "plt" not in host_links()  # no veth end in the host namespace
    for node in tb.nodes:
        routes = tb.exec(node, ["ip", "route"], check=True).stdout
        routes6 = tb.exec(node, ["ip", "-6", "route"], check=True).stdout
        assert "default" not in routes and "default" not in routes6
        assert "tentative" not in tb.exec(node, ["ip", "-6", "addr"], check=True).stdout
        router = tb.topology.node(node).router
        assert read_sysctl(tb.netns(node), "net.ipv4.ip_forward") == ("1" if router else "0")
        assert read_sysctl(tb.netns(node), "net.ipv6.conf.all.forwarding") == str(int(router))
        assert read_sysctl(tb.netns(node), "net.ipv4.icmp_ratelimit") == "0"
        assert read_sysctl(tb.netns(node), "net.ipv6.icmp.ratelimit") == "0"
    ep = tb.exec("ep", ["ip", "-br", "addr", "show", "dev", "plt1-r1"], check=True).stdout
    assert tb.addr("ep", "r1") in ep and tb.addr("ep", "r1", 6) in ep
    assert tb.addrs("ep") == ["198.18.1.1", "2001:db8:0:1::1"]
    # an address outside the testbed is unreachable: nothing can leave
    sock = tb.socket("ep", socket.AF_INET, socket.SOCK_DGRAM)
    with sock, pytest.raises(OSError, match="unreachable"):
        sock.sendto(b"x", ("192.0.2.1", 9))


@pytest.mark.parametrize("v6", [False, True], ids=["ipv4", "ipv6"])
def test_ttl_probes_from_ep_see_every_router_then_the_target(testbed: Factory, v6: bool) -> None:
    tb = testbed("line")
    version = 6 if v6 else 4
    target = tb.addr("target", "r3", version)
    expected = [
        tb.addr("r1", "ep", version),
        tb.addr("r2", "r1", version),
        tb.addr("r3", "r2", version),
        target,
    ]
    exceeded, unreach = (
        (ICMPv6Type.TIME_EXCEEDED, ICMPv6Type.DEST_UNREACH)
        if v6
        else (ICMPType.TIME_EXCEEDED, ICMPType.DEST_UNREACH)
    )
    probes = [udp_ttl_probe(tb, "ep", target, ttl, 33434 + ttl, v6) for ttl in range(1, 6)]
    hops = [hop for hop in probes if hop is not None]
    assert len(hops) == len(probes), probes
    assert [ipaddress.ip_address(h.source) for h in hops[:4]] == [
        ipaddress.ip_address(a) for a in expected
    ]
    assert [h.icmp_type for h in hops] == [exceeded] * 3 + [unreach] * 2
    assert hops[3].code == (4 if v6 else 3)  # port unreachable


def test_icmp_errors_are_not_rate_limited(testbed: Factory) -> None:
    tb = testbed("line")
    target = tb.addr("target", "r3")
    listener = tb.socket("ep", socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sender = tb.socket("ep", socket.AF_INET, socket.SOCK_DGRAM)
    with listener, sender:
        sender.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
        for i in range(100):
            sender.sendto(b"p", (target, 40000 + i))
        got = 0
        deadline = time.monotonic() + 2.0
        while (
            got < 100 and select.select([listener], [], [], max(0, deadline - time.monotonic()))[0]
        ):
            data = listener.recv(2048)
            got += data[(data[0] & 0x0F) * 4] == ICMPType.TIME_EXCEEDED
    assert got == 100


def test_tree_every_endpoint_reaches_the_target_over_ipv4_and_ipv6(testbed: Factory) -> None:
    tb = testbed("tree")
    for ep in ("ep1", "ep2", "ep3", "ep4"):
        for version in (4, 6):
            dst = tb.addr("target", "c2", version)
            assert echo_once(tb, ep, dst, v6=version == 6), f"{ep} -> {dst}"
    # and the endpoints reach each other across the tree
    assert echo_once(tb, "ep1", tb.addr("ep4", "a4", 6), v6=True)


def test_relay_delay_is_accurate_to_better_than_0_2_ms(testbed: Factory) -> None:
    """RTT by kernel stamps minus 2 x 5 ms over 200 probes: p50 and p99 under 0.2 ms.

    Other jobs share this machine (machine-limits.md: "noise warning"), and a burst of their
    load can spoil one round; a failed round is measured once more. Every round is printed.
    """
    tb = testbed(pair(delay_ms=5))
    rounds = []
    for _ in range(2):
        result = kernel_rtts(tb, "a", tb.addr("b", "a"), count=200)
        assert result.lost == 0
        errors_ms = [abs(rtt - 10_000_000) / 1e6 for rtt in result.rtts_ns]
        p50, p99 = percentile(errors_ms, 0.5), percentile(errors_ms, 0.99)
        rounds.append((round(p50, 4), round(p99, 4)))
        print(f"relay RTT error over {len(errors_ms)} probes: p50 {p50:.4f} ms, p99 {p99:.4f} ms")
        if p50 < 0.2 and p99 < 0.2:
            break
    p50, p99 = rounds[-1]
    assert p50 < 0.2 and p99 < 0.2, f"(p50, p99) per round, ms: {rounds}"


def test_relay_loss_drops_the_configured_share(testbed: Factory) -> None:
    tb = testbed(pair(loss=0.2))
    sent = 600
    receiver = tb.socket("b", socket.AF_INET, socket.SOCK_DGRAM)
    sender = tb.socket("a", socket.AF_INET, socket.SOCK_DGRAM)
    seen = set()
    with receiver, sender:
        receiver.bind((tb.addr("b", "a"), 9000))
        receiver.setblocking(False)
        for i in range(sent):
            sender.sendto(i.to_bytes(4, "big"), (tb.addr("b", "a"), 9000))
            if i % 20 == 19:
                time.sleep(0.001)
                while select.select([receiver], [], [], 0)[0]:
                    seen.add(receiver.recv(64))
        while select.select([receiver], [], [], 0.3)[0]:
            seen.add(receiver.recv(64))
    # binomial(600, 0.8): mean 480, sd 9.8; 5 sd either side
    assert 431 <= len(seen) <= 529, len(seen)


def test_tbf_rate_limits_a_link(testbed: Factory) -> None:
    rate_bps = 4_000_000
    tb = testbed(pair(rate="4mbit"))
    payload = 1000
    frame_bits = (payload + 8 + 20 + 14) * 8
    receiver = tb.socket("b", socket.AF_INET, socket.SOCK_DGRAM)
    sender = tb.socket("a", socket.AF_INET, socket.SOCK_DGRAM)
    arrivals: list[float] = []
    with receiver, sender:
        receiver.bind((tb.addr("b", "a"), 9000))
        receiver.setblocking(False)
        start = time.monotonic()
        for i in range(700):  # offered: about 2x the rate, for 0.7 s
            while time.monotonic() < start + i * frame_bits / (2 * rate_bps):
                pass
            sender.sendto(bytes(payload), (tb.addr("b", "a"), 9000))
            while select.select([receiver], [], [], 0)[0]:
                receiver.recv(2048)
                arrivals.append(time.monotonic())
        while select.select([receiver], [], [], 0.2)[0]:
            receiver.recv(2048)
            arrivals.append(time.monotonic())
    measured = (len(arrivals) - 1) * frame_bits / (arrivals[-1] - arrivals[0])
    assert 0.85 * rate_bps < measured < 1.1 * rate_bps, measured


def test_tcp_through_a_relay_arrives_intact(testbed: Factory) -> None:
    tb = testbed(pair(delay_ms=1))
    data = os.urandom(1 << 20)
    server = tb.socket("b", socket.AF_INET6, socket.SOCK_STREAM)
    client = tb.socket("a", socket.AF_INET6, socket.SOCK_STREAM)
    got = hashlib.sha256()
    received = [0]

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(10)
            while chunk := conn.recv(65536):
                got.update(chunk)
                received[0] += len(chunk)

    with server, client:
        server.bind((tb.addr("b", "a", 6), 8080))
        server.listen(1)
        server.settimeout(10)
        thread = threading.Thread(target=serve)
        thread.start()
        client.settimeout(10)
        client.connect((tb.addr("b", "a", 6), 8080))
        client.sendall(data)
        client.shutdown(socket.SHUT_WR)
        thread.join(15)
    assert received[0] == len(data)
    assert got.hexdigest() == hashlib.sha256(data).hexdigest()


def test_exec_popen_and_socket_run_inside_the_node(testbed: Factory) -> None:
    tb = testbed("line")
    done = tb.exec("r2", ["ip", "-o", "link", "show"])
    assert done.returncode == 0 and "plt2-r1" in done.stdout and "plt3-r3" in done.stdout
    sleeper = tb.popen("target", ["sleep", "30"])
    inside = os.stat(f"/run/netns/{tb.netns('target')}").st_ino
    deadline = time.monotonic() + 2  # `ip netns exec` enters the namespace, then runs sleep
    while os.stat(f"/proc/{sleeper.pid}/ns/net").st_ino != inside and time.monotonic() < deadline:
        time.sleep(0.01)
    assert os.stat(f"/proc/{sleeper.pid}/ns/net").st_ino == inside
    tb.down()
    assert sleeper.poll() is not None  # stopped by down()
    with pytest.raises(TypeError):
        tb.exec("ep", "ip route")  # a string, not a list of arguments


def _leftovers(tag: str, pids: list[int]) -> tuple[list[str], list[int]]:
    namespaces = [n for n in list_netns() if n.startswith(f"{tag}-")]
    alive = [p for p in pids if is_relay_of(p, tag)]
    return namespaces, alive


def test_teardown_after_an_exception_inside_with_leaves_nothing() -> None:
    names = Names.from_env()
    topo = Topology.load("line").with_link_delay(1, ("r1", "r2"))
    instance = f"exc_{os.getpid()}"
    pids: list[int] = []

    def use_then_fail() -> None:
        with Testbed.up(topo, name=instance) as tb:
            pids.extend(tb.relay_pids.values())
            assert pids and all(is_relay_of(p, names.tag(instance)) for p in pids)
            raise RuntimeError("test failure")

    with pytest.raises(RuntimeError, match="test failure"):
        use_then_fail()
    assert _leftovers(names.tag(instance), pids) == ([], [])
    assert not names.state_file(instance).exists()
    assert "plt" not in host_links()


def test_a_failed_setup_removes_what_it_had_built(monkeypatch: pytest.MonkeyPatch) -> None:
    names = Names.from_env()
    instance = f"fail_{os.getpid()}"
    original = Builder.start_relays

    def relays_then_fail(self: Builder) -> None:
        original(self)
        raise SetupError("injected failure after the relays started")

    monkeypatch.setattr(Builder, "start_relays", relays_then_fail)
    with pytest.raises(SetupError, match="injected"):
        Testbed.start(pair(delay_ms=1), name=instance)
    assert _leftovers(names.tag(instance), []) == ([], [])
    assert not any(
        is_relay_of(int(p), names.tag(instance)) for p in os.listdir("/proc") if p.isdigit()
    )
    assert not names.state_file(instance).exists()


def test_a_name_in_use_is_refused_and_the_first_instance_survives(testbed: Factory) -> None:
    tb = testbed("line")
    with pytest.raises(InstanceError, match="already up"):
        Testbed.start("line", name=tb.name)
    assert tb.netns("ep") in list_netns()
    assert echo_once(tb, "ep", tb.addr("target", "r3"))


def test_relays_exit_when_their_testbed_process_dies() -> None:
    names = Names.from_env()
    instance = f"orphan_{os.getpid()}"
    script = (
        "import sys, time\n"
        "from packetlab.testbed import Testbed, Topology\n"
        "tb = Testbed.start(Topology.load('line').with_link_delay(1), name=sys.argv[1])\n"
        "print(' '.join(map(str, tb.relay_pids.values())), flush=True)\n"
        "time.sleep(60)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script, instance],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert owner.stdout is not None
        pids = [int(p) for p in owner.stdout.readline().split()]
        assert len(pids) == 4
        owner.kill()
        owner.wait(5)
        deadline = time.monotonic() + 3
        while (
            any(is_relay_of(p, names.tag(instance)) for p in pids) and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        assert not any(is_relay_of(p, names.tag(instance)) for p in pids)
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        if owner.stdout is not None:
            owner.stdout.close()
        from packetlab.testbed import teardown

        teardown(names, instance)
    assert _leftovers(names.tag(instance), []) == ([], [])


def test_a_relay_exits_by_itself_when_its_interfaces_disappear() -> None:
    names = Names.from_env()
    instance = f"gone_{os.getpid()}"
    tb = Testbed.start(pair(delay_ms=1), name=instance, detach=True)
    try:
        (pid,) = tb.relay_pids.values()
        for node in ("a", "b"):  # the veth peers go with these namespaces
            subprocess.run(["ip", "netns", "del", tb.netns(node)], check=True)
        deadline = time.monotonic() + 3
        while is_relay_of(pid, names.tag(instance)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not is_relay_of(pid, names.tag(instance))  # exited (or a zombie to reap)
    finally:
        tb.down()
    assert _leftovers(names.tag(instance), []) == ([], [])
