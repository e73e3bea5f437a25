"""Destination opt-out (guardian stage 3): targets that asked not to be measured.

Entry grammar, the same in the file and in DNS::

    PREFIX [PROTO[,PROTO...]]        e.g.  198.18.9.0/24 icmp,udp    2001:db8:9::/48 all

PREFIX is an IPv4/IPv6 network (host bits zero) or a bare address. PROTO is ``all``, ``icmp``
(ICMP of the prefix's family: 1, or 58 for IPv6), ``icmp6``/``ipv6-icmp`` (58), ``tcp``, ``udp``
or a protocol number 0-255. No list means ``all``. A packet is refused when its destination lies
in an opt-out prefix listing its IP protocol.

File: one entry per line; ``#`` starts a comment; blank lines are ignored. The file is re-read
when its modification time, size or inode changes (checked by :meth:`OptOutSource.check_file`).
A file that fails to parse at start is an error; on a later reload the previous entries stay.

DNS: one TXT RRset at a configured name (for example ``_optout.example.net``). Each TXT record
holds one or more entries separated by ``;`` (a record's character-strings are joined first).
This single-RRset scheme, not Scriptroute's per-destination lookup, is used so that the send
path never waits on DNS: the whole list is fetched outside it, by
:meth:`OptOutSource.refresh_async`, which the endpoint's event loop runs when ``dns_due``.
An answer is used for ``cache_s`` (5 minutes). NXDOMAIN or no TXT data means no opt-outs. When
the lookup fails (timeout, SERVFAIL, no server) the last answer is kept and the lookup is
retried after ``retry_s``. A malformed TXT entry is skipped (and noted in ``last_error``); the
others apply.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dns.asyncresolver
import dns.exception
import dns.rdatatype
import dns.resolver

from packetlab.guardian._errors import OptOutFormatError
from packetlab.guardian.config import OptOutConfig
from packetlab.guardian.prefixes import BITS, Prefix, parse_prefix

log = logging.getLogger("packetlab.guardian.optout")

ALL_PROTOCOLS = (1 << 256) - 1
_NAMED = {"tcp": 6, "udp": 17, "icmp6": 58, "ipv6-icmp": 58, "icmpv6": 58}
NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class OptOut:
    """One opt-out: a prefix and the IP protocols (None: all) it refuses."""

    prefix: Prefix
    protocols: frozenset[int] | None = None

    @property
    def mask(self) -> int:
        """Protocol bitmask: bit N set refuses IP protocol N."""
        if self.protocols is None:
            return ALL_PROTOCOLS
        mask = 0
        for proto in self.protocols:
            mask |= 1 << proto
        return mask

    def __str__(self) -> str:
        if self.protocols is None:
            return f"{self.prefix} all"
        return f"{self.prefix} {','.join(str(p) for p in sorted(self.protocols))}"


def parse_optout_entry(text: str, where: str) -> OptOut:
    """One ``PREFIX [PROTO,...]`` entry; OptOutFormatError names ``where``."""
    parts = text.split()
    if not parts or len(parts) > 2:
        raise OptOutFormatError(where, f"{text.strip()!r} is not 'PREFIX [PROTO,...]'")
    try:
        prefix = parse_prefix(parts[0])
    except ValueError as exc:
        raise OptOutFormatError(where, f"{parts[0]!r}: {exc}") from None
    if len(parts) == 1:
        return OptOut(prefix)
    protocols: set[int] = set()
    for name in parts[1].lower().split(","):
        if name == "all":
            return OptOut(prefix)
        if name == "icmp":
            protocols.add(1 if prefix.family == 4 else 58)
        elif name in _NAMED:
            protocols.add(_NAMED[name])
        elif name.isdigit() and name.isascii() and int(name) <= 255:
            protocols.add(int(name))
        else:
            raise OptOutFormatError(where, f"unknown protocol {name!r}")
    return OptOut(prefix, frozenset(protocols))


def parse_optout_text(text: str, where: str) -> list[OptOut]:
    """The entries of an opt-out file's text (``where`` names it in errors)."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        body = line.split("#", 1)[0].strip()
        if body:
            entries.append(parse_optout_entry(body, f"{where}:{number}"))
    return entries


class OptOutTable:
    """Opt-outs compiled for lookup by integer address; immutable."""

    __slots__ = ("_by_family", "entries")

    def __init__(self, entries: Iterable[OptOut] = ()) -> None:
        self.entries: tuple[OptOut, ...] = tuple(dict.fromkeys(entries))
        table: dict[int, dict[int, dict[int, int]]] = {4: {}, 6: {}}
        for entry in self.entries:
            p = entry.prefix
            shift = BITS[p.family] - p.length
            nets = table[p.family].setdefault(shift, {})
            key = p.network >> shift
            nets[key] = nets.get(key, 0) | entry.mask
        self._by_family = {fam: tuple(sorted(shifts.items())) for fam, shifts in table.items()}

    def __len__(self) -> int:
        return len(self.entries)

    def mask(self, family: int, addr: int) -> int:
        """Protocol bitmask of every opt-out covering ``addr`` (0: none)."""
        mask = 0
        for shift, nets in self._by_family[family]:
            mask |= nets.get(addr >> shift, 0)
        return mask

    def refuses(self, family: int, addr: bytes, proto: int) -> bool:
        return bool(self.mask(family, int.from_bytes(addr, "big")) >> proto & 1)

    def matching(self, family: int, addr: bytes, proto: int) -> OptOut | None:
        """The first entry refusing ``proto`` to ``addr`` (for messages; not fast)."""
        value = int.from_bytes(addr, "big")
        for entry in self.entries:
            if entry.prefix.contains(family, value) and entry.mask >> proto & 1:
                return entry
        return None


