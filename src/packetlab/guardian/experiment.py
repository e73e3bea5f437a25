"""One experiment's guard: every packet an experiment sends passes here first.

Theory of operation. An :class:`ExperimentGuard` (from ``Guardian.open_experiment``) holds what
is the experiment's own: the limits of its certificate chain, its usage leases, its SYN bucket,
its burst windows, its sockets; it shares with the other experiments (through its Guardian) the
compiled source policy, the opt-out list, its profile's source and per-destination buckets, the
usage store, the packet log and the traffic index.

``check_send`` runs the stages of DESIGN.md in order and answers with a Verdict; it counts
nothing (only a usage lease may be topped up, durably, before the packet can go). The caller
sends the packet (at ``wait_until_ns`` if shaped; asking again then) and reports it with
``sent``, which counts usage, takes tokens and logs. Stages:

1. well-formed: family, address lengths, size (20..65535 IPv4, 40..65575 IPv6), ports, protocol;
2. source policy: destination rules (cached per address), packet rules, spoofing;
3. destination opt-out (cached per address and opt-out generation);
4. chain limits: max_exp_period, valid_dest, max_send_byte/pkt (leases), max_burst_rate_*
   (exact sliding windows; shaped like the buckets);
5. sanitizer: the source must be the endpoint's own (checked in stage 2, with the spoofing
   rule); an unspecified source is filled in by the kernel when the packet is sent;
6. token buckets of the experiment's profile: SYN (per experiment), destination bytes and
   packets (per destination, shared), source bytes (shared). The chain's burst windows apply
   on top, so a chain can only tighten the operator's buckets;
7. log (in ``sent``/``received``): pcapng + traffic index.

A wait longer than ``max_wait_ms`` is a refusal (ESKTPKTDENY). Sockets: ``check_open`` judges
and counts an open (a TCP connect is a SYN), ``closed_socket`` uncounts it. Receiving:
``check_recv`` (max_recv_*) then ``received``. Times are ns on the endpoint's epoch clock (as on
the wire), passed in; nothing here reads a clock.
"""

# ruff: noqa: PLR1730 - on the send path, an if is cheaper than calling max()

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from packetlab.guardian._errors import GuardianConfigError, UsageStoreError
from packetlab.guardian.buckets import FULL_TABLE, NEVER, SlidingWindow, TokenBucket
from packetlab.guardian.config import PROFILE_NAMES
from packetlab.guardian.pcapng import INBOUND, OUTBOUND, EpbOptions, synth_header, synth_header_len
from packetlab.guardian.policy import ICMP4_ERRORS, ICMP6_ERRORS, UNSPECIFIED_SET
from packetlab.guardian.prefixes import PrefixSet, parse_prefix
from packetlab.guardian.probe import (
    ALLOW,
    IPPROTO_ICMP,
    IPPROTO_ICMPV6,
    IPPROTO_TCP,
    IPPROTO_UDP,
    OPEN_DENY,
    TCP_RST,
    TCP_SYN,
    Probe,
    Verdict,
    deny,
)
from packetlab.guardian.traffic_index import RECEIVED, SENT, TrafficCounter
from packetlab.guardian.usage import RECV, SEND, Lease
from packetlab.packets import addr_text
from packetlab.pki.limits import Limits

if TYPE_CHECKING:
    from packetlab.guardian.guard import Guardian

log = logging.getLogger("packetlab.guardian")

_FAMILY = {4: (4, 20, 65535), 6: (16, 40, 65535 + 40)}
"""Per family: address length, smallest and largest packet (IP level)."""
_PORT_PROTOS = (IPPROTO_TCP, IPPROTO_UDP)
_ICMP_ERROR_TYPES = ICMP4_ERRORS | ICMP6_ERRORS
CACHE_MAX = 65536


@dataclass(frozen=True)
class ExperimentIdentity:
    """Who an experiment is, as far as the guardian is concerned."""

    experiment_id: str
    """Stable: hex of the exppriv chain digest, or ``anonymous:<n>``. Keys persisted usage."""
    controller: str
    """The controller's key id (hex) or address, for logs and traceback."""
    profile: str = "certified"
    """``public`` or ``certified``: which token-bucket profile applies."""
    limits: Limits | None = None
    """The chain's effective cert_limit (None: no certificate limits)."""
    spoofing_allowed: bool = False
    """The chain allows src_ip_spoofing."""

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_NAMES:
            raise GuardianConfigError("profile", f"{self.profile!r} is not one of {PROFILE_NAMES}")
        if not self.experiment_id:
            raise GuardianConfigError("experiment_id", "must not be empty")


