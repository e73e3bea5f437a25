"""Classic BPF (what tcpdump and SO_ATTACH_FILTER speak) translated to eBPF.

Registers: A is r0 (LD_ABS/LD_IND load into r0), X is r7, the context r6, r8 saves A around
``ldxb 4*([k]&0xf)``; the scratch words M[0..15] live on the stack at r10-64 .. r10-4 and are
zeroed first (the kernel refuses classic programs that read a word before storing it, so this
changes nothing for valid ones). ALU and jumps are 32-bit, as in classic BPF; division or
modulo by X = 0 ends the program with 0, as classic BPF does; a shift by X uses X & 31, as the
kernel's classic filter does (libpcap's own interpreter gives 0 for X >= 32). Unreachable
classic instructions are dropped (eBPF forbids them). Ancillary loads (negative offsets:
SKF_AD_*, SKF_NET_OFF, SKF_LL_OFF) are refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import NamedTuple

from packetlab.programs import opcodes as o
from packetlab.programs._errors import ClassicProgramError
from packetlab.programs.ebpf import Insn

# Classic opcode fields.
C_LD, C_LDX, C_ST, C_STX, C_ALU, C_JMP, C_RET, C_MISC = range(8)
C_W, C_H, C_B = 0x00, 0x08, 0x10
C_IMM, C_ABS, C_IND, C_MEM, C_LEN, C_MSH = 0x00, 0x20, 0x40, 0x60, 0x80, 0xA0
C_K, C_X, C_A = 0x00, 0x08, 0x10
C_JA, C_JEQ, C_JGT, C_JGE, C_JSET = 0x00, 0x10, 0x20, 0x30, 0x40
C_TAX, C_TXA = 0x00, 0x80
MEMWORDS = 16
MAX_CLASSIC_INSNS = 4096

_A, _X, _CTX, _SAVE = 0, 7, 6, 8
_SIZES = {C_W: o.W, C_H: o.H, C_B: o.B}
_ALU_OPS = {0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x80, 0x90, 0xA0}
_INVERSE = {C_JEQ: o.JNE, C_JGT: o.JLE, C_JGE: o.JLT}
_JUMP_OPS = {C_JEQ: o.JEQ, C_JGT: o.JGT, C_JGE: o.JGE, C_JSET: o.JSET}


class ClassicInsn(NamedTuple):
    """One classic BPF instruction (``struct sock_filter``)."""

    code: int
    jt: int
    jf: int
    k: int


def _mem_offset(k: int) -> int:
    return -4 * (MEMWORDS - k)


def _targets(program: Sequence[ClassicInsn], i: int) -> tuple[int, ...]:
    insn = program[i]
    cls = insn.code & 0x07
    if cls == C_RET:
        return ()
    if cls == C_JMP:
        if insn.code & 0xF0 == C_JA:
            return (i + 1 + insn.k,)
        return (i + 1 + insn.jt, i + 1 + insn.jf)
    return (i + 1,)


def _check(program: Sequence[ClassicInsn]) -> None:
    """The kernel's classic checks, less the scratch-memory one (we zero M[] instead)."""
    n = len(program)
    if not 0 < n <= MAX_CLASSIC_INSNS:
        raise ClassicProgramError(f"classic program of {n} instructions (1..{MAX_CLASSIC_INSNS})")
    for i, insn in enumerate(program):
        code, k = insn.code, insn.k
        if not (0 <= code <= 0xFFFF and 0 <= insn.jt <= 0xFF and 0 <= insn.jf <= 0xFF):
            raise ClassicProgramError(f"insn {i}: fields out of range: {insn}")
        if not 0 <= k <= 0xFFFFFFFF:
            raise ClassicProgramError(f"insn {i}: k {k} is not a u32")
        cls, mode, size = code & 0x07, code & 0xE0, code & 0x18
        where = f"insn {i} (code {code:#06x})"
        if cls in (C_LD, C_LDX):
            valid = (
                (cls == C_LD and mode in (C_ABS, C_IND) and size in _SIZES)
                or (mode in (C_IMM, C_LEN, C_MEM) and size == C_W)
                or (cls == C_LDX and mode == C_MSH and size == C_B)
            )
            if not valid or code & ~0xFF:
                raise ClassicProgramError(f"{where}: unknown load")
            if mode == C_MEM and k >= MEMWORDS:
                raise ClassicProgramError(f"{where}: scratch word M[{k}] does not exist")
            if mode in (C_ABS, C_MSH) and k >= 0x8000_0000:
                raise ClassicProgramError(
                    f"{where}: negative offset {k - (1 << 32)} (ancillary SKF_* load) is not "
                    "supported"
                )
        elif cls in (C_ST, C_STX):
            if code != cls:
                raise ClassicProgramError(f"{where}: unknown store")
            if k >= MEMWORDS:
                raise ClassicProgramError(f"{where}: scratch word M[{k}] does not exist")
        elif cls == C_ALU:
            op = code & 0xF0
            if op not in _ALU_OPS or code & 0xFF07 != C_ALU or (op == 0x80 and code & C_X):
                raise ClassicProgramError(f"{where}: unknown ALU operation")
            if code & C_X == C_K:
                if op in (0x30, 0x90) and k == 0:
                    raise ClassicProgramError(f"{where}: division by the constant 0")
                if op in (0x60, 0x70) and k >= 32:
                    raise ClassicProgramError(f"{where}: shift by {k} (must be < 32)")
        elif cls == C_JMP:
            op = code & 0xF0
            if (
                op not in (C_JA, *_JUMP_OPS)
                or code & 0xFF07 != C_JMP
                or (op == C_JA and code & C_X)
            ):
                raise ClassicProgramError(f"{where}: unknown jump")
            for t in _targets(program, i):
                if t >= n:
                    raise ClassicProgramError(f"{where}: jump to {t}, past the end ({n})")
        elif cls == C_RET:
            if code not in (C_RET | C_K, C_RET | C_A):
                raise ClassicProgramError(f"{where}: unknown return")
        elif code not in (C_MISC | C_TAX, C_MISC | C_TXA):
            raise ClassicProgramError(f"{where}: unknown instruction")
    if program[-1].code & 0x07 != C_RET:
        raise ClassicProgramError("the last instruction is not a return")


