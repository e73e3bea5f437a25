"""Experiment descriptors (xdescr), endpoint attributes (dattr) and SNI keys (reference section 7).

xdescr and dattr are ``name=value;`` strings. xdescr values may hold the wildcards ``*`` (any
run of characters) and ``?`` (one character) and may repeat names; dattr may not.

Matching, as the broker does it: an empty dattr matches every xdescr. Otherwise, for every dattr
pair whose name appears in the xdescr, at least one of the xdescr's values for that name must
match the dattr value; names absent from the xdescr match.
"""

from __future__ import annotations

import re
from functools import lru_cache

from packetlab.pki._errors import NameValueError
from packetlab.pki.nvpairs import parse_pairs

SNIKEY_MAX_LEN = 63
_SNIKEY = re.compile(r"[a-z0-9]{1,63}\Z")


def parse_xdescr(text: str) -> list[tuple[str, str]]:
    """(name, value-pattern) pairs; names may repeat."""
    return parse_pairs(text, what="xdescr", allow_wildcards=True, allow_duplicates=True)


def parse_dattr(text: str) -> dict[str, str]:
    """name -> value; names are unique."""
    return dict(parse_pairs(text, what="dattr"))


@lru_cache(maxsize=1024)
def _compile(pattern: str) -> re.Pattern[str]:
    parts = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(".")
        else:
            parts.append(re.escape(ch))
    return re.compile("".join(parts), re.DOTALL)


def wildcard_match(pattern: str, value: str) -> bool:
    """``*`` matches any run of characters, ``?`` exactly one; everything else is literal."""
    return _compile(pattern).fullmatch(value) is not None


def xdescr_matches(xdescr: str | list[tuple[str, str]], dattr: str | dict[str, str]) -> bool:
    """Whether an endpoint with attributes ``dattr`` should be notified of ``xdescr``."""
    pairs = parse_xdescr(xdescr) if isinstance(xdescr, str) else xdescr
    attrs = parse_dattr(dattr) if isinstance(dattr, str) else dattr
    if not attrs:
        return True
    patterns: dict[str, list[str]] = {}
    for name, value in pairs:
        patterns.setdefault(name, []).append(value)
    for name, value in attrs.items():
        wanted = patterns.get(name)
        if wanted is not None and not any(wildcard_match(p, value) for p in wanted):
            return False
    return True


def xdescr_get(xdescr: str | list[tuple[str, str]], name: str) -> str | None:
    """The first value of ``name`` in an xdescr, or None."""
    pairs = parse_xdescr(xdescr) if isinstance(xdescr, str) else xdescr
    for n, v in pairs:
        if n == name:
            return v
    return None


def is_valid_snikey(snikey: str) -> bool:
    """1-63 characters of [a-z0-9]: the TLS SNI that selects an experiment."""
    return bool(_SNIKEY.match(snikey))


def check_snikey(snikey: str) -> str:
    if not is_valid_snikey(snikey):
        raise NameValueError(f"snikey {snikey!r} must be 1-63 characters of [a-z0-9]")
    return snikey
