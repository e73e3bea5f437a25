"""Translate a verified eBPF socket filter, once, into a Python function ``(packet) -> int``.

Theory of operation. The verifier tells which instructions some path reaches and which way
each conditional jump can go. We generate Python source that follows the control-flow graph
as nested ``if`` statements (every branch ends in ``return``, so the code after an ``if`` is the
other way), keep registers in locals (unsigned 64-bit ints), and compile it with ``compile``.
Where two paths meet, the common tail is duplicated while it is small; a large shared tail
becomes a function of its own that receives the registers.

Semantics follow the kernel: ALU32 results are zero-extended, shifts by a register use the low
6 (5) bits, division by zero gives 0 and modulo by zero leaves the dividend, signed division
truncates toward zero, LD_ABS/LD_IND read big-endian bytes and end the program with 0 when
they fall outside the packet (here: the IndexError that ``p[k]`` raises, caught once; a negative
LD_IND offset also gives 0, since we have no SKF_NET_OFF/SKF_LL_OFF areas), the 32-bit context
load reads the packet length, and exit returns r0 as u32. Byte swaps (BPF_END) assume a
little-endian host, as on x86_64 and aarch64.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from packetlab.programs import opcodes as o
from packetlab.programs.ebpf import Insn
from packetlab.programs.verifier import LD_IMM64, M32, M64, VerifiedProgram

FilterFunction = Callable[[bytes], int]

_S64 = 1 << 63
_S32 = 1 << 31
_INLINE_LIMIT = 200  # a shared tail longer than this (instructions, expanded) becomes a function
_MAX_NESTING = 60  # Python allows 100 levels of indentation
_MAX_EMITTED = 20_000  # instructions emitted in all (compile time ~ 1 s at most)
_SIGNED = {o.JSGT: ">", o.JSGE: ">=", o.JSLT: "<", o.JSLE: "<="}
_UNSIGNED = {o.JGT: ">", o.JGE: ">=", o.JLT: "<", o.JLE: "<=", o.JEQ: "==", o.JNE: "!="}
_BUILTINS = {"abs": abs, "int": int, "bytearray": bytearray, "len": len, "IndexError": IndexError}
_NEGATED = {"==": "!=", "!=": "==", ">": "<=", ">=": "<", "<": ">=", "<=": ">"}


@dataclass(slots=True)
class _Ctx:
    """What the emitter knows along one emitted path: an upper bound per register."""

    bound: list[int] = field(default_factory=lambda: [M64] * 11)
    # Registers holding a pointer (context or stack): never materialised, their copies elided.
    pointers: set[int] = field(default_factory=set)

    def copy(self) -> _Ctx:
        return _Ctx(list(self.bound), set(self.pointers))


def _pow2_ceiling_mask(value: int) -> int:
    return (1 << value.bit_length()) - 1


class _Emitter:
    def __init__(self, vp: VerifiedProgram) -> None:
        self.insns = vp.insns
        self.visited = vp.visited
        self.jumps = vp.jumps
        self.succ: dict[int, tuple[int, ...]] = {pc: self._succ(pc) for pc in vp.visited}
        preds: dict[int, int] = {}
        for targets in self.succ.values():
            for t in targets:
                preds[t] = preds.get(t, 0) + 1
        self.preds = preds
        self.uses_len = any(self._is_ctx_load(pc) for pc in vp.visited)
        self.stack_slots = self._stack_layout()
        self.size: dict[int, int] = {}
        self.funcs: set[int] = set()
        self._choose_functions()
        self.emitted = 0
        self.temp = 0

    # Control-flow graph restricted to what the verifier found reachable -------------------
    def _succ(self, pc: int) -> tuple[int, ...]:
        insn = self.insns[pc]
        cls = o.op_class(insn.opcode)
        if insn.opcode == LD_IMM64:
            return (pc + 2,)
        if cls not in (o.JMP, o.JMP32):
            return (pc + 1,)
        op = o.op_code(insn.opcode)
        if op == o.EXIT:
            return ()
        target = pc + 1 + (insn.imm if insn.opcode == o.JMP32 | o.JA else insn.offset)
        if op == o.JA:
            return (target,)
        dirs = self.jumps[pc]
        return tuple(t for t, way in ((pc + 1, False), (target, True)) if way in dirs)

    def _is_ctx_load(self, pc: int) -> bool:
        insn = self.insns[pc]
        return o.op_class(insn.opcode) == o.LDX and insn.src != o.FRAME_REG

    def _topological(self) -> list[int]:
        order: list[int] = []
        seen: set[int] = set()
        stack: list[tuple[int, int]] = [(0, 0)]
        while stack:
            pc, k = stack.pop()
            if k == 0:
                if pc in seen:
                    continue
                seen.add(pc)
            succs = self.succ[pc]
            if k < len(succs):
                stack.append((pc, k + 1))
                if succs[k] not in seen:
                    stack.append((succs[k], 0))
            else:
                order.append(pc)
        order.reverse()
        return order

    def _choose_functions(self) -> None:
        order = self._topological()
        for limit in (_INLINE_LIMIT, 0):
            self.funcs = set()
            for pc in reversed(order):
                total = 1 + sum(1 if s in self.funcs else self.size[s] for s in self.succ[pc])
                self.size[pc] = min(total, 1 << 40)
                if pc and self.preds.get(pc, 0) >= 2 and total > limit:
                    self.funcs.add(pc)
            emitted = self.size[0] + sum(self.size[f] for f in self.funcs)
            if emitted <= _MAX_EMITTED:
                return

    # Stack: one local per slot when accesses never partly overlap, else a bytearray ------
    def _stack_layout(self) -> dict[tuple[int, int], str] | None:
        spans: set[tuple[int, int]] = set()
        for pc in self.visited:
            insn = self.insns[pc]
            cls = o.op_class(insn.opcode)
            if (cls == o.LDX and insn.src == o.FRAME_REG) or cls in (o.ST, o.STX):
                spans.add((insn.offset, o.SIZE_BYTES[o.op_size(insn.opcode)]))
        ordered = sorted(spans)
        for (a, asz), (b, _) in itertools.pairwise(ordered):
            if a + asz > b:
                return None
        return {span: f"s{-span[0]}_{span[1]}" for span in ordered}

    # Source generation ---------------------------------------------------------------------
    def source(self) -> str:
        lines: list[str] = []
        params = self._params()
        lines.append("def _filter(p):")
        if self.uses_len or self.funcs:
            lines.append("    n = len(p)")
        if self.funcs:
            lines.append("    r0 = r1 = r2 = r3 = r4 = r5 = r6 = r7 = r8 = r9 = 0")
        if self.stack_slots is None:
            lines.append("    st = bytearray(512)")
        elif self.funcs and self.stack_slots:
            lines.append("    " + " = ".join(self.stack_slots.values()) + " = 0")
        lines.append("    try:")
        self._emit(0, 2, _Ctx(pointers={1, o.FRAME_REG}), lines, entry=0)
        lines.append("    except IndexError:")
        lines.append("        return 0")
        done: set[int] = set()
        while self.funcs - done:
            pc = min(self.funcs - done)
            done.add(pc)
            lines.append("")
            lines.append(f"def _b{pc}({params}):")
            self._emit(pc, 1, _Ctx(), lines, entry=pc)
        return "\n".join(lines) + "\n"

    def _params(self) -> str:
        names = ["p", "n", *(f"r{r}" for r in range(10))]
        if self.stack_slots is None:
            names.append("st")
        else:
            names.extend(self.stack_slots.values())
        return ", ".join(names)

    def _emit(self, pc: int, indent: int, ctx: _Ctx, lines: list[str], *, entry: int) -> None:
        pad = "    " * indent
        while True:
            if pc != entry and pc in self.funcs:
                lines.append(f"{pad}return _b{pc}({self._params()})")
                return
            self.emitted += 1
            insn = self.insns[pc]
            cls = o.op_class(insn.opcode)
            if cls in (o.JMP, o.JMP32):
                op = o.op_code(insn.opcode)
                if op == o.EXIT:
                    last = lines[-1] if lines else ""
                    if last.startswith(f"{pad}r0 = "):  # return the value, not the register
                        value = last[len(pad) + 5 :]
                        if value.isdigit():
                            lines[-1] = f"{pad}return {int(value) & M32}"
                        elif ctx.bound[0] <= M32:
                            lines[-1] = f"{pad}return {value}"
                        else:
                            lines[-1] = f"{pad}return ({value}) & 0xFFFFFFFF"
                        return
                    mask = "" if ctx.bound[0] <= M32 else " & 0xFFFFFFFF"
                    lines.append(f"{pad}return r0{mask}")
                    return
                succs = self.succ[pc]
                if len(succs) == 1:
                    pc = succs[0]
                    continue
                fall, target = succs
                cond = self._condition(insn, ctx)
                nest_target = self.size[target] <= self.size[fall]
                if indent >= _MAX_NESTING:
                    self.funcs.add(target)
                    nest_target = True
                nested, rest = (target, fall) if nest_target else (fall, target)
                test = cond if nest_target else self._negate(cond)
                lines.append(f"{pad}if {test}:")
                self._emit(nested, indent + 1, ctx.copy(), lines, entry=entry)
                pc = rest
                continue
            written = self._written(insn)
            if written is not None and not self._is_pointer_copy(insn, ctx):
                ctx.pointers.discard(written)
            for line in self._straight(pc, insn, ctx):
                lines.append(pad + line)
            pc = self.succ[pc][0]

    @staticmethod
    def _written(insn: Insn) -> int | None:
        cls = o.op_class(insn.opcode)
        if cls in (o.ALU, o.ALU64, o.LDX) or insn.opcode == LD_IMM64:
            return insn.dst
        if cls == o.LD:
            return 0
        return None

    @staticmethod
    def _is_pointer_copy(insn: Insn, ctx: _Ctx) -> bool:
        return insn.opcode == o.ALU64 | o.MOV | o.X and insn.src in ctx.pointers

    @staticmethod
    def _negate(cond: str) -> str:
        for op, neg in _NEGATED.items():
            parts = cond.split(f" {op} ")
            if len(parts) == 2 and not any(c in cond for c in "()"):
                return f"{parts[0]} {neg} {parts[1]}"
        return f"not ({cond})"

    # Conditions ----------------------------------------------------------------------------
    def _operands(self, insn: Insn, ctx: _Ctx, bits: int) -> tuple[str, str, int, int]:
        """(dst expression, src expression, dst bound, src bound) on ``bits`` bits."""
        mask = M64 if bits == 64 else M32
        dst = f"r{insn.dst}"
        dbound = ctx.bound[insn.dst]
        if bits == 32 and dbound > M32:
            dst, dbound = f"(r{insn.dst} & 0xFFFFFFFF)", M32
        if o.op_src(insn.opcode) == o.X:
            src = f"r{insn.src}"
            sbound = ctx.bound[insn.src]
            if bits == 32 and sbound > M32:
                src, sbound = f"(r{insn.src} & 0xFFFFFFFF)", M32
        else:
            value = insn.imm & mask
            src, sbound = str(value), value
        return dst, src, dbound, sbound

    def _condition(self, insn: Insn, ctx: _Ctx) -> str:
        bits = 64 if o.op_class(insn.opcode) == o.JMP else 32
        op = o.op_code(insn.opcode)
        dst, src, dbound, sbound = self._operands(insn, ctx, bits)
        if op == o.JSET:
            return f"{dst} & {src}"
        if op in _UNSIGNED:
            return f"{dst} {_UNSIGNED[op]} {src}"
        sign = _S64 if bits == 64 else _S32
        cmp = _SIGNED[op]
        if dbound < sign and sbound < sign:
            return f"{dst} {cmp} {src}"
        if o.op_src(insn.opcode) == o.K:
            flipped = (insn.imm & (M64 if bits == 64 else M32)) ^ sign
            return f"({dst} ^ {sign}) {cmp} {flipped}"
        return f"({dst} ^ {sign}) {cmp} ({src} ^ {sign})"

    # Straight-line instructions -------------------------------------------------------------
    def _straight(self, pc: int, insn: Insn, ctx: _Ctx) -> list[str]:
        cls = o.op_class(insn.opcode)
        if cls in (o.ALU, o.ALU64):
            return self._alu(insn, ctx)
        if cls == o.LDX:
            return self._ldx(insn, ctx)
        if cls in (o.ST, o.STX):
            return self._store(insn, ctx)
        return self._ld(pc, insn, ctx)

    def _tmp(self) -> str:
        self.temp += 1
        return f"t{self.temp}"

    def _alu(self, insn: Insn, ctx: _Ctx) -> list[str]:
        code, op = insn.opcode, o.op_code(insn.opcode)
        bits = 64 if o.op_class(code) == o.ALU64 else 32
        mask = M64 if bits == 64 else M32
        hexmask = f"{mask:#x}"
        d = f"r{insn.dst}"
        b = ctx.bound
        if op == o.MOV:
            if o.op_src(code) == o.K:
                value = insn.imm & mask
                b[insn.dst] = value
                return [f"{d} = {value}"]
            if o.op_class(code) == o.ALU64 and not insn.offset and insn.src in ctx.pointers:
                ctx.pointers.add(insn.dst)  # a pointer's value is never used: nothing to copy
                return []
            s = f"r{insn.src}"
            if insn.offset:
                width = insn.offset
                sign = 1 << (width - 1)
                b[insn.dst] = mask
                return [
                    f"{d} = ((({s} & {(1 << width) - 1:#x}) ^ {sign:#x}) - {sign:#x}) & {hexmask}"
                ]
            if bits == 32 and b[insn.src] > M32:
                b[insn.dst] = M32
                return [f"{d} = {s} & 0xFFFFFFFF"]
            b[insn.dst] = b[insn.src]
            return [] if insn.src == insn.dst else [f"{d} = {s}"]
        if op == o.NEG:
            b[insn.dst] = mask
            return [f"{d} = -{d} & {hexmask}"]
        if op == o.END:
            return self._end(insn, ctx)
        dst, src, dbound, sbound = self._operands(insn, ctx, bits)
        signed = insn.offset == 1
        if op in (o.DIV, o.MOD) and signed:
            return self._signed_divmod(insn, ctx, dst, src, bits)
        if op == o.DIV:
            b[insn.dst] = dbound
            if o.op_src(code) == o.K:
                return [f"{d} = {dst} // {src}"]
            return [f"{d} = {dst} // {src} if {src} else 0"]
        if op == o.MOD:
            b[insn.dst] = dbound
            if o.op_src(code) == o.K:
                return [f"{d} = {dst} % {src}"]
            return [f"{d} = {dst} % {src} if {src} else {dst}"]
        if op == o.AND:
            b[insn.dst] = min(dbound, sbound)
            return [f"{d} = {dst} & {src}"]
        if op in (o.OR, o.XOR):
            b[insn.dst] = _pow2_ceiling_mask(max(dbound, sbound))
            return [f"{d} = {dst} {'|' if op == o.OR else '^'} {src}"]
        if op == o.ADD:
            total = dbound + sbound
            b[insn.dst] = min(total, mask)
            return [
                f"{d} = {dst} + {src}" if total <= mask else f"{d} = ({dst} + {src}) & {hexmask}"
            ]
        if op == o.SUB:
            b[insn.dst] = mask
            return [f"{d} = ({dst} - {src}) & {hexmask}"]
        if op == o.MUL:
            total = dbound * sbound
            b[insn.dst] = min(total, mask)
            return [
                f"{d} = {dst} * {src}" if total <= mask else f"{d} = ({dst} * {src}) & {hexmask}"
            ]
        amount = src if o.op_src(code) == o.K else f"({src} & {bits - 1})"
        const_amount = insn.imm if o.op_src(code) == o.K else None
        if op == o.LSH:
            if const_amount is not None and dbound << const_amount <= mask:
                b[insn.dst] = dbound << const_amount
                return [f"{d} = {dst} << {amount}"]
            b[insn.dst] = mask
            return [f"{d} = ({dst} << {amount}) & {hexmask}"]
        if op == o.RSH:
            b[insn.dst] = dbound >> const_amount if const_amount is not None else dbound
            return [f"{d} = {dst} >> {amount}"]
        # ARSH
        sign = _S64 if bits == 64 else _S32
        b[insn.dst] = mask
        if dbound < sign:
            return [f"{d} = {dst} >> {amount}"]
        return [f"{d} = (({dst} ^ {sign:#x}) - {sign:#x} >> {amount}) & {hexmask}"]

    def _signed_divmod(self, insn: Insn, ctx: _Ctx, dst: str, src: str, bits: int) -> list[str]:
        mask = M64 if bits == 64 else M32
        sign = _S64 if bits == 64 else _S32
        d = f"r{insn.dst}"
        a, bb, q = self._tmp(), self._tmp(), self._tmp()
        ctx.bound[insn.dst] = mask
        lines = [
            f"{a} = ({dst} ^ {sign:#x}) - {sign:#x}",
            f"{bb} = ({src} ^ {sign:#x}) - {sign:#x}",
        ]
        if o.op_code(insn.opcode) == o.DIV:
            lines += [
                f"if {bb}:",
                f"    {q} = abs({a}) // abs({bb})",
                f"    {d} = (-{q} if ({a} < 0) != ({bb} < 0) else {q}) & {mask:#x}",
                "else:",
                f"    {d} = 0",
            ]
        else:
            lines += [
                f"if {bb}:",
                f"    {q} = abs({a}) % abs({bb})",
                f"    {d} = (-{q} if {a} < 0 else {q}) & {mask:#x}",
                "else:",
                f"    {d} = {dst}",
            ]
        return lines

    def _end(self, insn: Insn, ctx: _Ctx) -> list[str]:
        d = f"r{insn.dst}"
        width = insn.imm
        to_le = o.op_src(insn.opcode) == o.TO_LE and o.op_class(insn.opcode) == o.ALU
        ctx.bound[insn.dst] = (
            min(ctx.bound[insn.dst], (1 << width) - 1) if to_le else (1 << width) - 1
        )
        if to_le:  # little-endian host: only truncation
            return [] if width == 64 else [f"{d} = {d} & {(1 << width) - 1:#x}"]
        if width == 16:
            return [f"{d} = ({d} & 0xFF) << 8 | ({d} >> 8) & 0xFF"]
        low = f"({d} & {(1 << width) - 1:#x})"
        return [f"{d} = int.from_bytes({low}.to_bytes({width // 8}, 'little'), 'big')"]

    def _slot(self, offset: int, size: int) -> str:
        assert self.stack_slots is not None
        return self.stack_slots[(offset, size)]

    def _ldx(self, insn: Insn, ctx: _Ctx) -> list[str]:
        d = f"r{insn.dst}"
        size = o.SIZE_BYTES[o.op_size(insn.opcode)]
        if insn.src != o.FRAME_REG:  # the verifier allows only __sk_buff.len here
            ctx.bound[insn.dst] = M32
            return [f"{d} = n"]
        signed = o.op_mode(insn.opcode) == o.MEMSX
        ctx.bound[insn.dst] = M64 if signed else (1 << (8 * size)) - 1
        if self.stack_slots is not None:
            value = self._slot(insn.offset, size)
        else:
            at = o.STACK_SIZE + insn.offset
            value = f"int.from_bytes(st[{at}:{at + size}], 'little')"
        if signed:
            bits = 8 * size
            sign = 1 << (bits - 1)
            return [f"{d} = (({value} ^ {sign:#x}) - {sign:#x}) & {M64:#x}"]
        return [f"{d} = {value}"]

    def _store(self, insn: Insn, ctx: _Ctx) -> list[str]:
        size = o.SIZE_BYTES[o.op_size(insn.opcode)]
        mask = (1 << (8 * size)) - 1
        if o.op_class(insn.opcode) == o.ST:
            value = str(insn.imm & mask)
        elif ctx.bound[insn.src] <= mask:
            value = f"r{insn.src}"
        else:
            value = f"r{insn.src} & {mask:#x}"
        if self.stack_slots is not None:
            return [f"{self._slot(insn.offset, size)} = {value}"]
        at = o.STACK_SIZE + insn.offset
        return [f"st[{at}:{at + size}] = ({value}).to_bytes({size}, 'little')"]

    def _ld(self, pc: int, insn: Insn, ctx: _Ctx) -> list[str]:
        if insn.opcode == LD_IMM64:
            value = (insn.imm & M32) | (self.insns[pc + 1].imm & M32) << 32
            ctx.bound[insn.dst] = value
            return [f"r{insn.dst} = {value}"]
        size = o.SIZE_BYTES[o.op_size(insn.opcode)]
        sbound = ctx.bound[insn.src]
        for r in range(1, 6):
            ctx.bound[r] = M64
        ctx.bound[0] = (1 << (8 * size)) - 1
        lines: list[str] = []
        if o.op_mode(insn.opcode) == o.ABS:
            base, k = "", insn.imm
        else:
            s = f"r{insn.src}"
            if insn.imm >= 0 and sbound + insn.imm <= 0x7FFFFFFF:
                base, k = f"{s} + ", insn.imm
                if insn.imm == 0:
                    base = s
            else:
                t = self._tmp()
                lines.append(f"{t} = ({s} + {insn.imm & M64}) & 0xFFFFFFFF")
                lines.append(f"if {t} > 0x7FFFFFFF:")
                lines.append("    return 0")
                base, k = t, 0
        lines.append(f"r0 = {self._packet_bytes(base, k, size)}")
        return lines

    @staticmethod
    def _packet_bytes(base: str, k: int, size: int) -> str:
        def at(i: int) -> str:
            if not base:
                return f"p[{k + i}]"
            if base.endswith(" + "):
                return f"p[{base}{k + i}]"
            return f"p[{base} + {k + i}]" if k + i else f"p[{base}]"

        if size == 1:
            return at(0)
        if size == 2:
            return f"{at(0)} << 8 | {at(1)}"
        return f"{at(0)} << 24 | {at(1)} << 16 | {at(2)} << 8 | {at(3)}"


def python_source(vp: VerifiedProgram) -> str:
    """The Python source ``translate`` compiles (for reading and debugging)."""
    return _Emitter(vp).source()


def translate(vp: VerifiedProgram) -> FilterFunction:
    """Compile a verified program into a function ``(packet: bytes) -> int`` (the accept length)."""
    source = python_source(vp)
    namespace: dict[str, object] = {"__builtins__": _BUILTINS}
    exec(compile(source, "<ebpf filter>", "exec"), namespace)
    function = namespace["_filter"]
    assert callable(function)
    return function
