"""Random eBPF socket-filter programs, mostly plausible, sometimes broken on purpose.

``generate(chooser)`` draws through a ``Chooser``: ``RandomChooser`` (a seeded ``random.Random``)
or ``ListChooser`` over bytes Hypothesis drew (strategy ``choices``, so failures shrink).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Protocol, TypeVar

from hypothesis import strategies as st

from packetlab.programs import opcodes as o
from packetlab.programs.ebpf import Insn

T = TypeVar("T")

IMMS = [
    0,
    1,
    -1,
    2,
    3,
    7,
    8,
    13,
    16,
    20,
    31,
    32,
    33,
    63,
    64,
    255,
    256,
    0x7FFF,
    0xFFFF,
    0x7FFFFFFF,
    -0x80000000,
    -2,
    0x45,
    6,
    17,
]
ALU_OPS = [
    o.ADD,
    o.SUB,
    o.MUL,
    o.DIV,
    o.OR,
    o.AND,
    o.LSH,
    o.RSH,
    o.NEG,
    o.MOD,
    o.XOR,
    o.MOV,
    o.ARSH,
    o.END,
]
COND_OPS = [o.JEQ, o.JGT, o.JGE, o.JSET, o.JNE, o.JSGT, o.JSGE, o.JLT, o.JLE, o.JSLT, o.JSLE]
STACK_OFFS = [-8, -16, -4, -2, -1, -24, -512, -504, -6, -12, 0, -520, 8]


class Chooser(Protocol):
    def int(self, lo: int, hi: int) -> int: ...

    def pick(self, items: Sequence[T]) -> T: ...

    def chance(self, p: float) -> bool: ...


class RandomChooser:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def int(self, lo: int, hi: int) -> int:
        return self.rng.randint(lo, hi)

    def pick(self, items: Sequence[T]) -> T:
        return self.rng.choice(items)

    def chance(self, p: float) -> bool:
        return self.rng.random() < p


class ListChooser:
    """Choices read from bytes Hypothesis drew (and shrinks toward zero); 3 bytes a choice."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def _next(self) -> int:
        self.at += 3
        return int.from_bytes(self.data[self.at - 3 : self.at], "big")

    def int(self, lo: int, hi: int) -> int:
        return lo + self._next() % (hi - lo + 1)

    def pick(self, items: Sequence[T]) -> T:
        return items[self.int(0, len(items) - 1)]

    def chance(self, p: float) -> bool:
        return self._next() % 1000 < int(p * 1000)


# One draw per program: a byte string is cheap to draw and shrinks well.
choices = st.binary(min_size=1800, max_size=1800).map(ListChooser)


def _imm(c: Chooser) -> int:
    if c.chance(0.85):
        return c.pick(IMMS)
    return c.int(-0x80000000, 0x7FFFFFFF)


_PLAUSIBLE = [False]


def _reg(c: Chooser, *, dst: bool = False) -> int:
    if c.chance(0.02):
        return c.pick([10, 11, 15])
    if _PLAUSIBLE[0] and c.chance(0.85):
        return c.pick([0, 7, 8, 9])
    return c.int(0, 9) if dst else c.int(0, 10)


def _alu(c: Chooser) -> Insn:
    cls = o.ALU64 if c.chance(0.6) else o.ALU
    op = c.pick(ALU_OPS)
    x = c.chance(0.4)
    dst = _reg(c, dst=True)
    off = 0
    if op in (o.DIV, o.MOD) and c.chance(0.3):
        off = 1
    if op == o.MOV and x and c.chance(0.15):
        off = c.pick([8, 16, 32])
    if op == o.NEG:
        return Insn(cls | op, dst)
    if op == o.END:
        src_bit = o.TO_BE if cls == o.ALU and c.chance(0.5) else o.TO_LE
        return Insn(cls | op | src_bit, dst, 0, 0, c.pick([16, 32, 64]))
    imm = _imm(c)
    if op in (o.LSH, o.RSH, o.ARSH) and c.chance(0.8):
        imm = c.int(0, 63 if cls == o.ALU64 else 31)
    if x:
        return Insn(cls | op | o.X, dst, _reg(c), off, 0)
    return Insn(cls | op, dst, 0, off, imm)


def _packet_load(c: Chooser) -> Insn:
    size = c.pick([o.B, o.H, o.W, o.B, o.B])
    if c.chance(0.7):
        return Insn(o.LD | o.ABS | size, 0, 0, 0, c.int(0, 70) if c.chance(0.95) else -1)
    return Insn(o.LD | o.IND | size, 0, _reg(c), 0, c.int(-4, 60))


def _memory(c: Chooser) -> Insn:
    size = c.pick([o.B, o.H, o.W, o.DW])
    nbytes = o.SIZE_BYTES[size]
    off = c.pick(STACK_OFFS) if c.chance(0.3) else -nbytes * c.int(1, 4)
    base = 10 if c.chance(0.85) else c.pick([1, 6, 2, 0])
    kind = c.int(0, 2)
    if kind == 0:
        return Insn(o.ST | o.MEM | size, base, 0, off, _imm(c))
    if kind == 1:
        return Insn(o.STX | o.MEM | size, base, _reg(c), off, 0)
    mode = o.MEMSX if size != o.DW and c.chance(0.15) else o.MEM
    return Insn(o.LDX | mode | size, _reg(c, dst=True), base, off, 0)


def _cond(c: Chooser, room: int) -> Insn:
    cls = o.JMP if c.chance(0.7) else o.JMP32
    op = c.pick(COND_OPS)
    off = c.int(0, max(0, room))
    if c.chance(0.6):
        return Insn(cls | op, _reg(c), 0, off, _imm(c))
    return Insn(cls | op | o.X, _reg(c), _reg(c), off, 0)


