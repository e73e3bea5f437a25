"""The pktlab program encoding, the text form and the Linux layout: golden bytes, round trips,
and every malformed input raising our error."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packetlab.programs import (
    EmptyProgramError,
    Insn,
    ProgramFormatError,
    ProgramLengthError,
    ProgramTooLongError,
    ProgramType,
    ProgramTypeError,
    TextFormatError,
    decode_program,
    digest,
    encode_program,
    format_text,
    from_linux,
    parse_text,
    program_type,
    to_linux,
)

# mov r6, r1 / ldh [r7+12] / jne r0, 4, +52 / stxdw [r10-8], r1 / mov r0, -1 / exit
PROGRAM = [
    Insn(0xBF, 6, 1),
    Insn(0x48, 0, 7, 0, 12),
    Insn(0x55, 0, 0, 52, 4),
    Insn(0x7B, 10, 1, -8, 0),
    Insn(0xB7, 0, 0, 0, -1),
    Insn(0x95),
]


def _golden() -> bytes:
    return bytes.fromhex(
        "00"  # type: eBPF
        "bf 61 0000 00000000"  # dst 6 in the high nibble, src 1 low
        "48 07 0000 0000000c"  # imm big-endian
        "55 00 0034 00000004"  # offset big-endian
        "7b a1 fff8 00000000"  # negative offset, two's complement
        "b7 00 0000 ffffffff"
        "95 00 0000 00000000".replace(" ", "")
    )


def test_golden_pktlab_bytes() -> None:
    golden = _golden()
    assert encode_program(PROGRAM) == golden
    assert decode_program(golden) == PROGRAM
    assert program_type(golden) is ProgramType.EBPF


def test_linux_layout_swaps_nibbles_and_byte_order() -> None:
    raw = to_linux(PROGRAM)
    assert raw[:8] == bytes.fromhex("bf16000000000000")
    assert raw[8:16] == bytes.fromhex("487000000c000000")
    assert raw[24:32] == bytes.fromhex("7b1af8ff00000000")
    assert from_linux(raw) == PROGRAM


def test_digest_covers_the_type_byte() -> None:
    encoded = encode_program(PROGRAM)
    assert digest(encoded) == hashlib.sha256(encoded).digest()
    assert len(digest(encoded)) == 32


@pytest.mark.parametrize(
    ("encoded", "error", "words"),
    [
        (b"", EmptyProgramError, "empty"),
        (b"\x00", EmptyProgramError, "no instructions"),
        (b"\x01\x00asm", ProgramTypeError, "WASM"),
        (b"\x07" + bytes(8), ProgramTypeError, "unknown program type 0x07"),
        (b"\x00" + bytes(9), ProgramLengthError, "multiple of 8"),
        (b"\x00" + bytes(8 * 4097), ProgramTooLongError, "4097"),
    ],
)
def test_decode_errors_say_what_is_wrong(encoded: bytes, error: type, words: str) -> None:
    with pytest.raises(error, match=words) as caught:
        decode_program(encoded)
    assert isinstance(caught.value, ProgramFormatError)
    assert isinstance(caught.value, ValueError)


def test_encode_refuses_empty_and_too_long() -> None:
    with pytest.raises(EmptyProgramError):
        encode_program([])
    with pytest.raises(ProgramTooLongError):
        encode_program([Insn(0x95)] * 4097)


@pytest.mark.parametrize(
    "fields",
    [
        (256, 0, 0, 0, 0),
        (0, 16, 0, 0, 0),
        (0, 0, -1, 0, 0),
        (0, 0, 0, 0x8000, 0),
        (0, 0, 0, 0, 1 << 31),
    ],
)
def test_insn_fields_are_range_checked(fields: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"fit|byte|4-bit"):
        Insn(*fields)


insns = st.builds(
    Insn,
    st.integers(0, 255),
    st.integers(0, 15),
    st.integers(0, 15),
    st.integers(-0x8000, 0x7FFF),
    st.integers(-0x8000_0000, 0x7FFF_FFFF),
)


@settings(max_examples=200, derandomize=True)
@given(st.lists(insns, min_size=1, max_size=40))
def test_round_trips(program: list[Insn]) -> None:
    assert decode_program(encode_program(program)) == program
    assert parse_text(format_text(program)) == program
    assert from_linux(to_linux(program)) == program


@settings(max_examples=300, derandomize=True)
@given(st.binary(max_size=80))
def test_any_bytes_decode_or_raise_our_error(data: bytes) -> None:
    try:
        program = decode_program(data)
    except ProgramFormatError:
        return
    assert encode_program(program) == data


def test_text_form_bases_comments_and_negatives() -> None:
    text = (
        "# a comment line\n"
        "\n"
        "\r ignored: starts with a carriage return\n"
        "0xb7 0 0 0 4294967295\n"  # imm -1 as u32
        "0267 00 0 0 010\n"  # octal opcode 0xb7, imm 8
        "183 1 0 0 18446744073709551615\n"  # 0xb7, imm -1 as strtoull reads "-1"
        "0x7b 10 1 65528 0\r\n"  # offset -8 as u16, CRLF line end
        "0x7b 10 1 -8 0   # trailing comment\n"
        "0x95 0 0 0 0"
    )
    assert parse_text(text) == [
        Insn(0xB7, 0, 0, 0, -1),
        Insn(0xB7, 0, 0, 0, 8),
        Insn(0xB7, 1, 0, 0, -1),
        Insn(0x7B, 10, 1, -8, 0),
        Insn(0x7B, 10, 1, -8, 0),
        Insn(0x95),
    ]


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("0x95 0 0 0", "expected 5 fields"),
        ("0x95 0 0 0 0 0", "expected 5 fields"),
        ("0x 0 0 0 0", "opcode '0x'"),
        ("08 0 0 0 0", "not an integer"),
        ("0x95 zero 0 0 0", "dst 'zero'"),
        ("256 0 0 0 0", "opcode 0x100 does not fit 8 bits"),
        ("0x95 16 0 0 0", "dst 0x10 does not fit 4 bits"),
        ("0x95 -1 0 0 0", "dst"),
        ("0x95 0 0 65536 0", "offset"),
        ("0x95 0 0 0 4294967296", "imm"),
    ],
)
def test_text_errors_carry_the_line(line: str, words: str) -> None:
    with pytest.raises(TextFormatError, match=words) as caught:
        parse_text("# header\n0xb7 0 0 0 0\n" + line + "\n")
    assert caught.value.line == 3
    assert str(caught.value).startswith("line 3:")
