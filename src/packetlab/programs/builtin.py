"""eBPF programs shipped with packetlab (text form, in ``programs/data``)."""

from __future__ import annotations

from importlib import resources

from packetlab.programs._errors import ProgramError
from packetlab.programs.ebpf import Insn, encode_program, parse_text

BUILTIN_NAMES = ("traceroute_recv",)


def builtin_text(name: str) -> str:
    """The ``*.ebpf`` text of a shipped program."""
    if name not in BUILTIN_NAMES:
        raise ProgramError(f"no built-in program {name!r} (have: {', '.join(BUILTIN_NAMES)})")
    return resources.files("packetlab.programs").joinpath("data", f"{name}.ebpf").read_text()


def builtin_insns(name: str) -> list[Insn]:
    return parse_text(builtin_text(name))


def builtin_program(name: str) -> bytes:
    """A shipped program, encoded (type byte 0x00 + instructions)."""
    return encode_program(builtin_insns(name))
