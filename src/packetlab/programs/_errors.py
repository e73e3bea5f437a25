"""Errors of the programs layer.

ProgramError
├── ProgramFormatError          an encoded program that does not decode
│   ├── EmptyProgramError       no bytes at all / no instructions
│   ├── ProgramTypeError        a type byte other than eBPF (0x00) where eBPF is needed
│   ├── ProgramLengthError      eBPF bytes not a whole number of 8-byte instructions
│   └── ProgramTooLongError     more than MAX_INSNS instructions
├── TextFormatError             a ``*.ebpf`` text line that does not parse (carries the line number)
├── FilterRejected              a verifier refused the program: ours (``reason``, ``index``) or the
│   │                           kernel's (``log``, the verifier log)
│   └── Unsupported             ours refused something outside the subset we run (the kernel may
│                               accept it: loops, helper calls, pointer arithmetic, ...)
├── BpfUnavailable              bpf(2) is not permitted or not there (EPERM, ENOSYS, other arch)
├── AttachError                 setsockopt refused to attach or detach a filter
├── ClassicProgramError         a classic BPF program we cannot translate (bad jump, ancillary load)
└── PcapError                   libpcap is missing or refused the expression (its own message)
"""

from __future__ import annotations


class ProgramError(Exception):
    """Base of the programs layer's errors."""


class ProgramFormatError(ProgramError, ValueError):
    """An encoded program (type byte + body) that does not decode."""


class EmptyProgramError(ProgramFormatError):
    """The encoded program, or its instruction list, is empty."""


class ProgramTypeError(ProgramFormatError):
    """The type byte names another kind of program (or none we know)."""


class ProgramLengthError(ProgramFormatError):
    """The eBPF body is not a whole number of 8-byte instructions."""


class ProgramTooLongError(ProgramFormatError):
    """More instructions than the cap."""


class TextFormatError(ProgramError, ValueError):
    """A line of the ``*.ebpf`` text form that does not parse."""

    def __init__(self, message: str, *, line: int) -> None:
        super().__init__(f"line {line}: {message}")
        self.line = line


class FilterRejected(ProgramError):
    """A verifier refused the program.

    ``reason`` is one sentence; ``index`` the instruction at fault (None when the whole program
    is at fault); ``log`` the kernel verifier's log when the kernel refused (empty for ours).
    """

    def __init__(
        self,
        reason: str,
        *,
        index: int | None = None,
        log: str = "",
        path: tuple[tuple[int, bool], ...] = (),
    ) -> None:
        where = f"insn {index}: " if index is not None else ""
        text = f"{where}{reason}"
        if log:
            text = f"{text}\n--- verifier log ---\n{log.rstrip()}"
        super().__init__(text)
        self.reason = reason
        self.index = index
        self.log = log
        # Branch decisions (insn index, jump taken) leading to ``index``; empty if not path-bound.
        self.path = path


class Unsupported(FilterRejected):
    """Refused by our verifier because the program leaves the subset we check and run.

    The kernel may accept such a program (bounded loops, helper calls, pointer arithmetic,
    reads of never-written stack, ...); see ``verifier`` for the list.
    """


class BpfUnavailable(ProgramError):
    """bpf(2) cannot be used here: not permitted (EPERM), absent (ENOSYS), or unknown arch."""


class AttachError(ProgramError):
    """The kernel refused to attach or detach a socket filter."""


class ClassicProgramError(ProgramError, ValueError):
    """A classic BPF program that is malformed or uses what we do not translate."""


class PcapError(ProgramError):
    """libpcap is missing, or refused the filter expression."""
