"""Differential tests against the running kernel's verifier and socket-filter execution.

Verdicts: our verifier accepts => the kernel accepts. We refuse (not ``Unsupported``) and the
kernel accepts => allowed only when the refused path is not concretely feasible: we track
constants, the kernel value ranges, so it may prove dead a path we explore. A refusal whose
path some packet does drive (a witness) must be refused by the kernel too. ``Unsupported``
refusals are outside the subset and not compared.
Results: for accepted programs, the kernel (BPF_PROG_TEST_RUN, and SO_ATTACH_BPF on an AF_UNIX
socketpair), our translation and the reference interpreter return the same value.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest
from ebpf_asm import CTX_TO_R6, alu, exit_, jmp, ldabs, ldx, mov
from ebpf_cases import CASES, halves
from ebpf_gen import ListChooser, RandomChooser, choices, generate, mutate, packets
from ebpf_oracle import (
    KernelFilter,
    find_witness,
    interpret,
    kernel_accepts,
    kernel_bpf_available,
    unix_pair_keeps,
)
from hypothesis import given, settings

from packetlab.programs import (
    FilterRejected,
    Insn,
    Unsupported,
    VerifiedProgram,
    compile_insns,
    kernel,
    verify,
)

NO_BPF = kernel_bpf_available()
pytestmark = pytest.mark.skipif(NO_BPF is not None, reason=f"bpf(2) unavailable: {NO_BPF}")


def _verdict(program: list[Insn]) -> VerifiedProgram | FilterRejected:
    try:
        return verify(program)
    except FilterRejected as refusal:
        return refusal


def compare(program: list[Insn], inputs: list[bytes]) -> str:
    """Check one program against the kernel; return its category (or fail)."""
    vp = _verdict(program)
    if isinstance(vp, Unsupported):
        return "unsupported"
    if isinstance(vp, FilterRejected):
        accepted, _ = kernel_accepts(program)
        if not accepted:
            return "both refuse"
        assert vp.index is not None, f"we refuse the whole program, the kernel accepts: {vp}"
        witness = find_witness(program, vp.path, vp.index)
        assert witness is None, (
            f"we refuse ({vp}) on a path packet {witness.hex()} takes, yet the kernel "
            f"accepts:\n{program}"
        )
        return "refused on a path the kernel proves dead"
    accepted, reason = kernel_accepts(program)
    assert accepted, f"we accept, the kernel refuses ({reason}):\n{program}"
    function = compile_insns(vp.insns)
    with KernelFilter(program) as loaded:
        for packet in inputs:
            expected = loaded.run(packet)
            assert function(packet) == expected, (program, packet.hex())
            assert interpret(program, packet).result == expected, (program, packet.hex())
    return "both accept"


def test_the_opcode_table_matches_the_kernel() -> None:
    """Every opcode, in code only a constant jump skips: known ones pass, others fail anywhere."""
    for opcode in range(256):
        if opcode == 0x18:
            continue
        program = [mov(0, 0), jmp("jeq", 0, 0, 1), Insn(opcode), exit_()]
        try:
            verify(program)
            ours = True
        except Unsupported:
            continue
        except FilterRejected:
            ours = False
        assert ours == kernel_accepts(program)[0], hex(opcode)


@pytest.mark.parametrize("name", list(CASES))
def test_semantics_case_in_the_kernel(name: str) -> None:
    setup, expected = CASES[name]
    low, high = halves(setup)
    with KernelFilter(low) as lo, KernelFilter(high) as hi:
        assert (lo.run(b""), hi.run(b"")) == (expected & 0xFFFFFFFF, expected >> 32)


def test_seeded_sweep_of_generated_and_mutated_programs() -> None:
    seen: Counter[str] = Counter()
    for seed in range(2500):
        chooser = RandomChooser(seed)
        program = generate(chooser)
        if chooser.chance(0.25):
            program = mutate(chooser, program)
        seen[compare(program, packets(chooser, 5))] += 1
    assert seen["both accept"] >= 150
    assert seen["both refuse"] >= 1000
    compared = seen["both accept"] + seen["both refuse"]
    assert seen["refused on a path the kernel proves dead"] <= compared // 50, seen


@settings(max_examples=250, derandomize=True, deadline=None)
@given(choices)
def test_generated_programs(chooser: ListChooser) -> None:
    program = generate(chooser)
    if chooser.chance(0.2):
        program = mutate(chooser, program)
    compare(program, packets(chooser, 4))


def test_attached_filter_truncates_and_drops_like_its_result() -> None:
    # Keep ICMP (protocol 1) packets up to their first 24 bytes, drop the rest.
    program = [
        CTX_TO_R6,
        ldabs("b", 9),
        jmp("jeq", 0, 1, 2),
        mov(0, 0),
        exit_(),
        mov(0, 24),
        exit_(),
    ]
    inputs = [bytes(9) + b"\x01" + bytes(30), bytes(9) + b"\x06" + bytes(30), bytes(9) + b"\x01"]
    kept = unix_pair_keeps(lambda s: kernel.attach_filter(s, program), inputs)
    function = compile_insns(program)
    assert kept == [min(function(p), len(p)) for p in inputs] == [24, 0, 10]


def test_generated_programs_through_a_socketpair() -> None:
    checked = 0
    for seed in range(400):
        chooser = RandomChooser(10_000 + seed)
        program = generate(chooser)
        try:
            function = compile_insns(program)
        except FilterRejected:
            continue
        inputs = [p for p in packets(chooser, 4) if p]
        kept = unix_pair_keeps(lambda s, prog=program: kernel.attach_filter(s, prog), inputs)
        assert kept == [min(function(p), len(p)) for p in inputs], program
        checked += 1
    assert checked >= 20


def test_detach_restores_delivery() -> None:
    tx, rx = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        kernel.attach_filter(rx, [mov(0, 0), exit_()])
        tx.send(b"dropped")
        kernel.detach(rx)
        kernel.detach(rx)  # nothing attached any more: not an error
        tx.send(b"kept")
        assert rx.recv(100, socket.MSG_DONTWAIT) == b"kept"
    finally:
        tx.close()
        rx.close()


def test_kernel_refusal_carries_the_verifier_log() -> None:
    with pytest.raises(FilterRejected) as caught:
        kernel.load_socket_filter(
            [ldx("w", 0, 1, 0), alu("add", 0, 1), jmp("jeq", 3, 0, 0), exit_()]
        )
    assert "R3 !read_ok" in caught.value.reason
    assert "R3 !read_ok" in caught.value.log
    assert "verifier log" in str(caught.value)
