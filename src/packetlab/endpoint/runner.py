"""`packetlab endpoint`: dial the controller over TLS and serve one session after another."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import time

from packetlab import pki
from packetlab.endpoint.agent import SessionAgent
from packetlab.endpoint.config import EndpointConfig, split_host_port
from packetlab.endpoint.guarding import identity
from packetlab.endpoint.io_link import PacketIOLink
from packetlab.endpoint.raw_sockets import IP4HDRMOD_LINUX, IP6HDRMOD_LINUX, has_cap_net_raw
from packetlab.endpoint.vmem import TRANSSUP_RAW, TRANSSUP_TCP, TRANSSUP_UDP, EndpointInfo
from packetlab.guardian import Guardian
from packetlab.tls import TlsError, TlsIdentity, client_context
from packetlab.tls.aio import connect_tls

log = logging.getLogger("packetlab.endpoint")


def endpoint_info(config: EndpointConfig) -> EndpointInfo:
    ipv4 = []
    for text in config.local_ipv4:
        iface = ipaddress.IPv4Interface(text)
        ipv4.append((iface.ip.packed, iface.network.netmask.packed))
    bits = {"raw": TRANSSUP_RAW, "tcp": TRANSSUP_TCP, "udp": TRANSSUP_UDP}
    transports = 0
    for name in config.transports:
        transports |= bits.get(name, 0)
    if transports & TRANSSUP_RAW and not has_cap_net_raw():
        log.warning("raw sockets configured but this process lacks CAP_NET_RAW: raw is off")
        transports &= ~TRANSSUP_RAW
    return EndpointInfo(
        ipv4=ipv4,
        ipv6=[ipaddress.IPv6Interface(t).ip.packed for t in config.local_ipv6],
        dns4=[ipaddress.IPv4Address(a).packed for a in config.dns_ipv4],
        dns6=[ipaddress.IPv6Address(a).packed for a in config.dns_ipv6],
        transports=transports,
        buf_max=config.buf_max,
        host_id=config.host_id,
        ip4hdrmod=IP4HDRMOD_LINUX if transports & TRANSSUP_RAW else bytes(12),
        ip6hdrmod=IP6HDRMOD_LINUX if transports & TRANSSUP_RAW else bytes(8),
    )


def local_nets(config: EndpointConfig) -> list[tuple[bytes, int]]:
    """The endpoint's own networks, for the guardian's local-host/subnet and spoofing rules."""
    return [
        (iface.ip.packed, iface.network.prefixlen)
        for iface in (ipaddress.ip_interface(t) for t in (*config.local_ipv4, *config.local_ipv6))
    ]


class Endpoint:
    """The endpoint's identity, trust, info and guardian, ready to serve sessions."""

    def __init__(self, config: EndpointConfig) -> None:
        self.config = config
        key = pki.load_private_key(config.private_key)
        chain = [c for path in config.cert_chain for c in pki.load_certificates(path)]
        self.context = client_context(TlsIdentity(key, chain))
        self.trusted = pki.TrustAnchors(pki.load_public_key(p) for p in config.trusted_eop_keys)
        self.cache = pki.SignatureCache()
        self.info = endpoint_info(config)
        self.guardian = Guardian(config.guardian, config.state_dir, local_nets(config))

    async def _guardian_chores(self) -> None:
        """The guardian's periodic work: log flushes, traffic index, opt-out file and DNS."""
        guardian = self.guardian
        while True:
            now = time.time_ns()
            if guardian.optouts.dns_due(now):
                await guardian.optouts.refresh_async(now)
            guardian.handle_timer(time.time_ns())
            wait = (guardian.get_timer() - time.time_ns()) / 1e9
            await asyncio.sleep(min(1.0, max(0.01, wait)))

    def verify_controller(
        self, ders: list[bytes], peer_key: bytes, sni: str | None
    ) -> pki.VerifiedChain:
        return pki.verify_controller_chain(
            ders, self.trusted, now=time.time(), peer_key=peer_key, cache=self.cache
        )

    async def serve(
        self,
        controller: str | None = None,
        *,
        sessions: int | None = None,
        attempts: int | None = None,
    ) -> int:
        """Serve sessions until ``sessions`` are done (None: forever). Returns sessions served.

        A failed dial is retried with exponential backoff; ``attempts`` bounds consecutive
        failures (None: no bound)."""
        host, port = split_host_port(controller or self.config.controller)
        delay = self.config.retry_delay_s
        served = failures = 0
        io: PacketIOLink | None = None
        now = time.time_ns()
        if self.guardian.optouts.dns_due(now):
            await self.guardian.optouts.refresh_async(now)
        chores = asyncio.create_task(self._guardian_chores())
        try:
            while sessions is None or served < sessions:
                # the session's packet I/O process starts while we dial and shake hands
                io = io or PacketIOLink.spawn()
                if await self._serve_one(host, port, io):
                    served += 1
                    failures = 0
                    delay = self.config.retry_delay_s
                    io = None
                    continue
                failures += 1
                if attempts is not None and failures >= attempts:
                    break
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.config.retry_delay_max_s)
        finally:
            chores.cancel()
            if io is not None:
                await io.close()
            self.guardian.close(time.time_ns())
        return served

    async def _serve_one(self, host: str, port: int, io: PacketIOLink) -> bool:
        """Dial and serve one session; False if the controller could not be reached."""
        try:
            stream = await connect_tls(
                host,
                port,
                self.context,
                self.verify_controller,
                sni=self.config.sni_key or None,
                timeout=self.config.connect_timeout_s,
            )
        except (OSError, TimeoutError, TlsError) as exc:
            log.warning("cannot reach controller %s:%d: %s", host, port, exc)
            return False
        log.info("session with controller %s (sni %s)", stream.peername, self.config.sni_key)
        peer = f"{stream.peername[0]}:{stream.peername[1]}"
        guard = self.guardian.open_experiment(identity(stream.peer, peer), time.time_ns())
        agent = SessionAgent(
            self.info, stream.read, stream.write, io=io, guard=guard, chain=stream.peer
        )
        try:
            reason = await agent.run()
        finally:
            await stream.close()
        log.info("session ended: %s", reason)
        return True