class ExperimentGuard:
    """The guardian's view of one experiment (see the module docstring)."""

    def __init__(self, guardian: Guardian, ident: ExperimentIdentity, now_ns: int) -> None:
        self.guardian = guardian
        self.ident = ident
        config = guardian.config
        limits = ident.limits or Limits.NONE
        self.limits = limits
        self._filter = guardian.filter
        self._check_spoofing = config.source_policy.deny_spoofing and not ident.spoofing_allowed
        self._owned_sources = self._filter.own_addresses | UNSPECIFIED_SET
        self._max_wait_ns = guardian.max_wait_ns
        self._state = guardian._profile(ident.profile, now_ns)
        self._dests = self._state.dests
        self._source = self._state.source
        profile = self._state.profile
        self._syn = TokenBucket(profile.syn_per_s, profile.syn_burst, now_ns)
        usage = guardian.usage.open_experiment(ident.experiment_id, ident.controller, now_ns)
        self.first_open_ns = usage.first_ns
        self._expires_ns = (
            usage.first_ns + limits.max_exp_period if limits.max_exp_period is not None else None
        )
        self._valid_dest = (
            PrefixSet(parse_prefix(str(n)) for n in limits.valid_dest)
            if limits.valid_dest is not None
            else None
        )
        self._valid_cache: dict[bytes, bool] = {}
        self._byte_windows = tuple(
            SlidingWindow(r.count, r.ticks) for r in limits.max_burst_rate_byte
        )
        self._pkt_windows = tuple(
            SlidingWindow(r.count, r.ticks) for r in limits.max_burst_rate_pkt
        )
        self.send_lease = self._lease(SEND, limits.max_send_pkt, limits.max_send_byte)
        self.recv_lease = self._lease(RECV, limits.max_recv_pkt, limits.max_recv_byte)
        self.open_sockets = 0
        self.closed = False
        self._log = guardian.log
        self.sent_counter = TrafficCounter(ident.experiment_id, ident.controller, SENT)
        self.recv_counter = TrafficCounter(ident.experiment_id, ident.controller, RECEIVED)
        self._count_traffic = guardian.index is not None
        comment = f"exp={ident.experiment_id} ctl={ident.controller} dir="
        self._opt_sent = EpbOptions(comment + "sent", OUTBOUND)
        self._opt_recv = EpbOptions(comment + "received", INBOUND)
        self._opt_sent_synth = EpbOptions(comment + "sent synthesized-header", OUTBOUND)
        self._opt_recv_synth = EpbOptions(comment + "received synthesized-header", INBOUND)

    def _lease(self, direction: str, max_pkts: int | None, max_bytes: int | None) -> Lease:
        config = self.guardian.config
        return Lease(
            self.guardian.usage,
            self.ident.experiment_id,
            direction,
            block_pkts=config.lease_packets,
            block_bytes=config.lease_bytes,
            max_pkts=max_pkts,
            max_bytes=max_bytes,
            max_scale=config.lease_scale,
        )

    # -- sockets --------------------------------------------------------------------------------

    @property
    def max_wait_ns(self) -> int:
        """How long a shaped probe may wait for its tokens, from when it was asked for."""
        return self._max_wait_ns

    def check_open(
        self, family: int, proto: int, raddr: bytes | None, rport: int, now_ns: int
    ) -> Verdict:
        """May a socket be opened? Counts it when the answer is "now".

        A TCP connect is a SYN: it passes the destination rules, the opt-out, valid_dest and the
        SYN bucket (shaped: ask again at ``wait_until_ns``). A connected UDP socket passes the
        destination rules too. Refusals carry ESKTOPNDENY.
        """
        if self.closed:
            return deny("experiment closed", OPEN_DENY)
        spec = _FAMILY.get(family)
        if spec is None:
            return deny(f"address family {family}", OPEN_DENY)
        if self._expires_ns is not None and now_ns >= self._expires_ns:
            return deny("max_exp_period: the experiment period is over", OPEN_DENY)
        max_sockets = self.limits.max_socket_count
        if max_sockets is not None and self.open_sockets >= max_sockets:
            return deny(f"max_socket_count: {max_sockets} sockets already open", OPEN_DENY)
        wait = 0
        if raddr is not None and proto in (IPPROTO_TCP, IPPROTO_UDP):
            if len(raddr) != spec[0]:
                return deny("remote address length does not match the family", OPEN_DENY)
            if not 0 <= rport <= 65535:
                return deny(f"remote port {rport}", OPEN_DENY)
            reason = self._dest_reason(family, proto, raddr)
            if not reason:
                reason = self._filter.packet_reason(proto, False, -1, 0, rport)
            if reason:
                return deny(reason, OPEN_DENY)
            if proto == IPPROTO_TCP:
                wait = self._syn.wait_ns(1, now_ns)
                if wait < 0 or wait > self._max_wait_ns:
                    return deny("SYN rate: too many TCP connects", OPEN_DENY)
                if wait:
                    return Verdict(True, now_ns + wait)
                self._syn.take(1, now_ns)
        self.open_sockets += 1
        return ALLOW

    def closed_socket(self) -> None:
        if self.open_sockets > 0:
            self.open_sockets -= 1

    def _dest_reason(self, family: int, proto: int, dst: bytes) -> str:
        reason, mask, _ = self.guardian.destination_info(family, dst)
        if reason:
            return reason
        if mask >> proto & 1:
            entry = self.guardian.optouts.table.matching(family, dst, proto)
            return f"destination opted out ({entry})" if entry else "destination opted out"
        if self._valid_dest is not None and not self._in_valid_dest(dst):
            return f"valid_dest: {addr_text(dst)} is outside the experiment's destinations"
        return ""

    def _in_valid_dest(self, dst: bytes) -> bool:
        ok = self._valid_cache.get(dst)
        if ok is None:
            assert self._valid_dest is not None
            if len(self._valid_cache) >= CACHE_MAX:
                self._valid_cache.clear()
            ok = self._valid_dest.matches_packed(dst)
            self._valid_cache[dst] = ok
        return ok

    # -- sending --------------------------------------------------------------------------------

    def check_send(self, probe: Probe, now_ns: int) -> Verdict:
        """Judge one packet (stages 1-6). Counts nothing; see the module docstring."""
        if self.closed:
            return deny("experiment closed")
        # 1. well-formed (what the probe alone can tell)
        family = probe.family
        spec = _FAMILY.get(family)
        if spec is None:
            return deny(f"address family {family}")
        alen, min_size, max_size = spec
        dst = probe.dst
        if len(dst) != alen or len(probe.src) != alen:
            return deny(f"address length does not match IPv{family}")
        size = probe.size
        if size < min_size or size > max_size:
            return deny(f"size {size} out of range for IPv{family}")
        proto = probe.proto
        dport = probe.dport
        if proto in _PORT_PROTOS:
            if not (0 <= dport <= 65535 and 0 <= probe.sport <= 65535):
                return deny("port out of range")
        elif proto == IPPROTO_ICMP:
            if family != 4:
                return deny("ICMP (protocol 1) over IPv6")
        elif proto == IPPROTO_ICMPV6:
            if family != 6:
                return deny("ICMPv6 (protocol 58) over IPv4")
        elif not 0 <= proto <= 255:
            return deny(f"IP protocol {proto}")
        # 2. source policy; 3. opt-out (both cached per destination)
        guardian = self.guardian
        info = guardian._dst_info.get(dst)
        if info is None or info[2] != guardian.optouts.generation:
            info = guardian.destination_info(family, dst)
        if info[0]:
            return deny(info[0])
        if (
            probe.fragment
            or probe.tcp_flags & TCP_RST
            or probe.icmp_type in _ICMP_ERROR_TYPES
            or (dport < 1024 and proto in _PORT_PROTOS)
        ):
            reason = self._filter.packet_reason(
                proto, probe.fragment, probe.icmp_type, probe.tcp_flags, dport
            )
            if reason:
                return deny(reason)
        if (
            self._check_spoofing
            and probe.src not in self._owned_sources
            and not self._filter.source_owned(probe.src, dst)
        ):
            return deny(f"spoofed source {addr_text(probe.src)}")
        if info[1] >> proto & 1:
            return deny(self._dest_reason(family, proto, dst))
        # 4. chain limits
        if self._expires_ns is not None and now_ns >= self._expires_ns:
            return deny("max_exp_period: the experiment period is over")
        if self._valid_dest is not None and not self._in_valid_dest(dst):
            return deny(f"valid_dest: {addr_text(dst)} is outside the experiment's destinations")
        lease = self.send_lease
        if lease.pkts < 1 or lease.nbytes < size:
            try:
                if not lease.extend(size, now_ns):
                    if lease.pkts < 1:
                        return deny(f"max_send_pkt: limit of {lease.max_pkts} packets reached")
                    return deny(f"max_send_byte: limit of {lease.max_bytes} bytes reached")
            except UsageStoreError as exc:
                return deny(f"usage store unavailable: {exc}")
        wait = 0
        for window in self._byte_windows:
            w = window.wait_ns(size, now_ns)
            if w < 0:
                rate = f"{window.count}/{window.ticks}"
                return deny(f"max_burst_rate_byte {rate}: {size} bytes never fit")
            if w > wait:
                wait = w
        for window in self._pkt_windows:
            w = window.wait_ns(1, now_ns)
            if w < 0:
                return deny(f"max_burst_rate_pkt {window.count}/{window.ticks} allows no packet")
            if w > wait:
                wait = w
        # 6. token buckets
        if proto == IPPROTO_TCP and probe.tcp_flags & TCP_SYN:
            w = self._syn.wait_ns(1, now_ns)
            if w > wait:
                wait = w
        w = self._dests.wait_ns(dst, size, now_ns)
        if w < 0:
            if w == FULL_TABLE:
                return deny("too many destinations active at once")
            return deny(f"{size} bytes exceed the destination byte burst")
        if w > wait:
            wait = w
        w = self._source.wait_ns(size, now_ns)
        if w == NEVER:
            return deny(f"{size} bytes exceed the source byte burst")
        if w > wait:
            wait = w
        if wait == 0:
            return ALLOW
        if wait > self._max_wait_ns:
            return deny(
                f"rate limit: would wait {wait / 1e6:.1f} ms"
                f" (max_wait_ms {self._max_wait_ns // 1_000_000})"
            )
        return Verdict(True, now_ns + wait)

    def sent(self, probe: Probe, packet: bytes | None, now_ns: int) -> None:
        """Count a packet that was sent: usage, windows, buckets, traffic index, log.

        ``packet`` is the whole IP packet when ``probe.raw``, else the UDP/TCP payload (None: not
        known; a header-only packet is logged).
        """
        size = probe.size
        lease = self.send_lease
        lease.use(size, now_ns)
        if self.closed:  # reported after close: counted exactly, nothing else
            lease.release()
            return
        for window in self._byte_windows:
            window.add(size, now_ns)
        for window in self._pkt_windows:
            window.add(1, now_ns)
        proto = probe.proto
        if proto == IPPROTO_TCP and probe.tcp_flags & TCP_SYN:
            self._syn.take(1, now_ns)
        dst = probe.dst
        self._dests.take(dst, size, now_ns)
        self._source.take(size, now_ns)
        if self._count_traffic:
            self.sent_counter.count(dst, proto, size, now_ns)
        plog = self._log
        if plog is not None:
            if probe.raw and packet is not None:
                plog.write(now_ns, b"", packet, len(packet), self._opt_sent)
            else:
                body = packet or b""
                head = synth_header(
                    probe.family,
                    proto,
                    probe.src,
                    dst,
                    probe.sport,
                    probe.dport,
                    len(body),
                    probe.tcp_flags or 0x18,
                )
                plog.write(now_ns, head, body, size, self._opt_sent_synth)

    # -- receiving ------------------------------------------------------------------------------

    def check_recv(self, size: int, now_ns: int) -> bool:
        """May a received packet of ``size`` bytes go to the experiment (max_recv_*)?"""
        lease = self.recv_lease
        if lease.pkts >= 1 and lease.nbytes >= size:
            return True
        if self.closed:
            return False
        try:
            return lease.extend(size, now_ns)
        except UsageStoreError as exc:
            log.warning("usage store unavailable, packet dropped: %s", exc)
            return False

    def received(
        self,
        family: int,
        proto: int,
        src: bytes,
        dst: bytes,
        packet: bytes,
        now_ns: int,
        *,
        raw: bool = True,
        sport: int = 0,
        dport: int = 0,
    ) -> None:
        """Count and log a packet delivered to the experiment.

        ``packet`` is the whole IP packet when ``raw``, else the UDP/TCP payload (``sport`` and
        ``dport`` then name the ports for the synthesized header, counted in its size).
        """
        size = len(packet) if raw else synth_header_len(family, proto) + len(packet)
        self.recv_lease.use(size, now_ns)
        if self.closed:  # reported after close: counted exactly, nothing else
            self.recv_lease.release()
            return
        if self._count_traffic:
            self.recv_counter.count(src, proto, size, now_ns)
        plog = self._log
        if plog is not None:
            if raw:
                plog.write(now_ns, b"", packet, size, self._opt_recv)
            else:
                head = synth_header(family, proto, src, dst, sport, dport, len(packet))
                plog.write(now_ns, head, packet, size, self._opt_recv_synth)

    # -- end ------------------------------------------------------------------------------------

    def close(self, now_ns: int) -> None:
        """Give back unused usage leases and hand the counts to the index. Idempotent."""
        if self.closed:
            return
        self.closed = True
        try:
            self.send_lease.release()
            self.recv_lease.release()
        finally:
            self.guardian._closed(self, now_ns)
