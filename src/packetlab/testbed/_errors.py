"""Exceptions of the testbed package.

TestbedError
├── TopologyError   the topology (file, text or dict) is invalid
├── InstanceError   bad instance name, a clash with a running instance, an unknown instance
└── SetupError      the host cannot run a testbed (not root, no `ip`), or building one failed
"""

from __future__ import annotations


class TestbedError(Exception):
    """Base of every testbed error."""

    __test__ = False  # not a pytest test class


class TopologyError(TestbedError):
    """The topology is invalid; the message names the file and the offending entry."""


class InstanceError(TestbedError):
    """An instance name is invalid, already in use, or unknown."""


class SetupError(TestbedError):
    """The host cannot build the testbed, or a step of building it failed."""
