"""Clock offset between controller and endpoint, NTP-style, and the :class:`Origin` of results.

Each sample reads the endpoint's TIME between two controller clock reads (t1, t4): the endpoint
read T happened somewhere in between, so offset = T - (t1 + t4) / 2 within +- (t4 - t1) / 2.
The sample with the smallest round trip wins (NTP's clock filter in one line).
"""

from __future__ import annotations

import time

from packetlab.controller.api import EndpointHandle
from packetlab.measure.capabilities import Capabilities
from packetlab.measure.results import ClockOffset, Origin


async def clock_offset(endpoint: EndpointHandle, samples: int = 8) -> ClockOffset:
    """Endpoint clock minus controller clock from ``samples`` TIME reads."""
    if samples < 1:
        raise ValueError("clock_offset needs at least one sample")
    offset, rtt = await endpoint.clock_offset(samples)
    return ClockOffset(offset_ns=offset, rtt_ns=rtt, samples=samples, measured_ns=time.time_ns())


def origin(caps: Capabilities, family: int, clock: ClockOffset | None = None) -> Origin:
    """Who measured (for results): host id, source address, clock estimate and its age."""
    return Origin(
        host_id=caps.host_id,
        src_addr=caps.source(family),
        clock_offset_ns=clock.offset_ns if clock else 0,
        clock_rtt_ns=clock.rtt_ns if clock else 0,
        offset_age_s=max(0, (time.time_ns() - clock.measured_ns) // 1_000_000_000) if clock else -1,
    )
