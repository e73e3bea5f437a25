"""cert_info (OID 1.2.3.1, v1.x): the certificate's type, delegation type and description."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from functools import lru_cache

from packetlab.pki._errors import NameValueError
from packetlab.pki.nvpairs import format_pairs, is_valid_value, parse_pairs


class CertType(enum.IntEnum):
    """Certificate types with the reference's type codes."""

    SUBCMD = 0
    PUBCMD = 1
    EXPPRIV = 2
    DELPRIV = 3
    AGENT = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def is_end_cert(self) -> bool:
        """End certs (subcmd, pubcmd, agent) sign messages; privilege certs sign certs."""
        return self in (CertType.SUBCMD, CertType.PUBCMD, CertType.AGENT)

    @classmethod
    def from_label(cls, label: str) -> CertType:
        try:
            return cls[label.upper()]
        except KeyError:
            raise ValueError(f"unknown certificate type {label!r}") from None


class DelType(enum.IntFlag):
    """What a delpriv certificate delegates (v0.x stored this bitfield as one byte)."""

    NONE = 0
    EXPPRIV = 0x1
    REPPRIV = 0x2

    @property
    def label(self) -> str:
        parts = [name for flag, name in _DEL_NAMES if flag in self]
        return ",".join(parts) if parts else "-"

    @classmethod
    def parse(cls, text: str) -> DelType:
        result = cls.NONE
        for item in text.split(","):
            for flag, name in _DEL_NAMES:
                if item == name:
                    if flag in result:
                        raise NameValueError(f"del_type: duplicate {item!r}")
                    result |= flag
                    break
            else:
                raise NameValueError(f"del_type: unknown delegation type {item!r}")
        return result


_DEL_NAMES = ((DelType.EXPPRIV, "exppriv"), (DelType.REPPRIV, "reppriv"))


@dataclass(frozen=True, slots=True)
class CertInfo:
    cert_type: CertType
    del_type: DelType = DelType.NONE
    description: str | None = None
    aux: tuple[tuple[str, str], ...] = field(default=())

    def __post_init__(self) -> None:
        is_delpriv = self.cert_type is CertType.DELPRIV
        if is_delpriv != bool(self.del_type):
            raise NameValueError("cert_info: del_type must be given exactly when cert_type=delpriv")

    def to_string(self) -> str:
        if self.description is not None and not is_valid_value(self.description):
            raise NameValueError(
                f"cert_info: description {self.description!r} has characters outside "
                "[A-Za-z0-9_.:[],/() -] and tab"
            )
        pairs = [("cert_type", self.cert_type.label)]
        if self.del_type:
            pairs.append(("del_type", self.del_type.label))
        if self.description is not None:
            pairs.append(("cert_desc", self.description))
        pairs.extend(self.aux)
        return format_pairs(pairs)


@lru_cache(maxsize=512)
def parse_cert_info(text: str) -> CertInfo:
    """Parse a v1.x cert_info string such as ``cert_type=delpriv;del_type=exppriv;``."""
    pairs = parse_pairs(text, what="cert_info")
    values = dict(pairs)
    if "cert_type" not in values:
        raise NameValueError("cert_info: 'cert_type' is missing")
    try:
        cert_type = CertType.from_label(values["cert_type"])
    except ValueError as exc:
        raise NameValueError(f"cert_info: {exc}") from None
    del_type = DelType.parse(values["del_type"]) if "del_type" in values else DelType.NONE
    aux = tuple((n, v) for n, v in pairs if n not in ("cert_type", "del_type", "cert_desc"))
    return CertInfo(cert_type, del_type, values.get("cert_desc"), aux)