def _reachable(program: Sequence[ClassicInsn]) -> list[bool]:
    seen = [False] * len(program)
    todo = [0]
    seen[0] = True
    while todo:
        for t in _targets(program, todo.pop()):
            if not seen[t]:
                seen[t] = True
                todo.append(t)
    return seen


def _s32(k: int) -> int:
    return k - (1 << 32) if k >= 0x8000_0000 else k


def _jump(program: Sequence[ClassicInsn], i: int) -> tuple[str, ...]:
    """The eBPF shape of a classic jump: which of 'cond', 'inverse', 'skip', 'ja' we emit."""
    insn = program[i]
    op = insn.code & 0xF0
    if op == C_JA:
        return ("ja",) if insn.k else ()
    if insn.jt == insn.jf:
        return ("ja",) if insn.jt else ()
    if insn.jf == 0:
        return ("cond",)
    if insn.jt == 0:
        return ("inverse",) if op in _INVERSE else ("skip", "ja")
    return ("cond", "ja")


def _translate_one(
    program: Sequence[ClassicInsn], i: int, pos: int, start: dict[int, int]
) -> list[Insn]:
    insn = program[i]
    code, k = insn.code, insn.k
    cls, mode = code & 0x07, code & 0xE0
    if cls == C_LD:
        if mode == C_ABS:
            return [Insn(o.LD | o.ABS | _SIZES[code & 0x18], 0, 0, 0, _s32(k))]
        if mode == C_IND:
            return [Insn(o.LD | o.IND | _SIZES[code & 0x18], 0, _X, 0, _s32(k))]
        if mode == C_LEN:
            return [Insn(o.LDX | o.MEM | o.W, _A, _CTX, 0, 0)]
        if mode == C_MEM:
            return [Insn(o.LDX | o.MEM | o.W, _A, o.FRAME_REG, _mem_offset(k), 0)]
        return [Insn(o.ALU | o.MOV | o.K, _A, 0, 0, _s32(k))]
    if cls == C_LDX:
        if mode == C_LEN:
            return [Insn(o.LDX | o.MEM | o.W, _X, _CTX, 0, 0)]
        if mode == C_MEM:
            return [Insn(o.LDX | o.MEM | o.W, _X, o.FRAME_REG, _mem_offset(k), 0)]
        if mode == C_MSH:
            return [
                Insn(o.ALU64 | o.MOV | o.X, _SAVE, _A),
                Insn(o.LD | o.ABS | o.B, 0, 0, 0, _s32(k)),
                Insn(o.ALU | o.AND | o.K, _A, 0, 0, 0x0F),
                Insn(o.ALU | o.LSH | o.K, _A, 0, 0, 2),
                Insn(o.ALU64 | o.MOV | o.X, _X, _A),
                Insn(o.ALU64 | o.MOV | o.X, _A, _SAVE),
            ]
        return [Insn(o.ALU | o.MOV | o.K, _X, 0, 0, _s32(k))]
    if cls == C_ST:
        return [Insn(o.STX | o.MEM | o.W, o.FRAME_REG, _A, _mem_offset(k), 0)]
    if cls == C_STX:
        return [Insn(o.STX | o.MEM | o.W, o.FRAME_REG, _X, _mem_offset(k), 0)]
    if cls == C_ALU:
        op = code & 0xF0
        if op == 0x80:
            return [Insn(o.ALU | o.NEG, _A)]
        if code & C_X == C_K:
            return [Insn(o.ALU | op | o.K, _A, 0, 0, _s32(k))]
        guard: list[Insn] = []
        if op in (0x30, 0x90):  # A / X and A % X end the program with 0 when X == 0
            guard = [
                Insn(o.JMP32 | o.JNE | o.K, _X, 0, 2, 0),
                Insn(o.ALU | o.MOV | o.K, _A, 0, 0, 0),
                Insn(o.JMP | o.EXIT),
            ]
        return [*guard, Insn(o.ALU | op | o.X, _A, _X)]
    if cls == C_RET:
        if code & 0x18 == C_A:
            return [Insn(o.JMP | o.EXIT)]
        return [Insn(o.ALU | o.MOV | o.K, _A, 0, 0, _s32(k)), Insn(o.JMP | o.EXIT)]
    if cls == C_MISC:
        if code & 0xF8 == C_TAX:
            return [Insn(o.ALU | o.MOV | o.X, _X, _A)]
        return [Insn(o.ALU | o.MOV | o.X, _A, _X)]
    # Jumps.
    shape = _jump(program, i)
    op = code & 0xF0
    if op == C_JA:
        return [Insn(o.JMP | o.JA, 0, 0, start[i + 1 + k] - pos - 1)] if shape else []
    t_pos, f_pos = start[i + 1 + insn.jt], start[i + 1 + insn.jf]
    x = code & C_X == C_X
    src, imm = (_X, 0) if x else (0, _s32(k))
    srcbit = o.X if x else o.K
    out: list[Insn] = []
    for n, part in enumerate(shape):
        here = pos + n
        if part == "cond":
            out.append(Insn(o.JMP32 | _JUMP_OPS[op] | srcbit, _A, src, t_pos - here - 1, imm))
        elif part == "inverse":
            out.append(Insn(o.JMP32 | _INVERSE[op] | srcbit, _A, src, f_pos - here - 1, imm))
        elif part == "skip":
            out.append(Insn(o.JMP32 | _JUMP_OPS[op] | srcbit, _A, src, 1, imm))
        else:
            target = t_pos if insn.jt == insn.jf else f_pos
            out.append(Insn(o.JMP | o.JA, 0, 0, target - here - 1))
    return out


