"""UDP bandwidth (the paper's t0+5 burst): the rate a tbf on the endpoint's link lets through.

On the line testbed with a tbf on ep—r1, an endpoint in "ep" sends a scheduled burst to a
receiver socket in "target"; the measured rate must be within 5 % of the tbf's rate, also when
the burst overflows the tbf's queue. The estimator and the receiver's record are tested on
synthetic arrivals.
"""

from __future__ import annotations

import asyncio
import json
import random
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from packetlab.testbed.sessions import serve_in_node as run_on_node

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from netns_session import endpoint_config, init_home
from packetlab.controller.api import EndpointHandle
from packetlab.measure.bandwidth import (
    HEADER,
    MAGIC,
    BurstRecord,
    bandwidth,
    make_payload,
    sustained_rate,
)
from packetlab.measure.errors import MeasurementError
from packetlab.measure.results import BandwidthResult
from packetlab.testbed import Topology
from packetlab.testbed._netns import netns_socket

SIZE = 1200
ETHERNET = 14
"""tbf on a veth counts the Ethernet header too: the IP-level rate is a little lower."""
TOLERANCE = 0.05
START_IN = 0.3


# the testbed ---------------------------------------------------------------------------------


def _shaped_line(testbed: Any, mbit: int) -> Any:
    return testbed(Topology.load("line").with_link_changes(("ep", "r1"), rate=f"{mbit}mbit"))


def _tbf(tb: Any) -> dict[str, Any]:
    """The tbf on ep's interface towards r1, as tc reports it (rate in bytes/s, lat in us)."""
    dev = tb.interface("ep", "r1").name
    out = tb.exec("ep", ["tc", "-j", "-s", "qdisc", "show", "dev", dev]).stdout
    (qdisc,) = [q for q in json.loads(out) if q["kind"] == "tbf"]
    return dict(qdisc)