EMPTY_TABLE = OptOutTable()


class OptOutSource:
    """The opt-out list of one guardian: a file and/or a DNS TXT RRset, merged.

    ``table`` is swapped whole when either part changes, and ``generation`` counts the swaps (the
    guardian keys its per-destination caches on it). Nothing here runs on the send path.
    """

    def __init__(self, config: OptOutConfig) -> None:
        self.config = config
        self._file_entries: tuple[OptOut, ...] = ()
        self._dns_entries: tuple[OptOut, ...] = ()
        self._file_key: tuple[int, int, int] | None = None
        self.dns_next_ns = 0
        self.dns_answered_ns: int | None = None
        self.last_error: str | None = None
        self.generation = 0
        self.table = EMPTY_TABLE
        if config.file is not None:
            self._load_file(config.file, initial=True)
        self._rebuild()

    def _rebuild(self) -> None:
        self.table = OptOutTable((*self._file_entries, *self._dns_entries))
        self.generation += 1

    def _load_file(self, path: Path, *, initial: bool) -> bool:
        try:
            st = os.stat(path)
            key = (st.st_mtime_ns, st.st_size, st.st_ino)
            if key == self._file_key:
                return False
            entries = parse_optout_text(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError, OptOutFormatError) as exc:
            if initial:
                if isinstance(exc, OptOutFormatError):
                    raise
                raise OptOutFormatError(str(path), f"cannot read: {exc}") from None
            self.last_error = str(exc)
            log.warning("opt-out file not reloaded, previous entries kept: %s", exc)
            return False
        self._file_key = key
        self._file_entries = tuple(entries)
        return True

    def check_file(self) -> bool:
        """Re-read the file if it changed (one stat). True if the table changed."""
        if self.config.file is None or not self._load_file(self.config.file, initial=False):
            return False
        self._rebuild()
        return True

    def dns_due(self, now_ns: int) -> bool:
        return self.config.dns_name is not None and now_ns >= self.dns_next_ns

    def _resolver(self) -> dns.asyncresolver.Resolver:
        cfg = self.config
        resolver = dns.asyncresolver.Resolver(configure=cfg.dns_server is None)
        if cfg.dns_server is not None:
            resolver.nameservers = [cfg.dns_server]
        resolver.port = cfg.dns_port
        resolver.lifetime = cfg.dns_timeout_ms / 1000
        resolver.timeout = cfg.dns_timeout_ms / 1000
        return resolver

    def _answered(self, answer: Any, now_ns: int) -> bool:
        """Install a DNS answer (None: no opt-outs). True if the table changed."""
        entries: list[OptOut] = []
        errors: list[str] = []
        where = f"DNS TXT {self.config.dns_name}"
        rrset = answer.rrset if answer is not None else None
        for rdata in rrset or ():
            if rdata.rdtype != dns.rdatatype.TXT:
                continue
            text = b"".join(rdata.strings).decode("ascii", "replace")
            for item in text.split(";"):
                if item.strip():
                    try:
                        entries.append(parse_optout_entry(item, where))
                    except OptOutFormatError as exc:
                        errors.append(str(exc))
        self.last_error = "; ".join(errors) or None
        self.dns_answered_ns = now_ns
        self.dns_next_ns = now_ns + self.config.cache_s * NS_PER_S
        changed = tuple(entries) != self._dns_entries
        if changed:
            self._dns_entries = tuple(entries)
            self._rebuild()
        return changed

    def _failed(self, exc: Exception, now_ns: int) -> bool:
        self.last_error = f"DNS TXT {self.config.dns_name}: {type(exc).__name__}: {exc}"
        self.dns_next_ns = now_ns + self.config.retry_s * NS_PER_S
        log.warning("opt-out lookup failed, last answer kept: %s", self.last_error)
        return False

    async def refresh_async(self, now_ns: int) -> bool:
        """Check the file, and ask DNS if the cached answer is due (without blocking the loop;
        at most the timeout). True if the table changed."""
        changed = self.check_file()
        name = self.config.dns_name
        if name is None or not self.dns_due(now_ns):
            return changed
        try:
            answer = await self._resolver().resolve(
                name, "TXT", search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN:
            answer = None
        except (dns.exception.DNSException, OSError) as exc:
            return self._failed(exc, now_ns) or changed
        return self._answered(answer, now_ns) or changed
