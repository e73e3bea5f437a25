"""The guardian's public surface is pinned, and the core reads no clock and opens no socket."""

from __future__ import annotations

from pathlib import Path

from packetlab import guardian

MODULES = {
    "buckets",
    "config",
    "experiment",
    "guard",
    "optout",
    "packet_log",
    "pcapng",
    "policy",
    "prefixes",
    "probe",
    "traffic_index",
    "usage",
}


def test_public_surface() -> None:
    public = {name for name in dir(guardian) if not name.startswith("_")} - MODULES
    assert set(guardian.__all__) == public
    for name in ("Guardian", "ExperimentGuard", "ExperimentIdentity", "Probe", "Verdict",
                 "GuardianConfig", "SourcePolicy", "OptOutSource", "PacketLog", "UsageStore",
                 "TrafficIndex", "GuardianError"):  # fmt: skip
        assert name in guardian.__all__


def test_no_clock_reads_and_no_sockets() -> None:
    for module in Path(guardian.__file__).parent.glob("*.py"):
        text = module.read_text()
        for forbidden in ("import socket", "time.time", "time.monotonic", "perf_counter"):
            assert forbidden not in text, f"{module.name} uses {forbidden}"
