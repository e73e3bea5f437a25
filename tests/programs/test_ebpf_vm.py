"""The translated VM: kernel semantics on a case table, agreement with the reference interpreter
on generated programs, the shape and size of the generated code, FilterSet and compile_filter."""

from __future__ import annotations

import time

import pytest
from ebpf_asm import CTX_TO_R6, alu, exit_, jmp, ldabs, ldind, ldx, mov, movr
from ebpf_cases import CASES, halves
from ebpf_gen import ListChooser, RandomChooser, choices, generate, packets
from ebpf_oracle import interpret
from hypothesis import given, settings

from packetlab.programs import (
    FilterFunction,
    FilterRejected,
    FilterSet,
    Insn,
    ProgramFormatError,
    Unsupported,
    compile_filter,
    compile_insns,
    encode_program,
    python_source,
    verify,
)
from packetlab.programs import translator as translate_module


@pytest.mark.parametrize("name", list(CASES))
def test_semantics_case(name: str) -> None:
    setup, expected = CASES[name]
    low, high = halves(setup)
    got = compile_insns(low)(b""), compile_insns(high)(b"")
    assert got == (expected & 0xFFFFFFFF, expected >> 32)
    assert (interpret(low, b"").result, interpret(high, b"").result) == got


def test_packet_loads_are_big_endian_and_bounded() -> None:
    packet = bytes(range(1, 9))
    for size, k, expected in [("b", 7, 8), ("h", 6, 0x0708), ("w", 4, 0x05060708)]:
        function = compile_insns([CTX_TO_R6, ldabs(size, k), exit_()])
        assert function(packet) == expected
        assert function(packet[:-1]) == 0  # one byte short: the program ends with 0
    indirect = compile_insns([CTX_TO_R6, mov(7, 3), ldind("h", 7, 1), exit_()])
    assert indirect(packet) == 0x0506
    negative = compile_insns([CTX_TO_R6, mov(7, -2), ldind("b", 7, 1), exit_()])
    assert negative(packet) == 0  # offset -1: outside the packet (no SKF_* areas here)


def test_out_of_bounds_load_ends_the_program_even_after_a_return_value() -> None:
    function = compile_insns([CTX_TO_R6, mov(0, 99), ldabs("b", 3), mov(0, 7), exit_()])
    assert function(b"abcd") == 7
    assert function(b"abc") == 0


def test_context_length_and_u32_return() -> None:
    function = compile_insns([ldx("w", 0, 1, 0), alu("lsh", 0, 32), alu("add", 0, 5), exit_()])
    assert function(bytes(10)) == 5  # exit returns r0 as u32
    assert compile_insns([ldx("w", 0, 1, 0), exit_()])(bytes(1234)) == 1234


def _agree(program: list[Insn], inputs: list[bytes]) -> bool:
    try:
        vp = verify(program)
    except FilterRejected:
        return False
    function = compile_insns(program)
    assert vp.insns == tuple(program)
    for packet in inputs:
        assert function(packet) == interpret(program, packet).result, (program, packet)
    return True


@settings(max_examples=300, derandomize=True, deadline=None)
@given(choices)
def test_translation_agrees_with_the_reference_interpreter(chooser: ListChooser) -> None:
    program = generate(chooser)
    _agree(program, packets(chooser, 6))


def test_translation_agrees_on_a_seeded_sweep() -> None:
    accepted = 0
    for seed in range(1500):
        chooser = RandomChooser(seed)
        accepted += _agree(generate(chooser), packets(chooser, 6))
    assert accepted >= 100  # the generator must give the VM real work


def test_shared_tails_stay_small_and_nesting_stays_shallow() -> None:
    # 300 diamonds in a row: 2**300 paths; the shared tails become functions.
    program = [CTX_TO_R6, mov(7, 0)]
    for i in range(300):
        program += [ldabs("b", i % 40), jmp("jeq", 0, i % 7, 1), alu("add", 7, 1)]
    program += [movr(0, 7), exit_()]
    start = time.perf_counter()
    function = compile_insns(program)
    assert time.perf_counter() - start < 5
    source = python_source(verify(program))
    assert len(source.splitlines()) < 20 * len(program)
    assert max(len(line) - len(line.lstrip()) for line in source.splitlines()) <= 4 * 62
    for packet in (bytes(40), bytes(range(40)), bytes([3] * 40), bytes(39)):
        assert function(packet) == interpret(program, packet).result


def test_long_chain_of_nested_tests() -> None:
    # Each test's taken side nests: deeper than Python's 100 indentation levels if unchecked.
    program = [CTX_TO_R6]
    for i in range(150):
        program += [ldabs("b", i % 30), jmp("jne", 0, i % 3, 2 * (150 - i) - 1)]
    program += [mov(0, 1), exit_()]
    function = compile_insns(program)
    for packet in (bytes(30), bytes([0, 1, 2] * 10), bytes(29)):
        assert function(packet) == interpret(program, packet).result


def test_generated_code_for_a_filter_has_no_calls() -> None:
    source = python_source(
        verify(
            [CTX_TO_R6, ldabs("b", 9), jmp("jne", 0, 1, 2), mov(0, -1), exit_(), mov(0, 0), exit_()]
        )
    )
    assert "(" not in source.split("try:", 1)[1].split("except", 1)[0]
    assert "return 4294967295" in source


def test_compile_filter_errors() -> None:
    with pytest.raises(ProgramFormatError):
        compile_filter(b"\x01\x00asm")
    with pytest.raises(FilterRejected, match="r0 never written"):
        compile_filter(encode_program([exit_()]))
    with pytest.raises(Unsupported, match="helper call"):
        compile_filter(encode_program([Insn(0x85, 0, 0, 0, 7), exit_()]))


def test_filter_set_takes_the_smallest_accept_length() -> None:
    def returning(value: int) -> FilterFunction:
        return compile_filter(encode_program([mov(0, value), exit_()]))

    packet = bytes(100)
    assert FilterSet().accept_length(packet) == 100
    assert len(FilterSet()) == 0
    assert FilterSet([returning(0xFFFF)]).accept_length(packet) == 100
    assert FilterSet([returning(0xFFFF), returning(60), returning(80)]).accept_length(packet) == 60
    assert FilterSet([returning(60), returning(0)]).accept_length(packet) == 0
    icmp_only = compile_filter(
        encode_program(
            [CTX_TO_R6, ldabs("b", 9), jmp("jeq", 0, 1, 2), mov(0, 0), exit_(), mov(0, -1), exit_()]
        )
    )
    both = FilterSet([icmp_only, returning(40)])
    assert both.accept_length(bytes(9) + b"\x01" + bytes(50)) == 40
    assert both.accept_length(bytes(9) + b"\x06" + bytes(50)) == 0
    with pytest.raises(FilterRejected):  # r0 read before it is written
        compile_filter(encode_program([exit_()]))


def test_translation_with_every_shared_tail_a_function(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(translate_module, "_INLINE_LIMIT", 0)
    monkeypatch.setattr(translate_module, "_MAX_NESTING", 3)
    functions = 0
    for seed in range(2000):
        chooser = RandomChooser(50_000 + seed)
        program = generate(chooser)
        if _agree(program, packets(chooser, 6)):
            functions += "def _b" in python_source(verify(program))
    assert functions >= 15