def cbpf_to_ebpf(program: Iterable[ClassicInsn | tuple[int, int, int, int]]) -> list[Insn]:
    """Translate a classic BPF program into an equivalent eBPF socket filter."""
    classic = [ClassicInsn(*insn) for insn in program]
    _check(classic)
    live = _reachable(classic)
    used_words = sorted(
        {c.k for c in classic if c.code & 0x07 in (C_LD, C_LDX) and c.code & 0xE0 == C_MEM}
        | {c.k for c in classic if c.code & 0x07 in (C_ST, C_STX)}
    )
    prologue = [
        Insn(o.ALU64 | o.MOV | o.X, _CTX, 1),
        Insn(o.ALU | o.MOV | o.K, _A, 0, 0, 0),
        Insn(o.ALU | o.MOV | o.K, _X, 0, 0, 0),
        *(Insn(o.ST | o.MEM | o.W, o.FRAME_REG, 0, _mem_offset(k), 0) for k in used_words),
    ]
    # First pass: where each classic instruction starts (sizes do not depend on offsets).
    start: dict[int, int] = {}
    pos = len(prologue)
    for i in range(len(classic)):
        if live[i]:
            start[i] = pos
            pos += len(_translate_one(classic, i, pos, dict.fromkeys(range(len(classic)), 0)))
    out = list(prologue)
    for i in range(len(classic)):
        if live[i]:
            out.extend(_translate_one(classic, i, len(out), start))
    if len(out) > o.MAX_INSNS:
        raise ClassicProgramError(f"translation has {len(out)} eBPF instructions (> {o.MAX_INSNS})")
    return out
