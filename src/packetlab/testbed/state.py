"""The state file of a running instance: what it created, so anyone can take it down.

``<run dir>/<prefix>-<instance>.json`` is created exclusively before anything else (it is the
instance's lock), updated as namespaces and relays appear, and removed by teardown.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from packetlab.testbed._errors import InstanceError, SetupError
from packetlab.testbed.naming import Names

__all__ = ["RelayRecord", "State", "claim", "list_states", "read_state", "write_state"]


@dataclass(slots=True)
class RelayRecord:
    pid: int
    start_time: int | None
    netns: str
    link: str


@dataclass(slots=True)
class State:
    instance: str
    tag: str
    topology: dict[str, Any]
    """The topology as a TOML-shaped dict (``Topology.from_dict`` rebuilds it)."""
    owner_pid: int
    detached: bool
    status: str = "building"
    created: float = field(default_factory=time.time)
    namespaces: dict[str, str] = field(default_factory=dict)
    """node -> namespace."""
    relays: list[RelayRecord] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=1, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> State:
        raw = json.loads(text)
        raw["relays"] = [RelayRecord(**r) for r in raw.get("relays", [])]
        known = set(cls.__dataclass_fields__)  # a state file from an older version may say more
        return cls(**{key: value for key, value in raw.items() if key in known})


def claim(names: Names, state: State) -> Path:
    """Create the state file; fails if the instance already has one."""
    path = names.state_file(state.instance)
    try:
        names.run_dir.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        raise InstanceError(
            f"instance {state.instance!r} is already up (state {path}); "
            f"take it down with `packetlab testbed down {state.instance}` or choose another name"
        ) from None
    except OSError as exc:
        raise SetupError(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(state.to_json())
    return path


def write_state(names: Names, state: State) -> None:
    path = names.state_file(state.instance)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(state.to_json())
    tmp.replace(path)


def read_state(names: Names, instance: str) -> State | None:
    path = names.state_file(instance)
    try:
        return State.from_json(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError):
        return None  # unreadable state: cleanup falls back to finding things by prefix


def remove_state(names: Names, instance: str) -> None:
    for path in (names.state_file(instance), names.relay_log(instance)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def list_states(names: Names) -> dict[str, State | None]:
    """instance -> state (None when the file is unreadable) for every state file of the prefix."""
    found: dict[str, State | None] = {}
    if not names.run_dir.is_dir():
        return found
    for path in sorted(names.run_dir.iterdir()):
        instance = names.instance_of_state(path)
        if instance is not None:
            found[instance] = read_state(names, instance)
    return found
