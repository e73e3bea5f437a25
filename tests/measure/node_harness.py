"""Run an in-process measurement against a real endpoint inside a testbed node (see
packetlab.testbed.sessions)."""

from __future__ import annotations

from packetlab.testbed.sessions import serve_in_node as run_on_node

__all__ = ["run_on_node"]
