"""Guardian cost per packet: check_send + sent, check_recv + received, in microseconds (virtual
clock, 50k packets/s).

CPU time of the process (time.process_time), so that other jobs on the machine disturb it less;
the best of several rounds. Scenarios:

- plain: certified experiment without chain limits, log and traffic index off;
- limited: the same with valid_dest, max_send_pkt/byte and two burst windows (usage leases in
  SQLite, exact sliding windows);
- logged: limited, plus the pcapng log and the traffic index (UDP payloads: synthesized headers);
- raw_logged: limited and logged, with whole raw IP packets;
- recv: check_recv + received of UDP payloads (max_recv_pkt/byte leases), log and index off;
- recv_logged: recv, plus the pcapng log and the traffic index (synthesized headers).

Buckets are set by an operator config loose enough never to shape, so every probe takes the
whole path. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from packetlab.guardian import ExperimentGuard, ExperimentIdentity, Guardian, GuardianConfig, Probe
from packetlab.pki.limits import parse_limits

CONFIG = """
max_wait_ms = 1000
[profiles.certified]
dest_bytes_per_s = 1e12
dest_burst_bytes = 1000000000000
dest_pkts_per_s = 1e9
dest_burst_pkts = 1000000000
source_bytes_per_s = 1e12
source_burst_bytes = 1000000000000
"""
LIMITS = (
    "max_send_pkt=100000000;max_send_byte=100000000000;valid_dest=198.18.0.0/15;"
    "max_burst_rate_pkt=1000000/1000000000;max_burst_rate_byte=10000000000/1000000000;"
)
LOCAL = [(bytes([198, 18, 0, 1]), 24)]
RECV_LIMITS = "max_recv_pkt=100000000;max_recv_byte=100000000000;"
STEP_NS = 20_000  # 50k probes per second


def probes(count: int, raw: bool) -> list[tuple[Probe, bytes]]:
    out = []
    for i in range(count):
        dst = bytes([198, 19, (i >> 8) & 0xFF, i & 0xFF])
        payload = bytes(64)
        packet = bytes(20 + 8) + payload if raw else payload
        probe = Probe(4, 17, LOCAL[0][0], dst, 40000, 33434 + i % 30, 92, raw=raw)
        out.append((probe, packet))
    return out


def run(limits: str | None, log: bool, raw: bool, n: int, lease: int) -> float:
    """check_send + sent."""
    with tempfile.TemporaryDirectory() as tmp:
        now = 1_700_000_000_000_000_000
        guardian, guard = open_guard(Path(tmp), limits, log, lease, now)
        work = probes(1000, raw)
        check, sent = guard.check_send, guard.sent
        allowed = 0
        start = time.process_time()
        for i in range(n):
            probe, packet = work[i % 1000]
            now += STEP_NS
            verdict = check(probe, now)
            if verdict.allowed and not verdict.wait_until_ns:
                sent(probe, packet, now)
                allowed += 1
            if i % 50_000 == 0:
                guardian.handle_timer(now)
        elapsed = time.process_time() - start
        guardian.close(now)
        if allowed != n:
            raise SystemExit(f"only {allowed} of {n} probes allowed")
    return elapsed / n * 1e6


def open_guard(
    state: Path, limits: str | None, log: bool, lease: int, now: int
) -> tuple[Guardian, ExperimentGuard]:
    text = f"lease_packets = {lease}\n" + CONFIG + f"[log]\nenabled = {str(log).lower()}\n"
    guardian = Guardian(GuardianConfig.from_toml(text), state, LOCAL)
    parsed = parse_limits(limits) if limits else None
    ident = ExperimentIdentity("bench", "ctl", "certified", parsed)
    return guardian, guardian.open_experiment(ident, now)


def run_recv(log: bool, n: int, lease: int) -> float:
    """check_recv + received of UDP payloads from 1000 sources."""
    with tempfile.TemporaryDirectory() as tmp:
        now = 1_700_000_000_000_000_000
        guardian, guard = open_guard(Path(tmp), RECV_LIMITS, log, lease, now)
        own = LOCAL[0][0]
        sources = [bytes([198, 19, (i >> 8) & 0xFF, i & 0xFF]) for i in range(1000)]
        payload = bytes(64)
        check, received = guard.check_recv, guard.received
        accepted = 0
        start = time.process_time()
        for i in range(n):
            now += STEP_NS
            if check(len(payload), now):
                received(4, 17, sources[i % 1000], own, payload, now, raw=False, sport=33434,
                         dport=40000)  # fmt: skip
                accepted += 1
            if i % 50_000 == 0:
                guardian.handle_timer(now)
        elapsed = time.process_time() - start
        guardian.close(now)
        if accepted != n:
            raise SystemExit(f"only {accepted} of {n} packets accepted")
    return elapsed / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", type=int, default=200_000, help="probes per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--lease-packets", type=int, default=64, help="usage lease size")
    args = parser.parse_args()
    scenarios = {
        "plain": (None, False, False),
        "limited": (LIMITS, False, False),
        "logged": (LIMITS, True, False),
        "raw_logged": (LIMITS, True, True),
    }
    result: dict[str, float] = {}
    for name, (limits, log, raw) in scenarios.items():
        best = min(run(limits, log, raw, args.n, args.lease_packets) for _ in range(args.rounds))
        result[f"{name}_us_per_probe"] = round(best, 3)
        print(f"{name:12s} {best:7.3f} us per probe (check_send + sent)")
    for name, log in (("recv", False), ("recv_logged", True)):
        best = min(run_recv(log, args.n, args.lease_packets) for _ in range(args.rounds))
        result[f"{name}_us_per_packet"] = round(best, 3)
        print(f"{name:12s} {best:7.3f} us per packet (check_recv + received)")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
