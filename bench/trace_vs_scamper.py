"""Our traceroute against scamper's and traceroute(8)'s, on one testbed, in one run.

The line testbed (ep - r1 - r2 - r3 - target, 5 ms one way per link). Each tool runs in node
"ep" and is timed from command start to its result (process exit):
- ours: `packetlab trace TARGET -q 1` (a controller for this measurement); the endpoint, in
  the same node, is already running and polls for its controller every 20 ms, as a deployed
  endpoint waits for work;
- scamper: `scamper -O text -c "trace -P udp-paris" -i TARGET` (one answer per hop);
- traceroute(8): `traceroute -n TARGET` (three probes per hop, 16 in flight).
Each tool's hops are printed; hops_identical says whether all three found the same addresses.
Root only; scamper and traceroute come from Debian packages (`make test` installs them).
Last line: {"ours_s": A, "scamper_s": B, "traceroute_s": C, "ratio_vs_scamper": A/B,
"hops_identical": true}
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _harness import PACKETLAB
from _testbed_bench import line_testbed
from packetlab.testbed import Testbed

PORT = 7788
HOP_LINE = re.compile(r"^\s*(\d+)\s+(\S+)")


def timed(tb: Testbed, argv: list[str], timeout: float = 60) -> tuple[float, str]:
    start = time.monotonic()
    proc = tb.popen("ep", argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = proc.communicate(timeout=timeout)
    elapsed = time.monotonic() - start
    if proc.returncode:
        sys.exit(f"{argv[0]} failed ({proc.returncode}): {err.strip()}")
    return elapsed, out


def hops_of_text(output: str) -> list[str | None]:
    hops: list[str | None] = []
    for line in output.splitlines():
        match = HOP_LINE.match(line)
        if match:
            address = match.group(2)
            hops.append(None if address == "*" else address)
    return hops


def ours(tb: Testbed, home: Path, config: Path, target: str) -> tuple[float, list[str | None]]:
    """`packetlab trace`, timed from its start to its result. The endpoint is what a deployed
    one is: already running, polling for its controller (every 20 ms here)."""
    endpoint = tb.popen(
        "ep",
        [*PACKETLAB, "--home", str(home), "endpoint", "-c", str(config), f"127.0.0.1:{PORT}",
         "--sessions", "1", "--attempts", "1000"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        time.sleep(1.5)  # up and polling
        start = time.monotonic()
        command = tb.popen(
            "ep",
            [*PACKETLAB, "--home", str(home), "trace", target, "-q", "1", "-a",
             f"127.0.0.1:{PORT}", "--wait", "30"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        out, err = command.communicate(timeout=60)
        elapsed = time.monotonic() - start
        if command.returncode:
            sys.exit(f"packetlab trace failed ({command.returncode}): {err.strip()}")
        endpoint.wait(timeout=30)
    finally:
        if endpoint.poll() is None:
            endpoint.kill()
            endpoint.wait()
    record = json.loads(out.splitlines()[-1])
    hops = [
        next((reply.get("from") for reply in hop["result"] if "from" in reply), None)
        for hop in record["result"]
    ]
    return elapsed, hops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.parse_args()
    for tool in ("scamper", "traceroute"):
        if not shutil.which(tool):
            sys.exit(f"skipped: {tool} is not installed (apt-get install {tool})")
    with line_testbed() as (tb, home, config):
        target = tb.addr("target", "r3", 4)
        ours_s, ours_hops = ours(tb, home, config, target)
        scamper_s, out = timed(tb, ["scamper", "-O", "text", "-c", "trace -P udp-paris", "-i",
                                    target])  # fmt: skip
        scamper_hops = hops_of_text(out)
        traceroute_s, out = timed(tb, ["traceroute", "-n", target])
        traceroute_hops = hops_of_text(out)
    for name, seconds, hops in (
        ("ours", ours_s, ours_hops),
        ("scamper", scamper_s, scamper_hops),
        ("traceroute", traceroute_s, traceroute_hops),
    ):
        print(f"{name:10s} {seconds:7.3f} s  hops: {' '.join(h or '*' for h in hops)}")
    print(f"ours / scamper = {ours_s / scamper_s:.2f}, ours / traceroute = "
          f"{ours_s / traceroute_s:.2f}")  # fmt: skip
    identical = ours_hops == scamper_hops == traceroute_hops
    print(json.dumps({
        "ours_s": round(ours_s, 3),
        "scamper_s": round(scamper_s, 3),
        "traceroute_s": round(traceroute_s, 3),
        "ratio_vs_scamper": round(ours_s / scamper_s, 3),
        "hops_identical": identical,
    }))  # fmt: skip


if __name__ == "__main__":
    main()
