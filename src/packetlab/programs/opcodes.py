"""eBPF opcode fields (the Linux/RFC 9669 numbering, shared by the pktlab encoding)."""

from __future__ import annotations

# Instruction classes (low 3 bits).
LD, LDX, ST, STX, ALU, JMP, JMP32, ALU64 = range(8)
# Sizes (bits 3-4) for load/store classes.
W, H, B, DW = 0x00, 0x08, 0x10, 0x18
SIZE_BYTES = {W: 4, H: 2, B: 1, DW: 8}
# Modes (bits 5-7) for load/store classes.
IMM, ABS, IND, MEM, MEMSX, ATOMIC = 0x00, 0x20, 0x40, 0x60, 0x80, 0xC0
# Source bit for ALU/JMP classes.
K, X = 0x00, 0x08
# ALU operations (bits 4-7).
ADD, SUB, MUL, DIV, OR, AND, LSH, RSH = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
NEG, MOD, XOR, MOV, ARSH, END = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0
TO_LE, TO_BE = 0x00, 0x08
# Jump operations (bits 4-7).
JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE = 0x00, 0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70
CALL, EXIT, JLT, JLE, JSLT, JSLE, JCOND = 0x80, 0x90, 0xA0, 0xB0, 0xC0, 0xD0, 0xE0

STACK_SIZE = 512
FRAME_REG = 10
CTX_REG = 6
MAX_INSNS = 4096

ALU_NAMES = {
    ADD: "add",
    SUB: "sub",
    MUL: "mul",
    DIV: "div",
    OR: "or",
    AND: "and",
    LSH: "lsh",
    RSH: "rsh",
    NEG: "neg",
    MOD: "mod",
    XOR: "xor",
    MOV: "mov",
    ARSH: "arsh",
    END: "end",
}
JMP_NAMES = {
    JA: "ja",
    JEQ: "jeq",
    JGT: "jgt",
    JGE: "jge",
    JSET: "jset",
    JNE: "jne",
    JSGT: "jsgt",
    JSGE: "jsge",
    CALL: "call",
    EXIT: "exit",
    JLT: "jlt",
    JLE: "jle",
    JSLT: "jslt",
    JSLE: "jsle",
    JCOND: "jcond",
}
CONDITIONAL_JUMPS = frozenset({JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, JLT, JLE, JSLT, JSLE})


def op_class(opcode: int) -> int:
    return opcode & 0x07


def op_size(opcode: int) -> int:
    return opcode & 0x18


def op_mode(opcode: int) -> int:
    return opcode & 0xE0


def op_src(opcode: int) -> int:
    return opcode & 0x08


def op_code(opcode: int) -> int:
    return opcode & 0xF0
