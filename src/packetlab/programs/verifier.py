"""A userspace verifier for eBPF socket filters that mirrors the kernel's, on a subset.

Theory of operation. Like the kernel, we first check every instruction (known opcode, LDX
fields, 64-bit immediate pairs, jump targets, last instruction), then walk the control-flow
graph once (no unreachable instruction), then explore every path from the first instruction
with an abstract state: each register is not-initialised, a known 64-bit constant, an unknown
scalar, the context pointer (r1 on entry) or a stack pointer (r10); the 512-byte stack records
which bytes were written and, for stores of a known constant at the start of an 8-byte slot,
the constant (the kernel keeps such "spills" too). A conditional jump whose outcome the
constants decide is followed one way only; both ways otherwise. States already seen at an
instruction (with dead registers forgotten) are not explored again.

What is refused, and how sure we are that the kernel refuses it too:

* ``FilterRejected``: the kernel refuses these on the same path - unknown opcodes, reserved
  fields, registers above r10, jumps out of range, unreachable instructions, a last instruction
  that is not exit or ja, reads of registers never written, writes to r10, exit without r0,
  LD_ABS/LD_IND without the context in r6 (they also clobber r1-r5), stack accesses outside
  [-512, 0) or not aligned to their size, divisions and shifts by bad constants, ALU or memory
  use of a scalar as a pointer.
  The kernel tracks value ranges, we only constants: an error on a path that only range
  analysis proves dead is refused by us and accepted by the kernel (the differential test
  checks every refusal it compares against a concrete witness). We fold constants through
  mov, movsx, add, sub, mul, and, or, xor, shifts by less than the width, and 64-bit
  immediates, learn the constant on the equal side of jeq/jne, and keep constants spilled at
  the start of a stack slot - all of which every kernel since 5.x does too, so we never skip a
  path the kernel explores. Not folded: div and mod (nor does the kernel), neg and byte swaps
  (6.18 folds them, older kernels do not). Constants that can no longer decide a jump are
  forgotten, so paths that differ only there are explored once.
* ``Unsupported``: outside the subset we check and run, though the kernel may accept it -
  back-edges (the kernel accepts bounded loops), helper and bpf-to-bpf calls, ``may_goto``,
  atomic instructions, 64-bit immediates that name maps or functions, anything done with a
  pointer other than copying it (arithmetic, comparison, spilling it to the stack, returning
  it, loads and stores through a copy of r10), context accesses other than the 32-bit load of
  ``__sk_buff.len`` at offset 0, reads of stack bytes never written (root may do that and
  reads garbage), LD_ABS at a negative offset (the kernel's SKF_NET_OFF/SKF_LL_OFF areas),
  and programs whose exploration passes 250,000 instruction visits (a few seconds).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from packetlab.programs import opcodes as o
from packetlab.programs._errors import FilterRejected, ProgramTooLongError, Unsupported
from packetlab.programs.ebpf import Insn

M64 = (1 << 64) - 1
M32 = (1 << 32) - 1
LD_IMM64 = o.LD | o.IMM | o.DW
MAX_VISITS = 250_000

# Opcodes the kernel knows (its interpreter's table); any other is refused anywhere in a program.
KNOWN_OPCODES = frozenset(
    bytes.fromhex(
        "04 05 06 07 0c 0f 14 15 16 17 18 1c 1d 1e 1f 20 24 25 26 27 28 2c 2d 2e 2f 30 34 35"
        "36 37 3c 3d 3e 3f 40 44 45 46 47 48 4c 4d 4e 4f 50 54 55 56 57 5c 5d 5e 5f 61 62 63"
        "64 65 66 67 69 6a 6b 6c 6d 6e 6f 71 72 73 74 75 76 77 79 7a 7b 7c 7d 7e 7f 81 84 85"
        "87 89 91 94 95 97 9c 9f a4 a5 a6 a7 ac ad ae af b4 b5 b6 b7 bc bd be bf c3 c4 c5 c6"
        "c7 cb cc cd ce cf d3 d4 d5 d6 d7 db dc dd de e5"
    )
)

# Abstract register values: None = not initialised, int = known constant (0 <= v < 2**64),
# UNKNOWN = some scalar, CTX = the context pointer, ("fp", off) = r10 + off.
UNKNOWN = "scalar"
CTX = "ctx"
Value = None | int | str | tuple[str, int]
Regs = tuple[Value, ...]
# Stack: sorted tuple of (slot, written-bytes mask, spill) with spill = (size, value) or None.
Slot = tuple[int, int, tuple[int, int] | None]
Stack = tuple[Slot, ...]


@dataclass(frozen=True, slots=True)
class VerifiedProgram:
    """A program our verifier accepted, with what the translator needs to know.

    ``visited``: instructions some path reaches; ``jumps``: for each conditional jump, the
    outcomes some path takes (True = jump taken).
    """

    insns: tuple[Insn, ...]
    visited: frozenset[int]
    jumps: dict[int, frozenset[bool]]


class _Refuse(Exception):
    def __init__(self, index: int, reason: str, *, unsupported: bool = False) -> None:
        super().__init__(reason)
        self.index = index
        self.reason = reason
        self.unsupported = unsupported


def _is_ptr(v: Value) -> bool:
    return v == CTX or isinstance(v, tuple)


def _describe(v: Value) -> str:
    if v is None:
        return "not initialised"
    if isinstance(v, int):
        return f"the constant {v:#x}"
    if v == UNKNOWN:
        return "a scalar"
    if v == CTX:
        return "the context pointer"
    assert isinstance(v, tuple)
    return f"a stack pointer (r10{v[1]:+d})"


def _sext(value: int, bits: int) -> int:
    """``value`` (low ``bits`` bits) sign-extended to 64 bits, as unsigned."""
    value &= (1 << bits) - 1
    if value >> (bits - 1):
        value -= 1 << bits
    return value & M64


def _jump_target(i: int, insn: Insn) -> int:
    if insn.opcode == o.JMP32 | o.JA:
        return i + 1 + insn.imm
    return i + 1 + insn.offset


def _successors(insns: Sequence[Insn], i: int) -> tuple[int, ...]:
    insn = insns[i]
    cls = o.op_class(insn.opcode)
    if insn.opcode == LD_IMM64:
        return (i + 2,)
    if cls not in (o.JMP, o.JMP32):
        return (i + 1,)
    op = o.op_code(insn.opcode)
    if op == o.EXIT:
        return ()
    if op == o.CALL:
        return (i + 1,)
    if op == o.JA:
        return (_jump_target(i, insn),)
    return (i + 1, _jump_target(i, insn))


# --- whole-program checks ----------------------------------------------------------------


def _check_structure(insns: Sequence[Insn]) -> None:
    """What the kernel checks on every instruction before exploring any path."""
    n = len(insns)
    i = 0
    while i < n:
        insn = insns[i]
        code = insn.opcode
        cls = o.op_class(code)
        if cls == o.LDX and (o.op_mode(code) not in (o.MEM, o.MEMSX) or insn.imm != 0):
            raise _Refuse(i, "BPF_LDX uses reserved fields (mode must be MEM/MEMSX, imm 0)")
        if code == LD_IMM64:
            nxt = insns[i + 1] if i + 1 < n else None
            if nxt is None or (nxt.opcode, nxt.dst, nxt.src, nxt.offset) != (0, 0, 0, 0):
                raise _Refuse(
                    i,
                    "invalid 64-bit immediate load: the second half must be "
                    "an all-zero instruction but for imm",
                )
            if insn.src != 0:
                raise _Refuse(
                    i,
                    f"64-bit immediate naming a map or function (src_reg {insn.src})",
                    unsupported=True,
                )
            i += 2
            continue
        if code not in KNOWN_OPCODES:
            raise _Refuse(i, f"unknown opcode {code:#04x}")
        if cls == o.JMP and o.op_code(code) == o.CALL:
            kind = {0: "helper call", 1: "bpf-to-bpf call", 2: "kfunc call"}.get(insn.src, "call")
            raise _Refuse(i, f"{kind} (we run no helpers)", unsupported=True)
        if cls in (o.JMP, o.JMP32) and o.op_code(code) != o.EXIT:
            target = _jump_target(i, insn)
            if not 0 <= target < n:
                raise _Refuse(i, f"jump out of range from insn {i} to {target}")
        i += 1
    last = insns[-1].opcode
    if last not in (o.JMP | o.EXIT, o.JMP | o.JA, o.JMP32 | o.JA):
        raise _Refuse(n - 1, "last instruction is not an exit or a jump (would fall off the end)")


def _check_cfg(insns: Sequence[Insn]) -> list[int]:
    """Depth-first walk: refuse back-edges and unreachable code; return a topological order."""
    n = len(insns)
    state = [0] * n  # 0 new, 1 on the DFS stack, 2 done
    order: list[int] = []
    stack: list[tuple[int, Iterator[int]]] = [(0, iter(_successors(insns, 0)))]
    state[0] = 1
    while stack:
        node, succs = stack[-1]
        for nxt in succs:
            if state[nxt] == 1:
                raise _Refuse(
                    node,
                    f"back-edge from insn {node} to {nxt}: loops are not "
                    "supported (the kernel accepts bounded ones)",
                    unsupported=True,
                )
            if state[nxt] == 0:
                state[nxt] = 1
                stack.append((nxt, iter(_successors(insns, nxt))))
                break
        else:
            stack.pop()
            state[node] = 2
            order.append(node)
    i = 0
    while i < n:
        if state[i] == 0:
            raise _Refuse(i, f"unreachable instruction {i}")
        if insns[i].opcode == LD_IMM64:
            if state[i + 1] != 0:
                raise _Refuse(i, f"jump into the middle of the 64-bit immediate load at {i}")
            i += 1
        i += 1
    order.reverse()
    return order


# --- register liveness (what each instruction reads and writes) ----------------------------


def _uses_defs(insn: Insn) -> tuple[int, int]:
    code = insn.opcode
    cls = o.op_class(code)
    d, s = 1 << insn.dst, 1 << insn.src
    if cls in (o.ALU, o.ALU64):
        op = o.op_code(code)
        if op == o.MOV:
            return (s if o.op_src(code) == o.X else 0), d
        if op in (o.NEG, o.END):
            return d, d
        return d | (s if o.op_src(code) == o.X else 0), d
    if cls == o.LDX:
        return s, d
    if cls == o.ST:
        return d, 0
    if cls == o.STX:
        return d | s, 0
    if cls == o.LD:
        if code == LD_IMM64:
            return 0, d
        ind = s if o.op_mode(code) == o.IND else 0
        return (1 << o.CTX_REG) | ind, 0b111111
    op = o.op_code(code)
    if op == o.EXIT:
        return 1, 0
    if op == o.JA:
        return 0, 0
    return d | (s if o.op_src(code) == o.X else 0), 0


def _liveness(insns: Sequence[Insn], order: list[int]) -> list[int]:
    live = [0] * len(insns)
    for i in reversed(order):
        out = 0
        for nxt in _successors(insns, i):
            out |= live[nxt]
        uses, defs = _uses_defs(insns[i])
        live[i] = (uses | (out & ~defs)) & 0x7FF
    return live


def _relevance(insns: Sequence[Insn], order: list[int]) -> list[int]:
    """Per instruction, the registers (bit 11: the stack) whose value may decide a later jump.

    Constants elsewhere cannot change which way any jump goes, so the explorer forgets them:
    paths that differ only there meet again (the kernel's "precision" tracking does the same).
    """
    stack_bit = 1 << 11
    rel = [0] * len(insns)
    for i in reversed(order):
        after = 0
        for nxt in _successors(insns, i):
            after |= rel[nxt]
        insn = insns[i]
        code, cls = insn.opcode, o.op_class(insn.opcode)
        d, s = 1 << insn.dst, 1 << insn.src
        x = o.op_src(code) == o.X
        before = after
        if cls in (o.JMP, o.JMP32):
            if o.op_code(code) in o.CONDITIONAL_JUMPS:
                before = after | d | (s if x else 0)
        elif cls in (o.ALU, o.ALU64):
            before = after & ~d
            if after & d:
                if o.op_code(code) == o.MOV:
                    before |= s if x else 0
                else:
                    before |= d | (s if x else 0)
        elif cls == o.LDX:
            before = after & ~d
            if after & d and insn.src == o.FRAME_REG:
                before |= stack_bit
        elif cls == o.STX:
            before = after | (s if after & stack_bit else 0)
        elif cls == o.LD:
            before = after & ~(d if code == LD_IMM64 else 0b111111)
        rel[i] = before & 0xFFF
    return rel


# --- path exploration ---------------------------------------------------------------------


def _alu(op: int, a: int, b: int, bits: int) -> int | None:
    """Fold an ALU operation on constants the way the kernel does; None if it does not."""
    mask = M64 if bits == 64 else M32
    if op == o.ADD:
        return (a + b) & mask
    if op == o.SUB:
        return (a - b) & mask
    if op == o.MUL:
        return (a * b) & mask
    if op == o.OR:
        return (a | b) & mask
    if op == o.AND:
        return a & b & mask
    if op == o.XOR:
        return (a ^ b) & mask
    if op in (o.LSH, o.RSH, o.ARSH) and b < bits:  # the whole 64-bit amount, as the kernel
        a &= mask
        if op == o.LSH:
            return (a << b) & mask
        if op == o.RSH:
            return a >> b
        signed = a - (1 << bits) if a >> (bits - 1) else a
        return (signed >> b) & mask
    return None  # div, mod, shifts by >= width: the kernel does not track the result


def _compare(op: int, a: int, b: int, bits: int) -> bool:
    mask = M64 if bits == 64 else M32
    a, b = a & mask, b & mask
    if op == o.JEQ:
        return a == b
    if op == o.JNE:
        return a != b
    if op == o.JSET:
        return bool(a & b)
    if op in (o.JGT, o.JGE, o.JLT, o.JLE):
        pass
    else:
        sign = 1 << (bits - 1)
        a, b = a ^ sign, b ^ sign  # order of signed values = unsigned order after the flip
        op = {o.JSGT: o.JGT, o.JSGE: o.JGE, o.JSLT: o.JLT, o.JSLE: o.JLE}[op]
    if op == o.JGT:
        return a > b
    if op == o.JGE:
        return a >= b
    if op == o.JLT:
        return a < b
    return a <= b


class _Explorer:
    def __init__(self, insns: Sequence[Insn], live: list[int], relevant: list[int]) -> None:
        self.insns = insns
        self.live = live
        self.relevant = relevant
        self.visited: set[int] = set()
        self.jumps: dict[int, set[bool]] = {}
        self.seen: set[tuple[int, Regs, Stack]] = set()
        self.visits = 0
        self.path: tuple[object, ...] | None = None  # branch decisions to the current insn

    # Registers -------------------------------------------------------------------------
    @staticmethod
    def _reg_ok(i: int, r: int) -> None:
        if r > o.FRAME_REG:
            raise _Refuse(i, f"register r{r} is invalid (r0-r10 exist)")

    def _read(self, i: int, regs: Regs, r: int) -> Value:
        self._reg_ok(i, r)
        v = regs[r]
        if v is None:
            raise _Refuse(i, f"r{r} is read before it is written")
        return v

    def _write_ok(self, i: int, r: int) -> None:
        self._reg_ok(i, r)
        if r == o.FRAME_REG:
            raise _Refuse(i, "r10 (the frame pointer) is read-only")

    # Stack -------------------------------------------------------------------------------
    def _stack_range(self, i: int, off: int, size: int, what: str) -> None:
        if not (off >= -o.STACK_SIZE and off + size <= 0):
            raise _Refuse(
                i, f"{what} outside the stack: r10{off:+d} size {size} (valid: [-512, 0))"
            )
        if off % size:
            raise _Refuse(i, f"misaligned stack access r10{off:+d} size {size}")

    @staticmethod
    def _store(stack: Stack, off: int, size: int, const: int | None) -> Stack:
        slots = {slot: (mask, spill) for slot, mask, spill in stack}
        pos = o.STACK_SIZE + off  # byte index from the stack bottom
        slot, first = divmod(pos, 8)
        mask, _ = slots.get(slot, (0, None))
        mask |= ((1 << size) - 1) << first
        spill = None
        if first == 0 and const is not None:
            spill = (size, const & ((1 << (8 * size)) - 1))
        slots[slot] = (mask, spill)
        return tuple(sorted((s, m, sp) for s, (m, sp) in slots.items()))

    def _load(self, i: int, stack: Stack, off: int, size: int, signed: bool) -> Value:
        pos = o.STACK_SIZE + off
        slot, first = divmod(pos, 8)
        want = ((1 << size) - 1) << first
        for s, mask, spill in stack:
            if s == slot:
                if mask & want != want:
                    break
                if first == 0 and spill is not None and size <= spill[0]:
                    value = spill[1] & ((1 << (8 * size)) - 1)
                    return _sext(value, 8 * size) if signed else value
                return UNKNOWN
        raise _Refuse(
            i,
            f"reads stack bytes r10{off:+d} size {size} never written "
            "(the kernel lets root read garbage there)",
            unsupported=True,
        )

    # Exploration -------------------------------------------------------------------------
    def run(self) -> None:
        regs0: Regs = (None, CTX, None, None, None, None, None, None, None, None, ("fp", 0))
        work: list[tuple[int, Regs, Stack, tuple[object, ...] | None]] = [(0, regs0, (), None)]
        while work:
            pc, regs, stack, path = work.pop()
            self._path(pc, regs, stack, path, work)

    def _path(
        self,
        pc: int,
        regs: Regs,
        stack: Stack,
        path: tuple[object, ...] | None,
        work: list[tuple[int, Regs, Stack, tuple[object, ...] | None]],
    ) -> None:
        insns = self.insns
        while True:
            self.path = path
            live, rel = self.live[pc], self.relevant[pc]
            regs = tuple(
                (UNKNOWN if isinstance(v, int) and not rel >> r & 1 else v)
                if live >> r & 1 or r == o.FRAME_REG
                else None
                for r, v in enumerate(regs)
            )
            if not rel >> 11 & 1 and any(spill for _, _, spill in stack):
                stack = tuple((slot, mask, None) for slot, mask, _ in stack)
            key = (pc, regs, stack)
            if key in self.seen:
                return
            self.seen.add(key)
            self.visits += 1
            if self.visits > MAX_VISITS:
                raise _Refuse(
                    pc, f"too complex: more than {MAX_VISITS} instruction visits", unsupported=True
                )
            self.visited.add(pc)
            insn = insns[pc]
            cls = o.op_class(insn.opcode)
            if cls in (o.ALU, o.ALU64):
                regs = self._alu_insn(pc, insn, regs)
            elif cls == o.LDX:
                regs = self._ldx(pc, insn, regs, stack)
            elif cls in (o.ST, o.STX):
                stack = self._st(pc, insn, regs, stack)
            elif cls == o.LD:
                regs = self._ld(pc, insn, regs)
                if insn.opcode == LD_IMM64:
                    pc += 2
                    continue
            else:
                op = o.op_code(insn.opcode)
                if op == o.EXIT:
                    self._exit(pc, insn, regs)
                    return
                if op == o.JA:
                    self._ja_fields(pc, insn)
                    pc = _jump_target(pc, insn)
                    continue
                outcomes = self._cond(pc, insn, regs)
                taken_regs, fall_regs = outcomes
                target = _jump_target(pc, insn)
                dirs = self.jumps.setdefault(pc, set())
                if fall_regs is not None:
                    dirs.add(False)
                if taken_regs is not None:
                    dirs.add(True)
                    if fall_regs is not None:
                        work.append((target, taken_regs, stack, (pc, True, path)))
                        path = (pc, False, path)
                        regs = fall_regs
                        pc += 1
                        continue
                    regs = taken_regs
                    pc = target
                    continue
                assert fall_regs is not None
                regs = fall_regs
            pc += 1

    def _alu_insn(self, i: int, insn: Insn, regs: Regs) -> Regs:
        code, op = insn.opcode, o.op_code(insn.opcode)
        bits = 64 if o.op_class(code) == o.ALU64 else 32
        mask = M64 if bits == 64 else M32
        x = o.op_src(code) == o.X
        result: Value
        if op in (o.NEG, o.END):
            if op == o.NEG and (insn.src or insn.offset or insn.imm):
                raise _Refuse(i, "BPF_NEG uses reserved fields (src, offset, imm must be 0)")
            if op == o.END and (insn.src or insn.offset or insn.imm not in (16, 32, 64)):
                raise _Refuse(i, "BPF_END uses reserved fields (imm must be 16, 32 or 64)")
            dst = self._read(i, regs, insn.dst)
            self._write_ok(i, insn.dst)
            if _is_ptr(dst):
                raise _Refuse(
                    i,
                    f"{(op == o.NEG and 'neg') or 'byte swap'} of {_describe(dst)}",
                    unsupported=True,
                )
            result = UNKNOWN  # older kernels do not track these; stay below them
        elif op == o.MOV:
            if x:
                allowed = (0, 8, 16) if bits == 32 else (0, 8, 16, 32)
                if insn.offset not in allowed or insn.imm:
                    raise _Refuse(
                        i,
                        "BPF_MOV uses reserved fields (offset must be 0 or a "
                        "sign-extension width, imm 0)",
                    )
                src = self._read(i, regs, insn.src)
                self._write_ok(i, insn.dst)
                if _is_ptr(src):
                    if bits == 64 and insn.offset == 0:
                        result = src
                    else:
                        raise _Refuse(
                            i,
                            f"partial or sign-extended copy of {_describe(src)}",
                            unsupported=True,
                        )
                elif isinstance(src, int):
                    value = _sext(src, insn.offset) if insn.offset else src
                    result = value & mask
                else:
                    result = UNKNOWN
            else:
                if insn.src or insn.offset:
                    raise _Refuse(i, "BPF_MOV uses reserved fields (src and offset must be 0)")
                self._write_ok(i, insn.dst)
                result = (insn.imm & M64) & mask
        else:
            if insn.offset not in (0, 1) or (insn.offset == 1 and op not in (o.DIV, o.MOD)):
                raise _Refuse(
                    i, "BPF_ALU uses reserved fields (offset must be 0, or 1 for signed div/mod)"
                )
            if x and insn.imm:
                raise _Refuse(i, "BPF_ALU uses reserved fields (imm must be 0 with a register)")
            if not x and insn.src:
                raise _Refuse(i, "BPF_ALU uses reserved fields (src must be 0 with an imm)")
            src_v: Value = self._read(i, regs, insn.src) if x else insn.imm & M64
            dst = self._read(i, regs, insn.dst)
            if not x and op in (o.DIV, o.MOD) and insn.imm == 0:
                raise _Refuse(i, "division by the constant zero")
            if not x and op in (o.LSH, o.RSH, o.ARSH) and not 0 <= insn.imm < bits:
                raise _Refuse(i, f"invalid shift by {insn.imm} ({bits}-bit operation)")
            self._write_ok(i, insn.dst)
            if _is_ptr(dst) or _is_ptr(src_v):
                what = dst if _is_ptr(dst) else src_v
                raise _Refuse(i, f"arithmetic on {_describe(what)}", unsupported=True)
            if isinstance(dst, int) and isinstance(src_v, int) and insn.offset == 0:
                result = _alu(op, dst, src_v, bits)
                if result is None:
                    result = UNKNOWN
            else:
                result = UNKNOWN
        new = list(regs)
        new[insn.dst] = result
        return tuple(new)

    def _ldx(self, i: int, insn: Insn, regs: Regs, stack: Stack) -> Regs:
        size = o.SIZE_BYTES[o.op_size(insn.opcode)]
        signed = o.op_mode(insn.opcode) == o.MEMSX
        base = self._read(i, regs, insn.src)
        self._write_ok(i, insn.dst)
        value: Value
        if insn.src == o.FRAME_REG:
            self._stack_range(i, insn.offset, size, "read")
            value = self._load(i, stack, insn.offset, size, signed)
        elif base == CTX:
            if size != 4 or insn.offset != 0 or signed:
                raise _Refuse(
                    i,
                    f"context read at offset {insn.offset} size {size}: only "
                    "the 32-bit __sk_buff.len at offset 0 is supported",
                    unsupported=True,
                )
            value = UNKNOWN
        elif isinstance(base, tuple):
            raise _Refuse(i, "load through a copy of r10 (use r10 itself)", unsupported=True)
        else:
            raise _Refuse(i, f"r{insn.src} is {_describe(base)}, not a pointer: invalid load")
        new = list(regs)
        new[insn.dst] = value
        return tuple(new)

    def _st(self, i: int, insn: Insn, regs: Regs, stack: Stack) -> Stack:
        code = insn.opcode
        size = o.SIZE_BYTES[o.op_size(code)]
        const: int | None
        if o.op_class(code) == o.STX:
            if o.op_mode(code) == o.ATOMIC:
                raise _Refuse(i, "atomic instructions are not supported", unsupported=True)
            if insn.imm:
                raise _Refuse(i, "BPF_STX uses reserved fields (imm must be 0)")
            value = self._read(i, regs, insn.src)
            if _is_ptr(value):
                raise _Refuse(i, f"storing {_describe(value)} to memory", unsupported=True)
            const = value if isinstance(value, int) else None
        else:
            if insn.src:
                raise _Refuse(i, "BPF_ST uses reserved fields (src must be 0)")
            const = insn.imm & M64
        base = self._read(i, regs, insn.dst)
        if insn.dst == o.FRAME_REG:
            self._stack_range(i, insn.offset, size, "write")
            return self._store(stack, insn.offset, size, const)
        if base == CTX:
            raise _Refuse(i, "writes to the context are not supported", unsupported=True)
        if isinstance(base, tuple):
            raise _Refuse(i, "store through a copy of r10 (use r10 itself)", unsupported=True)
        raise _Refuse(i, f"r{insn.dst} is {_describe(base)}, not a pointer: invalid store")

    def _ld(self, i: int, insn: Insn, regs: Regs) -> Regs:
        code = insn.opcode
        if code == LD_IMM64:
            if insn.offset:
                raise _Refuse(i, "64-bit immediate load uses reserved fields (offset must be 0)")
            self._write_ok(i, insn.dst)
            high = self.insns[i + 1].imm & M32
            new = list(regs)
            new[insn.dst] = (insn.imm & M32) | high << 32
            return tuple(new)
        ind = o.op_mode(code) == o.IND
        if insn.dst or insn.offset or (not ind and insn.src):
            raise _Refuse(
                i, "BPF_LD_[ABS|IND] uses reserved fields (dst, offset and, for ABS, src must be 0)"
            )
        ctx = self._read(i, regs, o.CTX_REG)
        if ctx != CTX:
            raise _Refuse(i, f"LD_ABS/LD_IND needs the context in r6, which holds {_describe(ctx)}")
        if ind:
            src = self._read(i, regs, insn.src)
            if _is_ptr(src):
                raise _Refuse(i, f"LD_IND offset register holds {_describe(src)}", unsupported=True)
        elif insn.imm < 0:
            raise _Refuse(
                i,
                f"LD_ABS at negative offset {insn.imm} (the kernel's ancillary SKF_*_OFF areas)",
                unsupported=True,
            )
        return (UNKNOWN, None, None, None, None, None, *regs[6:])

    def _exit(self, i: int, insn: Insn, regs: Regs) -> None:
        if insn.dst or insn.src or insn.imm:  # the kernel does not look at the offset
            raise _Refuse(i, "BPF_EXIT uses reserved fields (dst, src, imm must be 0)")
        r0 = regs[0]
        if r0 is None:
            raise _Refuse(i, "exit with r0 never written (the return value)")
        if _is_ptr(r0):
            raise _Refuse(i, f"exit returning {_describe(r0)}", unsupported=True)

    def _ja_fields(self, i: int, insn: Insn) -> None:
        jmp32 = o.op_class(insn.opcode) == o.JMP32
        if insn.dst or insn.src or (insn.offset if jmp32 else insn.imm):
            raise _Refuse(i, "BPF_JA uses reserved fields")

    def _cond(self, i: int, insn: Insn, regs: Regs) -> tuple[Regs | None, Regs | None]:
        """(registers if the jump is taken, registers if not); None for an impossible way."""
        code, op = insn.opcode, o.op_code(insn.opcode)
        if op == o.JCOND:
            raise _Refuse(i, "may_goto is not supported (a loop construct)", unsupported=True)
        bits = 64 if o.op_class(code) == o.JMP else 32
        x = o.op_src(code) == o.X
        dst = self._read(i, regs, insn.dst)
        if x:
            if insn.imm:
                raise _Refuse(i, "conditional jump uses reserved fields (imm must be 0)")
            src: Value = self._read(i, regs, insn.src)
        else:
            if insn.src:
                raise _Refuse(i, "conditional jump uses reserved fields (src must be 0)")
            src = insn.imm & M64
        if _is_ptr(dst) or _is_ptr(src):
            what = dst if _is_ptr(dst) else src
            raise _Refuse(i, f"comparison involving {_describe(what)}", unsupported=True)
        if isinstance(dst, int) and isinstance(src, int):
            if _compare(op, dst, src, bits):
                return regs, None
            return None, regs
        taken, fall = regs, regs
        if bits == 64 and op in (o.JEQ, o.JNE):
            # The equal way learns the constant, as the kernel does.
            learned = list(regs)
            if isinstance(src, int):
                learned[insn.dst] = src
            elif x and isinstance(dst, int):
                learned[insn.src] = dst
            if op == o.JEQ:
                taken = tuple(learned)
            else:
                fall = tuple(learned)
        return taken, fall


def _unwind(path: object) -> tuple[tuple[int, bool], ...]:
    steps: list[tuple[int, bool]] = []
    while path is not None:
        assert isinstance(path, tuple)
        pc, taken, path = path
        steps.append((pc, taken))
    return tuple(reversed(steps))


def verify(insns: Sequence[Insn]) -> VerifiedProgram:
    """Verify ``insns`` as a socket filter; raise ``FilterRejected`` or ``Unsupported``."""
    if not insns:
        raise FilterRejected("empty program")
    if len(insns) > o.MAX_INSNS:
        raise ProgramTooLongError(f"{len(insns)} instructions, more than {o.MAX_INSNS}")
    explorer: _Explorer | None = None
    try:
        _check_structure(insns)
        order = _check_cfg(insns)
        explorer = _Explorer(insns, _liveness(insns, order), _relevance(insns, order))
        explorer.run()
    except _Refuse as exc:
        cls = Unsupported if exc.unsupported else FilterRejected
        path = _unwind(explorer.path) if explorer is not None else ()
        raise cls(exc.reason, index=exc.index, path=path) from None
    return VerifiedProgram(
        tuple(insns),
        frozenset(explorer.visited),
        {pc: frozenset(d) for pc, d in explorer.jumps.items()},
    )
