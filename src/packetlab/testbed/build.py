"""Building an instance from a plan: namespaces, sysctls, veths, addresses, routes, tbf, relays.

Everything is created inside the instance's namespaces; nothing is linked to the host
namespace (veths are created with both ends directly in their target namespaces), and no node has
a default route. Steps run in this order, each recorded in the state file as it completes, so a
failure at any point can be undone by :func:`packetlab.testbed.cleanup.teardown`.
"""

from __future__ import annotations

import math
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import packetlab
from packetlab.testbed._errors import SetupError
from packetlab.testbed._netns import disable_tx_checksum, write_sysctls
from packetlab.testbed.naming import RELAY_MODULE, Names
from packetlab.testbed.plan import Interface, LinkPlan, Plan
from packetlab.testbed.state import RelayRecord, State, write_state

__all__ = ["Builder", "RelayProcess", "preflight"]

NODE_SYSCTLS: dict[str, str | int] = {
    "net.ipv6.conf.all.accept_dad": 0,
    "net.ipv6.conf.default.accept_dad": 0,
    "net.ipv6.conf.default.accept_ra": 0,
    "net.ipv4.conf.all.rp_filter": 0,
    "net.ipv4.conf.default.rp_filter": 0,
    "net.ipv4.icmp_ratelimit": 0,
    "net.ipv4.icmp_msgs_per_sec": 1_000_000,
    "net.ipv4.icmp_msgs_burst": 100_000,
    "net.ipv6.icmp.ratelimit": 0,
    "net.ipv4.ping_group_range": "0 2147483647",
}
"""Every node: usable IPv6 at once (no DAD), no ICMP rate limits, unprivileged ping sockets."""
ROUTER_SYSCTLS: dict[str, str | int] = {
    "net.ipv4.ip_forward": 1,
    "net.ipv6.conf.all.forwarding": 1,
    "net.ipv4.icmp_errors_use_inbound_ifaddr": 1,
}
"""Routers forward and answer from the interface the probe came in on (as traceroute expects)."""
RELAY_SYSCTLS: dict[str, str | int] = {
    "net.ipv6.conf.all.disable_ipv6": 1,
    "net.ipv6.conf.default.disable_ipv6": 1,
}
"""Relay namespaces stay silent: no addresses at all on their interfaces."""
RELAY_READY_TIMEOUT_S = 15.0
RELAY_RT_PRIORITY = 5
"""SCHED_FIFO priority of relays: above every normal process, below the kernel's RT threads."""
TBF_QUEUE = "20ms"


def preflight(need_tc: bool = False) -> str | None:
    """Why this host cannot build a testbed, or None when it can."""
    if sys.platform != "linux":
        return "testbeds need Linux network namespaces"
    if os.geteuid() != 0:
        return "building a testbed needs root (network namespaces, veths, sysctls)"
    for tool in ("ip", "tc") if need_tc else ("ip",):
        if shutil.which(tool) is None:
            return f"the `{tool}` command (iproute2) is not installed"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.strip()}"
    return None


def _run(argv: list[str], what: str, script: str | None = None) -> None:
    try:
        result = subprocess.run(
            argv, input=script, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SetupError(f"{what}: {exc}") from None
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise SetupError(f"{what} failed: {detail}")


class RelayProcess:
    """A started relay: its Popen and what the state file records about it."""

    def __init__(self, popen: subprocess.Popen[bytes], record: RelayRecord) -> None:
        self.popen = popen
        self.record = record

    def reap(self, timeout: float = 2.0) -> None:
        """Close our pipe end; stop the relay if it still runs; wait for it."""
        if self.popen.stdout is not None and not self.popen.stdout.closed:
            self.popen.stdout.close()
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)


def _tbf_args(rate_bps: int) -> str:
    burst = max(3028, math.ceil(rate_bps / 8 * 0.002))
    return f"tbf rate {rate_bps}bit burst {burst} latency {TBF_QUEUE}"


