"""Our socket-filter verifier on a corpus of hand-written programs: the verdict and the reason,
and, where bpf(2) works, the kernel's verdict on the same program."""

from __future__ import annotations

import pytest
from ebpf_asm import (
    CTX_TO_R6,
    alu,
    alux,
    exit_,
    ja,
    jmp,
    jmpx,
    ldabs,
    lddw,
    ldind,
    ldx,
    mov,
    movr,
    st,
    stx,
)
from ebpf_oracle import kernel_accepts, kernel_bpf_available

from packetlab.programs import FilterRejected, Insn, Unsupported, verify

NO_BPF = kernel_bpf_available()
OK, INVALID, UNSUPPORTED = "ok", "invalid", "unsupported"

# name: (program, verdict, words in our reason, does the kernel accept it (unsupported only))
CORPUS: dict[str, tuple[list[Insn], str, str, bool | None]] = {
    "return a constant": ([mov(0, 1), exit_()], OK, "", None),
    "ip protocol check": (
        [
            CTX_TO_R6,
            ldabs("b", 9),
            jmp("jne", 0, 17, 2),
            mov(0, 0xFFFF),
            exit_(),
            mov(0, 0),
            exit_(),
        ],
        OK,
        "",
        None,
    ),
    "transport offset from IHL, LD_IND": (
        [
            CTX_TO_R6,
            ldabs("b", 0),
            movr(7, 0),
            alu("and", 7, 15, bits=32),
            alu("lsh", 7, 2, bits=32),
            ldind("h", 7, 2),
            exit_(),
        ],
        OK,
        "",
        None,
    ),
    "stack round trip": (
        [
            mov(1, 7),
            stx("dw", 10, 1, -8),
            st("w", 10, -16, 3),
            ldx("dw", 0, 10, -8),
            ldx("w", 2, 10, -16),
            alux("add", 0, 2),
            exit_(),
        ],
        OK,
        "",
        None,
    ),
    "packet length from the context": ([ldx("w", 0, 1, 0), exit_()], OK, "", None),
    "64-bit immediate": ([*lddw(0, 0x1_0000_0002), exit_()], OK, "", None),
    "constant-dead path may read garbage": (
        [mov(0, 0), jmp("jeq", 0, 0, 1), movr(0, 5), exit_()],
        OK,
        "",
        None,
    ),
    "32-bit jump and gotol": (
        [mov(0, -1), jmp("jeq", 0, -1, 1, bits=32), mov(0, 2), Insn(0x06, 0, 0, 0, 0), exit_()],
        OK,
        "",
        None,
    ),
    "exit ignores its offset": ([mov(0, 0), Insn(0x95, 0, 0, 7, 0)], OK, "", None),
    "signed div, movsx, bswap": (
        [
            mov(0, -7),
            alu("div", 0, 2, off=1),
            movr(1, 0, off=8),
            Insn(0xD7, 1, 0, 0, 16),
            alux("add", 0, 1),
            exit_(),
        ],
        OK,
        "",
        None,
    ),
    "empty": ([], INVALID, "empty", None),
    "r0 never written": ([exit_()], INVALID, "exit with r0 never written", None),
    "uninitialised register": ([movr(0, 3), exit_()], INVALID, "r3 is read before", None),
    "frame pointer write": ([mov(10, 0), mov(0, 0), exit_()], INVALID, "r10", None),
    "jump out of range": ([mov(0, 0), jmp("jeq", 0, 0, 5), exit_()], INVALID, "out of range", None),
    "unreachable": ([mov(0, 0), exit_(), exit_()], INVALID, "unreachable instruction 2", None),
    "falls off the end": ([mov(0, 0)], INVALID, "last instruction", None),
    "unknown opcode": (
        [mov(0, 0), Insn(0x8C, 0, 1), exit_()],
        INVALID,
        "unknown opcode 0x8c",
        None,
    ),
    "unknown opcode in dead code": (
        [mov(0, 0), jmp("jeq", 0, 0, 1), Insn(0x0E), exit_()],
        INVALID,
        "unknown opcode 0x0e",
        None,
    ),
    "LD_ABS without the context in r6": ([ldabs("b", 0), exit_()], INVALID, "r6 is read", None),
    "LD_ABS with a scalar in r6": (
        [mov(6, 1), ldabs("b", 0), exit_()],
        INVALID,
        "needs the context in r6",
        None,
    ),
    "LD_ABS clobbers r1-r5": (
        [CTX_TO_R6, mov(2, 1), ldabs("b", 0), movr(0, 2), exit_()],
        INVALID,
        "r2 is read",
        None,
    ),
    "stack below 512": (
        [st("dw", 10, -520, 0), mov(0, 0), exit_()],
        INVALID,
        "outside the stack",
        None,
    ),
    "stack above the frame": ([st("b", 10, 0, 0), mov(0, 0), exit_()], INVALID, "outside", None),
    "misaligned stack": ([st("dw", 10, -12, 0), mov(0, 0), exit_()], INVALID, "misaligned", None),
    "division by constant zero": ([mov(0, 1), alu("div", 0, 0), exit_()], INVALID, "zero", None),
    "shift by 64": ([mov(0, 1), alu("lsh", 0, 64), exit_()], INVALID, "invalid shift", None),
    "32-bit shift by 32": (
        [mov(0, 1), alu("rsh", 0, 32, bits=32), exit_()],
        INVALID,
        "shift",
        None,
    ),
    "register r11": ([mov(11, 0), mov(0, 0), exit_()], INVALID, "r11 is invalid", None),
    "ALU imm form with a src register": (
        [mov(0, 0), Insn(0x07, 0, 1, 0, 1), exit_()],
        INVALID,
        "reserved",
        None,
    ),
    "JA with an imm": ([mov(0, 0), Insn(0x05, 0, 0, 0, 1), exit_()], INVALID, "BPF_JA", None),
    "exit with an imm": ([mov(0, 0), Insn(0x95, 0, 0, 0, 1)], INVALID, "BPF_EXIT", None),
    "LDX with an imm": ([ldx("w", 0, 1, 0), Insn(0x61, 0, 1, 0, 1), exit_()], INVALID, "LDX", None),
    "LD_ABS with dst": ([CTX_TO_R6, Insn(0x30, 1, 0, 0, 0), exit_()], INVALID, "reserved", None),
    "half a 64-bit immediate": (
        [mov(0, 0), Insn(0x18, 0, 0, 0, 1), exit_()],
        INVALID,
        "64-bit",
        None,
    ),
    "jump into a 64-bit immediate": (
        [mov(0, 0), jmp("jeq", 0, 0, 1), *lddw(1, 5), exit_()],
        INVALID,
        "middle",
        None,
    ),
    "load through a scalar": (
        [mov(2, 0), ldx("w", 0, 2, 0), exit_()],
        INVALID,
        "not a pointer",
        None,
    ),
    "bounded loop": (
        [mov(0, 0), alu("add", 0, 1), jmp("jlt", 0, 5, -2), exit_()],
        UNSUPPORTED,
        "back-edge",
        True,
    ),
    "helper call": ([Insn(0x85, 0, 0, 0, 7), exit_()], UNSUPPORTED, "helper call", True),
    "reading stack never written": (
        [ldx("dw", 0, 10, -8), exit_()],
        UNSUPPORTED,
        "never written",
        True,
    ),
    "pointer arithmetic on a copy of r10": (
        [movr(2, 10), alu("add", 2, -8), st("dw", 2, 0, 5), mov(0, 0), exit_()],
        UNSUPPORTED,
        "arithmetic on a stack pointer",
        True,
    ),
    "narrow context read": ([ldx("b", 0, 1, 0), exit_()], UNSUPPORTED, "context read", True),
    "returning a pointer": ([movr(0, 10), exit_()], UNSUPPORTED, "exit returning", True),
    "LD_ABS at a negative offset": (
        [CTX_TO_R6, ldabs("b", -0x100000), exit_()],
        UNSUPPORTED,
        "negative offset",
        True,
    ),
    "atomic add on the stack": (
        [st("dw", 10, -8, 0), mov(1, 1), Insn(0xDB, 10, 1, -8, 0), mov(0, 0), exit_()],
        UNSUPPORTED,
        "atomic",
        True,
    ),
    "spilling the context": (
        [stx("dw", 10, 1, -8), mov(0, 0), exit_()],
        UNSUPPORTED,
        "storing the context",
        True,
    ),
    "comparing a pointer": (
        [mov(0, 0), jmp("jeq", 1, 0, 0), exit_()],
        UNSUPPORTED,
        "comparison involving",
        True,
    ),
}


