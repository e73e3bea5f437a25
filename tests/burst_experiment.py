"""A UDP send burst for tests/test_usage_kill9.py, run by `packetlab controller`.

    packetlab controller burst_experiment.py MODE TARGET PORT PHASE COUNT WINDOW

Each datagram carries (PHASE, sequence number), 8 bytes, so the receiver can tell phases
apart and spot duplicates. MODE:

- ``burst``: COUNT datagrams in windows of WINDOW (call_many), the last of each window
  tagged; the next window leaves only once that tag's ntag (the kernel's TX stamp) is back,
  so at any moment at most one window has been accepted by the endpoint and not yet sent.
- ``until-refused``: windows of WINDOW single requests, each answered on its own, until one
  is refused (or COUNT were accepted); only a prefix may be accepted. Paced like ``burst``.

Prints one line ``issued=I confirmed=C accepted=A refused=R errids=E end=WHY`` at the end
(also when the session dies under it): I nsends written, C of them known sent (ntag), A
accepted, R refused, E the distinct refusal codes.
"""

from __future__ import annotations

import asyncio
import struct

from packetlab import wire as w
from packetlab.controller.api import EndpointError, EndpointHandle, SessionGone

SKTID = 1
PAYLOAD = struct.Struct(">II")
WAIT_S = 3.0
"""Longest wait for a window's results or ntag. A bound, not a pace: when the endpoint dies
with our requests unread its kernel resets the connection, and the controller's reader then
ends without telling the waiting requests (see the test's docstring), so they would wait
forever."""


async def experiment(endpoint: EndpointHandle, args: list[str]) -> None:
    mode, target, port, phase, count, window = args[0], args[1], *map(int, args[2:6])
    stats = {"issued": 0, "confirmed": 0, "accepted": 0, "refused": 0}
    errids: set[str] = set()
    end = "done"
    try:
        await endpoint.open_udp(SKTID)
        raddr = w.addr_bytes(target)
        if mode == "burst":
            await _burst(endpoint, raddr, port, phase, count, window, stats)
        elif mode == "until-refused":
            await _until_refused(endpoint, raddr, port, phase, count, window, stats, errids)
        else:
            raise ValueError(f"mode {mode!r}")
        await endpoint.close(SKTID)
    except SessionGone as exc:
        end = f"session gone: {exc}"
    except TimeoutError:
        end = f"no answer for {WAIT_S} s"
    except EndpointError as exc:
        end = f"refused: {exc}"
    except BaseException as exc:
        end = f"failed: {exc!r}"
        raise
    finally:
        summary = " ".join(f"{k}={v}" for k, v in stats.items())
        print(f"{summary} errids={','.join(sorted(errids)) or '-'} end={end!r}", flush=True)


def _nsend(raddr: bytes, port: int, phase: int, seq: int, tag: int = 0) -> w.Nsend:
    payload = PAYLOAD.pack(phase, seq)
    return w.Nsend(SKTID, 4, w.Proto.UDP, 0, tag, payload, raddr, port)


async def _burst(
    endpoint: EndpointHandle,
    raddr: bytes,
    port: int,
    phase: int,
    count: int,
    window: int,
    stats: dict[str, int],
) -> None:
    for index, start in enumerate(range(0, count, window)):
        seqs = range(start, min(start + window, count))
        tag = index % 0xFFFF + 1
        msgs = [_nsend(raddr, port, phase, s, tag if s == seqs[-1] else 0) for s in seqs]
        stats["issued"] += len(msgs)
        async with asyncio.timeout(WAIT_S):
            await endpoint.call_many(msgs)
        stats["accepted"] += len(msgs)
        note = await endpoint.next(w.Ntag, sktid=SKTID, timeout=WAIT_S)
        if note.tag != tag or note.errid:
            raise RuntimeError(f"ntag {note} for window {index} (tag {tag})")
        stats["confirmed"] += len(msgs)


async def _until_refused(
    endpoint: EndpointHandle,
    raddr: bytes,
    port: int,
    phase: int,
    count: int,
    window: int,
    stats: dict[str, int],
    errids: set[str],
) -> None:
    seq = 0
    while seq < count:
        seqs = range(seq, min(seq + window, count))
        tag = seq // window % 0xFFFF + 1
        stats["issued"] += len(seqs)
        async with asyncio.timeout(WAIT_S):
            results = await asyncio.gather(
                *(endpoint.request(_nsend(raddr, port, phase, s, tag if s == seqs[-1] else 0))
                  for s in seqs)
            )  # fmt: skip
        codes = [r.errid if isinstance(r, w.Result) else -1 for r in results]
        ok = sum(1 for c in codes if c == 0)
        if any(c == 0 for c in codes[ok:]):
            raise RuntimeError(f"accepted after a refusal: {codes}")
        stats["accepted"] += ok
        stats["refused"] += len(codes) - ok
        errids.update(w.ErrId(c).name if c > 0 else str(c) for c in codes[ok:])
        seq += len(seqs)
        if ok < len(codes):
            return
        note = await endpoint.next(w.Ntag, sktid=SKTID, timeout=WAIT_S)
        if note.tag != tag or note.errid:
            raise RuntimeError(f"ntag {note} for tag {tag}")
        stats["confirmed"] += ok
