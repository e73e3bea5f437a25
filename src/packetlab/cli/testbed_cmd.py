"""`packetlab testbed`: build, inspect, enter and remove network-namespace testbeds."""

from __future__ import annotations

import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click

from packetlab.cli._common import AliasedGroup, BadInput

if TYPE_CHECKING:
    from rich.table import Table

    from packetlab.testbed import Cleanup, Plan


class TestbedFailure(BadInput):
    """The host could not build or remove a testbed; exit code 1."""

    __test__ = False
    exit_code = 1


def _translate(exc: Exception) -> click.ClickException:
    from packetlab.testbed import InstanceError, TopologyError

    if isinstance(exc, TopologyError | InstanceError):
        return BadInput(str(exc))
    return TestbedFailure(str(exc))


def _names() -> Any:
    from packetlab.testbed import Names, TestbedError

    try:
        return Names.from_env()
    except TestbedError as exc:
        raise _translate(exc) from None


def _need_root() -> None:
    from packetlab.testbed import preflight

    reason = preflight()
    if reason:
        raise TestbedFailure(reason)


@click.group("testbed", cls=AliasedGroup, aliases={"ls": "status", "st": "status"})
def testbed() -> None:
    """Network-namespace testbeds: hosts, routers, links with delay, loss and rate.

    Each node is a network namespace named plt-INSTANCE-NODE. Nothing is connected to the
    host's namespace and no node has a default route: traffic inside a testbed cannot leave
    it. Needs root.

    \b
    packetlab testbed show line                 # addresses and routes, no root needed
    packetlab testbed up line                   # build; Ctrl-C takes it down
    packetlab testbed up my.toml --name lab1 --detach
    packetlab testbed status
    packetlab testbed exec lab1 ep -- ping -c 3 198.18.4.2
    packetlab testbed down lab1                 # or: down --all

    Bundled topologies: line (ep-r1-r2-r3-target), tree (ep1..ep4 to target).
    """


def _load(topology: str, delay_ms: float | None) -> Any:
    from packetlab.testbed import TestbedError, Topology

    try:
        topo = Topology.load(topology)
        if delay_ms is not None:
            topo = topo.with_link_delay(delay_ms)
    except TestbedError as exc:
        raise _translate(exc) from None
    return topo


def _plan_table(plan: Plan, title: str) -> Table:
    from rich import box
    from rich.table import Table

    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("node", "role", "interface", "peer", "IPv4", "IPv6", "link"):
        table.add_column(column, no_wrap=True)
    for node in plan.topology.nodes:
        role = "router" if node.router else "host"
        for iface in plan.interfaces[node.name]:
            spec = plan.links[iface.link_index].spec
            link = []
            if spec.delay_ms:
                link.append(f"{spec.delay_ms:g} ms")
            if spec.loss:
                link.append(f"loss {spec.loss:g}")
            if spec.rate_bps:
                link.append(f"{spec.rate_bps / 1e6:g} Mbit/s")
            row = [node.name, role, iface.name, iface.peer, str(iface.addr4), str(iface.addr6)]
            row.append(", ".join(link))
            table.add_row(*row)
            role = ""
        if not plan.interfaces[node.name]:
            table.add_row(node.name, role, "-", "-", "-", "-", "")
    return table


def _console() -> Any:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 160
    return Console(highlight=False, soft_wrap=False, width=width)


@testbed.command("show")
@click.argument("topology")
@click.option("--routes", is_flag=True, help="Also list every node's static routes.")
@click.option("--delay-ms", type=click.FloatRange(0, 10_000), help="Delay every link by this.")
def show(topology: str, routes: bool, delay_ms: float | None) -> None:
    """Print TOPOLOGY's nodes, addresses (and routes) without building it.

    TOPOLOGY is a TOML file or a bundled name (line, tree).
    """
    from packetlab.testbed import make_plan

    topo = _load(topology, delay_ms)
    plan = make_plan(topo)
    out = _console()
    out.print(_plan_table(plan, f"topology {topo.name} ({topo.source})"))
    if routes:
        for node, node_routes in plan.routes.items():
            out.print(f"[bold]{node}[/bold]")
            for route in node_routes:
                out.print(f"  {route.dest} via {route.via} dev {route.dev}")
    for warning in plan.warnings:
        click.echo(f"warning: {warning}", err=True)


@testbed.command("up")
@click.argument("topology")
@click.option("--name", "instance", help="Instance name (a-z 0-9 _; default: the topology's).")
@click.option(
    "--detach",
    is_flag=True,
    help="Leave the testbed up and return; remove it later with `packetlab testbed down`.",
)
@click.option("--delay-ms", type=click.FloatRange(0, 10_000), help="Delay every link by this.")
def up(topology: str, instance: str | None, detach: bool, delay_ms: float | None) -> None:
    """Build TOPOLOGY (a TOML file or a bundled name) and keep it up.

    Without --detach the command stays in the foreground until Ctrl-C or SIGTERM, then takes
    the testbed down. With --detach it returns at once and the state is kept in
    /run/packetlab-testbed/.

    \b
    packetlab testbed up line
    packetlab testbed up tree --name t1 --delay-ms 5 --detach
    """
    from packetlab.testbed import Testbed, TestbedError

    topo = _load(topology, delay_ms)
    _need_root()
    stop = threading.Event()
    previous = {}
    if not detach:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        try:
            bed = Testbed.start(topo, name=instance, detach=detach)
        except TestbedError as exc:
            raise _translate(exc) from None
        if stop.is_set():
            bed.down()
            raise click.exceptions.Exit(130)
        _console().print(_plan_table(bed.plan, f"testbed {bed.name} (topology {topo.name})"))
        click.echo(f"node namespaces: {bed.names.netns(bed.name, '<node>')}")
        for warning in bed.plan.warnings:
            click.echo(f"warning: {warning}", err=True)
        if detach:
            click.echo(
                f"testbed {bed.name} is up; take it down with: packetlab testbed down {bed.name}"
            )
            return
        click.echo(f"testbed {bed.name} is up; Ctrl-C takes it down", err=True)
        while not stop.wait(1.0):
            dead = [link for link, pid in bed.relay_pids.items() if not _alive(pid)]
            if dead:
                click.echo(f"packetlab: relay of link(s) {', '.join(dead)} stopped", err=True)
                break
        report = bed.down()
        _echo_cleanup([report] if report else [])
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _alive(pid: int) -> bool:
    try:
        finished, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return os.path.exists(f"/proc/{pid}")
    return finished == 0


