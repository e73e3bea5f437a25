"""Matching responses to the probes of a send train (sans-IO: bytes and endpoint times in,
per-probe results out; no clock, no sockets).

Theory of operation. Each probe is read once into *keys*: the values a response to it must
carry. Each response is read into one key (two for an IPv4 ICMP error, see below) and looked
up in a dict of buckets, so matching costs O(1) dict lookups however long the train.

======================================  ===============================================
response                                key (probe side)
======================================  ===============================================
ICMP/ICMPv6 error quoting a packet      quoted dst, proto, ports (UDP/TCP), the field
                                        Paris-style probes vary (UDP checksum, TCP
                                        sequence number, ICMP echo ident+seq, else the
                                        ICMP checksum), and the IPv4 ID when the probe's
                                        ID is not 0 (a 0 ID is filled in by the OS)
ICMP/ICMPv6 echo reply                  from the probe's dst, same ident and seq
TCP SYN-ACK, or RST with ACK            from the probe's dst, ports swapped, ack equal
                                        to the SYN probe's seq + 1 (+ its payload)
TCP RST without ACK                     from the probe's dst, ports swapped, seq equal
                                        to the (non-SYN, ACK) probe's ack
UDP datagram                            from the probe's dst, ports swapped
======================================  ===============================================

A bucket holds the sent probes with one key, in send order. A response at time ``t`` is
*eligible* for a probe sent at ``s`` when ``s < t <= s + timeout``; it answers the earliest
eligible probe of its bucket that has no response yet (Scriptroute's "earliest plausible
probe": what many probes of one UDP flow need), else it is a duplicate of the latest eligible
one. Each bucket keeps two cursors (probes too old for any later response; probes already
answered) so feeding responses in time order costs amortized O(1) per response. An IPv4 error
quoting ID ``x`` is looked up with ``x`` first, then with 0 (probes that let the OS choose).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from packetlab.measure.errors import MeasurementError
from packetlab.packets import PacketError, addr_text, quoted_probe, summarize
from packetlab.packets.ipv6ext import walk_extensions

Key = tuple[int | bytes, ...]

# key kinds (first element of a key)
_ERROR, _ECHO, _TCP_ACK, _TCP_SEQ, _UDP = range(5)
_ECHO_TAG = 1 << 32  # marks an ICMP (ident, seq) discriminator apart from a checksum
_SYN, _RST, _ACK = 0x02, 0x04, 0x10
_V4_ERRORS = frozenset({3, 4, 5, 11, 12})
_V6_ERRORS = frozenset({1, 2, 3, 4})
_V6_WALKED = frozenset({0, 43, 44, 60})
_U32 = 0xFFFFFFFF
_U16 = struct.Struct("!H").unpack_from
_U16X2 = struct.Struct("!HH").unpack_from
_U16X4 = struct.Struct("!HHHH").unpack_from
_PORTS_SEQ = struct.Struct("!HHI").unpack_from
_TCP = struct.Struct("!HHII").unpack_from


@dataclass(slots=True)
class Match:
    """What came back for one probe."""

    response: bytes | None = None
    """The first matching response (a whole IP packet)."""
    received_ns: int | None = None
    """Its endpoint receive time."""
    responder: str | None = None
    """Its source address."""
    duplicates: int = 0
    """Further responses that matched the probe."""


def probe_keys(data: bytes) -> list[Key]:
    """The keys responses to this probe (a whole IP packet) carry; [] for a packet no
    response can be matched to (malformed, or a fragment)."""
    try:
        info = summarize(data)
    except PacketError:
        return []
    if info.fragment:
        return []
    v4 = info.version == 4
    dst, proto, hl = info.dst, info.proto, info.header_len
    ip_id = _U16(data, 4)[0] if v4 else 0
    keys: list[Key] = []
    if proto == 17:
        checksum = _U16(data, hl + 6)[0]
        keys.append((_ERROR, dst, 17, info.sport, info.dport, checksum, ip_id))
        keys.append((_UDP, dst, info.dport, info.sport))
    elif proto == 6:
        _, _, seq, ack = _TCP(data, hl)
        keys.append((_ERROR, dst, 6, info.sport, info.dport, seq, ip_id))
        flags = info.tcp_flags
        if flags & _SYN and not flags & (_ACK | _RST):
            keys.append((_TCP_ACK, dst, info.dport, info.sport, (seq + 1) & _U32))
            payload = len(data) - hl - (data[hl + 12] >> 4) * 4
            if payload:
                keys.append((_TCP_ACK, dst, info.dport, info.sport, (seq + 1 + payload) & _U32))
        elif flags & _ACK and not flags & _RST:
            keys.append((_TCP_SEQ, dst, info.dport, info.sport, ack))
    elif proto == (1 if v4 else 58):
        kind = data[hl]
        if kind == (8 if v4 else 128):
            ident, seq = _U16X2(data, hl + 4)
            keys.append((_ECHO, dst, ident, seq))
            keys.append((_ERROR, dst, proto, -1, -1, _ECHO_TAG | ident << 16 | seq, ip_id))
        else:
            checksum = _U16(data, hl + 2)[0]
            keys.append((_ERROR, dst, proto, -1, -1, checksum, ip_id))
    else:
        keys.append((_ERROR, dst, proto, -1, -1, -1, ip_id))
    return keys


def response_keys(data: bytes) -> tuple[bytes, Key, Key | None] | None:
    """(source address, key, fallback key) of a response (a whole IP packet); None when it
    cannot answer any probe (not TCP/UDP/ICMP, a later fragment, truncated, malformed)."""
    size = len(data)
    if size < 28:
        return None
    version = data[0] >> 4
    if version == 4:
        hl = (data[0] & 15) * 4
        if hl < 20 or _U16(data, 6)[0] & 0x1FFF:
            return None
        proto, src, icmp, errors, echo_reply = data[9], data[12:16], 1, _V4_ERRORS, 0
        size = min(size, _U16(data, 2)[0])  # not the link layer's padding
    elif version == 6:
        if size < 48:
            return None
        proto, src, hl, icmp, errors, echo_reply = data[6], data[8:24], 40, 58, _V6_ERRORS, 129
        if proto in _V6_WALKED:
            walk = walk_extensions(data, proto)
            if walk.truncated or walk.later_fragment:
                return None
            proto, hl = walk.proto, walk.offset
    else:
        return None
    if size < hl + 8:
        return None
    if proto == icmp:
        kind = data[hl]
        if kind == echo_reply:
            return src, (_ECHO, src, *_U16X2(data, hl + 4)), None
        if kind in errors:
            key = _quote_key(data, hl + 8, size, version)
            if key is None:
                return _error_keys_quoted(data)
            return src, key, _without_id(key)
        return None
    if proto == 17:
        return src, (_UDP, src, *_U16X2(data, hl)), None
    if proto == 6 and size >= hl + 14:
        sport, dport, seq, ack = _TCP(data, hl)
        flags = data[hl + 13]
        if flags & _RST and not flags & _ACK:
            return src, (_TCP_SEQ, src, sport, dport, seq), None
        if flags & _ACK and flags & (_SYN | _RST):
            return src, (_TCP_ACK, src, sport, dport, ack), None
    return None


def _quote_key(data: bytes, at: int, end: int, version: int) -> Key | None:
    """The key of the probe an ICMP error quotes from ``at``, read directly in the usual case
    (a plain IP header, 8 transport bytes); None for anything else (``quoted_probe`` then)."""
    if version == 4:
        if end < at + 28 or data[at] != 0x45 or _U16(data, at + 6)[0] & 0x1FFF:
            return None
        proto, dst, t, icmp, echoes = data[at + 9], data[at + 16 : at + 20], at + 20, 1, (0, 8)
        ip_id = _U16(data, at + 4)[0]
    else:
        if end < at + 48 or data[at] >> 4 != 6 or data[at + 6] in _V6_WALKED:
            return None
        proto, dst, t, icmp, echoes = data[at + 6], data[at + 24 : at + 40], at + 40, 58, (128, 129)
        ip_id = 0
    if proto == 17:
        sport, dport, _, disc = _U16X4(data, t)
    elif proto == 6:
        sport, dport, disc = _PORTS_SEQ(data, t)
    elif proto == icmp:
        sport = dport = -1
        if data[t] in echoes:
            ident, seq = _U16X2(data, t + 4)
            disc = _ECHO_TAG | ident << 16 | seq
        else:
            disc = _U16(data, t + 2)[0]
    else:
        sport = dport = disc = -1
    return (_ERROR, dst, proto, sport, dport, disc, ip_id)


def _without_id(key: Key) -> Key | None:
    """The fallback of an error key quoting an IPv4 ID: the same key for ID 0."""
    return (*key[:-1], 0) if key[-1] else None


def _error_keys_quoted(data: bytes) -> tuple[bytes, Key, Key | None] | None:
    """Keys of an ICMP error by ``quoted_probe`` (extension headers, short quotes, ...)."""
    try:
        q = quoted_probe(data)
    except PacketError:
        return None
    if q is None:
        return None
    proto = q.proto
    if proto == 17:
        disc = q.checksum
    elif proto == 6:
        disc = q.tcp_seq
    elif q.icmp_ident >= 0:
        disc = _ECHO_TAG | q.icmp_ident << 16 | q.icmp_seq
    else:
        disc = q.checksum
    key: Key = (_ERROR, q.dst, proto, q.sport, q.dport, disc, q.ip_id if q.version == 4 else 0)
    return q.responder, key, _without_id(key)


class _Bucket:
    """The sent probes with one key, by send time, and the two cursors."""

    __slots__ = ("free", "probes", "sent", "start")

    def __init__(self) -> None:
        self.probes: list[int] = []
        self.sent: list[int] = []
        self.start = 0
        """Probes before it were sent more than ``timeout`` before the last response."""
        self.free = 0
        """Probes from ``start`` to it all have a response."""


class TrainMatcher:
    """Matches the responses of one train to its probes, fed one at a time.

    ``probes`` are whole IP packets; ``sent_ns[i]`` is when probe ``i`` left (None: not sent,
    it matches nothing). Feed responses in receive-time order for exact "earliest unanswered"
    semantics (an older one after a newer is still matched, by a slower scan)."""

    def __init__(
        self, probes: Sequence[bytes], sent_ns: Sequence[int | None], timeout_ns: int
    ) -> None:
        if len(probes) != len(sent_ns):
            raise MeasurementError(f"{len(probes)} probes but {len(sent_ns)} send times")
        if timeout_ns < 0:
            raise MeasurementError(f"timeout_ns {timeout_ns} is negative")
        self.timeout_ns = timeout_ns
        self.results = [Match() for _ in probes]
        self.answered = 0
        """How many probes have a response."""
        self._done = [False] * len(probes)
        self._last = -1 << 64
        self._names: dict[bytes, str] = {}
        buckets: dict[Key, _Bucket] = {}
        order = sorted((sent, i) for i, sent in enumerate(sent_ns) if sent is not None)
        for sent, i in order:
            for key in probe_keys(probes[i]):
                bucket = buckets.get(key)
                if bucket is None:
                    buckets[key] = bucket = _Bucket()
                bucket.probes.append(i)
                bucket.sent.append(sent)
        self._buckets = buckets
        self.sent_count = len(order)

    def feed(self, received_ns: int, data: bytes) -> int | None:
        """Match one response; the index of the probe it answered (first response or a
        duplicate), or None when it matches no probe."""
        if type(data) is not bytes:
            data = bytes(data)
        found = response_keys(data)
        if found is None:
            return None
        src, key, fallback = found
        in_order = received_ns >= self._last
        if in_order:
            self._last = received_ns
        for k in (key, fallback):
            bucket = self._buckets.get(k) if k is not None else None
            if bucket is None:
                continue
            index, first = (
                self._take(bucket, received_ns) if in_order else self._scan(bucket, received_ns)
            )
            if index is None:
                continue
            result = self.results[index]
            if first:
                self._done[index] = True
                self.answered += 1
                result.response = data
                result.received_ns = received_ns
                name = self._names.get(src)
                if name is None:
                    self._names[src] = name = addr_text(src)
                result.responder = name
            else:
                result.duplicates += 1
            return index
        return None

    def _take(self, bucket: _Bucket, t: int) -> tuple[int | None, bool]:
        probes, sent, done = bucket.probes, bucket.sent, self._done
        n = len(probes)
        lo = bucket.start
        oldest = t - self.timeout_ns
        while lo < n and sent[lo] < oldest:
            lo += 1
        bucket.start = lo
        j = max(lo, bucket.free)
        while j < n and done[probes[j]]:  # answered here or through another of their keys
            j += 1
        bucket.free = j
        if j < n and sent[j] < t:
            return probes[j], True
        # every eligible probe is answered (each answer came after its send and by t)
        return (probes[j - 1], False) if j > lo else (None, False)

    def _scan(self, bucket: _Bucket, t: int) -> tuple[int | None, bool]:
        """``_take`` for a response older than one already fed: no cursors."""
        latest = None
        for index, sent in zip(bucket.probes, bucket.sent, strict=True):
            if sent >= t:
                break
            if sent + self.timeout_ns >= t:
                if not self._done[index]:
                    return index, True
                latest = index
        return latest, False


def match_responses(
    probes: Sequence[bytes],
    sent_ns: Sequence[int | None],
    responses: Iterable[tuple[int, bytes]],
    timeout_ns: int,
) -> list[Match]:
    """One :class:`Match` per probe for ``responses`` ((endpoint receive time, whole IP
    packet), in any order), a response matching a probe sent before it and at most
    ``timeout_ns`` earlier."""
    matcher = TrainMatcher(probes, sent_ns, timeout_ns)
    for received_ns, data in sorted(responses, key=itemgetter(0)):
        matcher.feed(received_ns, data)
    return matcher.results
