"""Readable constructors for eBPF instructions in tests (a few mnemonics, Linux numbering)."""

from __future__ import annotations

from packetlab.programs import Insn
from packetlab.programs import opcodes as o

ALU = {name: op for op, name in o.ALU_NAMES.items() if name not in ("neg", "end")}
JMP = {name: op for op, name in o.JMP_NAMES.items() if op in o.CONDITIONAL_JUMPS}
SIZE = {"b": o.B, "h": o.H, "w": o.W, "dw": o.DW}


def alu(op: str, dst: int, imm: int, *, bits: int = 64, off: int = 0) -> Insn:
    return Insn((o.ALU64 if bits == 64 else o.ALU) | ALU[op] | o.K, dst, 0, off, imm)


def alux(op: str, dst: int, src: int, *, bits: int = 64, off: int = 0) -> Insn:
    return Insn((o.ALU64 if bits == 64 else o.ALU) | ALU[op] | o.X, dst, src, off, 0)


def mov(dst: int, imm: int, *, bits: int = 64) -> Insn:
    return alu("mov", dst, imm, bits=bits)


def movr(dst: int, src: int, *, bits: int = 64, off: int = 0) -> Insn:
    return alux("mov", dst, src, bits=bits, off=off)


def jmp(op: str, dst: int, imm: int, off: int, *, bits: int = 64) -> Insn:
    return Insn((o.JMP if bits == 64 else o.JMP32) | JMP[op] | o.K, dst, 0, off, imm)


def jmpx(op: str, dst: int, src: int, off: int, *, bits: int = 64) -> Insn:
    return Insn((o.JMP if bits == 64 else o.JMP32) | JMP[op] | o.X, dst, src, off, 0)


def ja(off: int) -> Insn:
    return Insn(o.JMP | o.JA, 0, 0, off, 0)


def exit_() -> Insn:
    return Insn(o.JMP | o.EXIT)


def ldabs(size: str, k: int) -> Insn:
    return Insn(o.LD | o.ABS | SIZE[size], 0, 0, 0, k)


def ldind(size: str, src: int, k: int) -> Insn:
    return Insn(o.LD | o.IND | SIZE[size], 0, src, 0, k)


def ldx(size: str, dst: int, src: int, off: int, *, signed: bool = False) -> Insn:
    return Insn(o.LDX | (o.MEMSX if signed else o.MEM) | SIZE[size], dst, src, off, 0)


def st(size: str, dst: int, off: int, imm: int) -> Insn:
    return Insn(o.ST | o.MEM | SIZE[size], dst, 0, off, imm)


def stx(size: str, dst: int, src: int, off: int) -> Insn:
    return Insn(o.STX | o.MEM | SIZE[size], dst, src, off, 0)


def lddw(dst: int, value: int) -> list[Insn]:
    low, high = value & 0xFFFFFFFF, value >> 32 & 0xFFFFFFFF
    signed = [v - (1 << 32) if v >> 31 else v for v in (low, high)]
    return [Insn(o.LD | o.IMM | o.DW, dst, 0, 0, signed[0]), Insn(0, 0, 0, 0, signed[1])]


CTX_TO_R6 = movr(6, 1)