def _echo_cleanup(reports: list[Cleanup]) -> None:
    for report in reports:
        click.echo(
            f"testbed {report.instance}: removed {len(report.namespaces)} namespace(s), "
            f"stopped {len(report.relays)} relay(s)"
        )
        for problem in report.problems:
            click.echo(f"warning: {problem}", err=True)


@testbed.command("down")
@click.argument("instance", required=False)
@click.option("--all", "all_", is_flag=True, help="Take down every instance (plt-* namespaces).")
def down(instance: str | None, all_: bool) -> None:
    """Take down INSTANCE, or every instance with --all.

    Also cleans up after a crash: namespaces are found by their plt-INSTANCE- prefix even when
    the state file is gone, and only relay processes verified as ours are stopped.
    """
    from packetlab.testbed import Names, TestbedError, down_all, teardown
    from packetlab.testbed.cleanup import instance_namespaces
    from packetlab.testbed.state import read_state

    if bool(instance) == all_:
        raise BadInput("give an INSTANCE or --all (see `packetlab testbed status`)")
    _need_root()
    names = _names()
    try:
        if all_:
            reports = down_all(names)
            if not reports:
                click.echo("no testbed instances")
            _echo_cleanup(reports)
            return
        assert instance is not None
        Names.check_instance(instance)
        state = read_state(names, instance)
        if state is None and not instance_namespaces(names, instance):
            raise BadInput(f"no testbed instance {instance!r} (see `packetlab testbed status`)")
        _echo_cleanup([teardown(names, instance, state)])
    except TestbedError as exc:
        raise _translate(exc) from None


@testbed.command("status")
def status() -> None:
    """List the testbed instances on this host."""
    from rich import box
    from rich.table import Table

    from packetlab.testbed import known_instances
    from packetlab.testbed._procs import is_relay_of
    from packetlab.testbed.cleanup import instance_namespaces
    from packetlab.testbed.state import read_state

    names = _names()
    instances = known_instances(names)
    if not instances:
        click.echo("no testbed instances")
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("instance", "topology", "state", "nodes", "relays", "owner", "namespaces"):
        table.add_column(column, no_wrap=True)
    for instance in instances:
        state = read_state(names, instance)
        namespaces = instance_namespaces(names, instance)
        tag = names.tag(instance)
        if state is None:
            table.add_row(
                instance, "?", "no state file (crashed?)", "-", "-", "-", str(len(namespaces))
            )
            continue
        alive = sum(is_relay_of(r.pid, tag, r.start_time) for r in state.relays)
        owner_alive = os.path.exists(f"/proc/{state.owner_pid}")
        if state.detached:
            owner = "detached"
        else:
            owner = f"pid {state.owner_pid}" + ("" if owner_alive else " (gone)")
        label = state.status
        if not state.detached and not owner_alive:
            label = "stale"
        table.add_row(
            instance,
            str(state.topology.get("name", "?")),
            label,
            str(len(state.namespaces)),
            f"{alive}/{len(state.relays)}",
            owner,
            str(len(namespaces)),
        )
    _console().print(table)


@testbed.command(
    "exec", context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False}
)
@click.argument("instance")
@click.argument("node")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(instance: str, node: str, command: tuple[str, ...]) -> None:
    """Run COMMAND inside NODE of INSTANCE (via `ip netns exec`).

    \b
    packetlab testbed exec line ep -- ip route
    packetlab testbed exec line target -- python3 -m http.server 8080
    """
    from packetlab.testbed import Names, TestbedError
    from packetlab.testbed._netns import list_netns
    from packetlab.testbed.cleanup import instance_namespaces

    _need_root()
    names = _names()
    try:
        Names.check_instance(instance)
    except TestbedError as exc:
        raise _translate(exc) from None
    netns = names.netns(instance, node)
    if netns not in list_netns():
        present = instance_namespaces(names, instance)
        if not present:
            raise BadInput(f"no testbed instance {instance!r} (see `packetlab testbed status`)")
        nodes = sorted(n[len(names.namespace_prefix(instance)) :] for n in present)
        nodes = [n for n in nodes if not n.startswith("@")]
        raise BadInput(f"instance {instance!r} has no node {node!r} (nodes: {', '.join(nodes)})")
    argv = list(command[1:] if command and command[0] == "--" else command)
    if not argv:
        raise BadInput("give a COMMAND after the node")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execvp("ip", ["ip", "netns", "exec", netns, *argv])
    except OSError as exc:
        raise TestbedFailure(f"cannot run `ip netns exec`: {exc.strerror}") from None
