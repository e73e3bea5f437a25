"""The `name=value;` strings of PacketLab: cert_info, cert_limit, xdescr and dattr.

Grammar (reference sections 6.3 and 7)::

    string  := pair* ; every pair ends with ';'
    pair    := name '=' value ';'
    name    := [A-Za-z0-9_-]+           (cert_limit names may carry a leading '*': optional)
    value   := [A-Za-z0-9_.:\\[\\],/() \\t-]*   (xdescr values may also hold the wildcards '*' '?')
"""

from __future__ import annotations

import re

from packetlab.pki._errors import NameValueError

_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")
_VALUE = re.compile(r"[A-Za-z0-9_.:\[\],/() \t-]*\Z")
_WILDCARD_VALUE = re.compile(r"[A-Za-z0-9_.:\[\],/() \t*?-]*\Z")


def parse_pairs(
    text: str,
    *,
    what: str,
    allow_optional_marker: bool = False,
    allow_wildcards: bool = False,
    allow_duplicates: bool = False,
) -> list[tuple[str, str]]:
    """Split ``text`` into (name, value) pairs, checking the grammar.

    With ``allow_optional_marker`` a name may start with ``*`` (kept in the returned name).
    """
    if text == "":
        return []
    if not text.endswith(";"):
        raise NameValueError(f"{what}: {text!r} does not end with ';'")
    value_re = _WILDCARD_VALUE if allow_wildcards else _VALUE
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for item in text[:-1].split(";"):
        name, sep, value = item.partition("=")
        if not sep:
            raise NameValueError(f"{what}: {item + ';'!r} is not in NAME=VALUE; form")
        bare = name[1:] if allow_optional_marker and name.startswith("*") else name
        if not _NAME.match(bare):
            raise NameValueError(f"{what}: {name!r} is not a valid name")
        if not value_re.match(value):
            raise NameValueError(f"{what}: value {value!r} of {name!r} has invalid characters")
        if not allow_duplicates:
            if bare in seen:
                raise NameValueError(f"{what}: duplicate {bare!r}")
            seen.add(bare)
        pairs.append((name, value))
    return pairs


def format_pairs(pairs: list[tuple[str, str]]) -> str:
    return "".join(f"{name}={value};" for name, value in pairs)


def is_valid_value(value: str) -> bool:
    return bool(_VALUE.match(value))
