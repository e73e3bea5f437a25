"""The pktlab program encoding, eBPF instructions and their text form.

An encoded program is ``progtype:u8`` then the program; type 0x00 is eBPF, a sequence of 8-byte
instructions ``opcode:u8, (dst<<4 | src):u8, offset:s16 BE, imm:s32 BE``. Linux's layout differs
(dst in the low nibble, little-endian offset and imm): ``to_linux`` converts. The digest that
certificates carry is SHA-256 over the encoded bytes, type byte included.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from packetlab.programs._errors import (
    EmptyProgramError,
    ProgramError,
    ProgramLengthError,
    ProgramTooLongError,
    ProgramTypeError,
    TextFormatError,
)
from packetlab.programs.opcodes import MAX_INSNS

__all__ = [  # ProgramError is re-exported: callers of decode_program catch it here
    "Insn",
    "ProgramError",
    "ProgramType",
    "decode_program",
    "digest",
    "encode_program",
    "format_text",
    "from_linux",
    "parse_text",
    "program_type",
    "to_linux",
]

_PKTLAB = struct.Struct(">BBhi")
_LINUX = struct.Struct("<BBhi")


class ProgramType(enum.IntEnum):
    """The type byte of an encoded program."""

    EBPF = 0x00
    WASM = 0x01


@dataclass(frozen=True, slots=True)
class Insn:
    """One eBPF instruction; ``offset`` and ``imm`` are signed."""

    opcode: int
    dst: int = 0
    src: int = 0
    offset: int = 0
    imm: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 0xFF:
            raise ValueError(f"opcode {self.opcode} is not a byte")
        if not (0 <= self.dst <= 15 and 0 <= self.src <= 15):
            raise ValueError(f"registers dst={self.dst} src={self.src} are not 4-bit")
        if not -0x8000 <= self.offset <= 0x7FFF:
            raise ValueError(f"offset {self.offset} does not fit a signed 16-bit field")
        if not -0x8000_0000 <= self.imm <= 0x7FFF_FFFF:
            raise ValueError(f"imm {self.imm} does not fit a signed 32-bit field")

    def __str__(self) -> str:
        return f"{self.opcode:#04x} {self.dst} {self.src} {self.offset} {self.imm}"


def program_type(encoded: bytes) -> ProgramType:
    """The type of an encoded program; raises for an empty or unknown one."""
    if not encoded:
        raise EmptyProgramError("empty program: not even a type byte")
    try:
        return ProgramType(encoded[0])
    except ValueError:
        raise ProgramTypeError(
            f"unknown program type {encoded[0]:#04x} (0x00 = eBPF, 0x01 = WASM)"
        ) from None


def decode_program(encoded: bytes) -> list[Insn]:
    """Decode an encoded eBPF program (type byte included) into its instructions."""
    kind = program_type(encoded)
    if kind is not ProgramType.EBPF:
        raise ProgramTypeError(f"a {kind.name} program (type {kind:#04x}), not eBPF (0x00)")
    body = memoryview(encoded)[1:]
    if not body:
        raise EmptyProgramError("eBPF program with no instructions")
    if len(body) % 8:
        raise ProgramLengthError(
            f"eBPF body of {len(body)} bytes is not a multiple of 8 (8-byte instructions)"
        )
    count = len(body) // 8
    if count > MAX_INSNS:
        raise ProgramTooLongError(f"{count} instructions, more than the cap of {MAX_INSNS}")
    return [
        Insn(op, regs >> 4, regs & 0x0F, off, imm)
        for op, regs, off, imm in _PKTLAB.iter_unpack(body)
    ]


def encode_program(insns: Iterable[Insn]) -> bytes:
    """The pktlab encoding of an eBPF program: type byte 0x00 then the instructions."""
    parts = [bytes([ProgramType.EBPF])]
    for insn in insns:
        parts.append(_PKTLAB.pack(insn.opcode, insn.dst << 4 | insn.src, insn.offset, insn.imm))
    if len(parts) == 1:
        raise EmptyProgramError("eBPF program with no instructions")
    if len(parts) - 1 > MAX_INSNS:
        raise ProgramTooLongError(
            f"{len(parts) - 1} instructions, more than the cap of {MAX_INSNS}"
        )
    return b"".join(parts)


def digest(encoded: bytes) -> bytes:
    """SHA-256 over the encoded program, type byte included (what certificates carry)."""
    return hashlib.sha256(encoded).digest()


def to_linux(insns: Sequence[Insn]) -> bytes:
    """The instructions in Linux's ``struct bpf_insn`` layout (dst in the low nibble, LE)."""
    return b"".join(_LINUX.pack(i.opcode, i.src << 4 | i.dst, i.offset, i.imm) for i in insns)


