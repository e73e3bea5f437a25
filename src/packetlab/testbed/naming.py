"""Names of everything a testbed instance creates, so cleanup can find it by prefix.

* namespaces: ``<prefix>-<instance>-<node>``; relay namespaces ``<prefix>-<instance>-@<a>~<b>``
  (``@`` and ``~`` never occur in node names);
* interfaces (inside the namespaces only): ``plt<link number>-<peer>``, at most 15 characters;
* relay processes: ``python -m packetlab.testbed.relay --instance <prefix>-<instance> ...``;
* state: ``<run dir>/<prefix>-<instance>.json`` (run dir: /run/packetlab-testbed).

The prefix is ``plt`` unless ``PACKETLAB_TESTBED_PREFIX`` says otherwise (test suites use their own
prefix so that ``down --all`` in one suite cannot touch another suite's instances).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from packetlab.testbed._errors import InstanceError

__all__ = ["DEFAULT_PREFIX", "DEFAULT_RUN_DIR", "Names", "default_instance_name"]

DEFAULT_PREFIX = "plt"
DEFAULT_RUN_DIR = Path("/run/packetlab-testbed")
PREFIX_ENV = "PACKETLAB_TESTBED_PREFIX"
RUN_DIR_ENV = "PACKETLAB_TESTBED_RUN_DIR"
RELAY_MODULE = "packetlab.testbed.relay"
INSTANCE_NAME = re.compile(r"[a-z0-9][a-z0-9_]{0,23}")
PREFIX = re.compile(r"[a-z][a-z0-9]{1,7}")


def default_instance_name(topology_name: str) -> str:
    """An instance name derived from a topology name (lower case; other characters become _)."""
    name = re.sub(r"[^a-z0-9_]", "_", topology_name.lower()).strip("_")[:24]
    return name or "testbed"


@dataclass(frozen=True, slots=True)
class Names:
    """Where and under which names one prefix's instances live."""

    prefix: str = DEFAULT_PREFIX
    run_dir: Path = DEFAULT_RUN_DIR

    @classmethod
    def from_env(cls) -> Names:
        prefix = os.environ.get(PREFIX_ENV, DEFAULT_PREFIX)
        if not PREFIX.fullmatch(prefix):
            raise InstanceError(
                f"{PREFIX_ENV}={prefix!r}: 2-8 characters a-z 0-9, starting with a-z"
            )
        return cls(prefix, Path(os.environ.get(RUN_DIR_ENV, str(DEFAULT_RUN_DIR))))

    @staticmethod
    def check_instance(instance: str) -> str:
        if not INSTANCE_NAME.fullmatch(instance):
            raise InstanceError(
                f"instance name {instance!r}: 1-24 characters a-z 0-9 _, "
                "starting with a letter or digit"
            )
        return instance

    def tag(self, instance: str) -> str:
        """``<prefix>-<instance>``: the instance's mark on namespaces, processes and state."""
        return f"{self.prefix}-{instance}"

    def namespace_prefix(self, instance: str) -> str:
        return f"{self.tag(instance)}-"

    def netns(self, instance: str, node: str) -> str:
        return f"{self.tag(instance)}-{node}"

    def relay_netns(self, instance: str, a: str, b: str) -> str:
        return f"{self.tag(instance)}-@{a}~{b}"

    def state_file(self, instance: str) -> Path:
        return self.run_dir / f"{self.tag(instance)}.json"

    def relay_log(self, instance: str) -> Path:
        return self.run_dir / f"{self.tag(instance)}.relay.log"

    def instance_of_netns(self, netns: str) -> str | None:
        """The instance a namespace name belongs to, if it carries this prefix."""
        head = f"{self.prefix}-"
        if not netns.startswith(head):
            return None
        instance = netns[len(head) :].split("-", 1)[0]
        return instance if INSTANCE_NAME.fullmatch(instance) and "-" in netns[len(head) :] else None

    def instance_of_state(self, path: Path) -> str | None:
        head = f"{self.prefix}-"
        if path.suffix != ".json" or not path.name.startswith(head):
            return None
        instance = path.stem[len(head) :]
        return instance if INSTANCE_NAME.fullmatch(instance) else None
