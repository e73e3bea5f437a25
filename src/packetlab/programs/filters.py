"""Certificate filters: encoded eBPF programs run in userspace on each received packet."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from packetlab.programs.ebpf import Insn, decode_program
from packetlab.programs.translator import FilterFunction, translate
from packetlab.programs.verifier import verify


def compile_insns(insns: Sequence[Insn]) -> FilterFunction:
    """Verify and translate instructions into ``(packet: bytes) -> int``."""
    return translate(verify(insns))


def compile_filter(encoded: bytes) -> FilterFunction:
    """Decode, verify and translate an encoded pktlab eBPF program, once.

    The function returns what the kernel's socket filter would: the number of bytes to keep
    (0 = drop). Raises ``ProgramFormatError`` for bytes that do not decode, ``FilterRejected``
    (or its ``Unsupported`` subclass) when the verifier refuses the program.
    """
    return compile_insns(decode_program(encoded))


class FilterSet:
    """The certificate filters of a session: a packet is kept up to the smallest accept length.

    ``accept_length(packet)`` is ``min(len(packet), f(packet) for each filter)``: 0 drops the
    packet, and with no filters the whole packet is kept.
    """

    __slots__ = ("_functions",)

    def __init__(self, functions: Iterable[FilterFunction] = ()) -> None:
        """``functions``: compiled filters (``compile_filter``), each compiled once."""
        self._functions: tuple[FilterFunction, ...] = tuple(functions)

    def __len__(self) -> int:
        return len(self._functions)

    def accept_length(self, packet: bytes) -> int:
        keep = len(packet)
        for function in self._functions:
            result = function(packet)
            if result < keep:
                keep = result
                if not keep:
                    break
        return keep