def from_linux(raw: bytes) -> list[Insn]:
    """Instructions from Linux's ``struct bpf_insn`` layout."""
    if len(raw) % 8:
        raise ProgramLengthError(f"{len(raw)} bytes is not a multiple of 8")
    return [
        Insn(op, regs & 0x0F, regs >> 4, off, imm) for op, regs, off, imm in _LINUX.iter_unpack(raw)
    ]


# --- text form ("*.ebpf") -------------------------------------------------------------------

_FIELDS = ("opcode", "dst", "src", "offset", "imm")
_WIDTH = {"opcode": 8, "dst": 4, "src": 4, "offset": 16, "imm": 32}
_DIGITS = {8: set("01234567"), 10: set("0123456789"), 16: set("0123456789abcdefABCDEF")}


def _strtoull(token: str) -> int:
    """An integer the way C's strtoull(s, NULL, 0) reads a whole token (sign allowed)."""
    sign = 1
    body = token
    if body[:1] in "+-":
        sign = -1 if body[0] == "-" else 1
        body = body[1:]
    if body[:2].lower() == "0x":
        digits, base = body[2:], 16
    elif body[:1] == "0" and len(body) > 1:
        digits, base = body[1:], 8
    else:
        digits, base = body, 10
    if not digits or not set(digits) <= _DIGITS[base]:
        raise ValueError(token)
    value = int(digits, base)
    if value >= 1 << 64:
        raise ValueError(token)
    return (sign * value) % (1 << 64)


def _field(name: str, value: int) -> int:
    """Narrow a 64-bit unsigned reading to the field; offset and imm come back signed."""
    bits = _WIDTH[name]
    signed = name in ("offset", "imm")
    if value >> bits and not (signed and value >> (bits - 1) == (1 << (65 - bits)) - 1):
        raise ValueError(f"{name} {value:#x} does not fit {bits} bits")
    value &= (1 << bits) - 1
    if signed and value >> (bits - 1):
        value -= 1 << bits
    return value


def parse_text(text: str) -> list[Insn]:
    """Parse the ``*.ebpf`` text form: one ``opcode dst src offset imm`` per line.

    Each field is an unsigned integer in any base strtoull accepts (``0x..``, ``0..``, decimal);
    negative offsets and immediates appear as their two's complement (16 or 32 bits, or the
    64-bit sign extension strtoull gives for ``-n``). Empty lines and lines starting with ``#``
    or ``\\r`` are ignored, and so is a ``#`` comment after the five fields.
    """
    insns: list[Insn] = []
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line.startswith(("#", "\r")):
            continue
        code = line.split("#", 1)[0].strip()
        if not code:
            continue
        tokens = code.split()
        if len(tokens) != len(_FIELDS):
            raise TextFormatError(
                f"expected 5 fields 'opcode dst src offset imm', found {len(tokens)}: {code!r}",
                line=number,
            )
        values: list[int] = []
        for name, token in zip(_FIELDS, tokens, strict=True):
            try:
                values.append(_field(name, _strtoull(token)))
            except ValueError as exc:
                detail = str(exc) if str(exc) != token else "not an integer"
                raise TextFormatError(f"{name} {token!r}: {detail}", line=number) from None
        insns.append(Insn(*values))
    if len(insns) > MAX_INSNS:
        raise ProgramTooLongError(f"{len(insns)} instructions, more than the cap of {MAX_INSNS}")
    return insns


def format_text(insns: Iterable[Insn]) -> str:
    """The text form of instructions (offset and imm as unsigned, hex opcode)."""
    return "".join(
        f"{i.opcode:#04x} {i.dst} {i.src} {i.offset & 0xFFFF} {i.imm & 0xFFFFFFFF}\n" for i in insns
    )
