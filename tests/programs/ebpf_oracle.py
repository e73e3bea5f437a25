"""Test oracles for eBPF programs: a plain reference interpreter (independent of the translator),
a search for a packet that drives a program down a given path (the witness that a refused
path is really feasible), the kernel's own verdict and result, and program generators.
"""

from __future__ import annotations

import os
import random
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from packetlab.programs import BpfUnavailable, FilterRejected, kernel
from packetlab.programs import opcodes as o
from packetlab.programs.ebpf import Insn

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1


def kernel_bpf_available() -> str | None:
    """None if bpf(2) works here, else the reason to skip."""
    try:
        fd = kernel.load_socket_filter([Insn(0xB7, 0, 0, 0, 0), Insn(0x95)])
    except BpfUnavailable as exc:
        return str(exc)
    except OSError as exc:  # pragma: no cover
        return str(exc)
    os.close(fd)
    return None


def kernel_accepts(insns: Sequence[Insn]) -> tuple[bool, str]:
    try:
        fd = kernel.load_socket_filter(insns)
    except FilterRejected as exc:
        return False, exc.reason
    os.close(fd)
    return True, ""


class KernelFilter:
    """A program loaded in the kernel; ``run(packet)`` gives its u32 result (BPF_PROG_TEST_RUN)."""

    def __init__(self, insns: Sequence[Insn]) -> None:
        self.fd = kernel.load_socket_filter(insns)

    def run(self, packet: bytes) -> int:
        return kernel.test_run(self.fd, packet)

    def close(self) -> None:
        os.close(self.fd)

    def __enter__(self) -> KernelFilter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def unix_pair_keeps(attach: Callable[[socket.socket], None], packets: Sequence[bytes]) -> list[int]:
    """Bytes of each packet that reach a receiver with a filter attached (0 = dropped)."""
    tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        attach(rx)
        kept: list[int] = []
        for packet in packets:
            tx.send(packet)
            try:
                kept.append(len(rx.recv(65536, socket.MSG_DONTWAIT)))
            except BlockingIOError:
                kept.append(0)
        return kept
    finally:
        tx.close()
        rx.close()


# --- reference interpreter -----------------------------------------------------------------


class Diverged(Exception):
    """The run left the path it was asked to follow at ``pc``; ``regs`` as they were there."""

    def __init__(self, pc: int, regs: list[int]) -> None:
        super().__init__(pc)
        self.pc = pc
        self.regs = regs


@dataclass
class Run:
    result: int | None  # u32 returned (None: stopped at the error instruction)
    forks: list[tuple[int, bool]]


def _signed(v: int, bits: int) -> int:
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


def _cmp(op: int, a: int, b: int, bits: int) -> bool:
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    sa, sb = _signed(a, bits), _signed(b, bits)
    table = {
        o.JEQ: a == b,
        o.JNE: a != b,
        o.JSET: bool(a & b),
        o.JGT: a > b,
        o.JGE: a >= b,
        o.JLT: a < b,
        o.JLE: a <= b,
        o.JSGT: sa > sb,
        o.JSGE: sa >= sb,
        o.JSLT: sa < sb,
        o.JSLE: sa <= sb,
    }
    return table[op]


def _alu(op: int, a: int, b: int, bits: int, signed: bool) -> int:
    mask = (1 << bits) - 1
    a, b = a & mask, b & mask
    if op == o.ADD:
        r = a + b
    elif op == o.SUB:
        r = a - b
    elif op == o.MUL:
        r = a * b
    elif op == o.OR:
        r = a | b
    elif op == o.AND:
        r = a & b
    elif op == o.XOR:
        r = a ^ b
    elif op == o.LSH:
        r = a << (b & (bits - 1))
    elif op == o.RSH:
        r = a >> (b & (bits - 1))
    elif op == o.ARSH:
        r = _signed(a, bits) >> (b & (bits - 1))
    elif op == o.DIV:
        if b == 0:
            r = 0
        elif signed:
            sa, sb = _signed(a, bits), _signed(b, bits)
            q = abs(sa) // abs(sb)
            r = q if (sa < 0) == (sb < 0) else -q
        else:
            r = a // b
    elif op == o.MOD:
        if b == 0:
            r = a
        elif signed:
            sa, sb = _signed(a, bits), _signed(b, bits)
            m = abs(sa) % abs(sb)
            r = -m if sa < 0 else m
        else:
            r = a % b
    else:
        raise AssertionError(op)
    return r & mask


