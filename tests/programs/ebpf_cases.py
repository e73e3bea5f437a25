"""Semantics cases: small programs computing a 64-bit r0, with the value the kernel gives.

Each case is checked in our VM and the reference interpreter (test_ebpf_vm) and in the kernel
(test_ebpf_kernel) through two programs: one returning the low 32 bits, one the high 32.
"""

from __future__ import annotations

from ebpf_asm import alu, alux, exit_, lddw, ldx, mov, movr, st, stx

from packetlab.programs import Insn

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
S64_MIN = 1 << 63


def _v(*insns: Insn | list[Insn]) -> list[Insn]:
    out: list[Insn] = []
    for item in insns:
        out.extend(item if isinstance(item, list) else [item])
    return out


# name: (instructions leaving the value in r0, the expected 64-bit value)
CASES: dict[str, tuple[list[Insn], int]] = {
    "add wraps at 64 bits": (_v(lddw(0, M64), alu("add", 0, 2)), 1),
    "imm is sign-extended in ALU64": (_v(mov(0, 0), alu("add", 0, -1)), M64),
    "ALU32 add wraps and zero-extends": (_v(lddw(0, M64), alu("add", 0, 2, bits=32)), 1),
    "mov32 of -1": (_v(mov(0, -1, bits=32)), M32),
    "sub below zero": (_v(mov(0, 1), alu("sub", 0, 2)), M64),
    "sub32 below zero": (_v(mov(0, 1), alu("sub", 0, 2, bits=32)), M32),
    "mul wraps": (_v(lddw(0, 1 << 62), alu("mul", 0, 4)), 0),
    "mul32 keeps the low half": (
        _v(mov(0, 0x10001), mov(1, 0x10001), alux("mul", 0, 1, bits=32)),
        0x20001,
    ),
    "div by register zero is 0": (_v(mov(0, 7), mov(1, 0), alux("div", 0, 1)), 0),
    "mod by register zero keeps dst": (_v(mov(0, 7), mov(1, 0), alux("mod", 0, 1)), 7),
    "mod32 by zero zero-extends dst": (
        _v(lddw(0, 0x5_0000_0007), mov(1, 0), alux("mod", 0, 1, bits=32)),
        7,
    ),
    "unsigned div of -1 by 2": (_v(mov(0, -1), alu("div", 0, 2)), M64 // 2),
    "div by imm -1 is by 2**64-1": (_v(mov(0, -1), alu("div", 0, -1)), 1),
    "div32 by imm -1 is by 2**32-1": (_v(mov(0, -1), alu("div", 0, -1, bits=32)), 1),
    "signed div truncates toward zero": (_v(mov(0, -7), alu("div", 0, 2, off=1)), (-3) & M64),
    "signed mod takes the dividend's sign": (_v(mov(0, -7), alu("mod", 0, 2, off=1)), (-1) & M64),
    "signed div overflow": (_v(lddw(0, S64_MIN), mov(1, -1), alux("div", 0, 1, off=1)), S64_MIN),
    "signed mod by -1": (_v(lddw(0, S64_MIN), mov(1, -1), alux("mod", 0, 1, off=1)), 0),
    "signed div32": (_v(mov(0, -7, bits=32), alu("div", 0, 2, bits=32, off=1)), (-3) & M32),
    "signed mod by zero keeps dst": (
        _v(mov(0, -7), mov(1, 0), alux("mod", 0, 1, off=1)),
        (-7) & M64,
    ),
    "lsh by register uses 6 bits": (_v(mov(0, 1), mov(1, 65), alux("lsh", 0, 1)), 2),
    "lsh32 by register uses 5 bits": (_v(mov(0, 1), mov(1, 33), alux("lsh", 0, 1, bits=32)), 2),
    "rsh32 sees only the low half": (_v(lddw(0, 0x1_8000_0000), alu("rsh", 0, 31, bits=32)), 1),
    "arsh keeps the sign": (_v(mov(0, -16), alu("arsh", 0, 2)), (-4) & M64),
    "arsh32 sign of bit 31": (
        _v(mov(0, -0x80000000, bits=32), alu("arsh", 0, 4, bits=32)),
        0xF8000000,
    ),
    "neg": (_v(mov(0, 5), Insn(0x87, 0)), (-5) & M64),
    "neg32": (_v(mov(0, 5), Insn(0x84, 0)), (-5) & M32),
    "xor and or": (_v(mov(0, 0b1100), alu("xor", 0, 0b1010), alu("or", 0, 0x100)), 0x106),
    "and32 clears the high half": (_v(mov(0, -1), alu("and", 0, -1, bits=32)), M32),
    "to big-endian 16": (_v(mov(0, 0x123456), Insn(0xDC, 0, 0, 0, 16)), 0x5634),
    "to big-endian 32": (_v(mov(0, 0x12345678), Insn(0xDC, 0, 0, 0, 32)), 0x78563412),
    "to big-endian 64": (
        _v(lddw(0, 0x0102030405060708), Insn(0xDC, 0, 0, 0, 64)),
        0x0807060504030201,
    ),
    "to little-endian 16 truncates": (_v(mov(0, 0x123456), Insn(0xD4, 0, 0, 0, 16)), 0x3456),
    "bswap16": (_v(mov(0, 0x123456), Insn(0xD7, 0, 0, 0, 16)), 0x5634),
    "movsx8": (_v(mov(1, 0x80), movr(0, 1, off=8)), (-128) & M64),
    "movsx32 in ALU32": (_v(mov(1, 0xFF80), movr(0, 1, bits=32, off=16)), 0xFFFFFF80),
    "lddw": (_v(lddw(0, 0xDEADBEEF_00C0FFEE)), 0xDEADBEEF_00C0FFEE),
    "stack keeps bytes little-endian": (
        _v(mov(1, 0x11223344), stx("w", 10, 1, -8), ldx("b", 0, 10, -8)),
        0x44,
    ),
    "stack sign-extending load": (
        _v(st("h", 10, -2, -2), ldx("h", 0, 10, -2, signed=True)),
        (-2) & M64,
    ),
    "narrow store of a wide value": (
        _v(lddw(1, M64), stx("b", 10, 1, -1), ldx("b", 0, 10, -1)),
        0xFF,
    ),
}


def halves(setup: list[Insn]) -> tuple[list[Insn], list[Insn]]:
    """Programs returning the low and the high 32 bits of the r0 that ``setup`` computes."""
    low = [*setup, exit_()]
    high = [*setup, alu("rsh", 0, 32), exit_()]
    return low, high
