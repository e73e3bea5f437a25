"""Taking instances down: relays first, then namespaces (their veths go with them), then state.

Works from the state file when there is one and from the names alone when there is not: every
namespace whose name starts with ``<prefix>-<instance>-`` is the instance's, and the relays are
the verified relay processes recorded in the state or running inside those namespaces. Other
processes still inside the namespaces are reported, never killed.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass, field

from packetlab.testbed._netns import list_netns, netns_inode, process_netns_inode
from packetlab.testbed._procs import cmdline, relays_in_namespaces, stop_relays
from packetlab.testbed.naming import Names
from packetlab.testbed.state import State, list_states, read_state, remove_state

__all__ = ["Cleanup", "down_all", "instance_namespaces", "known_instances", "teardown"]


@dataclass(slots=True)
class Cleanup:
    instance: str
    namespaces: list[str] = field(default_factory=list)
    relays: list[int] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def instance_namespaces(names: Names, instance: str) -> list[str]:
    head = names.namespace_prefix(instance)
    return [n for n in list_netns() if n.startswith(head)]


def known_instances(names: Names) -> list[str]:
    """Instances with a state file or with namespaces, of this prefix."""
    found = set(list_states(names))
    for netns in list_netns():
        instance = names.instance_of_netns(netns)
        if instance is not None:
            found.add(instance)
    return sorted(found)


def _others_inside(inodes: set[int], skip: Iterable[int]) -> list[str]:
    skipped = set(skip) | {os.getpid()}
    found = []
    for entry in os.listdir("/proc"):
        pid = int(entry) if entry.isdigit() else 0
        if pid and pid not in skipped and process_netns_inode(pid) in inodes:
            shown = " ".join(cmdline(pid) or ["?"])[:80]
            found.append(f"process {pid} ({shown}) still runs inside; not killed")
    return found


def _delete_namespaces(namespaces: list[str]) -> list[str]:
    if not namespaces:
        return []
    script = "".join(f"netns del {n}\n" for n in namespaces)
    result = subprocess.run(
        ["ip", "-force", "-batch", "-"], input=script, capture_output=True, text=True, check=False
    )
    left = set(list_netns()) & set(namespaces)
    if left:
        return [f"could not delete namespace(s) {sorted(left)}: {result.stderr.strip()}"]
    return []


def teardown(names: Names, instance: str, state: State | None = None) -> Cleanup:
    """Remove everything of ``instance`` (relays, namespaces, state file)."""
    state = state if state is not None else read_state(names, instance)
    tag = names.tag(instance)
    report = Cleanup(instance)
    namespaces = instance_namespaces(names, instance)
    inodes = {ino for n in namespaces if (ino := netns_inode(n)) is not None}
    pids: dict[int, int | None] = {r.pid: r.start_time for r in state.relays} if state else {}
    for pid in relays_in_namespaces(inodes, tag):
        pids.setdefault(pid, None)
    report.relays = stop_relays(pids, tag)
    report.problems += _others_inside(inodes, report.relays)
    report.problems += _delete_namespaces(namespaces)
    report.namespaces = namespaces
    remove_state(names, instance)
    return report


def down_all(names: Names) -> list[Cleanup]:
    return [teardown(names, instance) for instance in known_instances(names)]