def _bswap(v: int, width: int) -> int:
    return int.from_bytes((v & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")


def interpret(
    insns: Sequence[Insn],
    packet: bytes,
    *,
    stop_at: int | None = None,
    follow: dict[int, bool] | None = None,
    sources: dict[int, tuple[object, ...]] | None = None,
) -> Run:
    """Run ``insns`` on ``packet`` the way the kernel does, instruction by instruction.

    With ``follow``, raise ``Diverged`` when a listed jump goes the other way; with
    ``stop_at``, stop (result None) on reaching that instruction. ``sources`` receives, for
    each register whose value came straight from the packet, ("pkt", offset, size) or
    ("len",) - the search below uses them to steer jumps.
    """
    regs: list[int | None] = [None] * 11
    regs[1] = 0  # the context pointer (never used as a number by verified programs)
    regs[10] = 0
    src_of: dict[int, tuple[object, ...]] = {} if sources is None else sources
    src_of.clear()
    stack = bytearray(512)
    forks: list[tuple[int, bool]] = []
    pc = 0
    n = len(packet)
    for _ in range(100_000):
        if pc == stop_at:
            return Run(None, forks)
        insn = insns[pc]
        code, cls, op = insn.opcode, o.op_class(insn.opcode), o.op_code(insn.opcode)
        if cls in (o.ALU, o.ALU64):
            bits = 64 if cls == o.ALU64 else 32
            mask = (1 << bits) - 1
            x = o.op_src(code) == o.X
            dst = regs[insn.dst] or 0
            src = (regs[insn.src] or 0) if x else insn.imm & M64
            if op == o.MOV:
                value = src if not insn.offset else _signed(src, insn.offset) & M64
                regs[insn.dst] = value & mask
                if x and not insn.offset and insn.src in src_of:  # noqa: SIM102
                    if bits == 64 or (regs[insn.src] or 0) <= M32:
                        src_of[insn.dst] = src_of[insn.src]
                        pc += 1
                        continue
            elif op == o.NEG:
                regs[insn.dst] = -dst & mask
            elif op == o.END:
                w = insn.imm
                if cls == o.ALU and o.op_src(code) == o.TO_LE:
                    regs[insn.dst] = dst & ((1 << w) - 1)
                else:
                    regs[insn.dst] = _bswap(dst, w)
            else:
                regs[insn.dst] = _alu(op, dst, src, bits, insn.offset == 1)
            src_of.pop(insn.dst, None)
            pc += 1
        elif cls == o.LDX:
            size = o.SIZE_BYTES[o.op_size(code)]
            if insn.src == 10:
                at = 512 + insn.offset
                value = int.from_bytes(stack[at : at + size], "little")
                if o.op_mode(code) == o.MEMSX:
                    value = _signed(value, 8 * size) & M64
                src_of.pop(insn.dst, None)
            else:
                value = n
                src_of[insn.dst] = ("len",)
            regs[insn.dst] = value
            pc += 1
        elif cls in (o.ST, o.STX):
            size = o.SIZE_BYTES[o.op_size(code)]
            value = insn.imm if cls == o.ST else (regs[insn.src] or 0)
            at = 512 + insn.offset
            stack[at : at + size] = (value & ((1 << (8 * size)) - 1)).to_bytes(size, "little")
            pc += 1
        elif cls == o.LD:
            if code == o.LD | o.IMM | o.DW:
                regs[insn.dst] = (insn.imm & M32) | (insns[pc + 1].imm & M32) << 32
                src_of.pop(insn.dst, None)
                pc += 2
                continue
            size = o.SIZE_BYTES[o.op_size(code)]
            off = insn.imm
            if o.op_mode(code) == o.IND:
                off = _signed(((regs[insn.src] or 0) + insn.imm) & M32, 32)
            for r in range(1, 6):
                regs[r] = None
                src_of.pop(r, None)
            if off < 0 or off + size > n:
                return Run(0, forks)
            regs[0] = int.from_bytes(packet[off : off + size], "big")
            src_of[0] = ("pkt", off, size)
            pc += 1
        else:
            if op == o.EXIT:
                return Run((regs[0] or 0) & M32, forks)
            if op == o.JA:
                pc += 1 + (insn.imm if cls == o.JMP32 else insn.offset)
                continue
            bits = 64 if cls == o.JMP else 32
            dst = regs[insn.dst] or 0
            src = (regs[insn.src] or 0) if o.op_src(code) == o.X else insn.imm & M64
            taken = _cmp(op, dst, src, bits)
            if follow is not None and pc in follow and follow[pc] != taken:
                raise Diverged(pc, [v or 0 for v in regs])
            forks.append((pc, taken))
            pc += 1 + (insn.offset if taken else 0)
    raise AssertionError("no exit after 100,000 steps")  # pragma: no cover


# --- witness search -----------------------------------------------------------------------


def _steer(
    insn: Insn, regs_src: dict[int, tuple[object, ...]], values: dict[int, int], want: bool
) -> tuple[tuple[object, ...], int] | None:
    """A (source, new value) that makes the jump go ``want``, if one operand is packet data."""
    cls, op = o.op_class(insn.opcode), o.op_code(insn.opcode)
    bits = 64 if cls == o.JMP else 32
    x = o.op_src(insn.opcode) == o.X
    dst_v = values.get(insn.dst, 0)
    src_v = values.get(insn.src, 0) if x else insn.imm & M64
    for reg, is_dst in ((insn.dst, True), (insn.src if x else -1, False)):
        source = regs_src.get(reg)
        if source is None:
            continue
        limit = (1 << (8 * int(source[2]))) - 1 if source[0] == "pkt" else 4000  # type: ignore[call-overload]
        other = src_v if is_dst else dst_v
        candidates = [
            other,
            other + 1,
            other - 1,
            0,
            limit,
            other | 1,
            other & ~1,
            limit >> 1,
            (limit >> 1) + 1,
            other ^ (1 << 31),
            other ^ (1 << 63),
        ]
        for c in candidates:
            c &= M64
            if c > limit:
                continue
            a, b = (c, src_v) if is_dst else (dst_v, c)
            if _cmp(op, a, b, bits) == want:
                return source, c
    return None


def find_witness(
    insns: Sequence[Insn], path: Sequence[tuple[int, bool]], index: int, *, seed: int = 0
) -> bytes | None:
    """A packet on which the program follows ``path`` to instruction ``index``, if we find one."""
    rng = random.Random(seed)
    follow = dict(path)
    bases = [bytes(96), bytes([0x45]) + bytes(95), bytes(rng.getrandbits(8) for _ in range(96))]
    for base in bases:
        packet = bytearray(base)
        for _ in range(64):
            sources: dict[int, tuple[object, ...]] = {}
            try:
                run = interpret(insns, bytes(packet), stop_at=index, follow=follow, sources=sources)
            except Diverged as exc:
                pc = exc.pc
                values = dict(enumerate(exc.regs))
                steer = _steer(insns[pc], sources, values, follow[pc])
                if steer is None:
                    break
                source, value = steer
                if source[0] == "len":
                    packet = packet[:value] if value <= len(packet) else packet.ljust(value, b"\0")
                else:
                    _, off, size = source
                    assert isinstance(off, int) and isinstance(size, int)
                    if off + size > len(packet):
                        packet = packet.ljust(off + size, b"\0")
                    packet[off : off + size] = value.to_bytes(size, "big")
                continue
            if run.result is None:
                return bytes(packet)
            break  # ended early (out-of-bounds load): try a longer packet next
    return None
