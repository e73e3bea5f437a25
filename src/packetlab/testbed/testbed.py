"""A running testbed instance: build it, use its nodes, take it down.

    with Testbed.up("line") as tb:
        tb.exec("ep", ["ip", "route"])
        sock = tb.socket("ep", socket.AF_INET, socket.SOCK_DGRAM)
        sock.sendto(b"x", (tb.addr("target", "r3"), 9))

Every node is a network namespace; nothing is connected to the host namespace, so traffic
inside a testbed cannot leave it. ``down()`` (run by the ``with`` block on any exit) stops the
relays and the processes started with :meth:`Testbed.popen`, and deletes the namespaces.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket as socket_module
import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from packetlab.testbed._errors import InstanceError, SetupError, TestbedError
from packetlab.testbed._netns import call_in_netns, netns_socket
from packetlab.testbed.build import Builder, RelayProcess, preflight
from packetlab.testbed.cleanup import Cleanup, instance_namespaces, teardown
from packetlab.testbed.naming import Names, default_instance_name
from packetlab.testbed.plan import Interface, Plan, make_plan
from packetlab.testbed.state import State, claim, remove_state, write_state
from packetlab.testbed.topology import Topology

__all__ = ["Testbed"]

log = logging.getLogger(__name__)
T = TypeVar("T")
AUTO_NAME_ATTEMPTS = 50


class Testbed:
    """One built instance of a topology."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        plan: Plan,
        instance: str,
        names: Names,
        state: State,
        relays: list[RelayProcess],
    ) -> None:
        self.plan = plan
        self.name = instance
        self.names = names
        self.state = state
        self._relays = relays
        self._children: list[subprocess.Popen[Any]] = []
        self._down = False

    # -- life cycle -----------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        topology: Topology | str | Path,
        *,
        name: str | None = None,
        detach: bool = False,
        names: Names | None = None,
    ) -> Testbed:
        """Build an instance; ``name`` defaults to the topology's name (or name_2, ...).

        With ``detach`` the relays outlive this process; take the instance down with
        ``packetlab testbed down NAME``. On any failure, whatever was built is removed.
        """
        topo = topology if isinstance(topology, Topology) else Topology.load(topology)
        names = names or Names.from_env()
        reason = preflight(need_tc=any(link.rate_bps for link in topo.links))
        if reason:
            raise SetupError(reason)
        plan = make_plan(topo)
        for warning in plan.warnings:
            log.warning("%s: %s", topo.name, warning)
        state = _claim(names, topo, name, detach)
        instance = state.instance
        if instance_namespaces(names, instance):
            remove_state(names, instance)
            raise InstanceError(
                f"namespaces of an earlier instance {instance!r} are still there; "
                f"remove them with `packetlab testbed down {instance}`"
            )
        builder = Builder(plan, names, instance, state, detach)
        try:
            relays = builder.run()
            state.status = "up"
            write_state(names, state)
        except BaseException:
            _undo(names, instance, state)
            for relay in builder.relays:
                relay.reap()
            raise
        testbed = cls(plan, instance, names, state, relays)
        if not detach:
            atexit.register(testbed.down)  # a testbed left up is removed when Python exits
        return testbed

    @classmethod
    @contextmanager
    def up(
        cls,
        topology: Topology | str | Path,
        *,
        name: str | None = None,
        names: Names | None = None,
    ) -> Iterator[Testbed]:
        """``with Testbed.up(topology) as tb:`` builds, yields, and always takes it down."""
        testbed = cls.start(topology, name=name, names=names)
        try:
            yield testbed
        finally:
            testbed.down()

    def down(self) -> Cleanup | None:
        """Stop our processes and relays, delete the namespaces and the state (idempotent)."""
        if self._down:
            return None
        self._down = True
        atexit.unregister(self.down)
        for child in self._children:
            _stop_child(child)
        report = teardown(self.names, self.name, self.state)
        for relay in self._relays:
            relay.reap()
        for problem in report.problems:
            log.warning("testbed %s: %s", self.name, problem)
        return report

    def __enter__(self) -> Testbed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()

    # -- queries ----------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        return self.plan.topology

    @property
    def nodes(self) -> tuple[str, ...]:
        return self.plan.topology.node_names

    @property
    def relay_pids(self) -> dict[str, int]:
        """link label -> relay pid."""
        return {r.record.link: r.popen.pid for r in self._relays}

    def netns(self, node: str) -> str:
        """The network namespace of ``node``."""
        self.plan.topology.node(node)
        return self.names.netns(self.name, node)

    def interface(self, node: str, peer: str) -> Interface:
        return self.plan.interface(node, peer)

    def addr(self, node: str, peer: str, version: int = 4) -> str:
        """The address of ``node`` on its link to ``peer`` (``version`` 4 or 6)."""
        iface = self.plan.interface(node, peer)
        return str((iface.addr4 if version == 4 else iface.addr6).ip)

    def addrs(self, node: str, version: int | None = None) -> list[str]:
        """All addresses of ``node`` (IPv4 then IPv6, or one version), in link order."""
        self.plan.topology.node(node)
        ifaces = self.plan.interfaces[node]
        v4 = [str(i.addr4.ip) for i in ifaces]
        v6 = [str(i.addr6.ip) for i in ifaces]
        if version is None:
            return v4 + v6
        if version not in (4, 6):
            raise ValueError(f"version must be 4 or 6, got {version!r}")
        return v4 if version == 4 else v6

    # -- doing things inside nodes ----------------------------------------------------------

    def _argv(self, node: str, argv: Sequence[str]) -> list[str]:
        if isinstance(argv, str):
            raise TypeError("argv is a list of arguments, not a string")
        return ["ip", "netns", "exec", self.netns(node), *argv]

    def exec(
        self,
        node: str,
        argv: Sequence[str],
        *,
        check: bool = False,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside ``node`` to completion; output captured as text."""
        return subprocess.run(
            self._argv(node, argv),
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def popen(self, node: str, argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[Any]:
        """Start a command inside ``node``; it is stopped by ``down()`` if still running."""
        child = subprocess.Popen(self._argv(node, argv), **kwargs)
        self._children.append(child)
        return child

    def socket(
        self,
        node: str,
        family: int = socket_module.AF_INET,
        kind: int = socket_module.SOCK_DGRAM,
        proto: int = 0,
    ) -> socket_module.socket:
        """A socket living in ``node``'s namespace (made in a thread that entered it)."""
        return netns_socket(self.netns(node), family, kind, proto)

    def call(self, node: str, fn: Callable[[], T]) -> T:
        """Run ``fn()`` in a thread inside ``node``'s namespace and return its result."""
        return call_in_netns(self.netns(node), fn)


def _claim(names: Names, topo: Topology, name: str | None, detach: bool) -> State:
    def state_for(instance: str) -> State:
        return State(
            instance=instance,
            tag=names.tag(instance),
            topology=topo.to_dict(),
            owner_pid=os.getpid(),
            detached=detach,
        )

    if name is not None:
        state = state_for(names.check_instance(name))
        claim(names, state)
        return state
    base = default_instance_name(topo.name)
    for attempt in range(1, AUTO_NAME_ATTEMPTS + 1):
        candidate = base if attempt == 1 else f"{base[:20]}_{attempt}"
        state = state_for(candidate)
        try:
            claim(names, state)
        except InstanceError:
            continue
        if instance_namespaces(names, candidate):
            remove_state(names, candidate)
            continue
        return state
    raise InstanceError(f"no free instance name like {base!r}; take old instances down")


def _undo(names: Names, instance: str, state: State) -> None:
    try:
        report = teardown(names, instance, state)
    except (OSError, TestbedError) as exc:
        log.error("testbed %s: cleanup after a failed setup failed too: %s", instance, exc)
        return
    for problem in report.problems:
        log.warning("testbed %s: %s", instance, problem)


def _stop_child(child: subprocess.Popen[Any]) -> None:
    if child.poll() is not None:
        return
    child.terminate()
    try:
        child.wait(timeout=2)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait(timeout=2)