class Builder:
    """Creates one instance; ``relays`` holds the relays started so far (also after a failure)."""

    def __init__(self, plan: Plan, names: Names, instance: str, state: State, detach: bool) -> None:
        self.plan = plan
        self.names = names
        self.instance = instance
        self.state = state
        self.detach = detach
        self.relays: list[RelayProcess] = []

    def ns(self, node: str) -> str:
        return self.names.netns(self.instance, node)

    def relay_ns(self, link: LinkPlan) -> str:
        return self.names.relay_netns(self.instance, link.spec.a, link.spec.b)

    def run(self) -> list[RelayProcess]:
        self.create_namespaces()
        self.create_links()
        self.configure_nodes()
        self.start_relays()
        return self.relays

    def create_namespaces(self) -> None:
        topology = self.plan.topology
        for node in topology.nodes:
            netns = self.ns(node.name)
            _run(["ip", "netns", "add", netns], f"creating namespace {netns}")
            self.state.namespaces[node.name] = netns
            write_state(self.names, self.state)
            sysctls = dict(NODE_SYSCTLS)
            if node.router:
                sysctls.update(ROUTER_SYSCTLS)
            write_sysctls(netns, sysctls)
        for link in self.plan.links:
            if link.relay_ifnames is not None:
                netns = self.relay_ns(link)
                _run(["ip", "netns", "add", netns], f"creating relay namespace {netns}")
                write_sysctls(netns, RELAY_SYSCTLS)

    def create_links(self) -> None:
        lines = []
        for link in self.plan.links:
            a, b = link.end_a, link.end_b
            ns_a, ns_b = self.ns(a.node), self.ns(b.node)
            if link.relay_ifnames is None:
                lines.append(_veth(a.name, a.mac, ns_a, b.name, b.mac, ns_b))
            else:
                ra, rb = link.relay_ifnames
                relay = self.relay_ns(link)
                lines.append(_veth(a.name, a.mac, ns_a, ra, None, relay))
                lines.append(_veth(rb, None, relay, b.name, b.mac, ns_b))
        if lines:
            _run(["ip", "-batch", "-"], "creating veth pairs", "".join(lines))

    def configure_nodes(self) -> None:
        for link in self.plan.links:
            if link.relay_ifnames is not None:
                ra, rb = link.relay_ifnames
                script = f"link set lo up\nlink set {ra} up\nlink set {rb} up\n"
                _run(["ip", "-n", self.relay_ns(link), "-batch", "-"], "relay links up", script)
        for node, ifaces in self.plan.interfaces.items():
            netns = self.ns(node)
            script = "link set lo up\n" + "".join(_iface_lines(i) for i in ifaces)
            _run(["ip", "-n", netns, "-batch", "-"], f"configuring {node} ({netns})", script)
            for iface in ifaces:
                link = self.plan.links[iface.link_index]
                if link.relay_ifnames is not None:
                    disable_tx_checksum(netns, iface.name)
            shaping = [
                f"qdisc add dev {i.name} root {_tbf_args(rate)}\n"
                for i in ifaces
                if (rate := self.plan.links[i.link_index].spec.rate_bps) is not None
            ]
            if shaping:
                _run(["tc", "-n", netns, "-batch", "-"], f"tbf on {node}", "".join(shaping))
        for node, routes in self.plan.routes.items():
            script = "".join(f"route add {r.dest} via {r.via} dev {r.dev}\n" for r in routes)
            if script:
                _run(["ip", "-n", self.ns(node), "-batch", "-"], f"routes of {node}", script)
        write_state(self.names, self.state)

    def start_relays(self) -> None:
        log_path = self.names.relay_log(self.instance)
        env = dict(os.environ)
        source_root = str(Path(packetlab.__file__).resolve().parents[1])
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (source_root, env.get("PYTHONPATH", "")) if p
        )
        seed = self.plan.topology.seed
        pending: list[RelayProcess] = []
        with open(log_path, "ab") as log:
            for link in self.plan.links:
                if link.relay_ifnames is None:
                    continue
                netns = self.relay_ns(link)
                spec = link.spec
                argv = [
                    "ip", "netns", "exec", netns,
                    sys.executable, "-m", RELAY_MODULE,
                    "--instance", self.names.tag(self.instance),
                    "--link", spec.label,
                    "--iface-a", link.relay_ifnames[0],
                    "--iface-b", link.relay_ifnames[1],
                    "--delay-ms", repr(spec.delay_ms),
                    "--loss", repr(spec.loss),
                    "--seed", str(seed * 100_003 + link.index),
                    "--rt-priority", str(RELAY_RT_PRIORITY),
                ]  # fmt: skip
                if not self.detach:
                    argv += ["--parent-pid", str(os.getpid())]
                try:
                    popen = subprocess.Popen(
                        argv,
                        stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE,
                        stderr=log,
                        env=env,
                        start_new_session=True,
                        close_fds=True,
                    )
                except OSError as exc:
                    raise SetupError(f"cannot start the relay of {spec.label}: {exc}") from None
                record = RelayRecord(popen.pid, None, netns, spec.label)
                relay = RelayProcess(popen, record)
                self.relays.append(relay)
                pending.append(relay)
                self.state.relays.append(record)
                write_state(self.names, self.state)
        self.wait_ready(pending, log_path)

    def wait_ready(self, pending: list[RelayProcess], log_path: Path) -> None:
        from packetlab.testbed._procs import start_time

        deadline = time.monotonic() + RELAY_READY_TIMEOUT_S
        for relay in pending:
            stdout = relay.popen.stdout
            assert stdout is not None
            line = b""
            left = deadline - time.monotonic()
            if left > 0 and select.select([stdout], [], [], left)[0]:
                line = stdout.readline()
            stdout.close()
            if line.strip() != b"ready":
                tail = _tail(log_path)
                raise SetupError(
                    f"the relay of link {relay.record.link} did not start"
                    + (f": {tail}" if tail else "")
                )
            relay.record.start_time = start_time(relay.popen.pid)
        write_state(self.names, self.state)


def _veth(
    name_a: str, mac_a: str | None, ns_a: str, name_b: str, mac_b: str | None, ns_b: str
) -> str:
    addr_a = f" address {mac_a}" if mac_a else ""
    addr_b = f" address {mac_b}" if mac_b else ""
    end_a = f"{name_a}{addr_a} netns {ns_a}"
    return f"link add {end_a} type veth peer name {name_b}{addr_b} netns {ns_b}\n"


def _iface_lines(iface: Interface) -> str:
    return (
        f"addr add {iface.addr4} dev {iface.name}\n"
        f"addr add {iface.addr6} dev {iface.name} nodad\n"
        f"link set {iface.name} up\n"
        f"neigh replace {iface.peer_addr4} lladdr {iface.peer_mac} dev {iface.name} nud permanent\n"
        f"neigh replace {iface.peer_addr6} lladdr {iface.peer_mac} dev {iface.name} nud permanent\n"
    )


def _tail(path: Path, lines: int = 3) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").strip().splitlines()[-lines:])
    except OSError:
        return ""