def _queue_packets(tbf: dict[str, Any], ip_bytes: int) -> int:
    """How many of our frames the tbf holds: its limit is rate x latency + burst bytes."""
    opts = tbf["options"]
    limit = opts["rate"] * opts["lat"] / 1e6 + opts["burst"]
    return int(limit // (ip_bytes + ETHERNET))


@contextmanager
def _receiver(tb: Any, family: int) -> Iterator[socket.socket]:
    af = socket.AF_INET6 if family == 6 else socket.AF_INET
    sock = netns_socket(tb.netns("target"), af, socket.SOCK_DGRAM)
    try:
        sock.bind((tb.addr("target", "r3", family), 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def _measure(tb: Any, tmp_path: Path, sock: socket.socket, **kw: Any) -> BandwidthResult:
    home = init_home(tmp_path / "home")
    config = endpoint_config(home, tb, "ep")

    async def run(endpoint: EndpointHandle) -> BandwidthResult:
        return await bandwidth(endpoint, sock, start_in=START_IN, timeout=5, **kw)

    return run_on_node(tb, "ep", home, config, run, timeout=30)


def _report(result: BandwidthResult, rate_bps: int, family: int) -> None:
    ip_bytes = result.bytes_received // result.received
    naive = 8 * ip_bytes * (result.received - 1) / result.duration_s
    print(
        f"tbf {rate_bps / 1e6:g} Mbit/s IPv{family}: measured {result.rate_bps / 1e6:.3f} "
        f"(IP level expected {rate_bps * ip_bytes / (ip_bytes + ETHERNET) / 1e6:.3f}; naive "
        f"first-to-last {naive / 1e6:.3f}); sent {result.sent} received {result.received} "
        f"in {result.duration_s * 1e3:.2f} ms"
    )


@pytest.mark.parametrize(("mbit", "family"), [(5, 4), (20, 4), (20, 6)])
def test_rate_is_within_5_percent_of_the_tbf_rate(
    testbed: Any, tmp_path: Path, mbit: int, family: int
) -> None:
    tb = _shaped_line(testbed, mbit)
    tbf = _tbf(tb)
    rate_bps = 8 * tbf["options"]["rate"]
    assert rate_bps == mbit * 1_000_000
    ip_bytes = SIZE + 8 + (40 if family == 6 else 20)
    packets = int(0.8 * _queue_packets(tbf, ip_bytes))  # the queue holds the whole burst
    with _receiver(tb, family) as sock:
        result = _measure(tb, tmp_path, sock, packets=packets, size=SIZE)
        host, port = sock.getsockname()[:2]
    _report(result, rate_bps, family)
    assert result.sent == result.received == packets
    assert _tbf(tb)["drops"] == 0
    assert abs(result.rate_bps / rate_bps - 1) <= TOLERANCE
    assert (result.receiver, result.port, result.size) == (host, port, SIZE)
    assert result.bytes_received == packets * ip_bytes
    assert result.origin.src_addr == tb.addr("ep", "r1", family)
    # the burst spreads over the link: at least the bytes beyond the bucket, at the rate
    beyond_bucket = packets * (ip_bytes + ETHERNET) - tbf["options"]["burst"] - ip_bytes
    assert result.duration_s >= 0.95 * 8 * beyond_bucket / rate_bps
    assert result.started_ns > 0


def test_queue_drops_do_not_bias_the_rate(testbed: Any, tmp_path: Path) -> None:
    """The burst overflows the tbf's queue; strays sent to the receiver meanwhile (another
    run's nonce, foreign data) are not counted."""
    tb = _shaped_line(testbed, 20)
    tbf = _tbf(tb)
    rate_bps = 8 * tbf["options"]["rate"]
    ip_bytes = SIZE + 28
    packets = 4 * _queue_packets(tbf, ip_bytes)
    home = init_home(tmp_path / "home")
    config = endpoint_config(home, tb, "ep")
    # another run's datagrams, numbered as the tail of ours (which the queue drops), and junk
    strays = [make_payload(b"\xee" * 8, packets - 1 - i, SIZE) for i in range(10)]
    strays += [b"x" * SIZE] * 10
    with (
        _receiver(tb, 4) as sock,
        netns_socket(tb.netns("target"), socket.AF_INET, socket.SOCK_DGRAM) as other,
    ):
        sent_strays: list[int] = []

        def send_strays() -> None:
            for data in strays:
                sent_strays.append(other.sendto(data, sock.getsockname()))

        async def run(endpoint: EndpointHandle) -> BandwidthResult:
            # during the burst: bandwidth() drains the receiver before it starts
            asyncio.get_running_loop().call_later(START_IN + 0.01, send_strays)
            return await bandwidth(
                endpoint, sock, packets=packets, size=SIZE, start_in=START_IN, timeout=5
            )

        result = run_on_node(tb, "ep", home, config, run, timeout=30)
        assert len(sent_strays) == len(strays)
        with pytest.raises(BlockingIOError):  # they came while bandwidth() was reading
            sock.recv(1)
    _report(result, rate_bps, 4)
    assert result.sent == packets
    assert result.received < result.sent
    assert _tbf(tb)["drops"] == result.sent - result.received  # lost at the queue, nowhere else
    assert abs(result.rate_bps / rate_bps - 1) <= TOLERANCE


def test_bad_arguments_raise_measurement_error(testbed: Any, tmp_path: Path) -> None:
    tb = testbed("line")
    home = init_home(tmp_path / "home")
    config = endpoint_config(home, tb, "ep")
    bad: list[tuple[dict[str, Any], str]] = [
        ({"packets": 0}, "packets must be 1..65535"),
        ({"packets": 70_000}, "packets must be 1..65535"),
        ({"size": 65_508}, "size must be at most 65507"),
        ({"size": 8}, "size must be at least 16"),
        ({"start_in": -1.0}, "start_in must be"),
        ({"timeout": 0}, "timeout must be"),
        ({"sktid": 256}, "sktid must be"),
    ]
    with (
        _receiver(tb, 4) as sock,
        netns_socket(tb.netns("target"), socket.AF_INET, socket.SOCK_DGRAM) as anywhere,
    ):
        anywhere.bind(("0.0.0.0", 0))

        async def run(endpoint: EndpointHandle) -> tuple[list[str], BandwidthResult]:
            errors = []
            for kw, _ in bad:
                with pytest.raises(MeasurementError) as info:
                    await bandwidth(endpoint, sock, **{"start_in": START_IN, **kw})
                errors.append(str(info.value))
            with pytest.raises(MeasurementError, match="bind the receiver to the address"):
                await bandwidth(endpoint, anywhere, start_in=START_IN)
            # the session is still good for a measurement
            return errors, await bandwidth(endpoint, sock, packets=20, start_in=START_IN)

        errors, result = run_on_node(tb, "ep", home, config, run, timeout=30)
    for (_, expected), message in zip(bad, errors, strict=True):
        assert expected in message, message
    assert result.sent == result.received == 20
    assert result.rate_bps > 0


# the estimator and the receiver's record, on synthetic arrivals ------------------------------


def _tbf_arrivals(
    rate_bps: float, bits: int, packets: int, bucket: int, jitter_ns: int, seed: int
) -> list[int]:
    """Arrival times of a burst through a token bucket: ``bucket`` packets at line rate
    (1 us apart), then one per ``bits / rate``; each time off by up to ``jitter_ns``."""
    rng = random.Random(seed)
    gap = bits / rate_bps * 1e9
    times = [
        round(i * 1000 if i < bucket else bucket * 1000 + (i - bucket + 1) * gap)
        + rng.randint(-jitter_ns, jitter_ns)
        for i in range(packets)
    ]
    return sorted(times)


@pytest.mark.parametrize("bucket", [0, 4, 12])
def test_sustained_rate_ignores_the_buckets_burst(bucket: int) -> None:
    bits = 8 * 1228
    times = _tbf_arrivals(20e6, bits, 40, bucket, jitter_ns=20_000, seed=bucket)
    assert sustained_rate(times, bits) == pytest.approx(20e6, rel=0.01)
    naive = bits * (len(times) - 1) / ((times[-1] - times[0]) / 1e9)
    if bucket >= 4:  # what the later-half fit is for
        assert naive > 1.05 * 20e6


def test_sustained_rate_needs_arrivals_apart_in_time() -> None:
    with pytest.raises(MeasurementError, match="needs 2 arrivals"):
        sustained_rate([1_000], 8000)
    with pytest.raises(MeasurementError, match="same timestamp"):
        sustained_rate([5, 5, 5, 5], 8000)
    assert sustained_rate([0, 1_000_000], 8000) == pytest.approx(8e6)


def test_burst_record_keeps_only_this_runs_datagrams() -> None:
    nonce = b"\x01" * 8
    record = BurstRecord(nonce, packets=4, size=64)
    assert record.datagram(make_payload(nonce, 0, 64), 100, 0)
    assert not record.datagram(make_payload(nonce, 0, 64), 150, 0)  # duplicate
    assert not record.datagram(make_payload(b"\x02" * 8, 1, 64), 160, 0)  # another run
    assert not record.datagram(make_payload(nonce, 4, 64), 170, 0)  # beyond the burst
    assert not record.datagram(make_payload(nonce, 1, 65), 180, 0)  # not our size
    assert not record.datagram(b"GET / HTTP/1.0".ljust(64, b" "), 190, 0)  # not ours
    assert not record.datagram(make_payload(nonce, 2, 64), None, 0)  # no kernel stamp
    assert record.datagram(make_payload(nonce, 3, 64), 90, 3)
    assert record.received == 2
    assert (record.duplicates, record.strays, record.unstamped) == (1, 4, 1)
    assert record.arrivals() == [90, 100]
    assert record.receiver_drops == 3
    assert make_payload(nonce, 3, 64)[: HEADER.size] == HEADER.pack(MAGIC, nonce, 3)
