"""Programs the endpoint runs on packets: pktlab-encoded eBPF filters and tcpdump expressions.

- ``ebpf``: the pktlab program encoding, instructions, text form, Linux layout.
- ``verifier`` + ``translate``: our socket-filter verifier and the Python translation of an
  accepted program (``compile_filter``, ``FilterSet`` for certificate filters).
- ``kernel``: bpf(2) loading, SO_ATTACH_BPF / SO_ATTACH_FILTER.
- ``cbpf`` + ``pcap``: classic BPF to eBPF, tcpdump expressions through libpcap.
- ``builtin``: the programs we ship (traceroute receive filter).

Errors (``_errors``)::

    ProgramError
    ├── ProgramFormatError (EmptyProgramError, ProgramTypeError, ProgramLengthError,
    │                       ProgramTooLongError)
    ├── TextFormatError
    ├── FilterRejected ── Unsupported
    ├── BpfUnavailable
    ├── AttachError
    ├── ClassicProgramError
    └── PcapError
"""

from __future__ import annotations

from packetlab.programs._errors import (
    AttachError,
    BpfUnavailable,
    ClassicProgramError,
    EmptyProgramError,
    FilterRejected,
    PcapError,
    ProgramError,
    ProgramFormatError,
    ProgramLengthError,
    ProgramTooLongError,
    ProgramTypeError,
    TextFormatError,
    Unsupported,
)
from packetlab.programs.builtin import builtin_program
from packetlab.programs.cbpf import ClassicInsn, cbpf_to_ebpf
from packetlab.programs.ebpf import (
    Insn,
    ProgramType,
    decode_program,
    digest,
    encode_program,
    format_text,
    from_linux,
    parse_text,
    program_type,
    to_linux,
)
from packetlab.programs.filters import FilterSet, compile_filter, compile_insns
from packetlab.programs.pcap import compile_classic, compile_expression
from packetlab.programs.translator import FilterFunction, python_source, translate
from packetlab.programs.verifier import VerifiedProgram, verify

__all__ = [
    "AttachError",
    "BpfUnavailable",
    "ClassicInsn",
    "ClassicProgramError",
    "EmptyProgramError",
    "FilterFunction",
    "FilterRejected",
    "FilterSet",
    "Insn",
    "PcapError",
    "ProgramError",
    "ProgramFormatError",
    "ProgramLengthError",
    "ProgramTooLongError",
    "ProgramType",
    "ProgramTypeError",
    "TextFormatError",
    "Unsupported",
    "VerifiedProgram",
    "builtin_program",
    "cbpf_to_ebpf",
    "compile_classic",
    "compile_expression",
    "compile_filter",
    "compile_insns",
    "decode_program",
    "digest",
    "encode_program",
    "format_text",
    "from_linux",
    "parse_text",
    "program_type",
    "python_source",
    "to_linux",
    "translate",
    "verify",
]