@pytest.mark.parametrize("name", list(CORPUS))
def test_our_verdict_and_reason(name: str) -> None:
    program, verdict, words, _ = CORPUS[name]
    if verdict == OK:
        vp = verify(program)
        assert vp.insns == tuple(program)
        return
    with pytest.raises(FilterRejected) as caught:
        verify(program)
    assert isinstance(caught.value, Unsupported) == (verdict == UNSUPPORTED)
    assert words in caught.value.reason
    assert words in str(caught.value)


@pytest.mark.skipif(NO_BPF is not None, reason=f"bpf(2) unavailable: {NO_BPF}")
@pytest.mark.parametrize("name", [n for n in CORPUS if CORPUS[n][0]])
def test_the_kernel_agrees(name: str) -> None:
    program, verdict, _, kernel_accepts_it = CORPUS[name]
    accepted, reason = kernel_accepts(program)
    if verdict == OK:
        assert accepted, reason
    elif verdict == INVALID:
        assert not accepted, "the kernel accepts what we call invalid"
    else:  # outside our subset: the documented differences
        assert accepted == kernel_accepts_it, reason


def test_refusal_names_the_instruction_and_the_path() -> None:
    program = [CTX_TO_R6, ldabs("b", 9), jmp("jeq", 0, 6, 2), mov(3, 1), ja(0), movr(0, 3), exit_()]
    with pytest.raises(FilterRejected) as caught:
        verify(program)
    assert caught.value.index == 5
    assert caught.value.path == ((2, True),)  # the jump taken skips the write of r3
    assert str(caught.value).startswith("insn 5: r3 is read before it is written")


def test_verified_program_reports_reachable_code_and_jump_outcomes() -> None:
    program = [
        mov(0, 0),
        jmp("jeq", 0, 0, 1),
        movr(0, 5),
        CTX_TO_R6,
        ldabs("b", 0),
        jmpx("jgt", 0, 0, 0),
        exit_(),
    ]
    vp = verify(program)
    assert 2 not in vp.visited  # the kernel does not look there either
    assert vp.jumps[1] == frozenset({True})
    # r0 > r0 is never true, but we track constants only, and r0 is packet data here
    assert vp.jumps[5] == frozenset({False, True})