def generate(c: Chooser, *, max_len: int = 28) -> list[Insn]:
    """A program of up to ``max_len`` body instructions, ending (usually) in exit."""
    body_len = c.int(1, max_len)
    insns: list[Insn] = []
    _PLAUSIBLE[0] = c.chance(0.5)  # registers that LD_ABS keeps; everything initialised
    if _PLAUSIBLE[0] or c.chance(0.85):
        insns.append(Insn(o.ALU64 | o.MOV | o.X, 6, 1))
    if _PLAUSIBLE[0]:
        for r in (0, 7, 8, 9):
            insns.append(Insn(o.ALU64 | o.MOV, r, 0, 0, _imm(c)))
    for _ in range(c.int(0, 6)):
        insns.append(Insn(o.ALU64 | o.MOV, c.int(0, 9), 0, 0, _imm(c)))
    total = len(insns) + body_len + 1
    while len(insns) < total - 1:
        room = total - len(insns) - 2  # instructions between the next one and the final exit
        kind = c.int(0, 99)
        if kind < 38:
            insns.append(_alu(c))
        elif kind < 53:
            insns.append(_packet_load(c))
        elif kind < 63:
            insns.append(_memory(c))
        elif kind < 66:
            insns.append(Insn(o.LDX | o.MEM | o.W, _reg(c, dst=True), c.pick([1, 6]), 0, 0))
        elif kind < 86:
            insns.append(_cond(c, room))
        elif kind < 88:
            insns.append(Insn(o.JMP | o.JA, 0, 0, c.int(0, max(0, room)), 0))
        elif kind < 92:
            if c.chance(0.7):
                insns.append(Insn(o.ALU64 | o.MOV, 0, 0, 0, _imm(c)))
            insns.append(Insn(o.JMP | o.EXIT))
        elif kind < 96 and room >= 1:
            insns.append(Insn(o.LD | o.IMM | o.DW, _reg(c, dst=True), 0, 0, _imm(c)))
            insns.append(Insn(0, 0, 0, 0, _imm(c)))
        elif kind < 97 and c.chance(0.3):
            insns.append(Insn(c.int(0, 255), c.int(0, 15), c.int(0, 15), c.int(-3, 3), _imm(c)))
        else:
            insns.append(Insn(o.ALU64 | o.MOV, 0, 0, 0, _imm(c)))
    insns = insns[: total - 1]
    if c.chance(0.97):
        insns.append(Insn(o.JMP | o.EXIT))
    else:
        insns.append(Insn(c.int(0, 255), 0, 0, 0, 0))
    if c.chance(0.9):
        _reach(insns)
    return insns


def _reach(insns: list[Insn]) -> None:
    """Point earlier conditional jumps at instructions nothing reaches, where one can."""
    for _ in range(len(insns)):
        seen = {0}
        todo = [0]
        while todo:
            i = todo.pop()
            insn = insns[i]
            cls, op = o.op_class(insn.opcode), o.op_code(insn.opcode)
            if insn.opcode == o.LD | o.IMM | o.DW:
                nxt = [i + 2]
            elif cls not in (o.JMP, o.JMP32) or op == o.CALL:
                nxt = [i + 1]
            elif op == o.EXIT:
                nxt = []
            elif op == o.JA:
                nxt = [i + 1 + (insn.imm if cls == o.JMP32 else insn.offset)]
            else:
                nxt = [i + 1, i + 1 + insn.offset]
            for j in nxt:
                if 0 <= j < len(insns) and j not in seen:
                    seen.add(j)
                    todo.append(j)
        missing = [
            i
            for i in range(len(insns))
            if i not in seen and not (i and insns[i - 1].opcode == o.LD | o.IMM | o.DW)
        ]
        if not missing:
            return
        target = missing[0]
        for j in range(target - 1, -1, -1):
            insn = insns[j]
            if (
                j in seen
                and o.op_class(insn.opcode) in (o.JMP, o.JMP32)
                and o.op_code(insn.opcode) in COND_OPS
            ):
                insns[j] = Insn(insn.opcode, insn.dst, insn.src, target - j - 1, insn.imm)
                break
        else:
            return


def mutate(c: Chooser, insns: list[Insn]) -> list[Insn]:
    """One field of one instruction changed."""
    out = list(insns)
    i = c.int(0, len(out) - 1)
    old = out[i]
    field = c.int(0, 4)
    if field == 0:
        new = Insn(c.int(0, 255), old.dst, old.src, old.offset, old.imm)
    elif field == 1:
        new = Insn(old.opcode, c.int(0, 15), old.src, old.offset, old.imm)
    elif field == 2:
        new = Insn(old.opcode, old.dst, c.int(0, 15), old.offset, old.imm)
    elif field == 3:
        new = Insn(old.opcode, old.dst, old.src, c.int(-4, 8), old.imm)
    else:
        new = Insn(old.opcode, old.dst, old.src, old.offset, _imm(c))
    out[i] = new
    return out


def packets(c: Chooser, count: int) -> list[bytes]:
    """Packets of varied lengths: zeros, IPv4-looking headers, random bytes."""
    out: list[bytes] = []
    for _ in range(count):
        length = c.pick([0, 1, 2, 4, 13, 20, 21, 28, 40, 64, 71, 100])
        kind = c.int(0, 2)
        if kind == 0:
            data = bytes(length)
        elif kind == 1:
            data = bytes([0x45, 0, 0, length, 0, 0, 0x40, 0, 64, c.pick([1, 6, 17])]) + bytes(
                c.int(0, 255) for _ in range(max(0, length - 10))
            )
            data = data[:length]
        else:
            data = bytes(c.int(0, 255) for _ in range(length))
        out.append(data)
    return out
